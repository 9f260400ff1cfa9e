/**
 * The server's side of `chunks` (src/core/server/session.ts, chunk-serving.ts): what it answers
 * to CHUNK_LIST and CHUNK_FETCH, right or wrong, over a real connection (UDP, port 0) to an
 * AssetServer serving a MemorySource, and a folder source's list cache.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ChunkFetcher, requestChunkList } from '../../src/core/client/chunk-requests.js'
import { AssetClient } from '../../src/core/client/client.js'
import { chunkBytes } from '../../src/core/delta/chunk-list.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import { FolderSource } from '../../src/core/server/folder-source.js'
import { MemorySource } from '../../src/core/server/memory-source.js'
import { AssetServer } from '../../src/core/server/server.js'
import { Cleanup, KiB, LOOPBACK, MiB, tempDir } from '../helpers/common.js'
import { jsonText, seededBytes } from './support.js'

const BIG = Buffer.from(seededBytes(2 * MiB, 21))
const TEXT = jsonText(MiB, 22)
const cleanup = new Cleanup()
let work: string
let removeWork: () => Promise<void>
let server: AssetServer
let source: MemorySource

beforeAll(async () => {
  ({ dir: work, remove: removeWork } = await tempDir('delta-server'))
  source = new MemorySource({ 'big.bin': BIG, 'level.json': TEXT, 'tiny.txt': 'tiny\n' })
  source.refused.add('secret.bin')
  server = await AssetServer.start({ source, configDir: join(work, 'cfg'), host: LOOPBACK, port: 0 })
})
afterEach(() => cleanup.run())
afterAll(async () => {
  await server.close()
  await removeWork()
})

async function client(): Promise<AssetClient> {
  const c = await AssetClient.connect({ server: `${LOOPBACK}:${server.address().port}`, key: server.publicKey.toString('hex'), configDir: join(work, 'cfg') })
  cleanup.add(() => c.close())
  return c
}

const codeOf = (p: Promise<unknown>): Promise<string> => p.then(() => 'resolved', (err: { code?: string }) => err.code ?? String(err))

describe('CHUNK_LIST', () => {
  it('answers the list of the content asked for, or of the current content without a hash', async () => {
    const c = await client()
    const byHash = await requestChunkList(c.conn, c.server, 'big.bin', hashBytes(BIG), BIG.length)
    const current = await requestChunkList(c.conn, c.server, 'big.bin', null)
    const expected = chunkBytes(BIG)
    for (const r of [byHash, current]) {
      expect(r.list?.count).toBe(expected.count)
      expect(r.list?.hashes.equals(expected.hashes)).toBe(true)
      expect(r.meta.size).toBe(BIG.length)
    }
  })

  it('declines a file of one chunk ("whole"), and answers not-found, refused and changed', async () => {
    const c = await client()
    expect((await requestChunkList(c.conn, c.server, 'tiny.txt', null)).list).toBeNull()
    expect(await codeOf(requestChunkList(c.conn, c.server, 'nope.bin', null))).toBe('ERR_NOT_FOUND')
    expect(await codeOf(requestChunkList(c.conn, c.server, 'secret.bin', null))).toBe('ERR_PATH_REFUSED')
    expect(await codeOf(requestChunkList(c.conn, c.server, '../etc/passwd', null))).toBe('ERR_PATH_REFUSED')
    expect(await codeOf(requestChunkList(c.conn, c.server, 'big.bin', hashBytes(TEXT)))).toBe('ERR_CHANGED')
  })
})

describe('CHUNK_FETCH', () => {
  it('sends the named chunks in order, compressed when they compress', async () => {
    const c = await client()
    for (const [path, data] of [['big.bin', BIG], ['level.json', TEXT]] as const) {
      const list = chunkBytes(data)
      const picks = [list.count - 1, 0, 1].filter((i) => i < list.count)
      const f = new ChunkFetcher(c.conn, c.server, path, list.hash, picks.map((i) => ({ hash: list.chunkHash(i), length: list.lengths[i]! })))
      let raw = 0
      for (const i of picks) {
        const got = Buffer.from(await f.next())
        expect(got.equals(data.subarray(list.offsets[i], list.offsets[i]! + list.lengths[i]!)), `${path} chunk ${i}`).toBe(true)
        raw += got.length
      }
      // Random bytes cross as they are; JSON compresses (zstd was agreed).
      if (path === 'big.bin') expect(f.wireBytes).toBe(raw)
      else expect(f.wireBytes).toBeLessThan(raw * 0.5)
    }
  })

  it('refuses a hash that is not in the list, a length that is not the chunk\'s, and content that moved on', async () => {
    const c = await client()
    const list = chunkBytes(BIG)
    const one = (hash: Uint8Array, length: number, file = list.hash): Promise<string> =>
      codeOf(new ChunkFetcher(c.conn, c.server, 'big.bin', file, [{ hash, length }]).next())
    expect(await one(hashBytes(Buffer.from('not a chunk')), list.lengths[0]!)).toBe('ERR_NOT_FOUND')
    expect(await one(list.chunkHash(0), list.lengths[0]! - 1)).toBe('ERR_NOT_FOUND')
    expect(await one(list.chunkHash(0), list.lengths[0]!, hashBytes(TEXT))).toBe('ERR_CHANGED')
    expect(c.conn.isOpen).toBe(true) // per-request errors: the connection goes on
  })
})

describe('a folder source', () => {
  it('computes a list once per content and keeps it across restarts (the list cache)', async () => {
    const root = join(work, 'served')
    const { mkdir } = await import('node:fs/promises')
    await mkdir(root, { recursive: true })
    await writeFile(join(root, 'f.bin'), BIG)
    const cacheFile = join(work, 'cache', 'serve.bin')
    const first = await FolderSource.open({ root, cacheFile })
    await first.scan()
    const a = await first.chunkList('f.bin', hashBytes(BIG))
    expect(a?.list.count).toBe(chunkBytes(BIG).count)
    await first.close()
    const second = await FolderSource.open({ root, cacheFile })
    await second.scan()
    const b = await second.chunkList('f.bin', null)
    expect(b?.list.hashes.equals(a?.list.hashes as Buffer)).toBe(true)
    // Changed on disk: the old hash is refused, the new content is listed.
    const next = Buffer.concat([BIG, Buffer.alloc(100 * KiB, 1)])
    await writeFile(join(root, 'f.bin'), next)
    await expect(second.chunkList('f.bin', hashBytes(BIG))).rejects.toMatchObject({ code: 'ERR_CHANGED' })
    expect((await second.chunkList('f.bin', hashBytes(next)))?.list.size).toBe(next.length)
    await second.close()
  })
})
