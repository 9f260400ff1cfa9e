/**
 * Persistent hash cache: wire path → {size, mtime, inode, hash}. A file whose size, mtime and
 * inode are unchanged is not hashed again (after a restart, or on the client's next pull). It
 * lives in the config directory, never inside a served or mirrored folder.
 */
import { createHash } from 'node:crypto'
import type { Stats } from 'node:fs'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'

interface CacheRecord { size: number; mtimeMs: number; ino: number; hash: Buffer }

const CACHE_VERSION = 1

/** The cache file for a folder (by its real path) under `dir/cache/`. */
export function cacheFileFor(configDirectory: string, kind: 'serve' | 'mirror', realRoot: string): string {
  const id = createHash('sha256').update(realRoot).digest('hex').slice(0, 24)
  return join(configDirectory, 'cache', `${kind}-${id}.json`)
}

export class HashCache {
  readonly file: string | null
  readonly #map = new Map<string, CacheRecord>()
  #dirty = false

  constructor(file: string | null) { this.file = file }

  /** Loads the cache; a missing or unreadable file gives an empty cache (it is only a cache). */
  static async load(file: string | null): Promise<HashCache> {
    const c = new HashCache(file)
    if (!file) return c
    try {
      const j = JSON.parse(await readFile(file, 'utf8')) as { v?: number; e?: [string, number, number, number, string][] }
      if (j.v === CACHE_VERSION && Array.isArray(j.e)) {
        for (const [p, size, mtimeMs, ino, hex] of j.e) c.#map.set(p, { size, mtimeMs, ino, hash: Buffer.from(hex, 'hex') })
      }
    } catch { /* start empty */ }
    return c
  }

  /** The cached hash if size, mtime and inode still match `st`. */
  lookup(path: string, st: Stats): Buffer | null {
    const r = this.#map.get(path)
    if (!r || r.size !== st.size || r.mtimeMs !== st.mtimeMs || r.ino !== st.ino || r.hash.length !== 32) return null
    return r.hash
  }

  set(path: string, st: Stats, hash: Buffer): void {
    this.#map.set(path, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, hash })
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
    const e = [...this.#map].map(([p, r]) => [p, r.size, r.mtimeMs, r.ino, r.hash.toString('hex')])
    const tmp = `${this.file}.${process.pid}.tmp`
    try {
      await mkdir(dirname(this.file), { recursive: true, mode: 0o700 })
      await writeFile(tmp, JSON.stringify({ v: CACHE_VERSION, e }))
      await rename(tmp, this.file)
    } catch {
      this.#dirty = true
    }
  }
}
