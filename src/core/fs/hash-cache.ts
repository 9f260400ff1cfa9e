/**
 * Persistent hash cache: wire path → {stamp, hash}. A file whose stamp (size, mtime, ctime, inode:
 * see stamp.ts) is unchanged is not hashed again (after a restart, or on the client's next pull).
 * It lives in the config directory, never inside a served or mirrored folder.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { readTaggedFile, writeFileAtomic } from './atomic-write.js'
import { type FileStamp, sameStamp, sameStampAt } from './stamp.js'

export type { FileStamp } from './stamp.js'

/** Flat (no nested stamp object): 100,000 records are held at once. */
interface CacheRecord extends FileStamp { hash: Buffer }

/**
 * File layout: "ASYNCHC" + version byte, then per record: path length u16, path UTF-8, size,
 * mtimeMs, ctimeMs and inode as float64 (JS numbers, as fs.Stats gives them), BLAKE3 hash 32
 * bytes. Big-endian. Version 1 was JSON, version 2 had no ctime; any other header reads as an
 * empty cache (a v2 record cannot vouch for a file whose ctime it never saw).
 */
const HEADER = Buffer.from('ASYNCHC\x03', 'latin1')
const FIXED_BYTES = 8 + 8 + 8 + 8 + 32

/** The cache file for a folder (by its real path) under `dir/cache/`. */
export function cacheFileFor(configDirectory: string, kind: 'serve' | 'mirror' | 'listed' | 'listing', realRoot: string): string {
  const id = createHash('sha256').update(realRoot).digest('hex').slice(0, 24)
  return join(configDirectory, 'cache', `${kind}-${id}.bin`)
}

export class HashCache {
  readonly file: string | null
  /**
   * A record set in this run, or the offset of a loaded one's fixed fields in `#loaded`: loading
   * makes no object per record (a no-op pull of 20,000 files spent 28 ms, and the garbage
   * collector more, on 20,000 records and hash views it mostly compared once).
   */
  readonly #map = new Map<string, CacheRecord | number>()
  #loaded: Buffer = Buffer.alloc(0)
  #dirty = false

  constructor(file: string | null) { this.file = file }

  /**
   * Loads the cache; a missing, unreadable or damaged file gives an empty cache (it is only a
   * cache). Binary, not JSON: a no-op pull of 20,000 files spent 74 ms parsing the JSON version.
   */
  static async load(file: string | null): Promise<HashCache> {
    const c = new HashCache(file)
    const buf = await readTaggedFile(file, HEADER)
    if (!buf) return c
    const map = c.#map
    for (let at = HEADER.length; at < buf.length;) {
      const n = at + 2 <= buf.length ? buf.readUInt16BE(at) : -1
      const f = at + 2 + n // the fixed fields, after the path
      if (n < 0 || f + FIXED_BYTES > buf.length) { // truncated: trust none of it
        map.clear()
        return c
      }
      map.set(buf.toString('utf8', at + 2, f), f)
      at = f + FIXED_BYTES
    }
    c.#loaded = buf
    return c
  }

  /** The cached hash if the stamp recorded for `path` is still `st`'s (sameStamp). */
  lookup(path: string, st: FileStamp): Buffer | null {
    const r = this.#map.get(path)
    if (r === undefined) return null
    if (typeof r === 'number' ? !sameStampAt(this.#loaded, r, st) : !sameStamp(r, st) || r.hash.length !== 32) return null
    return this.#hashOf(r)
  }

  /** Every cached path and hash (unchecked: `lookup` with a fresh stat vouches for one). */
  *entries(): IterableIterator<[path: string, hash: Buffer]> {
    for (const [p, r] of this.#map) yield [p, this.#hashOf(r)]
  }

  set(path: string, st: FileStamp, hash: Buffer): void {
    this.#map.set(path, { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, hash })
    this.#dirty = true
  }

  delete(path: string): void {
    if (this.#map.delete(path)) this.#dirty = true
  }

  /** Keeps only the given paths (drops records of files that are gone). */
  retain(paths: ReadonlySet<string>): void {
    for (const p of this.#map.keys()) if (!paths.has(p)) { this.#map.delete(p); this.#dirty = true }
  }

  /** Writes the cache atomically if it changed. Failures are ignored: it is only a cache. */
  async save(): Promise<void> {
    if (!this.file || !this.#dirty) return
    this.#dirty = false
    const records = [...this.#map].filter(([, r]) => typeof r === 'number' || r.hash.length === 32)
    let size = HEADER.length
    for (const [p] of records) size += 2 + Buffer.byteLength(p, 'utf8') + FIXED_BYTES
    const buf = Buffer.allocUnsafe(size)
    let at = HEADER.copy(buf, 0)
    for (const [p, r] of records) {
      const n = buf.write(p, at + 2, 'utf8')
      buf.writeUInt16BE(n, at)
      at += 2 + n
      if (typeof r === 'number') {
        at += this.#loaded.copy(buf, at, r, r + FIXED_BYTES) // a loaded record, as it was read
        continue
      }
      at = buf.writeDoubleBE(r.size, at)
      at = buf.writeDoubleBE(r.mtimeMs, at)
      at = buf.writeDoubleBE(r.ctimeMs, at)
      at = buf.writeDoubleBE(r.ino, at)
      at += r.hash.copy(buf, at)
    }
    try {
      // No fsync: a cache lost to a power cut is rebuilt by hashing; a torn one is never read.
      await writeFileAtomic(this.file, buf, { mkdir: true, fsync: false })
    } catch {
      this.#dirty = true
    }
  }

  /** The hash of a record: a view into the loaded file's buffer for a loaded one. */
  #hashOf(r: CacheRecord | number): Buffer {
    return typeof r === 'number' ? this.#loaded.subarray(r + 32, r + FIXED_BYTES) : r.hash
  }
}
