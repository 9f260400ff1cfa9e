/**
 * Persistent chunk-list cache: wire path → {size, mtimeMs, ino, ctimeMs, encoded chunk list}.
 * A file whose stamp is unchanged is not chunked again (a server answering chunk-list requests,
 * a client offering its old versions as sources). It lives beside the hash cache in the config
 * directory (`<config>/cache/<kind>-<id>.chunks.bin`), never inside a served or mirrored folder.
 *
 * It is only a cache: a missing, truncated or damaged file reads as empty, a record whose list
 * does not decode strictly (or whose size is not its stamp's) is a miss, and a failed save is
 * ignored. The stamp is the one of src/core/fs/stamp.ts (size, mtime, ctime, inode), compared
 * with `sameStamp` like the hash cache's.
 */
import { DELTA_LIST_CACHE_BYTES } from '../../limits.js'
import { readTaggedFile, writeFileAtomic } from '../fs/atomic-write.js'
import { cacheFileFor } from '../fs/hash-cache.js'
import { type FileStamp, sameStamp } from '../fs/stamp.js'
import { type ChunkList, decodeChunkList, encodeChunkList } from './chunk-list.js'

interface ListRecord extends FileStamp { list: Buffer }

/**
 * File layout: "ASYNCCL" + version byte 1, then per record: path length u16, path UTF-8, size,
 * mtimeMs, ino, ctimeMs as float64, list length u32, the encoded list. Big-endian.
 */
const HEADER = Buffer.from('ASYNCCL\x01', 'latin1')
const FIXED_BYTES = 4 * 8 + 4

/** The cache file for a folder (by its real path), beside that folder's hash cache. */
export function listCacheFileFor(configDirectory: string, kind: 'serve' | 'mirror', realRoot: string): string {
  return cacheFileFor(configDirectory, kind, realRoot).replace(/\.bin$/, '.chunks.bin')
}

/**
 * Chunk lists of files by wire path and stamp, persisted in one file (`load`, `save`): a file whose
 * stamp is unchanged is not chunked again. Bounded (least recently used go first); only a cache.
 */
export class ChunkListCache {
  readonly file: string | null
  /** Insertion order is recency order: a hit or a set moves the record to the end. */
  readonly #map = new Map<string, ListRecord>()
  readonly #maxBytes: number
  #bytes = 0
  #dirty = false

  constructor(file: string | null, maxBytes = DELTA_LIST_CACHE_BYTES) {
    this.file = file
    this.#maxBytes = maxBytes
  }

  /** Loads the cache; anything unreadable or damaged gives an empty cache. */
  static async load(file: string | null, maxBytes = DELTA_LIST_CACHE_BYTES): Promise<ChunkListCache> {
    const c = new ChunkListCache(file, maxBytes)
    const buf = await readTaggedFile(file, HEADER)
    if (!buf) return c
    const records: [string, ListRecord][] = []
    for (let at = HEADER.length; at < buf.length;) {
      const n = at + 2 <= buf.length ? buf.readUInt16BE(at) : -1
      const f = at + 2 + n
      if (n < 0 || f + FIXED_BYTES > buf.length) return c // truncated: trust none of it
      const len = buf.readUInt32BE(f + 32)
      const end = f + FIXED_BYTES + len
      if (end > buf.length) return c
      records.push([buf.toString('utf8', at + 2, f), {
        size: buf.readDoubleBE(f),
        mtimeMs: buf.readDoubleBE(f + 8),
        ino: buf.readDoubleBE(f + 16),
        ctimeMs: buf.readDoubleBE(f + 24),
        list: buf.subarray(f + FIXED_BYTES, end),
      }])
      at = end
    }
    for (const [path, r] of records) c.#put(path, r)
    c.#dirty = false
    return c
  }

  get size(): number { return this.#map.size }

  /** The paths with a cached list, least recently used first. */
  paths(): IterableIterator<string> { return this.#map.keys() }

  /** The cached list if the stamp still matches and the record decodes strictly; else null. */
  lookup(path: string, st: FileStamp): ChunkList | null {
    const r = this.#map.get(path)
    if (!r || !sameStamp(r, st)) return null
    let list: ChunkList
    try {
      list = decodeChunkList(r.list, { size: st.size })
    } catch {
      this.delete(path)
      return null
    }
    this.#map.delete(path) // most recently used: to the end
    this.#map.set(path, r)
    return list
  }

  set(path: string, st: FileStamp, list: ChunkList): void {
    this.#put(path, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, ctimeMs: st.ctimeMs, list: encodeChunkList(list) })
    this.#dirty = true
  }

  delete(path: string): void {
    const r = this.#map.get(path)
    if (!r) return
    this.#map.delete(path)
    this.#bytes -= recordBytes(path, r)
    this.#dirty = true
  }

  /** Keeps only the given paths (drops records of files that are gone). */
  retain(paths: ReadonlySet<string>): void {
    for (const p of [...this.#map.keys()]) if (!paths.has(p)) this.delete(p)
  }

  /** Writes the cache atomically if it changed. Failures are ignored: it is only a cache. */
  async save(): Promise<void> {
    if (!this.file || !this.#dirty) return
    this.#dirty = false
    const buf = Buffer.allocUnsafe(HEADER.length + this.#bytes)
    let at = HEADER.copy(buf, 0)
    for (const [p, r] of this.#map) {
      const n = buf.write(p, at + 2, 'utf8')
      buf.writeUInt16BE(n, at)
      at += 2 + n
      at = buf.writeDoubleBE(r.size, at)
      at = buf.writeDoubleBE(r.mtimeMs, at)
      at = buf.writeDoubleBE(r.ino, at)
      at = buf.writeDoubleBE(r.ctimeMs, at)
      at = buf.writeUInt32BE(r.list.length, at)
      at += r.list.copy(buf, at)
    }
    try {
      // No fsync: a cache lost to a power cut is rebuilt; a torn one is never read.
      await writeFileAtomic(this.file, buf.subarray(0, at), { mkdir: true, fsync: false })
    } catch {
      this.#dirty = true
    }
  }

  /** Adds or replaces a record, then drops the least recently used ones past the byte cap. */
  #put(path: string, r: ListRecord): void {
    if (Buffer.byteLength(path, 'utf8') > 0xffff) return
    this.delete(path)
    const bytes = recordBytes(path, r)
    if (bytes > this.#maxBytes) return
    this.#map.set(path, r)
    this.#bytes += bytes
    for (const [p, old] of this.#map) {
      if (this.#bytes <= this.#maxBytes) break
      this.#map.delete(p)
      this.#bytes -= recordBytes(p, old)
    }
  }
}

function recordBytes(path: string, r: ListRecord): number {
  return 2 + Buffer.byteLength(path, 'utf8') + FIXED_BYTES + r.list.length
}
