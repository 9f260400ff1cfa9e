/**
 * FolderSource's index of the served folder: wire path → {hash, size, mode, mtime} and the file's
 * stamp, kept current by `refresh` (called by the folder feed and on every request), with a
 * persistent hash cache so a restart does not re-hash unchanged files.
 */
import { stat } from 'node:fs/promises'
import { AssetSyncError } from '../../errors.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import { HashCache } from '../fs/hash-cache.js'
import { hashFile } from '../fs/hash.js'
import type { PathMatcher } from '../fs/ignore.js'
import { resolveForRead } from '../fs/paths.js'
import { mapLimit } from '../fs/pool.js'
import { type FileStamp, sameStamp } from '../fs/stamp.js'
import { type FileStat, walkFiles } from '../fs/walk.js'
import { pageOf } from './manifest-page.js'
import type { ManifestPage, PageWork, ScanResult } from './source.js'

/** Files hashed at once during a scan. */
const SCAN_PARALLEL = 4

/** An indexed file: what clients are told, and the stamp it was hashed at. */
export interface Entry extends ManifestEntry, FileStamp {}

function entryOf(path: string, st: FileStat, hash: Buffer): Entry {
  return {
    path, hash, size: st.size, mode: st.mode & 0o777, mtime: Math.floor(st.mtimeMs),
    mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino,
  }
}

export class Store {
  readonly root: string
  readonly #ignored: PathMatcher
  readonly #cache: HashCache
  readonly #entries = new Map<string, Entry>()
  #sorted: string[] | null = null

  constructor(root: string, ignored: PathMatcher, cache: HashCache) {
    this.root = root
    this.#ignored = ignored
    this.#cache = cache
  }

  get size(): number { return this.#entries.size }
  get(path: string): Entry | undefined { return this.#entries.get(path) }
  isIgnored(path: string): boolean { return this.#ignored(path) }
  paths(): IterableIterator<string> { return this.#entries.keys() }

  /** Indexes the whole folder, hashing only what the cache cannot vouch for. */
  async scan(): Promise<ScanResult> {
    const t0 = performance.now()
    const found: { wire: string; full: string; st: FileStat }[] = []
    for await (const f of walkFiles(this.root, this.#ignored)) found.push(f)
    let hashed = 0
    let bytes = 0
    this.#entries.clear()
    await mapLimit(found, SCAN_PARALLEL, async ({ wire, full, st }) => {
      let hash = this.#cache.lookup(wire, st)
      if (!hash) {
        try {
          hash = (await hashFile(full, st.size)).hash
        } catch {
          return // vanished or unreadable since the walk
        }
        hashed++
        bytes += st.size
        this.#cache.set(wire, st, hash)
      }
      this.#entries.set(wire, entryOf(wire, st, hash))
    })
    this.#sorted = null
    this.#cache.retain(new Set(this.#entries.keys()))
    await this.#cache.save()
    return { files: this.#entries.size, hashed, bytes, ms: performance.now() - t0 }
  }

  /**
   * Re-reads one path from disk and updates the index. Returns the current entry, or null if the
   * path is gone, ignored, not a regular file or outside the root. Hashes only when the file's
   * stamp moved (sameStamp).
   */
  async refresh(path: string): Promise<Entry | null> {
    let entry: Entry | null = null
    if (!this.#ignored(path)) {
      try {
        const real = await resolveForRead(this.root, path)
        const st = await stat(real)
        if (st.isFile()) {
          const old = this.#entries.get(path)
          if (old && sameStamp(old, st)) return old
          let hash = this.#cache.lookup(path, st)
          if (!hash) {
            const h = await hashFile(real, st.size)
            const after = await stat(real)
            // Changed while we hashed: report what is there now on the next call.
            if (h.size !== st.size || !sameStamp(after, st)) return this.refresh(path)
            hash = h.hash
            this.#cache.set(path, st, hash)
          }
          entry = entryOf(path, st, hash)
        }
      } catch (err) {
        if (!(err instanceof AssetSyncError) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    if (entry) {
      if (!this.#entries.has(path)) this.#sorted = null
      this.#entries.set(path, entry)
    } else if (this.#entries.delete(path)) {
      this.#sorted = null
      this.#cache.delete(path)
    }
    return entry
  }

  /** One manifest page (see AssetSource.page). */
  page(match: PathMatcher, after: string, maxBytes?: number, work?: PageWork): ManifestPage {
    this.#sorted ??= [...this.#entries.keys()].sort()
    return pageOf(this.#sorted, (p) => this.#entries.get(p) as Entry, match, after, maxBytes, work)
  }

  async saveCache(): Promise<void> { await this.#cache.save() }
}
