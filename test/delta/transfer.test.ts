/**
 * Delta transfers end to end (issue 16): a real AssetServer over UDP on port 0 serving a folder,
 * and the real client pieces (Mirror: pull's path; AssetClient.download: get -o's path). Each case
 * checks the bytes on disk against the source and what crossed the wire (`bytesReceived`) against
 * what was reused (`bytesReused`).
 */
import { randomBytes } from 'node:crypto'
import { copyFile, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { type AppliedStats, LiveMirror } from '../../src/core/client/live-mirror.js'
import { Mirror, type SyncSummary } from '../../src/core/client/mirror.js'
import { AssetServer } from '../../src/core/server/server.js'
import { isTempName } from '../../src/core/fs/atomic-write.js'
import { CHUNK_SIZE } from '../../src/limits.js'
import type { ProtocolOffer } from '../../src/protocol/negotiation.js'
import { Cleanup, KiB, LOOPBACK, MiB, tempDir, withTimeout } from '../helpers/common.js'
import { diffTrees } from '../helpers/trees.js'
import { jsonText, seededBytes } from './support.js'

const BIG = 8 * MiB

let work: string
let removeWork: () => Promise<void>
const cleanup = new Cleanup()
let n = 0

beforeAll(async () => {
  ({ dir: work, remove: removeWork } = await tempDir('delta-transfer'))
})
afterEach(() => cleanup.run())
afterAll(async () => { await removeWork() })

interface Setup {
  src: string
  out: string
  server: AssetServer
  client: () => Promise<AssetClient>
  pull: () => Promise<SyncSummary>
}

/** A served folder with `files`, and a mirror of it; `protocol` limits what the server offers. */
async function setup(files: Record<string, Uint8Array>, protocol?: Partial<ProtocolOffer>): Promise<Setup> {
  const id = n++
  const src = join(work, `src-${id}`)
  const out = join(work, `out-${id}`)
  const configDir = join(work, `cfg-${id}`)
  for (const [p, data] of Object.entries(files)) await writeAt(join(src, p), data)
  const server = await AssetServer.start({ root: src, configDir, host: LOOPBACK, port: 0, watch: false, protocol })
  cleanup.add(() => server.close())
  const key = server.publicKey.toString('hex')
  const client = async (): Promise<AssetClient> => {
    const c = await AssetClient.connect({ server: `${LOOPBACK}:${server.address().port}`, key, configDir })
    cleanup.add(() => c.close())
    return c
  }
  const mirror = new Mirror({ out, configDir })
  const pull = async (): Promise<SyncSummary> => {
    const c = await client()
    try {
      await server.source.scan()
      return await mirror.sync(c, await c.manifest(['**']), { prune: true })
    } finally {
      c.close()
    }
  }
  return { src, out, server, client, pull }
}

async function writeAt(path: string, data: Uint8Array): Promise<void> {
  const { mkdir } = await import('node:fs/promises')
  await mkdir(join(path, '..'), { recursive: true })
  await writeFile(path, data)
}

async function tempsUnder(dir: string): Promise<string[]> {
  const names = await readdir(dir, { recursive: true })
  return names.filter((p) => isTempName(p.split('/').at(-1) as string))
}

describe('delta transfers', () => {
  it('a 1-byte edit in a large file costs one chunk and the list; the rest is reused', async () => {
    const data = Buffer.from(seededBytes(BIG, 1))
    const s = await setup({ 'big.bin': data })
    const first = await s.pull()
    expect(first.bytesReceived).toBe(BIG) // random bytes do not compress
    data[BIG >> 1] = (data[BIG >> 1] as number) ^ 0xff
    await writeFile(join(s.src, 'big.bin'), data)
    const second = await s.pull()
    expect(second.downloaded).toBe(1)
    expect(second.bytesReceived).toBeLessThan(256 * KiB)
    expect(second.bytesReceived + second.bytesReused).toBeGreaterThanOrEqual(BIG)
    expect(second.bytesReused).toBeGreaterThan(BIG - 256 * KiB)
    expect(await diffTrees(s.src, s.out)).toEqual([])
    expect(await tempsUnder(s.out)).toEqual([])
  })

  it('1 MiB inserted at the front costs about that MiB', async () => {
    const data = Buffer.from(seededBytes(BIG, 2))
    const s = await setup({ 'a/big.bin': data })
    await s.pull()
    await writeFile(join(s.src, 'a/big.bin'), Buffer.concat([seededBytes(MiB, 3), data]))
    const r = await s.pull()
    expect(r.bytesReceived).toBeGreaterThanOrEqual(MiB)
    expect(r.bytesReceived).toBeLessThan(MiB + 512 * KiB)
    expect(await diffTrees(s.src, s.out)).toEqual([])
  })

  it('a copy to a second path and a renamed folder cross nothing: local copies, verified', async () => {
    const files: Record<string, Uint8Array> = { 'big.bin': seededBytes(2 * MiB, 4) }
    for (let i = 0; i < 30; i++) files[`dir/f${i}.bin`] = seededBytes(20 * KiB + i, 100 + i)
    const s = await setup(files)
    await s.pull()
    await copyFile(join(s.src, 'big.bin'), join(s.src, 'copy.bin'))
    await rename(join(s.src, 'dir'), join(s.src, 'moved'))
    const r = await s.pull()
    expect(r.downloaded).toBe(31)
    expect(r.deleted).toBe(30)
    expect(r.bytesReceived).toBe(0)
    expect(r.bytesReused).toBe(2 * MiB + 30 * 20 * KiB + (29 * 30) / 2)
    expect(await diffTrees(s.src, s.out)).toEqual([])
  })

  it('dedup: a new chunk that two edited files need crosses the wire once', async () => {
    const a = Buffer.from(seededBytes(4 * MiB, 5))
    const b = Buffer.from(seededBytes(4 * MiB, 6))
    const s = await setup({ 'a.bin': a, 'b.bin': b })
    await s.pull()
    const block = seededBytes(2 * MiB, 7)
    await writeFile(join(s.src, 'a.bin'), Buffer.concat([a.subarray(0, MiB), block, a.subarray(MiB)]))
    await writeFile(join(s.src, 'b.bin'), Buffer.concat([b.subarray(0, 2 * MiB), block, b.subarray(2 * MiB)]))
    const r = await s.pull()
    expect(r.downloaded).toBe(2)
    // The block once (its chunks, plus the chunks cut at each seam), not twice.
    expect(r.bytesReceived).toBeGreaterThan(1.5 * MiB)
    expect(r.bytesReceived).toBeLessThan(2 * MiB + 1.5 * MiB)
    expect(await diffTrees(s.src, s.out)).toEqual([])
  })

  it('get -o over an older version of the file fetches only what changed', async () => {
    const data = Buffer.from(seededBytes(BIG, 8))
    const s = await setup({ 'big.bin': data })
    const dest = join(s.out, 'got.bin')
    await writeAt(dest, data)
    data.fill(7, 100_000, 100_010)
    await writeFile(join(s.src, 'big.bin'), data)
    const c = await s.client()
    const r = await c.download('big.bin', dest)
    expect(r.status).toBe('downloaded')
    if (r.status !== 'downloaded') return
    expect(r.bytes).toBeLessThan(256 * KiB)
    expect(r.reused).toBeGreaterThan(BIG - 256 * KiB)
    expect((await readFile(dest)).equals(data)).toBe(true)
    expect(await tempsUnder(s.out)).toEqual([])
  })

  it('zstd: JSON crosses compressed, a known-compressed type and random bytes raw', async () => {
    const json = jsonText(2 * MiB, 9)
    const noise = randomBytes(MiB)
    const s = await setup({ 'level.json': json, 'tex.png': noise, 'noise.bin': noise })
    const r = await s.pull()
    expect(r.bytesReceived).toBeLessThan(json.length * 0.35 + 2 * noise.length + 4 * KiB)
    expect(r.bytesReceived).toBeGreaterThanOrEqual(2 * noise.length)
    expect(await diffTrees(s.src, s.out)).toEqual([])
  })

  it('without the features (a server that offers none) every file crosses whole and raw', async () => {
    const data = Buffer.from(jsonText(2 * MiB, 10))
    const s = await setup({ 'level.json': data }, { features: 0 })
    const first = await s.pull()
    expect(first.bytesReceived).toBe(data.length)
    data[1000] = 0x20
    await writeFile(join(s.src, 'level.json'), data)
    const second = await s.pull()
    expect(second.bytesReceived).toBe(data.length)
    expect(second.bytesReused).toBe(0)
    expect(await diffTrees(s.src, s.out)).toEqual([])
    const c = await s.client()
    expect(c.conn.has('chunks')).toBe(false)
    expect(c.conn.has('zstd')).toBe(false)
  })

  it('a file smaller than CHUNK_SIZE is not listed: REQUEST, even with an old version', async () => {
    const s = await setup({ 'small.lua': Buffer.from('return 1\n'.repeat(5000)) })
    await s.pull()
    await writeFile(join(s.src, 'small.lua'), Buffer.from('return 2\n'.repeat(5000)))
    const r = await s.pull()
    expect(r.bytesReused).toBe(0)
    expect(r.bytesReceived).toBeLessThan(CHUNK_SIZE)
    expect(await diffTrees(s.src, s.out)).toEqual([])
  })

  it('watch: a 1-byte edit pushed to a live mirror applies with one chunk on the wire', async () => {
    const id = n++
    const src = join(work, `src-${id}`)
    const out = join(work, `out-${id}`)
    const configDir = join(work, `cfg-${id}`)
    const data = Buffer.from(seededBytes(BIG, 11))
    await writeAt(join(src, 'big.bin'), data)
    const server = await AssetServer.start({ root: src, configDir, host: LOOPBACK, port: 0, settleMs: 20 })
    cleanup.add(() => server.close())
    const live = new LiveMirror({ client: { server: `${LOOPBACK}:${server.address().port}`, key: server.publicKey.toString('hex') }, out, configDir })
    cleanup.add(() => live.stop())
    await live.start()
    const applied = new Promise<AppliedStats>((resolve) => {
      live.on('applied', (changes, stats) => { if (changes.some((c) => c.path === 'big.bin')) resolve(stats) })
    })
    data[12345] = (data[12345] as number) ^ 0xff
    // Replaced in one step (written beside the folder, renamed in): the watcher sees only the new version.
    await writeFile(join(work, `next-${id}.bin`), data)
    await rename(join(work, `next-${id}.bin`), join(src, 'big.bin'))
    const stats = await withTimeout(applied, 20_000, 'the applied batch')
    expect(stats.bytesReceived).toBeLessThan(256 * KiB)
    expect(stats.bytesReused).toBeGreaterThan(BIG - 256 * KiB)
    expect((await readFile(join(out, 'big.bin'))).equals(data)).toBe(true)
  })
})
