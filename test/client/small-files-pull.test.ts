/**
 * A pull of many small files over a real folder server (UDP), in process: files travel in batches
 * (feature `batch-request`), the listing is saved with its digest, and the next pull of an
 * unchanged server receives no listing (feature `manifest-digest`) yet still repairs what changed
 * locally; a change on the server brings the listing again. And the same pulls with neither
 * feature agreed, as against a protocol-2 server.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { Mirror } from '../../src/core/client/mirror.js'
import { pullResuming } from '../../src/core/client/pull.js'
import { AssetServer } from '../../src/core/server/server.js'
import { BATCH_FILE_BYTES, CLIENT_BATCH_FILES } from '../../src/limits.js'
import { LOOPBACK, tempDir } from '../helpers/common.js'
import { diffTrees } from '../helpers/trees.js'

let dir: string
let remove: () => Promise<void>
let src: string
let server: AssetServer
const FILES = CLIENT_BATCH_FILES * 2 + 37 // several batches, the last one short

beforeAll(async () => {
  ({ dir, remove } = await tempDir('small-files-pull'))
  src = join(dir, 'src')
  const writes: Promise<void>[] = []
  for (let i = 0; i < FILES; i++) {
    const d = join(src, `d${i % 7}`)
    await mkdir(d, { recursive: true })
    // Mostly small, a few over BATCH_FILE_BYTES (they go by REQUEST), some empty.
    const size = i % 100 === 0 ? BATCH_FILE_BYTES + 1 + i : i % 61 === 0 ? 0 : 100 + ((i * 7919) % 12_000)
    writes.push(writeFile(join(d, `f${i}.bin`), randomBytes(size), { mode: i % 3 === 0 ? 0o755 : 0o644 }))
  }
  await Promise.all(writes)
  server = await AssetServer.start({ root: src, configDir: join(dir, 'server-cfg'), host: LOOPBACK, port: 0, transport: 'udp', settleMs: 5 })
}, 60_000)

afterAll(async () => {
  await server?.close()
  await remove?.()
})

/** One pull into `out`, returning its summary and the frame bytes the client received. */
async function pull(out: string, features?: number, opts: { prune?: boolean } = {}): Promise<{ summary: Awaited<ReturnType<typeof pullResuming>>; received: number }> {
  let received = 0
  const mirror = new Mirror({ out, configDir: join(dir, `client-cfg-${features ?? 'all'}`) })
  const summary = await pullResuming(async () => {
    const c = await AssetClient.connect({
      server: `${LOOPBACK}:${server.address().port}`, transport: 'udp', key: server.publicKey.toString('hex'),
      configDir: join(dir, 'client-keys'), connectTimeoutMs: 10_000, ...(features === undefined ? {} : { protocol: { features } }),
    })
    c.once('close', () => { received += c.conn.bytesReceived })
    return c
  }, mirror, { prune: opts.prune })
  return { summary, received }
}

describe.each([['both features', undefined], ['no features (as protocol 2)', 0]] as const)('pull of %s', (_name, features) => {
  const out = (): string => join(dir, `out-${features ?? 'all'}`)

  it('cold: every file byte for byte with its mode', async () => {
    const { summary } = await pull(out(), features)
    expect(summary).toMatchObject({ files: FILES, downloaded: FILES, upToDate: 0, vanished: 0 })
    expect(await diffTrees(src, out())).toEqual([])
  }, 120_000)

  it('no-op: nothing downloaded; with the digest no listing crosses the wire', async () => {
    const { summary, received } = await pull(out(), features)
    expect(summary).toMatchObject({ files: FILES, downloaded: 0, upToDate: FILES })
    if (features === undefined) expect(received).toBeLessThan(1024) // AUTH_OK, MANIFEST_DIGEST_REPLY, PINGs
    else expect(received).toBeGreaterThan(FILES * 60) // the whole listing
  }, 60_000)

  it('a local file changed or removed under an unchanged server is fetched again', async () => {
    await writeFile(join(out(), 'd1', 'f1.bin'), 'edited locally')
    await unlink(join(out(), 'd2', 'f2.bin'))
    const { summary } = await pull(out(), features)
    expect(summary).toMatchObject({ downloaded: 2, upToDate: FILES - 2 })
    expect(await diffTrees(src, out())).toEqual([])
  }, 60_000)

  it('a change on the server brings the listing and the file; prune removes a file the server dropped', async () => {
    const changed = join(src, 'd3', 'f3.bin')
    const dropped = join(src, 'd5', 'f5.bin')
    const [before, droppedBytes] = await Promise.all([readFile(changed), readFile(dropped)])
    await writeFile(changed, randomBytes(777))
    await unlink(dropped)
    try {
      // The watcher may be behind: look now.
      await Promise.all([server.source.get('d3/f3.bin'), server.source.get('d5/f5.bin')])
      const { summary } = await pull(out(), features, { prune: true })
      expect(summary).toMatchObject({ downloaded: 1, deleted: 1 })
      expect(await diffTrees(src, out())).toEqual([])
    } finally {
      await Promise.all([writeFile(changed, before), writeFile(dropped, droppedBytes)])
      await Promise.all([server.source.get('d3/f3.bin'), server.source.get('d5/f5.bin')])
    }
    const again = await pull(out(), features)
    expect(again.summary).toMatchObject({ downloaded: 2 })
    expect(await diffTrees(src, out())).toEqual([])
  }, 60_000)
})
