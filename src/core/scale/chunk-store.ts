/**
 * ChunkStore: chunks and chunk lists by hash, from a memory cache, a disk cache or the bucket, each
 * chunk verified (length and BLAKE3) before it enters a cache or reaches a caller. A cached copy
 * that does not verify is evicted and fetched again; a fetched one that does not verify is
 * fetched again once, then refused with ERR_INTEGRITY (the bucket's copy is damaged or was
 * replaced: nothing from it is ever served). Concurrent requests for one hash share one fetch.
 *
 * Used by an edge's source (through the bucket and its caches) and by `pull --direct` (through
 * presigned URLs or the runner's own credentials, without a disk cache).
 */
import { AssetSyncError } from '../../errors.js'
import { DELTA_MIN_CHUNK_BYTES } from '../../limits.js'
import type { FileMeta } from '../../protocol/messages.js'
import { ChunkList, decodeChunkList, maxChunkListBytes } from '../delta/chunk-list.js'
import { equalHash, hashBytes } from '../fs/hash.js'
import { type DiskCache, MemoryCache } from './chunk-cache.js'
import { hex, keys } from './location.js'
import type { ObjectStore } from './object-store.js'

/** Where chunk and list objects are read from. */
export interface ChunkObjects {
  readonly description: string
  /** The object `chunks/<hash>`, or null if missing. */
  chunk(hash: Uint8Array, length: number): Promise<Buffer | null>
  /** The object `lists/<fileHash>`, or null if missing. */
  list(fileHash: Uint8Array, maxBytes: number): Promise<Buffer | null>
}

/** Chunk and list objects read from a bucket with the store's credentials. */
export function bucketObjects(store: ObjectStore): ChunkObjects {
  return {
    description: store.description,
    chunk: (hash, length) => store.get(keys.chunk(store.location, hash), length),
    list: (fileHash, maxBytes) => store.get(keys.list(store.location, fileHash), maxBytes),
  }
}

/**
 * Whether a file of `size` bytes is published as a single chunk named by its own hash (no list
 * object): FastCDC never cuts before DELTA_MIN_CHUNK_BYTES. An empty file has no chunk at all.
 */
export function isSingleChunk(size: number): boolean {
  return size <= DELTA_MIN_CHUNK_BYTES
}

/** The list of a single-chunk file (or the empty list of an empty one), without any object. */
export function singleChunkList(meta: FileMeta): ChunkList {
  const hash = Buffer.from(meta.hash)
  if (meta.size === 0) return new ChunkList(0, hash, new Uint32Array(0), Buffer.alloc(0))
  return new ChunkList(meta.size, hash, Uint32Array.of(meta.size), Buffer.from(hash))
}

export interface ChunkStoreStats {
  memoryHits: number
  diskHits: number
  /** Chunks and lists fetched from the objects (bucket, URLs). */
  fetched: number
  fetchedBytes: number
  /** Cached chunks that did not verify and were evicted. */
  evicted: number
  /** Fetched chunks that did not verify. */
  refused: number
}

export interface ChunkStoreOptions {
  disk?: DiskCache | null
  /** Bytes of verified chunks kept in memory (0: none). */
  memoryBytes?: number
}

/** Verified chunks and lists by hash: memory, then disk, then the objects (see the file comment). */
export class ChunkStore {
  readonly objects: ChunkObjects
  readonly stats: ChunkStoreStats = { memoryHits: 0, diskHits: 0, fetched: 0, fetchedBytes: 0, evicted: 0, refused: 0 }
  readonly #disk: DiskCache | null
  readonly #memory: MemoryCache | null
  readonly #inflight = new Map<string, Promise<Buffer>>()
  readonly #lists = new MemoryCache(8 * 1024 * 1024)
  /** Files (hash keys) whose list was seen to assemble into the file: later readers skip the whole-file hash. */
  readonly #proven = new Set<string>()
  readonly #proving = new Set<string>()

  constructor(objects: ChunkObjects, opts: ChunkStoreOptions = {}) {
    this.objects = objects
    this.#disk = opts.disk ?? null
    this.#memory = opts.memoryBytes ? new MemoryCache(opts.memoryBytes) : null
  }

  get disk(): DiskCache | null { return this.#disk }

  /** The verified bytes of the chunk `hash` of `length` bytes. */
  chunk(hash: Uint8Array, length: number): Promise<Buffer> {
    const name = `c-${hex(hash)}`
    const hit = this.#memory?.get(name)
    if (hit && hit.length === length) {
      this.stats.memoryHits++
      return Promise.resolve(hit)
    }
    let p = this.#inflight.get(name)
    if (!p) {
      p = this.#loadChunk(name, Buffer.from(hash), length).finally(() => this.#inflight.delete(name))
      this.#inflight.set(name, p)
    }
    return p
  }

  async #loadChunk(name: string, hash: Buffer, length: number): Promise<Buffer> {
    const ok = (b: Buffer | null): b is Buffer => !!b && b.length === length && equalHash(hashBytes(b), hash)
    if (this.#disk) {
      const got = await this.#disk.get(name)
      const cached = got?.bytes ?? null
      // Vouched: written (verified) by this process, stamp unchanged since (chunk-cache.ts).
      if (got && ((got.vouched && cached!.length === length) || ok(cached))) {
        this.stats.diskHits++
        this.#memory?.set(name, cached!)
        return cached!
      }
      if (cached) {
        // Damaged or replaced on disk: never served, never kept.
        this.stats.evicted++
        await this.#disk.delete(name)
      }
    }
    for (let attempt = 1; ; attempt++) {
      const bytes = await this.objects.chunk(hash, length)
      if (!bytes) throw new AssetSyncError('ERR_NOT_FOUND', `chunk ${hex(hash)} is missing from ${this.objects.description}`)
      this.stats.fetched++
      this.stats.fetchedBytes += bytes.length
      if (ok(bytes)) {
        this.#memory?.set(name, bytes)
        await this.#disk?.put(name, bytes)
        return bytes
      }
      this.stats.refused++
      if (attempt >= 2) {
        throw new AssetSyncError('ERR_INTEGRITY', `chunk ${hex(hash)} from ${this.objects.description} does not match its BLAKE3 hash (damaged or replaced); refused`)
      }
    }
  }

  /** Forgets a chunk everywhere (its content was found wrong downstream). */
  async evict(hash: Uint8Array): Promise<void> {
    const name = `c-${hex(hash)}`
    this.#memory?.delete(name)
    await this.#disk?.delete(name)
  }

  /**
   * The chunk list of the file content `meta` (size and hash): synthesized for a single-chunk
   * file, else `lists/<hash>`, decoded strictly against that size and hash. A list is not
   * verified beyond that (it has no hash of its own): a wrong one names chunks whose assembly
   * fails the whole-file hash, which the reader and the client both check.
   */
  async list(meta: FileMeta): Promise<ChunkList> {
    if (isSingleChunk(meta.size)) return singleChunkList(meta)
    const name = `l-${hex(meta.hash)}`
    const expect = { size: meta.size, hash: meta.hash }
    const mem = this.#lists.get(name)
    if (mem) return decodeChunkList(mem, expect)
    const cached = (await this.#disk?.get(name))?.bytes
    if (cached) {
      try {
        const list = decodeChunkList(cached, expect)
        this.#lists.set(name, cached)
        return list
      } catch {
        await this.#disk?.delete(name)
      }
    }
    let p = this.#inflight.get(name)
    if (!p) {
      p = (async () => {
        const bytes = await this.objects.list(meta.hash, maxChunkListBytes(meta.size))
        if (!bytes) throw new AssetSyncError('ERR_NOT_FOUND', `the chunk list of ${hex(meta.hash)} is missing from ${this.objects.description}`)
        this.stats.fetched++
        this.stats.fetchedBytes += bytes.length
        return bytes
      })().finally(() => this.#inflight.delete(name))
      this.#inflight.set(name, p)
    }
    const bytes = await p
    let list: ChunkList
    try {
      list = decodeChunkList(bytes, expect)
    } catch (err) {
      throw new AssetSyncError('ERR_INTEGRITY', `the chunk list of ${hex(meta.hash)} from ${this.objects.description} is not valid: ${(err as Error).message}`, { cause: err })
    }
    this.#lists.set(name, bytes)
    await this.#disk?.put(name, bytes)
    return list
  }

  /** Whether `fileHash`'s list was proven (its chunks made the file once). */
  proven(fileHash: Uint8Array): boolean { return this.#proven.has(hex(fileHash)) }

  /**
   * Claims the proof of `fileHash`'s list for one reader: false if it is proven or another reader
   * is proving it now (20 clients starting one file together hash it once). Give it back with
   * `unclaim` if the reader ends before the last byte.
   */
  claimProof(fileHash: Uint8Array): boolean {
    const k = hex(fileHash)
    if (this.#proven.has(k) || this.#proving.has(k)) return false
    this.#proving.add(k)
    return true
  }

  unclaim(fileHash: Uint8Array): void { this.#proving.delete(hex(fileHash)) }

  /** Records that `fileHash`'s list assembled into exactly that file. */
  prove(fileHash: Uint8Array): void {
    this.#proving.delete(hex(fileHash))
    if (this.#proven.size >= 1_000_000) this.#proven.clear()
    this.#proven.add(hex(fileHash))
  }

  /** Forgets a list (its chunks assembled into the wrong file). */
  async evictList(fileHash: Uint8Array): Promise<void> {
    this.#proven.delete(hex(fileHash))
    this.#proving.delete(hex(fileHash))
    const name = `l-${hex(fileHash)}`
    this.#lists.delete(name)
    await this.#disk?.delete(name)
  }
}
