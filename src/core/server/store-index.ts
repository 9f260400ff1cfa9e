/**
 * The store's background index (issue 15; the run's bookkeeping is in index-run.ts): lists the
 * folder (names only), then looks at every listed path in wire order and puts what it finds in
 * the index, unless another look (a REQUEST, the watcher) set that path meanwhile.
 *
 * Most files only need a stat that the hash cache vouches for, and small ones a short read to
 * hash: those are done synchronously, in slices of INDEX_SLICE_MS between which the event loop
 * serves requests (a promise and a thread-pool round trip per file were most of the CPU of a
 * start: docs/benchmarks.md). Links and larger files go the async way, a few at a time. Every
 * hash is taken through one descriptor opened without following a link, and only kept if that
 * descriptor is the stat'ed inode before and after (as Store's own looks do).
 */
import { closeSync, constants, fstatSync, openSync, statSync } from 'node:fs'
import { realpath } from 'node:fs/promises'
import type { SkippedPath } from '../fs/disk-names.js'
import type { HashCache } from '../fs/hash-cache.js'
import { hashFdSync } from '../fs/hash.js'
import type { PathMatcher } from '../fs/ignore.js'
import { type FileStamp, sameStamp } from '../fs/stamp.js'
import { type FileStat, type ListedFile, listFiles, statListed } from '../fs/walk.js'
import type { IndexRun } from './index-run.js'
import type { ScanResult } from './source.js'
import { type Entry, diskRel, entryOf, keepFirst } from './store-entry.js'

/** Files hashed at once the async way. */
const INDEX_PARALLEL = 4
/**
 * The background index stats (and hashes small files) synchronously for at most this long before
 * it lets the event loop serve: a request waits at most about this long behind it.
 */
const INDEX_SLICE_MS = 8
/** Files up to this size are hashed synchronously (in the slices). */
const INDEX_SYNC_HASH_BYTES = 64 * 1024
/** Looks at a path that keeps changing while it is hashed before the index leaves it to the watcher. */
const LOOK_ATTEMPTS = 3
/** Hashing opens the path without following a link: a swap in between is seen (ELOOP). */
const HASH_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0)

/** What the background index needs of the store. */
export interface IndexHost {
  readonly root: string
  readonly ignored: PathMatcher
  /** The hash cache, once loaded. */
  cache(): Promise<HashCache>
  /** The index as it is. */
  indexed(): ReadonlyMap<string, Entry>
  /** Puts an entry the run found (the run checked `touched` first). */
  put(path: string, entry: Entry): void
  /** Hashes the file at `real` if it is still the inode of `st` (Store's own stamp-checked hash). */
  hashAt(real: string, st: FileStamp): Promise<Buffer | null>
  /** The report for `drop` (a full disk path) losing its wire path to `keep`. */
  collision(drop: string, keep: string): SkippedPath
}

interface Found { e: Entry; hashed: boolean }

/** Indexes `host`'s folder for `run` (see the module comment); the caller ends the run. */
export async function indexFolder(run: IndexRun, host: IndexHost): Promise<ScanResult> {
  const { root } = host
  const t0 = performance.now()
  const skipped: SkippedPath[] = []
  const onSkip = (k: SkippedPath): void => { skipped.push(k) }
  let hashed = 0
  let bytes = 0
  const byWire = new Map<string, ListedFile>()
  for await (const f of listFiles(root, host.ignored, { onSkip })) {
    if (run.stopped) break
    const other = byWire.get(f.wire)
    if (!other) {
      byWire.set(f.wire, f)
      continue
    }
    // Two names on disk with one NFC form: as Store.scan decides.
    const [keep, drop] = keepFirst(root, f.wire, other, f) ? [other, f] : [f, other]
    byWire.set(f.wire, keep)
    skipped.push(host.collision(drop.full, keep.full))
  }
  const cache = await host.cache()
  run.setListed([...byWire.values()])
  byWire.clear()
  const listed = run.listed as ListedFile[]
  const done = (f: ListedFile, i: number, found: Found | null): void => {
    if (found?.hashed) {
      hashed++
      bytes += found.e.size
    }
    if (found && !run.touched.has(f.wire)) host.put(f.wire, found.e)
    run.lookedAt(i)
  }
  const busy = new Set<Promise<void>>()
  const later = async (f: ListedFile, i: number, st: FileStat | null): Promise<void> => {
    let found: Found | null = null
    try {
      found = await lookAsync(host, cache, f, onSkip, st)
    } finally {
      done(f, i, found)
    }
  }
  const scratch = Buffer.allocUnsafe(INDEX_SYNC_HASH_BYTES + 1)
  let sliceStart = performance.now()
  for (let i = 0; i < listed.length && !run.stopped; i++) {
    const f = listed[i] as ListedFile
    let st: FileStat | null = null
    if (!f.link) {
      try {
        const s = statSync(f.full)
        if (s.isFile()) st = { size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino, mode: s.mode }
      } catch { /* vanished or unreadable: not a file we can serve */ }
      if (!st) {
        run.lookedAt(i)
        continue
      }
      let hash = cache.lookup(f.wire, st)
      let fresh = false
      if (!hash && st.size <= INDEX_SYNC_HASH_BYTES) {
        hash = hashSmallSync(f.full, st, scratch)
        fresh = hash !== null
        if (hash) cache.set(f.wire, st, hash)
      }
      if (hash) {
        done(f, i, { e: entryOf(f.wire, st, hash, false, diskRel(root, f.wire, f.full)), hashed: fresh })
        if (performance.now() - sliceStart >= INDEX_SLICE_MS) {
          await new Promise((resolve) => setImmediate(resolve))
          sliceStart = performance.now()
        }
        continue
      }
    }
    const task = later(f, i, st).catch(() => {}).finally(() => busy.delete(task))
    busy.add(task)
    if (busy.size >= INDEX_PARALLEL) await Promise.race(busy)
    sliceStart = performance.now()
  }
  await Promise.all(busy)
  const files = host.indexed()
  if (!run.stopped) {
    cache.retain(new Set(files.keys()))
    await cache.save()
  }
  return { files: files.size, hashed, bytes, ms: performance.now() - t0, skipped }
}

/**
 * Hashes the small regular file at `full` synchronously through one descriptor opened without
 * following a link, only if it is the stat'ed inode before and after. Null if it changed or cannot
 * be read (the async way then looks again).
 */
function hashSmallSync(full: string, st: FileStamp, scratch: Buffer): Buffer | null {
  let fd: number
  try {
    fd = openSync(full, HASH_FLAGS)
  } catch {
    return null
  }
  try {
    if (!sameStamp(fstatSync(fd), st)) return null
    const { hash, size } = hashFdSync(fd, scratch)
    if (size !== st.size || !sameStamp(fstatSync(fd), st)) return null
    return hash
  } catch {
    return null
  } finally {
    closeSync(fd)
  }
}

/** One listed path the async way (a link, a larger file, or a small one that changed meanwhile). */
async function lookAsync(host: IndexHost, cache: HashCache, f: ListedFile, onSkip: (k: SkippedPath) => void, known: FileStat | null): Promise<Found | null> {
  for (let attempt = 0; attempt < LOOK_ATTEMPTS; attempt++) {
    const w = attempt === 0 && known ? { st: known } : await statListed(host.root, f, { onSkip })
    if (!w) return null
    const disk = diskRel(host.root, f.wire, f.full)
    const hash = cache.lookup(f.wire, w.st)
    if (hash) return { e: entryOf(f.wire, w.st, hash, f.link, disk), hashed: false }
    let real: string
    try {
      real = f.link ? await realpath(f.full) : f.full
    } catch {
      return null
    }
    const fresh = await host.hashAt(real, w.st).catch(() => null)
    if (!fresh) continue // changed while hashed (or gone): look again
    cache.set(f.wire, w.st, fresh)
    return { e: entryOf(f.wire, w.st, fresh, f.link, disk), hashed: true }
  }
  return null // keeps changing: the watcher's events bring it once it settles
}
