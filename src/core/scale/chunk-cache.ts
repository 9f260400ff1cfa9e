/**
 * The caches under an edge's chunk store: a disk cache with a byte cap (least recently used go
 * first) and a small memory cache in front of it. Neither vouches for its content: the chunk
 * store (chunk-store.ts) verifies every chunk's BLAKE3 when it comes out of the disk cache (a
 * file there may have been damaged or replaced) and before it goes into either.
 *
 * The disk cache lives in the config dir (`<config>/cache/edge-<id>/`), never in a served folder.
 * Files are written to a temp name and renamed, so a crash leaves no half-written entry under a
 * real name; temp files are removed on open. On open, existing entries are listed and ordered by
 * their modification time (reads bump it only in memory: no write per read).
 *
 * A file this process wrote (verified content) keeps its stamp (size, mtime, ctime, inode: the
 * rule the hash cache of a served folder trusts, fs/stamp.ts); a read whose file still has that
 * stamp is `vouched`, and the chunk store need not hash it again. Anything else — a file from an
 * earlier run, or one whose stamp moved (written to, replaced) — is hashed before use.
 */
import { mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { hashBytes } from '../fs/hash.js'
import { type FileStamp, sameStamp, stampOf } from '../fs/stamp.js'
import type { BucketLocation } from './location.js'
import { formatLocation } from './location.js'

/** `<configDir>/cache/edge-<16 hex>`: one cache per origin location. */
export function edgeCacheDir(configDir: string, loc: BucketLocation): string {
  return join(configDir, 'cache', `edge-${hashBytes(Buffer.from(formatLocation(loc))).toString('hex').slice(0, 16)}`)
}

const NAME = /^[cl]-[0-9a-f]{64}$/

/** Files named `c-<hex>` (chunks) and `l-<hex>` (chunk lists) in 256 sub-folders, at most `capBytes` in all. */
export class DiskCache {
  readonly dir: string
  readonly capBytes: number
  /** name → size, least recently used first (a Map keeps insertion order; a hit re-inserts). */
  readonly #index = new Map<string, number>()
  /** Sub-folders known to exist (one mkdir each, not one per write). */
  readonly #dirs = new Set<string>()
  /** Stamps of files this process wrote, by name. */
  readonly #stamps = new Map<string, FileStamp>()
  #bytes = 0
  #temp = 0

  private constructor(dir: string, capBytes: number) {
    this.dir = dir
    this.capBytes = capBytes
  }

  /** Opens (creating) `dir` and lists what it holds; trims it to `capBytes`. */
  static async open(dir: string, capBytes: number): Promise<DiskCache> {
    const cache = new DiskCache(dir, capBytes)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const found: { name: string; size: number; mtime: number }[] = []
    for (const sub of await readdir(dir).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue
      for (const name of await readdir(join(dir, sub)).catch(() => [] as string[])) {
        const full = join(dir, sub, name)
        if (!NAME.test(name)) {
          if (name.startsWith('.tmp-')) await unlink(full).catch(() => {})
          continue
        }
        const st = await stat(full).catch(() => null)
        if (st?.isFile()) found.push({ name, size: st.size, mtime: st.mtimeMs })
      }
    }
    found.sort((a, b) => a.mtime - b.mtime)
    for (const f of found) {
      cache.#index.set(f.name, f.size)
      cache.#bytes += f.size
    }
    await cache.#trim()
    return cache
  }

  get bytes(): number { return this.#bytes }
  get count(): number { return this.#index.size }
  has(name: string): boolean { return this.#index.has(name) }

  #path(name: string): string {
    return join(this.dir, name.slice(2, 4), name)
  }

  /**
   * The file's bytes (and it becomes the most recently used), or null. `vouched`: this process
   * wrote it and its stamp has not moved since.
   */
  async get(name: string): Promise<{ bytes: Buffer; vouched: boolean } | null> {
    const size = this.#index.get(name)
    if (size === undefined) return null
    this.#index.delete(name)
    this.#index.set(name, size)
    try {
      const fh = await open(this.#path(name), 'r')
      try {
        const st = await fh.stat()
        const bytes = Buffer.allocUnsafe(st.size)
        let got = 0
        while (got < bytes.length) {
          const { bytesRead } = await fh.read(bytes, got, bytes.length - got, got)
          if (bytesRead === 0) break
          got += bytesRead
        }
        return { bytes: bytes.subarray(0, got), vouched: got === st.size && sameStamp(this.#stamps.get(name), st) }
      } finally {
        await fh.close()
      }
    } catch {
      this.#forget(name)
      return null
    }
  }

  /** Stores `bytes` under `name` (replacing it), then trims to the cap. Failures are ignored: it is a cache. */
  async put(name: string, bytes: Uint8Array): Promise<void> {
    if (!NAME.test(name) || bytes.byteLength > this.capBytes) return
    const final = this.#path(name)
    const temp = join(this.dir, name.slice(2, 4), `.tmp-${process.pid}-${++this.#temp}`)
    let stamp: FileStamp
    try {
      const sub = name.slice(2, 4)
      if (!this.#dirs.has(sub)) {
        await mkdir(join(this.dir, sub), { recursive: true, mode: 0o700 })
        this.#dirs.add(sub)
      }
      const fh = await open(temp, 'w', 0o600)
      try {
        await fh.write(bytes)
      } finally {
        await fh.close()
      }
      await rename(temp, final)
      stamp = stampOf(await stat(final))
    } catch {
      this.#forget(name)
      this.#dirs.delete(name.slice(2, 4)) // removed behind our back? make it again next time
      await unlink(temp).catch(() => {})
      return
    }
    this.#forget(name)
    this.#stamps.set(name, stamp)
    this.#index.set(name, bytes.byteLength)
    this.#bytes += bytes.byteLength
    await this.#trim()
  }

  /** Removes `name` (a damaged entry). */
  async delete(name: string): Promise<void> {
    if (!this.#index.has(name)) return
    this.#forget(name)
    await unlink(this.#path(name)).catch(() => {})
  }

  #forget(name: string): void {
    this.#stamps.delete(name)
    const size = this.#index.get(name)
    if (size === undefined) return
    this.#index.delete(name)
    this.#bytes -= size
  }

  async #trim(): Promise<void> {
    while (this.#bytes > this.capBytes) {
      const oldest = this.#index.keys().next()
      if (oldest.done) break
      await this.delete(oldest.value)
    }
  }
}

/** Buffers by key, at most `capBytes` in all, least recently used dropped first. */
export class MemoryCache {
  readonly capBytes: number
  readonly #items = new Map<string, Buffer>()
  #bytes = 0

  constructor(capBytes: number) {
    this.capBytes = capBytes
  }

  get bytes(): number { return this.#bytes }

  get(key: string): Buffer | undefined {
    const b = this.#items.get(key)
    if (b) {
      this.#items.delete(key)
      this.#items.set(key, b)
    }
    return b
  }

  set(key: string, value: Buffer): void {
    if (value.length > this.capBytes) return
    this.delete(key)
    this.#items.set(key, value)
    this.#bytes += value.length
    while (this.#bytes > this.capBytes) {
      const oldest = this.#items.keys().next()
      if (oldest.done) break
      this.delete(oldest.value)
    }
  }

  delete(key: string): void {
    const b = this.#items.get(key)
    if (!b) return
    this.#items.delete(key)
    this.#bytes -= b.length
  }
}
