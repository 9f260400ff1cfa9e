/**
 * MemorySource: an AssetSource whose entries and bytes live in a Map. For tests of the server and
 * of clients against it (a real server over UDP with no folder behind it), and the model of a
 * source whose content is immutable per hash (a chunk store): a reader keeps the bytes it opened,
 * so replacing an entry never changes a transfer in flight.
 */
import { AssetSyncError } from '../../errors.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import { type ChunkList, chunkBytes } from '../delta/chunk-list.js'
import { equalHash, hashBytes } from '../fs/hash.js'
import type { PathMatcher } from '../fs/ignore.js'
import { checkWirePath } from '../fs/paths.js'
import { wireMtime } from '../fs/stamp.js'
import { pageOf } from './manifest-page.js'
import type { AssetSource, ChunkedEntry, ManifestPage, OpenOptions, PageWork, ScanResult, SourceReader, WholeRead } from './source.js'

interface Item { entry: ManifestEntry; bytes: Buffer; list?: ChunkList }

/** Entries and bytes in memory: `set` and `delete` change them (push a MemoryFeed batch to announce it). */
export class MemorySource implements AssetSource {
  readonly description = 'memory'
  readonly #items = new Map<string, Item>()
  #sorted: string[] | null = null
  /** Paths `open` refuses (ERR_PATH_REFUSED), to test the refused answer. */
  readonly refused = new Set<string>()
  /** Changes with every set or delete (AssetSource.version). */
  #version = 0

  /** Optionally filled from `files` (wire path → content). */
  constructor(files: Record<string, string | Uint8Array> = {}) {
    for (const [path, data] of Object.entries(files)) this.set(path, data)
  }

  get size(): number { return this.#items.size }
  get version(): number { return this.#version }

  /**
   * Adds or replaces `path` (a valid wire path) with `data`; returns its entry, e.g. for a
   * MemoryFeed batch: `{ kind: 'change', ...source.set(path, data) }`.
   */
  set(path: string, data: string | Uint8Array, opts: { mode?: number; mtime?: number } = {}): ManifestEntry {
    const why = checkWirePath(path)
    if (why !== null) throw new AssetSyncError('ERR_PATH_REFUSED', `refused path "${path}": ${why}`)
    const bytes = Buffer.from(typeof data === 'string' ? Buffer.from(data) : data) // our own copy
    const entry: ManifestEntry = { path, hash: hashBytes(bytes), size: bytes.length, mode: opts.mode ?? 0o644, mtime: wireMtime(opts.mtime ?? Date.now()) }
    if (!this.#items.has(path)) this.#sorted = null
    this.#items.set(path, { entry, bytes })
    this.#version++
    return entry
  }

  /** Removes `path`; true if it was there. */
  delete(path: string): boolean {
    const had = this.#items.delete(path)
    if (had) {
      this.#sorted = null
      this.#version++
    }
    return had
  }

  scan(): Promise<ScanResult> {
    return Promise.resolve({ files: this.#items.size, hashed: 0, bytes: 0, ms: 0 })
  }

  page(match: PathMatcher, after: string, maxBytes?: number, work?: PageWork): Promise<ManifestPage> {
    this.#sorted ??= [...this.#items.keys()].sort()
    return Promise.resolve(pageOf(this.#sorted, (p) => (this.#items.get(p) as Item).entry, match, after, maxBytes, work))
  }

  get(path: string): Promise<ManifestEntry | null> {
    return Promise.resolve(this.#items.get(path)?.entry ?? null)
  }

  /** Bytes in memory cannot change under their hash: `distrust` has nothing to re-check. */
  open(path: string, _opts?: OpenOptions): Promise<SourceReader | null> {
    if (this.refused.has(path)) return Promise.reject(new AssetSyncError('ERR_PATH_REFUSED', `refused path "${path}": refused by the test`))
    const item = this.#items.get(path)
    return Promise.resolve(item ? new MemoryReader(item) : null)
  }

  /** Refused paths take the slow path, whose refusal is the one `open` gives. */
  readNow(path: string, maxBytes: number): WholeRead | 'slow' | null {
    if (this.refused.has(path)) return 'slow'
    const item = this.#items.get(path)
    if (!item) return null
    return { entry: item.entry, data: item.bytes.length <= maxBytes ? item.bytes : null }
  }

  /** The chunk list of `path`'s content, computed on first use and kept with the bytes. */
  chunkList(path: string, hash: Uint8Array | null): Promise<ChunkedEntry | null> {
    if (this.refused.has(path)) return Promise.reject(new AssetSyncError('ERR_PATH_REFUSED', `refused path "${path}": refused by the test`))
    const item = this.#items.get(path)
    if (!item) return Promise.resolve(null)
    if (hash && !equalHash(hash, item.entry.hash)) return Promise.reject(new AssetSyncError('ERR_CHANGED', `${path} changed; try again`))
    item.list ??= chunkBytes(item.bytes)
    return Promise.resolve({ entry: item.entry, list: item.list })
  }

  close(): Promise<void> { return Promise.resolve() }
}

class MemoryReader implements SourceReader {
  readonly entry: ManifestEntry
  readonly #bytes: Buffer

  constructor(item: Item) {
    this.entry = item.entry
    this.#bytes = item.bytes
  }

  read(into: Uint8Array, position: number, length: number): Promise<void> {
    if (position < 0 || length < 0 || position + length > this.#bytes.length) {
      return Promise.reject(new AssetSyncError('ERR_INTERNAL', `read of ${this.entry.path} outside its ${this.#bytes.length} bytes`))
    }
    this.#bytes.copy(into, 0, position, position + length)
    return Promise.resolve()
  }

  close(): Promise<void> { return Promise.resolve() }
}
