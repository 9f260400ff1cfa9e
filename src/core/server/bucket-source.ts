/**
 * BucketSource: an edge's AssetSource (`serve --origin s3://… --feed nats://…`). It has no folder:
 * its listing is a manifest version from the bucket, and a file's bytes are its chunks, read
 * through the ChunkStore (memory, the LRU disk cache, the bucket), each verified before use.
 *
 * The SourceReader promise (the bytes are what the announced hash describes) holds chunk by chunk
 * against the file's list; a list that lies (chunks that verify but do not make the file) is
 * caught by the whole-file BLAKE3 the reader keeps over sequential reads: the read that ends the
 * file rejects with ERR_INTEGRITY and the list is evicted, so the client never installs it (it
 * checks the hash too) and the next attempt fetches the list again.
 *
 * Entries are immutable per content hash: a reader keeps the entry it opened, and chunks are never
 * deleted from the bucket, so a transfer in flight survives a new version.
 */
import { AssetSyncError } from '../../errors.js'
import { SCALE_MAX_MANIFEST_BYTES, SCALE_READAHEAD_CHUNKS } from '../../limits.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import type { ChunkList } from '../delta/chunk-list.js'
import { type Hasher, createHasher, equalHash } from '../fs/hash.js'
import type { PathMatcher } from '../fs/ignore.js'
import type { ChunkStore } from '../scale/chunk-store.js'
import { formatLocation, hex, keys } from '../scale/location.js'
import { type HeadRecord, type Manifest, decodeHead, decodeManifest } from '../scale/manifest-object.js'
import type { ObjectStore } from '../scale/object-store.js'
import { pageOf } from './manifest-page.js'
import type { AssetSource, ManifestPage, ScanResult, SourceReader } from './source.js'

/** An entry and the chunk list of its content (the `chunks` feature's shape). */
export interface ChunkedEntry { entry: ManifestEntry; list: ChunkList }

/** An edge's AssetSource: a manifest version from the bucket, bytes from verified chunks (see the file comment). */
export class BucketSource implements AssetSource {
  readonly store: ObjectStore
  readonly chunks: ChunkStore
  #entries = new Map<string, ManifestEntry>()
  #sorted: string[] | null = null
  #manifest: Manifest | null = null
  #version = 0

  constructor(store: ObjectStore, chunks: ChunkStore) {
    this.store = store
    this.chunks = chunks
  }

  get description(): string { return `edge of ${formatLocation(this.store.location)}` }
  get size(): number { return this.#entries.size }
  /** The version served (HEAD's version when it was installed; 0: nothing published yet). */
  get version(): number { return this.#version }
  /** The manifest served, or null before the first publish. */
  get manifest(): Manifest | null { return this.#manifest }

  /** Installs the version HEAD names now (an empty listing if nothing was published yet). */
  async scan(): Promise<ScanResult> {
    const t0 = performance.now()
    const head = await this.readHead()
    if (head) this.install(await this.fetchManifest(head.digest), head.version)
    return { files: this.#entries.size, hashed: 0, bytes: 0, ms: performance.now() - t0 }
  }

  /** HEAD as the bucket has it now, or null if nothing was published. */
  async readHead(): Promise<HeadRecord | null> {
    const bytes = await this.store.get(keys.head(this.store.location), 64 * 1024)
    return bytes ? decodeHead(bytes) : null
  }

  /** The manifest `digest` names, checked against it. */
  async fetchManifest(digest: Uint8Array): Promise<Manifest> {
    const bytes = await this.store.get(keys.manifest(this.store.location, digest), SCALE_MAX_MANIFEST_BYTES)
    if (!bytes) throw new AssetSyncError('ERR_NOT_FOUND', `manifest ${hex(digest)} is missing from ${formatLocation(this.store.location)}`)
    return decodeManifest(bytes, digest)
  }

  /** Serves `manifest` as version `version` from now on. */
  install(manifest: Manifest, version: number): void {
    this.#entries = new Map(manifest.entries.map((e) => [e.path, e]))
    this.#sorted = manifest.entries.map((e) => e.path) // already sorted and unique (decodeManifest)
    this.#manifest = manifest
    this.#version = version
  }

  page(match: PathMatcher, after: string, maxBytes?: number): Promise<ManifestPage> {
    this.#sorted ??= [...this.#entries.keys()].sort()
    return Promise.resolve(pageOf(this.#sorted, (p) => this.#entries.get(p) as ManifestEntry, match, after, maxBytes))
  }

  get(path: string): Promise<ManifestEntry | null> {
    return Promise.resolve(this.#entries.get(path) ?? null)
  }

  open(path: string): Promise<SourceReader | null> {
    const entry = this.#entries.get(path)
    return Promise.resolve(entry ? new BucketReader(entry, this.chunks) : null)
  }

  /** The chunk list of `path`'s content, provided it is `hash` (any when null); ERR_CHANGED if not. */
  async chunkList(path: string, hash: Uint8Array | null): Promise<ChunkedEntry | null> {
    const entry = this.#entries.get(path)
    if (!entry) return null
    if (hash && !equalHash(hash, entry.hash)) throw new AssetSyncError('ERR_CHANGED', `${path} changed; try again`)
    return { entry, list: await this.chunks.list(entry) }
  }

  /** One chunk by hash, verified. */
  readChunk(hash: Uint8Array, length: number): Promise<Uint8Array | null> {
    return this.chunks.chunk(hash, length)
  }

  close(): Promise<void> {
    this.store.close()
    return Promise.resolve()
  }
}

/** Reads one entry's content chunk by chunk, a few chunks ahead of the sender. */
class BucketReader implements SourceReader {
  readonly entry: ManifestEntry
  readonly #chunks: ChunkStore
  #list: Promise<ChunkList> | null = null
  readonly #ahead = new Map<number, Promise<Buffer>>()
  /**
   * Whole-file BLAKE3 over reads made in order from 0 (null once reads went out of order, or when
   * another reader proved or is proving this file's list: one hash pass per file, not per client).
   */
  #hasher: Hasher | null
  #hashed = 0
  #closed = false

  constructor(entry: ManifestEntry, chunks: ChunkStore) {
    this.entry = entry
    this.#chunks = chunks
    this.#hasher = entry.size > 0 && chunks.claimProof(entry.hash) ? createHasher() : null
  }

  #chunk(list: ChunkList, i: number): Promise<Buffer> {
    let p = this.#ahead.get(i)
    if (!p) {
      p = this.#chunks.chunk(list.chunkHash(i), list.lengths[i] as number)
      p.catch(() => {}) // awaited when its turn comes; a prefetch may never be
      this.#ahead.set(i, p)
    }
    return p
  }

  async read(into: Uint8Array, position: number, length: number): Promise<void> {
    if (length === 0) return
    if (position < 0 || position + length > this.entry.size) {
      throw new AssetSyncError('ERR_INTERNAL', `read of ${this.entry.path} outside its ${this.entry.size} bytes`)
    }
    this.#list ??= this.#chunks.list(this.entry)
    const list = await this.#list
    let i = chunkAt(list, position)
    for (const k of this.#ahead.keys()) if (k < i) this.#ahead.delete(k)
    let copied = 0
    while (copied < length) {
      for (let j = i; j < Math.min(list.count, i + SCALE_READAHEAD_CHUNKS); j++) this.#chunk(list, j)
      const bytes = await this.#chunk(list, i)
      const start = position + copied - (list.offsets[i] as number)
      const n = Math.min(bytes.length - start, length - copied)
      into.set(bytes.subarray(start, start + n), copied)
      copied += n
      if (start + n === bytes.length) this.#ahead.delete(i++)
    }
    this.#checkWhole(into.subarray(0, length), position)
  }

  #checkWhole(bytes: Uint8Array, position: number): void {
    if (!this.#hasher) return
    if (position !== this.#hashed) {
      this.#hasher.digest()
      this.#hasher = null
      this.#chunks.unclaim(this.entry.hash)
      return
    }
    this.#hasher.update(bytes)
    this.#hashed += bytes.length
    if (this.#hashed < this.entry.size) return
    const ok = equalHash(this.#hasher.digest(), this.entry.hash)
    this.#hasher = null
    if (ok) this.#chunks.prove(this.entry.hash)
    else {
      void this.#chunks.evictList(this.entry.hash)
      throw new AssetSyncError('ERR_INTEGRITY', `${this.entry.path}: its chunk list in the bucket does not make the announced file; evicted`)
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true
      this.#ahead.clear()
      if (this.#hasher) {
        this.#hasher.digest()
        this.#hasher = null
        this.#chunks.unclaim(this.entry.hash) // ended early: a later reader proves it
      }
    }
    return Promise.resolve()
  }
}

/** Index of the chunk holding byte `position` (binary search over the offsets). */
function chunkAt(list: ChunkList, position: number): number {
  let lo = 0
  let hi = list.count - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if ((list.offsets[mid] as number) <= position) lo = mid
    else hi = mid - 1
  }
  return lo
}
