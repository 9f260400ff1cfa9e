/**
 * One manifest page from a sorted list of paths: the shared paging rule of every source that
 * keeps its listing in memory (FolderSource's index, MemorySource).
 */
import { MANIFEST_PAGE_BYTES } from '../../limits.js'
import { manifestEntryBytes } from '../../protocol/codec.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import type { PathMatcher } from '../fs/ignore.js'
import type { ManifestPage, PageWork } from './source.js'

/**
 * Entries of `sorted` (ascending, as `<` on strings) that match `match` and sort after `after`,
 * up to `maxBytes` of encoded entries (at least one). `entryOf` gives each listed path's entry.
 * `work` may end the scan early after any path (see AssetSource.page).
 */
export function pageOf(
  sorted: readonly string[], entryOf: (path: string) => ManifestEntry, match: PathMatcher, after: string,
  maxBytes = MANIFEST_PAGE_BYTES, work?: PageWork,
): ManifestPage {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) { // first index with path > after
    const mid = (lo + hi) >>> 1
    if ((sorted[mid] as string) <= after) lo = mid + 1
    else hi = mid
  }
  const entries: ManifestEntry[] = []
  let bytes = 0
  for (let i = lo; i < sorted.length; i++) {
    const p = sorted[i] as string
    if (match(p)) {
      const size = manifestEntryBytes(p)
      if (bytes + size > maxBytes && entries.length > 0) return { entries, done: false }
      bytes += size
      const e = entryOf(p)
      entries.push({ path: e.path, hash: e.hash, size: e.size, mode: e.mode, mtime: e.mtime })
    }
    if (work?.examined(p) && i + 1 < sorted.length) return { entries, done: false, resume: p }
  }
  return { entries, done: true }
}
