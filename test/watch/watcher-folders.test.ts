// FolderWatcher (src/core/server/watcher.ts, folder-watches.ts) watches folders, not files: one OS watch
// per folder, and the files are learnt from their folder's events. These tests would fail if it
// went back to one watch per file, or mishandled folders that come, go, move or are replaced later.
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, open, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ignoreMatcher } from '../../src/core/fs/ignore.js'
import { FolderWatcher } from '../../src/core/server/watcher.js'
import { WATCH_TRAILING_CHECK_MS } from '../../src/limits.js'
import { waitFor } from '../helpers/common.js'

const SETTLE = 40

let root: string
let watcher: FolderWatcher | null = null
let batches: string[][] = []
let errors: unknown[] = []
let indexed: string[] = []
let sentinel = 0

/** inotify watches this process holds ('inotify wd:' lines of /proc/self/fdinfo), or null off Linux. */
function inotifyWatches(): number | null {
  if (process.platform !== 'linux') return null
  let n = 0
  for (const fd of readdirSync('/proc/self/fdinfo')) {
    try {
      n += (readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^inotify wd:/gm) ?? []).length
    } catch { /* closed meanwhile */ }
  }
  return n
}

async function startWatcher(): Promise<FolderWatcher> {
  const w = new FolderWatcher(root, ignoreMatcher(), () => indexed, SETTLE)
  w.on('batch', (paths: string[]) => batches.push(paths))
  w.on('error', (err: unknown) => errors.push(err))
  await w.start()
  watcher = w
  return w
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'assetsync-watcher-folders-'))
  batches = []
  errors = []
  indexed = []
})

afterEach(async () => {
  await watcher?.close()
  watcher = null
  await rm(root, { recursive: true, force: true })
})

const batchWith = (p: string, from = 0): Promise<string[]> =>
  waitFor(() => batches.slice(from).find((b) => b.includes(p)), 5000, `a batch with ${p}`, { detail: () => JSON.stringify(batches) })

/** Waits past the trailing re-checks, then for a sentinel's batch: every batch before it is in. */
async function flushWithSentinel(): Promise<string[][]> {
  await new Promise((r) => setTimeout(r, WATCH_TRAILING_CHECK_MS + 4 * SETTLE))
  const name = `sentinel-${++sentinel}.txt`
  await writeFile(join(root, name), 'x')
  const s = await batchWith(name)
  return batches.slice(0, batches.indexOf(s) + 1)
}

const announced = (list: string[][]): string[] => list.flat().filter((p) => !p.startsWith('sentinel-'))

/** `folders` folders of `perFolder` tiny files each, written before the watcher starts. */
function tree(folders: number, perFolder: number): void {
  for (let d = 0; d < folders; d++) {
    mkdirSync(join(root, `d${d}`))
    for (let i = 0; i < perFolder; i++) writeFileSync(join(root, `d${d}`, `f${i}.txt`), `${d}/${i}`)
  }
}

describe('FolderWatcher watches folders, not files', () => {
  it.skipIf(process.platform !== 'linux')('holds one inotify watch per folder, not per file (3000 files in 6 folders)', async () => {
    tree(6, 500)
    const before = inotifyWatches() ?? 0
    await startWatcher()
    const held = (inotifyWatches() ?? 0) - before
    // The root and its 6 folders; one watch per file would be > 3000.
    expect(held).toBe(7)
    await mkdir(join(root, 'later'))
    await writeFile(join(root, 'later', 'x.txt'), 'x')
    await batchWith('later/x.txt')
    expect((inotifyWatches() ?? 0) - before).toBe(8)
    // Ignored folders get no watch at all.
    await mkdir(join(root, 'node_modules', 'm'), { recursive: true })
    await flushWithSentinel()
    expect((inotifyWatches() ?? 0) - before).toBe(8)
    expect(watcher?.folders).toBe(8)
    // A deleted folder's watch goes with it.
    await rm(join(root, 'd5'), { recursive: true })
    await batchWith('d5/f499.txt')
    await waitFor(() => watcher?.folders === 7, 2000, 'd5 unwatched')
    expect((inotifyWatches() ?? 0) - before).toBe(7)
    await watcher?.close()
    watcher = null
    expect((inotifyWatches() ?? 0) - before).toBe(0)
  })

  it('a write in a folder of 2000 files gives one batch with just that path', async () => {
    tree(1, 2000)
    await startWatcher()
    const fh = await open(join(root, 'd0', 'f1234.txt'), 'r+')
    for (let i = 0; i < 16; i++) await fh.write(`piece ${i}\n`, i * 8)
    await fh.close()
    const seen = await flushWithSentinel()
    expect(announced(seen)).toEqual(['d0/f1234.txt'])
    expect(errors).toEqual([])
  })

  it('files in a folder created after start are announced: written at once, then edited', async () => {
    await startWatcher()
    await mkdir(join(root, 'new', 'deeper'), { recursive: true })
    // Written right after mkdir: likely before the new folders are watched.
    await writeFile(join(root, 'new', 'a.txt'), 'a')
    await writeFile(join(root, 'new', 'deeper', 'b.txt'), 'b')
    await batchWith('new/a.txt')
    await batchWith('new/deeper/b.txt')
    await flushWithSentinel()
    // Later edits come from the new folders' own watches.
    let from = batches.length
    const fh = await open(join(root, 'new', 'a.txt'), 'r+')
    await fh.write('A', 0)
    await fh.close()
    await batchWith('new/a.txt', from)
    from = batches.length
    await writeFile(join(root, 'new', 'deeper', 'c.txt'), 'c')
    await batchWith('new/deeper/c.txt', from)
    const seen = await flushWithSentinel()
    expect(seen.slice(from).flat().filter((p) => p === 'new/deeper/c.txt')).toHaveLength(1)
    expect(errors).toEqual([])
  })

  it('files created in a big folder just moved in, while it is being listed, are all announced', async () => {
    await startWatcher()
    // A new folder is watched, then listed: each file is listed or raises an event. chokidar
    // lists (lstat of all 5,000 entries), then watches: it lost 8-15 of these 60.
    const outside = await mkdtemp(join(tmpdir(), 'assetsync-watcher-folders-src-'))
    try {
      for (let i = 0; i < 5000; i++) writeFileSync(join(outside, `f${i}.txt`), 'x')
      await rename(outside, join(root, 'big'))
      const late: string[] = []
      for (let i = 0; i < 60; i++) {
        await writeFile(join(root, 'big', `late${i}.txt`), 'late')
        late.push(`big/late${i}.txt`)
        await new Promise((r) => setTimeout(r, 5))
      }
      await batchWith('big/f4999.txt')
      for (const p of late) await batchWith(p)
    } finally {
      await rm(outside, { recursive: true, force: true })
    }
    expect(errors).toEqual([])
  })

  it('a folder renamed inside the root announces the indexed files under the old name and the files under the new one', async () => {
    tree(1, 3)
    indexed = ['d0/f0.txt', 'd0/f1.txt', 'd0/f2.txt']
    await startWatcher()
    await rename(join(root, 'd0'), join(root, 'moved'))
    for (const p of [...indexed, 'moved/f0.txt', 'moved/f1.txt', 'moved/f2.txt']) await batchWith(p)
    // The folder itself is not a file; if named at all, it is named once (the store finds no file).
    const seen = await flushWithSentinel()
    expect(announced(seen).filter((p) => p === 'moved').length).toBeLessThanOrEqual(1)
    expect(announced(seen).filter((p) => p === 'moved/f0.txt')).toHaveLength(1)
  })

  it('does not follow symlinks: a linked folder is not watched and its files are not announced under the link', async () => {
    tree(1, 3)
    await startWatcher()
    const before = inotifyWatches()
    await symlink(join(root, 'd0'), join(root, 'link'))
    await flushWithSentinel()
    const from = batches.length
    await writeFile(join(root, 'd0', 'f1.txt'), 'changed')
    await batchWith('d0/f1.txt', from)
    const seen = await flushWithSentinel()
    expect(announced(seen).filter((p) => p.startsWith('link/'))).toEqual([])
    if (before !== null) expect(inotifyWatches()).toBe(before)
  })

  it('a folder moved out of the root announces its indexed files, and its watch is released', async () => {
    tree(2, 3)
    indexed = ['d0/f0.txt', 'd0/f1.txt', 'd0/f2.txt', 'd1/f0.txt']
    await startWatcher()
    expect(watcher?.folders).toBe(3)
    const outside = await mkdtemp(join(tmpdir(), 'assetsync-watcher-folders-out-'))
    try {
      await rename(join(root, 'd0'), join(outside, 'd0'))
      for (const p of ['d0/f0.txt', 'd0/f1.txt', 'd0/f2.txt']) await batchWith(p)
      expect(watcher?.folders).toBe(2)
      // The moved folder's own event carries its name; it is not an entry "d0/d0".
      expect(announced(await flushWithSentinel())).not.toContain('d0/d0')
      // Still the same inode, but no longer ours: writes there are not announced.
      const from = batches.length
      await writeFile(join(outside, 'd0', 'f1.txt'), 'elsewhere')
      const seen = await flushWithSentinel()
      expect(announced(seen.slice(from))).toEqual([])
    } finally {
      await rm(outside, { recursive: true, force: true })
    }
  })

  // Awaited steps: the watcher usually looks while the folder is gone. In one turn of the event
  // loop: it looks only once the new folder is there, which ext4 gives the old one's inode number.
  it.each([
    ['step by step', async (d: string) => {
      await rm(d, { recursive: true })
      await mkdir(d)
      await writeFile(join(d, 'f0.txt'), 'again')
    }],
    ['in one turn, before the watcher hears of it (the same inode number, on ext4)', (d: string) => {
      const before = statSync(d).ino
      rmSync(d, { recursive: true })
      mkdirSync(d)
      writeFileSync(join(d, 'f0.txt'), 'again')
      console.log(`inode of d0 before ${before}, after ${statSync(d).ino}`)
    }],
  ] as const)('a folder deleted and made again %s is watched again (the new one)', async (_how, replace) => {
    tree(1, 2)
    indexed = ['d0/f0.txt', 'd0/f1.txt']
    await startWatcher()
    await replace(join(root, 'd0'))
    await batchWith('d0/f1.txt')
    await flushWithSentinel()
    const from = batches.length
    await writeFile(join(root, 'd0', 'new.txt'), 'new')
    await batchWith('d0/new.txt', from)
    expect(watcher?.folders).toBe(2)
    // The old folder's own deletion is not an entry "d0/d0" of the new one.
    expect(announced(batches)).not.toContain('d0/d0')
    expect(errors).toEqual([])
  })

  it('a file named like its folder is an entry like any other (its folder reports its own removal by that name)', async () => {
    await mkdir(join(root, 'pack'))
    await writeFile(join(root, 'pack', 'pack'), 'p')
    await writeFile(join(root, 'pack', 'other'), 'o')
    await startWatcher()
    await writeFile(join(root, 'pack', 'pack'), 'changed')
    await batchWith('pack/pack')
    await flushWithSentinel()
    const from = batches.length
    await rm(join(root, 'pack', 'pack'))
    await batchWith('pack/pack', from)
  })
  it('emits no batch after close(), even with looks in flight', async () => {
    tree(1, 500)
    await startWatcher()
    await rm(join(root, 'd0'), { recursive: true })
    // Past the settle time: looks (stat of 500 paths) are running when close() comes.
    await new Promise((r) => setTimeout(r, SETTLE + 2))
    await watcher?.close()
    const n = batches.length
    await new Promise((r) => setTimeout(r, WATCH_TRAILING_CHECK_MS + 4 * SETTLE))
    expect(batches.length).toBe(n)
  })
})
