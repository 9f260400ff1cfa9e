// FolderFeed (src/core/server/folder-feed.ts): the watcher's settled paths, refreshed in the
// FolderSource and diffed against what subscribers last heard, delivered as ready-to-push UPDATE
// entries (changes, deletes, renames) — with no server: the sink is the test.
import { mkdir, mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { ChangeBatch } from '../../src/core/server/feed.js'
import { FolderFeed } from '../../src/core/server/folder-feed.js'
import { FolderSource } from '../../src/core/server/folder-source.js'
import { waitFor } from '../helpers/common.js'

let work: string
let root: string
let source: FolderSource
let feed: FolderFeed
let batches: ChangeBatch[]
let errors: unknown[]

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'assetsync-folder-feed-'))
  root = join(work, 'root')
  await mkdir(join(root, 'levels'), { recursive: true })
  await writeFile(join(root, 'levels', 'one.lvl'), 'level one')
  await writeFile(join(root, 'readme.txt'), 'hello')
  source = await FolderSource.open({ root })
  await source.scan()
  batches = []
  errors = []
  feed = new FolderFeed(source, { settleMs: 20 })
  await feed.start({ deliver: async (b) => { batches.push(b) }, error: (err) => { errors.push(err) } })
})

afterEach(async () => {
  await feed.close()
  await rm(work, { recursive: true, force: true })
})

/** Every entry delivered so far, as [kind, path, from?]. */
const delivered = (): string[][] =>
  batches.flatMap((b) => b.entries.map((e) => (e.kind === 'rename' ? [e.kind, e.path, e.from] : [e.kind, e.path])))

describe('FolderFeed', () => {
  it('delivers a change, a new file and a delete as entries carrying the new meta', async () => {
    await writeFile(join(root, 'readme.txt'), 'hello again')
    await writeFile(join(root, 'levels', 'two.lvl'), 'level two')
    await unlink(join(root, 'levels', 'one.lvl'))
    await waitFor(() => delivered().length >= 3, 5000, 'three entries', { detail: () => JSON.stringify(delivered()) })
    await feed.idle()
    expect(delivered().sort()).toEqual([['change', 'levels/two.lvl'], ['change', 'readme.txt'], ['delete', 'levels/one.lvl']])
    const readme = batches.flatMap((b) => b.entries).find((e) => e.path === 'readme.txt')
    expect(readme?.kind === 'change' && readme.size).toBe('hello again'.length)
    expect(errors).toEqual([])
  })

  it('a move within the folder is one rename entry', async () => {
    await rename(join(root, 'levels', 'one.lvl'), join(root, 'first.lvl'))
    await waitFor(() => delivered().length >= 1, 5000, 'the rename')
    expect(delivered()).toEqual([['rename', 'first.lvl', 'levels/one.lvl']])
  })

  it('a change a request already refreshed into the index is still delivered', async () => {
    await writeFile(join(root, 'readme.txt'), 'requested before the watcher settled')
    // What a client's REQUEST does on the read path: the index is current before the batch.
    expect((await source.get('readme.txt'))?.size).toBe('requested before the watcher settled'.length)
    await waitFor(() => delivered().length >= 1, 5000, 'the change')
    expect(delivered()).toEqual([['change', 'readme.txt']])
  })

  it('a correction the source announces while a watcher batch holding that path is refreshed is delivered, not lost', async () => {
    // What a re-hash on a client's failed download does (FolderStore.verify: same stamp, other
    // bytes) while the watcher's batch for that file is between its refresh and its publish.
    const real = source.indexed('readme.txt')
    if (!real) throw new Error('readme.txt not indexed')
    const corrected = { ...real, hash: Buffer.alloc(32, 7) }
    const refreshAt = source.refreshAt.bind(source)
    const indexed = source.indexed.bind(source)
    let fixed = false
    source.refreshAt = async (path, disk) => {
      const r = await refreshAt(path, disk)
      if (path === 'readme.txt' && !fixed) {
        fixed = true
        source.indexed = (p) => (p === 'readme.txt' ? corrected : indexed(p))
        source.emit('changed', ['readme.txt'])
      }
      return r
    }
    await writeFile(join(root, 'readme.txt'), 'hello') // same bytes: the watcher's refresh finds the old hash
    await waitFor(() => batches.some((b) => b.entries.some((e) => e.path === 'readme.txt' && e.kind === 'change' && Buffer.from(e.hash).equals(corrected.hash))),
      5000, 'the corrected hash', { detail: () => JSON.stringify(delivered()) })
    expect(fixed).toBe(true)
  })

  it('what changed between the scan and the start of the watch (a restart while saving) is delivered once the watch is on', async () => {
    await feed.close()
    const restarted = await FolderSource.open({ root })
    await restarted.scan()
    await writeFile(join(root, 'readme.txt'), 'changed in the gap')
    await writeFile(join(root, 'levels', 'gap.lvl'), 'new in the gap')
    await unlink(join(root, 'levels', 'one.lvl'))
    batches = []
    feed = new FolderFeed(restarted, { settleMs: 20 })
    await feed.start({ deliver: async (b) => { batches.push(b) }, error: (err) => { errors.push(err) } })
    await waitFor(() => delivered().length >= 3, 5000, 'the three changes of the gap', { detail: () => JSON.stringify(delivered()) })
    await feed.idle()
    expect(delivered().sort()).toEqual([['change', 'levels/gap.lvl'], ['change', 'readme.txt'], ['delete', 'levels/one.lvl']])
    const listed = (await restarted.page(() => true, '', Infinity)).entries
    expect(listed.map((e) => [e.path, e.size])).toEqual([['levels/gap.lvl', 14], ['readme.txt', 18]])
    expect(errors).toEqual([])
  })

  it('a file saved with the content subscribers already have is no news', async () => {
    await writeFile(join(root, 'readme.txt'), 'hello') // same bytes: new mtime and ctime, same hash
    await writeFile(join(root, 'sentinel.txt'), 'x')
    await waitFor(() => delivered().some(([, p]) => p === 'sentinel.txt'), 5000, 'the sentinel')
    await feed.idle()
    expect(delivered()).toEqual([['change', 'sentinel.txt']])
  })
})
