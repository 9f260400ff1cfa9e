// FolderWatcher (src/core/server/watcher.ts) on a real temp folder: every kind of save gives exactly one
// batch with the path, and a slow writer is announced only once it is done.
import { randomBytes } from 'node:crypto'
import { statSync } from 'node:fs'
import { mkdir, mkdtemp, open, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ignoreMatcher } from '../../src/core/fs/ignore.js'
import { FolderWatcher } from '../../src/core/server/watcher.js'
import { WATCH_TRAILING_CHECK_MS } from '../../src/limits.js'
import { waitFor } from '../helpers/common.js'
import { writeInPieces } from '../helpers/watch.js'

const SETTLE = 40

interface Batch { at: number; paths: string[]; sizes: Record<string, number | null> }

let root: string
let watcher: FolderWatcher | null = null
let batches: Batch[] = []
let errors: unknown[] = []
let indexed: string[] = []
let sentinel = 0

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'assetsync-watcher-'))
  await writeFile(join(root, 'a.txt'), 'original content\n')
  batches = []
  errors = []
  indexed = ['a.txt']
  watcher = new FolderWatcher(root, ignoreMatcher(), () => indexed, SETTLE)
  watcher.on('batch', (paths: string[]) => {
    // Sizes as the batch arrives: what a reader would find at that moment.
    const sizes: Record<string, number | null> = {}
    for (const p of paths) {
      try {
        sizes[p] = statSync(join(root, ...p.split('/'))).size
      } catch {
        sizes[p] = null
      }
    }
    batches.push({ at: Date.now(), paths, sizes })
  })
  watcher.on('error', (err: unknown) => errors.push(err))
  await watcher.start()
})

afterEach(async () => {
  await watcher?.close()
  watcher = null
  await rm(root, { recursive: true, force: true })
})

const batchWith = (p: string, from = 0): Promise<Batch> =>
  waitFor(() => batches.slice(from).find((b) => b.paths.includes(p)), 5000, `a batch with ${p}`, { detail: () => JSON.stringify(batches) })

/**
 * Waits past every trailing re-check of the change under test, then saves a sentinel file and
 * waits for its batch: every batch the change caused has been emitted before the sentinel's.
 */
async function flushWithSentinel(): Promise<Batch[]> {
  await new Promise((r) => setTimeout(r, WATCH_TRAILING_CHECK_MS + 4 * SETTLE))
  const name = `sentinel-${++sentinel}.txt`
  await writeFile(join(root, name), 'x')
  const s = await batchWith(name)
  return batches.slice(0, batches.indexOf(s) + 1)
}

const count = (list: Batch[], p: string): number => list.filter((b) => b.paths.includes(p)).length

describe('FolderWatcher', () => {
  it('an in-place write gives exactly one batch with the path', async () => {
    const fh = await open(join(root, 'a.txt'), 'r+')
    await fh.write(Buffer.from('ORIGINAL'), 0, 8, 0)
    await fh.close()
    await batchWith('a.txt')
    const seen = await flushWithSentinel()
    expect(count(seen, 'a.txt')).toBe(1)
    expect(errors).toEqual([])
  })

  it('truncate-then-write gives exactly one batch, after the write', async () => {
    const t0 = Date.now()
    const fh = await open(join(root, 'a.txt'), 'r+')
    await fh.truncate(0)
    await new Promise((r) => setTimeout(r, 5))
    await fh.write('new content, longer than before\n', 0)
    await fh.close()
    const b = await batchWith('a.txt')
    expect(b.sizes['a.txt']).toBe(32)
    expect(b.at - t0).toBeGreaterThanOrEqual(SETTLE)
    const seen = await flushWithSentinel()
    expect(count(seen, 'a.txt')).toBe(1)
  })

  it('an editor-style atomic save (temp file + rename over) gives exactly one batch with the path', async () => {
    const tmp = join(root, '.a.txt.tmp-4711')
    await writeFile(tmp, 'saved by an editor\n')
    await rename(tmp, join(root, 'a.txt'))
    const b = await batchWith('a.txt')
    expect(b.sizes['a.txt']).toBe(19)
    const seen = await flushWithSentinel()
    expect(count(seen, 'a.txt')).toBe(1)
    // The temp file may be announced (the store then finds it gone), but at most once.
    expect(count(seen, '.a.txt.tmp-4711')).toBeLessThanOrEqual(1)
  })

  it('a new file and a deleted file each give exactly one batch', async () => {
    await writeFile(join(root, 'new.bin'), randomBytes(1000))
    await unlink(join(root, 'a.txt'))
    await batchWith('new.bin')
    await batchWith('a.txt')
    const seen = await flushWithSentinel()
    expect(count(seen, 'new.bin')).toBe(1)
    expect(count(seen, 'a.txt')).toBe(1)
    expect(seen.find((b) => b.paths.includes('a.txt'))?.sizes['a.txt']).toBeNull()
  })

  it('a file written in 8 pieces with pauses shorter than settleMs is announced once, only after the last piece', async () => {
    const data = randomBytes(8 * 64 * 1024)
    const pauses = [15, 25, 20, 15, 25, 20, 15] // all < SETTLE (40 ms)
    let lastPieceAt = 0
    const file = join(root, 'slow.bin')
    await writeInPieces(file, data, 8, (i) => pauses[i - 1] ?? 20)
    lastPieceAt = Date.now()
    const b = await batchWith('slow.bin')
    expect(b.sizes['slow.bin']).toBe(data.length)
    expect(b.at).toBeGreaterThanOrEqual(lastPieceAt)
    const seen = await flushWithSentinel()
    expect(count(seen, 'slow.bin')).toBe(1)
    for (const x of seen.filter((y) => y.paths.includes('slow.bin'))) expect(x.sizes['slow.bin']).toBe(data.length)
  })

  it('files saved together are announced together', async () => {
    await writeFile(join(root, 'one.txt'), '1')
    await writeFile(join(root, 'two.txt'), '2')
    const b = await batchWith('one.txt')
    expect(b.paths).toContain('two.txt')
  })

  it('a folder moved in announces its files; a folder removed announces the indexed files under it', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'assetsync-watcher-src-'))
    try {
      await mkdir(join(outside, 'pack', 'sub'), { recursive: true })
      await writeFile(join(outside, 'pack', 'x.txt'), 'x')
      await writeFile(join(outside, 'pack', 'sub', 'y.txt'), 'y')
      await rename(join(outside, 'pack'), join(root, 'pack'))
      await batchWith('pack/x.txt')
      await batchWith('pack/sub/y.txt')
      indexed.push('pack/x.txt', 'pack/sub/y.txt')
      const from = batches.length
      await rm(join(root, 'pack'), { recursive: true })
      await batchWith('pack/x.txt', from)
      await batchWith('pack/sub/y.txt', from)
    } finally {
      await rm(outside, { recursive: true, force: true })
    }
  })

  it('ignored paths (node_modules, editor swap files) are never announced', async () => {
    await mkdir(join(root, 'node_modules', 'm'), { recursive: true })
    await writeFile(join(root, 'node_modules', 'm', 'i.js'), '1')
    await writeFile(join(root, '.a.txt.swp'), 'swap')
    await writeFile(join(root, 'a.txt~'), 'backup')
    const seen = await flushWithSentinel()
    expect(seen.flatMap((b) => b.paths).filter((p) => !p.startsWith('sentinel-'))).toEqual([])
  })
})
