// The background index (issue 15: src/core/server/index-run.ts, Store.index): a large folder is
// served while it is indexed. Pages cover only what is complete, in order, and page on to the same
// listing the complete index gives; a REQUEST looks at its one path; a file changed meanwhile is
// announced even when the index already holds its new version (a client may have fetched the old
// one on demand). Real files, a real server over UDP and a real client.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import type { ChangeBatch } from '../../src/core/server/feed.js'
import { FolderFeed } from '../../src/core/server/folder-feed.js'
import { FolderSource } from '../../src/core/server/folder-source.js'
import { AssetServer } from '../../src/core/server/server.js'
import type { ManifestEntry } from '../../src/protocol/messages.js'
import { Cleanup, LOOPBACK, waitFor } from '../helpers/common.js'

const FOLDERS = 20
const PER_FOLDER = 100

let work: string
let root: string
const cleanup = new Cleanup()

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'assetsync-background-index-'))
  root = join(work, 'root')
  for (let d = 0; d < FOLDERS; d++) {
    await mkdir(join(root, `d${d}`), { recursive: true })
    for (let f = 0; f < PER_FOLDER; f++) await writeFile(join(root, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`)
  }
})
afterEach(async () => {
  await cleanup.run()
  await rm(work, { recursive: true, force: true })
})

const open = (): Promise<FolderSource> => FolderSource.open({ root, cacheFile: join(work, 'cache.bin') })
const paths = (entries: ManifestEntry[]): string[] => entries.map((e) => e.path)

/** Every page from the start, `maxBytes` each; whether any was answered while indexing. */
async function pageAll(s: FolderSource, maxBytes: number): Promise<{ entries: ManifestEntry[]; duringIndex: number }> {
  const entries: ManifestEntry[] = []
  let duringIndex = 0
  for (let after = ''; ;) {
    const before = s.indexing
    const page = await s.page(() => true, after, maxBytes)
    if (before && s.indexing) duringIndex++
    expect(page.entries.length > 0 || page.done).toBe(true) // an empty page ends a protocol-2 listing
    entries.push(...page.entries)
    if (page.done) return { entries, duringIndex }
    after = page.entries.at(-1)?.path ?? after
  }
}

describe('FolderSource.index (background)', () => {
  it('pages over what is complete, in path order, to exactly the listing of a complete index', async () => {
    const s = await open()
    const done = s.index()
    expect(s.indexing).toBe(true)
    const got = await pageAll(s, 2_000)
    const result = await done
    expect(s.indexing).toBe(false)
    expect(result.files).toBe(FOLDERS * PER_FOLDER)
    expect(result.hashed).toBe(FOLDERS * PER_FOLDER)
    const complete = await open()
    await complete.scan()
    const all = await complete.page(() => true, '', Infinity)
    expect(paths(got.entries)).toEqual(paths(all.entries))
    expect(got.entries.map((e) => Buffer.from(e.hash).toString('hex'))).toEqual(all.entries.map((e) => Buffer.from(e.hash).toString('hex')))
    expect(got.duringIndex, 'pages answered while the index ran').toBeGreaterThan(0)
    await s.close()
    await complete.close()
  })

  it('answers a path not indexed yet by looking at it, and lists a file created after the listing', async () => {
    const s = await open()
    const done = s.index()
    const last = `d${FOLDERS - 1}/f${PER_FOLDER - 1}.txt`
    const r = await s.open(last)
    expect(r).not.toBeNull()
    expect(Buffer.from(r?.entry.hash ?? []).equals(hashBytes(Buffer.from(`file ${FOLDERS - 1}/${PER_FOLDER - 1}\n`)))).toBe(true)
    await r?.close()
    await writeFile(join(root, 'd0', 'late.txt'), 'created while indexing\n')
    expect((await s.get('d0/late.txt'))?.size).toBe(23)
    expect(await s.get('d0/none.txt')).toBeNull()
    await done
    const all = await s.page(() => true, '', Infinity)
    expect(paths(all.entries)).toContain('d0/late.txt')
    expect(all.entries).toHaveLength(FOLDERS * PER_FOLDER + 1)
    await s.close()
  })

  it('a second index after a complete one re-hashes nothing (the hash cache)', async () => {
    const first = await open()
    await first.index()
    await first.close()
    const again = await open()
    const r = await again.index()
    expect(r).toMatchObject({ files: FOLDERS * PER_FOLDER, hashed: 0 })
    await again.close()
  })
})

describe('FolderFeed over a folder indexed in the background', () => {
  it('announces a file changed while indexing, even when the index already has its new content', async () => {
    const s = await open()
    const batches: ChangeBatch[] = []
    const feed = new FolderFeed(s, { settleMs: 20 })
    cleanup.add(() => feed.close())
    await feed.start({ deliver: async (b) => { batches.push(b) }, error: () => {} })
    const done = s.index()
    // A client fetches it on demand (the old content), then it changes before the index is done,
    // and another client fetches the new content: the index holds it before any batch is diffed.
    const before = await s.open('d0/f0.txt')
    await before?.close()
    await writeFile(join(root, 'd0', 'f0.txt'), 'changed while indexing\n')
    const after = await s.open('d0/f0.txt')
    expect(after?.entry.size).toBe(23)
    await after?.close()
    expect(s.indexing, 'the index still runs (else this test proves nothing)').toBe(true)
    await done
    await waitFor(() => batches.some((b) => b.entries.some((e) => e.path === 'd0/f0.txt')), 10_000, 'the change to be announced')
    const e = batches.flatMap((b) => b.entries).find((x) => x.path === 'd0/f0.txt')
    expect(e).toMatchObject({ kind: 'change', size: 23 })
    await s.close()
  })
})

describe('AssetServer: listening before the index is complete', () => {
  it('a client pulls the whole folder and gets a file while the server still indexes', async () => {
    const server = await AssetServer.start({ root, configDir: join(work, 'server-config'), host: LOOPBACK, port: 0, listenWaitMs: 0 })
    cleanup.add(() => server.close())
    expect(server.indexing).toBe(true)
    const indexed: number[] = []
    server.on('indexed', (e) => { indexed.push(e.files) })
    const c = await AssetClient.connect({
      server: `${LOOPBACK}:${server.address().port}`, transport: 'udp', key: server.publicKey.toString('hex'),
      configDir: join(work, 'client-config'), connectTimeoutMs: 10_000,
    })
    cleanup.add(() => c.conn.destroy())
    const got = await c.read('d7/f42.txt')
    expect(got.toString()).toBe('file 7/42\n')
    const manifest = await c.manifest(['**'])
    expect(manifest).toHaveLength(FOLDERS * PER_FOLDER)
    expect(paths(manifest)).toEqual([...paths(manifest)].sort())
    const r = await server.indexed
    expect(r.files).toBe(FOLDERS * PER_FOLDER)
    expect(server.indexing).toBe(false)
    expect(server.scan.files).toBe(FOLDERS * PER_FOLDER)
    await waitFor(() => indexed.length === 1, 5000, 'the indexed event')
    expect(indexed).toEqual([FOLDERS * PER_FOLDER])
    expect(await readFile(join(root, 'd7', 'f42.txt'), 'utf8')).toBe('file 7/42\n')
  })
})

describe('AssetServer.close while indexing', () => {
  it('stops the background index first: close does not wait for the whole folder', async () => {
    const server = await AssetServer.start({ root, configDir: join(work, 'server-config'), host: LOOPBACK, port: 0, listenWaitMs: 0 })
    expect(server.indexing).toBe(true)
    const source = server.source as FolderSource
    await server.close()
    expect(source.indexing).toBe(false)
    const r = await server.indexed
    expect(r.files).toBeLessThanOrEqual(FOLDERS * PER_FOLDER)
  })
})
