// FolderWatcher's timing rules on a ManualClock (src/core/server/watcher.ts): the settle time, the
// identical-stamp rule for files whose mtime cannot be trusted, grouping, and the trailing look,
// checked to the millisecond without sleeping. Real folder and real fs events; only time is fake.
// Files get a chosen mtime (utimes) outside the root and are renamed in: one event each.
import { mkdir, mkdtemp, rename, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ignoreMatcher } from '../../src/core/fs/ignore.js'
import { FolderWatcher } from '../../src/core/server/watcher.js'
import { SETTLE_EMPTY_MS, SETTLE_LAG_MAX_MS, WATCH_TRAILING_CHECK_MS } from '../../src/limits.js'
import { type Clock, ManualClock } from '../../src/protocol/clock.js'
import { waitFor } from '../helpers/common.js'

const SETTLE = 40

let work: string
let root: string
let clock: ManualClock
/** Wall-clock time the manual clock starts at, a whole second (so utimes sets it exactly). */
let t0: number
let watcher: FolderWatcher
let batches: string[][]
let errors: unknown[]

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'assetsync-watcher-clock-'))
  root = join(work, 'root')
  await mkdir(root)
  clock = new ManualClock()
  t0 = Math.floor(Date.now() / 1000) * 1000
  clock.advance(t0) // no timers yet: just sets now() to wall-clock time (mtimes are compared with it)
  batches = []
  errors = []
  watcher = new FolderWatcher(root, ignoreMatcher(), () => [], SETTLE, clock)
  watcher.on('batch', (paths: string[]) => batches.push([...paths].sort()))
  watcher.on('error', (err: unknown) => errors.push(err))
  await watcher.start()
})

afterEach(async () => {
  await watcher.close()
  await rm(work, { recursive: true, force: true })
})

/** Creates `name` in the root with mtime `mtimeMs` (made outside, renamed in: one event). */
async function arrive(name: string, mtimeMs: number): Promise<void> {
  const outside = join(work, `.${name}.new`)
  await writeFile(outside, `content of ${name}`)
  await utimes(outside, mtimeMs / 1000, mtimeMs / 1000)
  await rename(outside, join(root, name))
}

/** Moves the manual clock and lets the look it started (stat is real I/O) finish. */
async function advance(ms: number): Promise<void> {
  clock.advance(ms)
  await watcher.idle()
}

describe('FolderWatcher on a manual clock', () => {
  it('announces a quiet file exactly settleMs after its event, and the trailing look adds nothing', async () => {
    expect(WATCH_TRAILING_CHECK_MS).toBeGreaterThan(SETTLE) // the trailing look comes after the announcement
    await arrive('a.txt', t0 - 5000)
    await waitFor(() => watcher.pending === 1, 5000, 'the event for a.txt')
    await advance(SETTLE - 1)
    expect(batches).toEqual([])
    await advance(1)
    expect(batches).toEqual([['a.txt']])
    // The trailing look (WATCH_TRAILING_CHECK_MS after the event) finds the stamp it announced.
    await advance(WATCH_TRAILING_CHECK_MS - SETTLE)
    await advance(0)
    expect(watcher.pending).toBe(0)
    await advance(10 * SETTLE)
    expect(batches).toEqual([['a.txt']])
    expect(errors).toEqual([])
  })

  it('an empty file (a truncating save before its first write) is announced only after SETTLE_EMPTY_MS of quiet; a full one after settleMs', async () => {
    expect(SETTLE_EMPTY_MS).toBeGreaterThan(SETTLE)
    const outside = join(work, '.empty.new')
    await writeFile(outside, '')
    await utimes(outside, t0 / 1000, t0 / 1000)
    await rename(outside, join(root, 'empty.txt'))
    await arrive('full.txt', t0)
    await waitFor(() => watcher.pending === 2, 5000, 'the events for empty.txt and full.txt')
    await advance(SETTLE)
    expect(batches).toEqual([])
    // full.txt is ready, and waits (at most one settle time) for empty.txt to settle too.
    await advance(SETTLE_EMPTY_MS - SETTLE - 1)
    expect(batches.flat()).not.toContain('empty.txt')
    await advance(1)
    expect(batches.flat().sort()).toEqual(['empty.txt', 'full.txt'])
    expect(errors).toEqual([])
  })

  it('a file whose mtime is in the future (clock skew) is announced once its stamp stayed the same for settleMs', async () => {
    await arrive('skewed.bin', t0 + 3_600_000)
    await waitFor(() => watcher.pending === 1, 5000, 'the event for skewed.bin')
    await advance(SETTLE) // first look: not quiet by mtime; remembers the stamp
    expect(batches).toEqual([])
    await advance(SETTLE - 1)
    expect(batches).toEqual([])
    await advance(1) // second look: the same stamp a settle time later
    expect(batches).toEqual([['skewed.bin']])
  })

  it('a file still settling holds back one that is ready, so files saved together are announced together', async () => {
    await arrive('quiet.txt', t0 - 5000)
    await arrive('skewed.txt', t0 + 3_600_000)
    await waitFor(() => watcher.pending === 2, 5000, 'the events for both files')
    await advance(SETTLE) // quiet.txt is ready, skewed.txt is not: nothing yet
    expect(batches).toEqual([])
    await advance(SETTLE)
    expect(batches).toEqual([['quiet.txt', 'skewed.txt']])
  })

  it('a file modified after it was announced is announced again at the next settle, not before', async () => {
    await arrive('a.txt', t0 - 5000)
    await waitFor(() => watcher.pending === 1, 5000, 'the first event')
    await advance(SETTLE)
    await advance(WATCH_TRAILING_CHECK_MS)
    expect(batches).toEqual([['a.txt']])
    const now = clock.now()
    await arrive('a.txt', now - 1000) // replaced: another inode and ctime, so another stamp
    await waitFor(() => watcher.pending === 1, 5000, 'the second event')
    await advance(SETTLE - 1)
    expect(batches).toHaveLength(1)
    await advance(1)
    expect(batches).toEqual([['a.txt'], ['a.txt']])
  })
})

describe('FolderWatcher on a busy machine (its timers fire late)', () => {
  it('adds how late its timers fired lately to the quiet time: a writer is descheduled as long between two pieces', async () => {
    const LATE = 50
    expect(SETTLE_LAG_MAX_MS).toBeGreaterThanOrEqual(LATE)
    // While `lateBy` is set, one-shot timers fire that much after they were asked to (a loaded machine).
    let lateBy = LATE
    const late: Clock = {
      now: () => clock.now(),
      every: (ms, fn) => clock.every(ms, fn),
      after: (ms, fn) => clock.after(ms + lateBy, fn),
    }
    await watcher.close()
    watcher = new FolderWatcher(root, ignoreMatcher(), () => [], SETTLE, late)
    watcher.on('batch', (paths: string[]) => batches.push([...paths].sort()))
    await watcher.start()
    await arrive('a.txt', t0 - 5000)
    await waitFor(() => watcher.pending === 1, 5000, 'the event for a.txt')
    await advance(SETTLE + LATE)
    expect(batches).toEqual([['a.txt']]) // an old file: quiet whatever the lateness
    // Timers are on time again, but the lateness seen 0.1 s ago still counts (halving every second).
    lateBy = 0
    await advance(WATCH_TRAILING_CHECK_MS + LATE) // a.txt's trailing look, then nothing pending
    const t = clock.now()
    await arrive('b.bin', t)
    await waitFor(() => watcher.pending === 1, 5000, 'the event for b.bin')
    await advance(SETTLE)
    expect(batches).toEqual([['a.txt']]) // quiet for SETTLE only: not enough on this machine
    await advance(LATE)
    expect(batches).toEqual([['a.txt'], ['b.bin']])
    expect(errors).toEqual([])
  })
})
