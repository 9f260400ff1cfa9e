/**
 * The progress of the store's background index (issue 15): `serve` listens before a large folder
 * is indexed, and this is what lets it answer meanwhile.
 *
 * The folder is listed first (names only, one `opendir` per folder) and the listing sorted in wire
 * order; the paths are then looked at (stat, hash unless the hash cache vouches) in that order, a
 * few at a time. The *frontier* is the first listed path not looked at yet: every path before it is
 * in the index as it was found, so a MANIFEST page over paths before the frontier is as complete
 * as one over the whole index, and a client pages on as the frontier moves. Paths that a REQUEST or
 * the watcher refreshed meanwhile (`touched`) keep what that look found: it is newer than the run's.
 */
import { manifestEntryBytes } from '../../protocol/codec.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import type { PathMatcher } from '../fs/ignore.js'
import type { ListedFile } from '../fs/walk.js'
import type { ManifestPage, PageWork } from './source.js'

/** The first index in `sorted` whose element is > `after`. */
function firstAfter(sorted: readonly { wire: string }[] | readonly string[], after: string, key: (i: number) => string): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (key(mid) <= after) lo = mid + 1
    else hi = mid
  }
  return lo
}

export class IndexRun {
  /** Every listed path, in wire order; null until the listing is done. */
  listed: ListedFile[] | null = null
  /** listed[i] has been looked at. */
  #looked: Uint8Array = new Uint8Array(0)
  /** listed[0, frontier) have all been looked at. */
  frontier = 0
  /** Paths the index got from another look during the run (a REQUEST, the watcher): the run leaves them be. */
  readonly touched = new Set<string>()
  /** Indexed paths that are not in `listed` (created after the listing, found by another look). */
  readonly #extras = new Set<string>()
  #waiters: Array<() => void> = []
  /** Set by close(): the run stops taking new paths. */
  stopped = false

  /** The listing is done: the run looks at these, in this order (sorted here). */
  setListed(files: ListedFile[]): void {
    files.sort((a, b) => (a.wire < b.wire ? -1 : a.wire > b.wire ? 1 : 0))
    this.listed = files
    this.#looked = new Uint8Array(files.length)
    for (const p of this.#extras) if (this.#isListed(p)) this.#extras.delete(p)
    this.#wake()
  }

  /** listed[i] has been looked at: the frontier moves past every looked-at path. */
  lookedAt(i: number): void {
    const listed = this.listed
    if (!listed) return
    this.#looked[i] = 1
    const before = this.frontier
    while (this.frontier < listed.length && this.#looked[this.frontier] === 1) this.frontier++
    if (this.frontier !== before) this.#wake()
  }

  /** The index set `path` from another look than the run's. */
  touch(path: string, present: boolean): void {
    this.touched.add(path)
    if (present && !this.#isListed(path)) this.#extras.add(path)
    else if (!present) this.#extras.delete(path)
  }

  /** Resolves at the next progress of the frontier (or the end of the run). */
  progress(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** Wakes every waiter (progress, or the end). */
  #wake(): void {
    const w = this.#waiters
    this.#waiters = []
    for (const f of w) f()
  }

  end(): void {
    this.stopped = true
    this.#wake()
  }

  #isListed(path: string): boolean {
    const listed = this.listed
    if (!listed) return false
    const i = firstAfter(listed, path, (k) => (listed[k] as ListedFile).wire) - 1
    return i >= 0 && (listed[i] as ListedFile).wire === path
  }

  /**
   * A manifest page over what is complete: the indexed paths before the frontier that match and
   * sort after `after`, up to `maxBytes`. `full` is true when the page ended on `maxBytes` (not on
   * the frontier): it is then exactly the page the complete index would give. `work` may end it
   * early after any path, with `resume` (see AssetSource.page).
   */
  page(
    get: (path: string) => ManifestEntry | undefined, match: PathMatcher, after: string, maxBytes: number, work?: PageWork,
  ): { page: ManifestPage; full: boolean } {
    const entries: ManifestEntry[] = []
    const listed = this.listed
    if (!listed) return { page: { entries, done: false }, full: false }
    const limit = this.frontier < listed.length ? (listed[this.frontier] as ListedFile).wire : null
    const extras = [...this.#extras].filter((p) => p > after && (limit === null || p < limit)).sort()
    let i = firstAfter(listed, after, (k) => (listed[k] as ListedFile).wire)
    let x = 0
    let bytes = 0
    for (;;) {
      const fromListed = i < this.frontier ? (listed[i] as ListedFile).wire : null
      const fromExtras = x < extras.length ? (extras[x] as string) : null
      let p: string
      if (fromListed !== null && (fromExtras === null || fromListed < fromExtras)) {
        p = fromListed
        i++
      } else if (fromExtras !== null) {
        p = fromExtras
        x++
        if (p === fromListed) i++
      } else break
      const e = get(p)
      if (!e) continue
      if (match(p)) {
        const size = manifestEntryBytes(p)
        if (bytes + size > maxBytes && entries.length > 0) return { page: { entries, done: false }, full: true }
        bytes += size
        entries.push({ path: e.path, hash: e.hash, size: e.size, mode: e.mode, mtime: e.mtime })
      }
      if (work?.examined(p)) return { page: { entries, done: false, resume: p }, full: false }
    }
    return { page: { entries, done: false }, full: false }
  }
}
