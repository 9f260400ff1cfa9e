/**
 * `pull --server edge --direct`: the manifest from the edge, the bytes straight from the bucket
 * (presigned URLs the edge hands out, or the runner's own credentials with --s3-endpoint), each
 * chunk verified. Byte-identical to the origin's folder; a second pull after an edit fetches only
 * the changed chunks; a chunk tampered with in the bucket is refused (exit 6, nothing visible),
 * and the edge, whose cached copy was tampered with, evicts it and fetches it again.
 */
import { readdir, readFile, writeFile, open as openFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, parseEvents, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { diffTrees, listFiles, writeRandomFile } from '../helpers/trees.js'
import { BUCKET, NATS_MISSING, type EdgeHandle, TestNats, TestS3, startEdge, waitPublished } from './support.js'

/** Flips one byte in the middle of a file. */
async function flipByte(file: string): Promise<void> {
  const fh = await openFile(file, 'r+')
  try {
    const { size } = await fh.stat()
    const b = Buffer.alloc(1)
    await fh.read(b, 0, 1, Math.floor(size / 2))
    b[0] = (b[0] as number) ^ 0xff
    await fh.write(b, 0, 1, Math.floor(size / 2))
  } finally {
    await fh.close()
  }
}

async function filesIn(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => !n.startsWith('.'))
}

describe.skipIf(NATS_MISSING)('pull --direct', () => {
  let sb: Sandbox
  let s3: TestS3
  let nats: TestNats
  let assets: string
  let origin: ServerHandle
  let edge: EdgeHandle

  beforeAll(async () => {
    ensureBuilt()
    sb = await Sandbox.create('scale-direct')
    s3 = await TestS3.start()
    nats = await TestNats.start(1)
    assets = await sb.mkdir('assets')
    await writeRandomFile(join(assets, 'big.bin'), 3 * 1024 * 1024)
    await writeRandomFile(join(assets, 'mid.bin'), 200 * 1024)
    await writeFile(join(assets, 'small.txt'), 'hello\n')
    await writeFile(join(assets, 'empty.txt'), '')
    origin = await sb.serve(assets, ['--publish', `s3://${BUCKET}/d`, '--feed', nats.url, '--settle', '50'], { env: s3.env() })
    await waitPublished(origin, 1)
    edge = await startEdge(sb, s3, 'd', nats.url)
  }, 60_000)

  afterAll(async () => {
    await sb?.cleanup()
    await nats?.stop()
    await s3?.remove()
  })

  const pull = (out: string, extra: string[] = [], env: Record<string, string> = {}) =>
    sb.run(['pull', '--server', edge.addr, '--out', out, '--json', '--direct', ...extra], { env, timeoutMs: 60_000 })

  it('is byte-identical, with presigned URLs and with the runner\'s own credentials', async () => {
    const out = await sb.mkdir('direct')
    const r = await pull(out)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(await diffTrees(assets, out)).toEqual([])
    const sum = parseEvents(r.stdout).find((e) => e.event === 'summary')
    expect(sum).toMatchObject({ files: 4, downloaded: 4 })

    // Own credentials: the runner has AWS keys and names the endpoint; no URL is signed for it.
    const own = await sb.mkdir('own')
    const r2 = await pull(own, ['--s3-endpoint', s3.endpoint], { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' })
    expect(r2.code, r2.stderr).toBe(0)
    expect(await diffTrees(assets, own)).toEqual([])

    // An edit in the middle of the big file: the next direct pull fetches a few chunks, not 3 MiB.
    const v = origin.events().filter((e) => e.event === 'published').length
    const fh = await openFile(join(assets, 'big.bin'), 'r+')
    await fh.write(Buffer.from('edited'), 0, 6, 1_500_000)
    await fh.close()
    await waitPublished(origin, v + 1)
    const { waitFor } = await import('../helpers/common.js')
    await waitFor(() => edge.events().some((e) => e.event === 'edge-version' && (e.version as number) >= v + 1), 20_000, 'the edge to take the edit')
    const r3 = await pull(out)
    expect(r3.code, r3.stderr).toBe(0)
    expect(await diffTrees(assets, out)).toEqual([])
    const sum3 = parseEvents(r3.stdout).find((e) => e.event === 'summary') as Record<string, number>
    expect(sum3.downloaded).toBe(1)
    expect(sum3.bytesReceived).toBeGreaterThan(0)
    expect(sum3.bytesReceived).toBeLessThan(600 * 1024)
  }, 120_000)

  it('get through an edge writes the published bytes', async () => {
    const r = await sb.run(['get', '--server', edge.addr, 'mid.bin'], { timeoutMs: 30_000 })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.equals(await readFile(join(assets, 'mid.bin')))).toBe(true)
    const missing = await sb.run(['get', '--server', edge.addr, 'nope.bin'], { timeoutMs: 30_000 })
    expect(missing.code).toBe(5)
  })

  it('against a server with no bucket, pulls through the server', async () => {
    const plain = await sb.serve(assets)
    const out = await sb.mkdir('plain')
    const r = await sb.run(['pull', '--server', plain.addr, '--out', out, '--direct'], { timeoutMs: 60_000 })
    expect(r.code, r.stderr).toBe(0)
    expect(await diffTrees(assets, out)).toEqual([])
    await plain.stop()
  }, 60_000)

  it('refuses a chunk tampered with in the bucket (exit 6, no file); the edge evicts a tampered cached copy and fetches it again', async () => {
    // Warm the edge's cache with a pull through it.
    const warm = await sb.mkdir('warm')
    expect((await sb.run(['pull', '--server', edge.addr, '--out', warm], { timeoutMs: 60_000 })).code).toBe(0)

    // Tamper with every cached chunk on the edge's disk: it must notice, evict, refetch.
    const cacheRoot = join(edge.config, 'cache')
    const cached: string[] = []
    for (const f of await listFiles(cacheRoot)) if (/\/c-[0-9a-f]{64}$/.test(f)) cached.push(join(cacheRoot, f))
    expect(cached.length).toBeGreaterThan(10)
    for (const f of cached) await flipByte(f)
    const again = await sb.mkdir('again')
    const r = await sb.run(['pull', '--server', edge.addr, '--out', again], { timeoutMs: 60_000 })
    expect(r.code, r.stderr).toBe(0)
    expect(await diffTrees(assets, again)).toEqual([])

    // Tamper with one chunk object in the bucket: a direct pull refuses it, and nothing is installed.
    const chunkDir = join(s3.dir, BUCKET, 'd', 'chunks')
    const objects = (await readdir(chunkDir)).filter((n) => n.endsWith('._S3rver_object'))
    const sizes = await Promise.all(objects.map(async (n) => ({ n, size: (await (await import('node:fs/promises')).stat(join(chunkDir, n))).size })))
    const victim = sizes.filter((o) => o.size > 16 * 1024).sort((a, b) => a.n.localeCompare(b.n))[0]
    if (!victim) throw new Error('no multi-KiB chunk object found')
    await flipByte(join(chunkDir, victim.n))
    const bad = await sb.mkdir('bad')
    const rb = await pull(bad)
    expect(rb.code).toBe(6)
    expect(rb.stderr).toMatch(/does not match its BLAKE3 hash/)
    const visible = (await filesIn(bad)).filter((n) => n === 'big.bin' || n === 'mid.bin')
    // The damaged file is never visible (an undamaged one may be), and no temp file is left.
    for (const n of visible) expect(await diffTrees(assets, bad, { filesOnly: true, only: (rel) => rel === n })).toEqual([])
    expect((await listFiles(bad)).filter((f) => /\.tmp$/.test(f))).toEqual([])

    // Through a fresh edge (nothing cached): it refuses the damaged object too, and serves nothing of it.
    const fresh = await startEdge(sb, s3, 'd', nats.url)
    const viaEdge = await sb.mkdir('via-edge')
    const re = await sb.run(['pull', '--server', fresh.addr, '--out', viaEdge], { timeoutMs: 60_000 })
    expect(re.code).toBe(6)
    // Repaired in the bucket: the same edge fetches it again and serves it.
    await flipByte(join(chunkDir, victim.n))
    const rr = await sb.run(['pull', '--server', fresh.addr, '--out', viaEdge], { timeoutMs: 60_000 })
    expect(rr.code, rr.stderr).toBe(0)
    expect(await diffTrees(assets, viaEdge)).toEqual([])
  }, 120_000)
})
