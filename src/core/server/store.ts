/**
 * The server's index of the served folder: wire path → {hash, size, mode, mtime}, kept current by
 * `refresh` (called by the watcher and on every request), with a persistent hash cache so a
 * restart does not re-hash unchanged files.
 */
import { stat } from 'node:fs/promises'
import { AssetSyncError } from '../../errors.js'
import { MANIFEST_PAGE_BYTES } from '../../limits.js'
import { manifestEntryBytes } from '../../protocol/codec.js'
import type { FileMeta, ManifestEntry } from '../../protocol/messages.js'
import { HashCache } from '../fs/hash-cache.js'
import { hashFile } from '../fs/hash.js'
import type { PathMatcher } from '../fs/ignore.js'
import { resolveForRead } from '../fs/paths.js'
import { mapLimit } from '../fs/pool.js'
import { type FileStat, walkFiles } from '../fs/walk.js'

/** Files hashed at once during a scan. */
const SCAN_PARALLEL = 4

export interface Entry extends ManifestEntry {
  ino: number
  mtimeMs: number
}

export function metaOf(st: FileStat, hash: Buffer): FileMeta & { ino: number; mtimeMs: number } {
  return { hash, size: st.size, mode: st.mode & 0o777, mtime: Math.floor(st.mtimeMs), ino: st.ino, mtimeMs: st.mtimeMs }
}

export interface ScanResult { files: number; hashed: number; bytes: number; ms: number }

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
      this.#entries.set(wire, { path: wire, ...metaOf(st, hash) })
    })
    this.#sorted = null
    this.#cache.retain(new Set(this.#entries.keys()))
    await this.#cache.save()
    return { files: this.#entries.size, hashed, bytes, ms: performance.now() - t0 }
  }

  /**
   * Re-reads one path from disk and updates the index. Returns the current entry, or null if the
   * path is gone, ignored, not a regular file or outside the root. Hashes only when the file's
   * size, mtime or inode moved.
   */
  async refresh(path: string): Promise<Entry | null> {
    let entry: Entry | null = null
    if (!this.#ignored(path)) {
      try {
        const real = await resolveForRead(this.root, path)
        const st = await stat(real)
        if (st.isFile()) {
          const old = this.#entries.get(path)
          if (old && old.size === st.size && old.mtimeMs === st.mtimeMs && old.ino === st.ino) return old
          let hash = this.#cache.lookup(path, st)
          if (!hash) {
            const h = await hashFile(real, st.size)
            const after = await stat(real)
            // Changed while we hashed: report what is there now on the next call.
            if (after.size !== h.size || after.mtimeMs !== st.mtimeMs) return this.refresh(path)
            hash = h.hash
            this.#cache.set(path, st, hash)
          }
          entry = { path, ...metaOf(st, hash) }
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

  /** One manifest page: entries matching `match` with path > `after`, up to MANIFEST_PAGE_BYTES. */
  page(match: PathMatcher, after: string, maxBytes = MANIFEST_PAGE_BYTES): { entries: ManifestEntry[]; done: boolean } {
    this.#sorted ??= [...this.#entries.keys()].sort()
    const sorted = this.#sorted
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
      if (!match(p)) continue
      const e = this.#entries.get(p) as Entry
      const size = manifestEntryBytes(p)
      if (bytes + size > maxBytes && entries.length > 0) return { entries, done: false }
      bytes += size
      entries.push({ path: e.path, hash: e.hash, size: e.size, mode: e.mode, mtime: e.mtime })
    }
    return { entries, done: true }
  }

  async saveCache(): Promise<void> { await this.#cache.save() }
}
