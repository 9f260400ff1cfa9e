/**
 * FolderSource: an AssetSource over a folder on this machine. Its listing is the Store index
 * (store.ts); its reads open the file itself and prove, before a byte is announced, that the
 * opened inode is exactly what the index hashed (the stamp compare), so the hash a client is told
 * can never describe other bytes than the ones it is sent.
 */
import { constants } from 'node:fs'
import { type FileHandle, open, realpath, stat } from 'node:fs/promises'
import { AssetSyncError } from '../../errors.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import { chunkFile } from '../delta/chunk-list.js'
import { ChunkListCache } from '../delta/list-cache.js'
import { HashCache } from '../fs/hash-cache.js'
import { equalHash } from '../fs/hash.js'
import { type PathMatcher, ignoreMatcher } from '../fs/ignore.js'
import { resolveForRead } from '../fs/paths.js'
import { type FileStamp, sameStamp, stampOf } from '../fs/stamp.js'
import type { AssetSource, ChunkedEntry, ManifestPage, ScanResult, SourceReader } from './source.js'
import { Store } from './store.js'

/** Decoded chunk lists a folder source keeps at hand (a 64 MiB file's list is ~40 KiB in memory). */
const RECENT_LISTS = 16
/** Times an open re-reads a file that keeps changing under it before giving up (ERR_CHANGED). */
const OPEN_RETRIES = 3
/**
 * Read-only and non-blocking: a FIFO in the served folder would otherwise block open() in the
 * libuv threadpool until a writer appears — four such requests froze all file I/O of the server
 * (and its SIGTERM shutdown). O_NONBLOCK changes nothing for regular files; the isFile check
 * then answers not-found. (O_NONBLOCK is undefined on Windows, which has no FIFOs here.)
 */
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0)

export interface FolderSourceOptions {
  /** Folder to serve. */
  root: string
  /** Globs to ignore on top of the defaults. */
  ignore?: readonly string[]
  /** The hash cache file, or how to name it from the folder's real path (cacheFileFor); null: none. */
  cacheFile?: string | ((realRoot: string) => string) | null
}

/** Serves a folder: open with `FolderSource.open`, then `scan` (AssetServer.start does both by default). */
export class FolderSource implements AssetSource {
  /** The served folder's real path. */
  readonly root: string
  /** What is never served or watched (the defaults plus `ignore`). */
  readonly ignored: PathMatcher
  readonly #store: Store
  /** Chunk lists by path and stamp (beside the hash cache): a list is computed once per content. */
  readonly #lists: ChunkListCache
  /** Lists being computed, by path + hash: concurrent requests for one file chunk it once. */
  readonly #chunking = new Map<string, Promise<ChunkedEntry | null>>()
  /** The last RECENT_LISTS lists served, decoded, by path + hash (most recent last). */
  readonly #recent = new Map<string, ChunkedEntry>()

  private constructor(root: string, ignored: PathMatcher, store: Store, lists: ChunkListCache) {
    this.root = root
    this.ignored = ignored
    this.#store = store
    this.#lists = lists
  }

  /** Resolves `root` (ERR_NOT_FOUND unless it is a folder) and loads the hash cache. Call `scan` next. */
  static async open(opts: FolderSourceOptions): Promise<FolderSource> {
    let root: string
    try {
      root = await realpath(opts.root)
      if (!(await stat(root)).isDirectory()) throw new Error('not a directory')
    } catch (err) {
      throw new AssetSyncError('ERR_NOT_FOUND', `cannot serve ${opts.root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
    }
    const ignored = ignoreMatcher(opts.ignore ?? [])
    const file = typeof opts.cacheFile === 'function' ? opts.cacheFile(root) : opts.cacheFile ?? null
    const cache = await HashCache.load(file)
    const lists = await ChunkListCache.load(file === null ? null : `${file.replace(/\.bin$/, '')}.chunks.bin`)
    return new FolderSource(root, ignored, new Store(root, ignored, cache), lists)
  }

  get description(): string { return `folder ${this.root}` }
  get size(): number { return this.#store.size }
  /** Every indexed path (the folder feed expands a removed folder into these). */
  paths(): IterableIterator<string> { return this.#store.paths() }

  scan(): Promise<ScanResult> { return this.#store.scan() }

  page(match: PathMatcher, after: string, maxBytes?: number): Promise<ManifestPage> {
    return Promise.resolve(this.#store.page(match, after, maxBytes))
  }

  get(path: string): Promise<ManifestEntry | null> { return this.#store.refresh(path) }

  async open(path: string): Promise<SourceReader | null> {
    if (this.#store.isIgnored(path)) return null
    let real: string
    try {
      real = await resolveForRead(this.root, path)
    } catch (err) {
      if (err instanceof AssetSyncError && err.code === 'ERR_NOT_FOUND') return null
      throw err // ERR_PATH_REFUSED: a symlink out of the root, or an unresolvable path
    }
    for (let attempt = 0; attempt < OPEN_RETRIES; attempt++) {
      let fh: FileHandle
      try {
        fh = await open(real, OPEN_FLAGS)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT' || code === 'EISDIR') return null
        throw err
      }
      let reader: FolderReader | null = null
      try {
        const st = await fh.stat()
        if (!st.isFile()) return null
        let entry = this.#store.get(path) ?? null
        if (!sameStamp(entry, st)) entry = await this.#store.refresh(path)
        if (!entry) return null
        // The index must describe exactly the inode we opened, or the hash we announce could lie.
        if (!sameStamp(entry, st)) continue
        reader = new FolderReader(fh, path, entry)
        return reader
      } finally {
        if (!reader) await fh.close().catch(() => {})
      }
    }
    throw new AssetSyncError('ERR_CHANGED', `${path} keeps changing; try again`)
  }

  /**
   * The chunk list of `path`'s content (see AssetSource.chunkList): from the list cache when the
   * file's stamp is the one it was chunked with, else chunked now (one read pass) and kept. The
   * list is computed from the bytes on disk and accepted only if its whole-file hash is the
   * indexed one, so a list never describes other content than the announced hash.
   */
  async chunkList(path: string, hash: Uint8Array | null): Promise<ChunkedEntry | null> {
    if (this.#store.isIgnored(path)) return null
    const entry = await this.#store.refresh(path)
    if (!entry) return null
    if (hash && !equalHash(entry.hash, hash)) throw new AssetSyncError('ERR_CHANGED', `${path} changed; try again`)
    const key = `${path}\0${Buffer.from(entry.hash).toString('hex')}`
    // The lists just served, decoded: a CHUNK_FETCH after its CHUNK_LIST needs the same one.
    const recent = this.#recent.get(key)
    if (recent) return recent
    const cached = this.#lists.lookup(path, entry)
    if (cached && equalHash(cached.hash, entry.hash)) return this.#remember(key, { entry: publicEntry(entry), list: cached })
    let job = this.#chunking.get(key)
    if (!job) {
      job = (async () => {
        let real: string
        try {
          real = await resolveForRead(this.root, path)
        } catch (err) {
          if (err instanceof AssetSyncError && err.code === 'ERR_NOT_FOUND') return null
          throw err
        }
        const list = await chunkFile(real)
        if (list.size !== entry.size || !equalHash(list.hash, entry.hash)) {
          throw new AssetSyncError('ERR_CHANGED', `${path} changed while it was chunked; try again`)
        }
        this.#lists.set(path, entry, list)
        return this.#remember(key, { entry: publicEntry(entry), list })
      })().finally(() => this.#chunking.delete(key))
      this.#chunking.set(key, job)
    }
    return job
  }

  #remember(key: string, chunked: ChunkedEntry): ChunkedEntry {
    this.#recent.delete(key)
    this.#recent.set(key, chunked)
    if (this.#recent.size > RECENT_LISTS) this.#recent.delete(this.#recent.keys().next().value as string)
    return chunked
  }

  async close(): Promise<void> {
    await this.#store.saveCache()
    await this.#lists.save()
  }
}

function publicEntry(e: ManifestEntry): ManifestEntry {
  return { path: e.path, hash: e.hash, size: e.size, mode: e.mode, mtime: e.mtime }
}

/** An open file whose stamp matched the index entry when it was opened. */
class FolderReader implements SourceReader {
  readonly entry: ManifestEntry
  readonly #fh: FileHandle
  readonly #path: string
  readonly #stamp: FileStamp
  #closed = false

  constructor(fh: FileHandle, path: string, entry: ManifestEntry & FileStamp) {
    this.#fh = fh
    this.#path = path
    this.entry = { path: entry.path, hash: entry.hash, size: entry.size, mode: entry.mode, mtime: entry.mtime }
    this.#stamp = stampOf(entry)
  }

  async read(into: Uint8Array, position: number, length: number): Promise<void> {
    if (length === 0) return
    const { bytesRead } = await this.#fh.read(into, 0, length, position)
    if (bytesRead < length) throw new AssetSyncError('ERR_CHANGED', `${this.#path} shrank during the transfer; try again`)
    if (position > 0 && position + length === this.entry.size) {
      // Written in place while we sent it? The client's BLAKE3 check already refuses a mix of
      // old and new bytes; this cheap stat lets it retry at once with a clear reason (re-hashing
      // every byte sent here cost 15-19 % of server CPU: docs/benchmarks.md). A file read in one
      // piece was read right after the stat taken when it was opened.
      if (!sameStamp(await this.#fh.stat(), this.#stamp)) {
        throw new AssetSyncError('ERR_CHANGED', `${this.#path} changed during the transfer; try again`)
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#fh.close().catch(() => {})
  }
}
