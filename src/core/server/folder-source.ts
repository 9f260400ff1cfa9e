/**
 * FolderSource: an AssetSource over a folder on this machine. Its listing is the Store index
 * (store.ts); its reads open the file itself and prove, before a byte is announced, that the
 * opened inode is exactly what the index hashed (the stamp compare), so the hash a client is told
 * can never describe other bytes than the ones it is sent.
 *
 * Reads (issue 12): a path the index knows as a regular file is opened with O_NOFOLLOW (a file
 * swapped for a symlink fails to open instead of being followed), and after the open the path is
 * resolved again: it must still lie inside the root and name the very inode opened (a parent
 * folder swapped for a symlink to outside is caught there), and that inode must be the one the
 * index hashed. Otherwise nothing is announced: the index is refreshed and the open retried.
 *
 * The root itself may be replaced or moved away under a running server (issue 11): the folder
 * feed notices, `suspend`s the source (every call waits), and either `rescan`s a folder found
 * again at the root's path or ends it with `gone`.
 */
import { EventEmitter } from 'node:events'
import { type FileHandle, lstat, open, realpath, stat } from 'node:fs/promises'
import { AssetSyncError } from '../../errors.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import { chunkReads } from '../delta/chunk-list.js'
import { ChunkListCache } from '../delta/list-cache.js'
import type { SkippedPath } from '../fs/disk-names.js'
import { HashCache } from '../fs/hash-cache.js'
import { equalHash } from '../fs/hash.js'
import { type PathMatcher, ignoreMatcher } from '../fs/ignore.js'
import { diskPath, printable, resolveForRead } from '../fs/paths.js'
import { type FileStamp, type FolderIdentity, folderIdentity, sameFolder, sameStamp } from '../fs/stamp.js'
import { FolderReader, NOFOLLOW, OPEN_FLAGS, publicEntry, readWholeNow } from './folder-reads.js'
import type { AssetSource, ChunkedEntry, ManifestPage, OpenOptions, PageWork, ScanResult, SourceReader, WholeRead } from './source.js'
import { type Entry, Store } from './store.js'

/** Decoded chunk lists a folder source keeps at hand (a 64 MiB file's list is ~40 KiB in memory). */
const RECENT_LISTS = 16
/** Times an open re-reads a file that keeps changing under it before giving up (ERR_CHANGED). */
const OPEN_RETRIES = 3

/** What is at the root's path now, compared with the folder indexed. */
export type RootState = 'same' | 'replaced' | 'gone'

export interface FolderSourceOptions {
  /** Folder to serve. */
  root: string
  /** Globs to ignore on top of the defaults. */
  ignore?: readonly string[]
  /** The hash cache file, or how to name it from the folder's real path (cacheFileFor); null: none. */
  cacheFile?: string | ((realRoot: string) => string) | null
}

/**
 * Serves a folder: open with `FolderSource.open`, then `scan` (AssetServer.start does both by default).
 * Events: 'changed' (paths: string[]) — entries that changed without an event of their own
 * (aliases of a changed file, a hash corrected after a client's integrity failure): the feed
 * announces them; 'skipped' (SkippedPath) — a path that will not be served, once per path and
 * reason, after the scan (the scan's own are in its result); 'rescanned' (ScanResult) — the
 * folder was indexed anew after the root was replaced.
 */
export class FolderSource extends EventEmitter implements AssetSource {
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
  #rootId: FolderIdentity
  /** While set, the root is being looked for: every call waits for it. */
  #gate: Promise<void> | null = null
  /** Opens #gate. */
  #release: (() => void) | null = null
  /** Set once the root is gone for good: every call fails with it. */
  #gone: AssetSyncError | null = null
  /** Skipped paths reported so far (path and reason), so each is reported once. */
  readonly #reported = new Set<string>()
  /** Resolves once the folder has been indexed (scan or index done). */
  readonly #complete: Promise<void>
  #markComplete!: () => void
  #isComplete = false

  private constructor(root: string, ignored: PathMatcher, store: Store, rootId: FolderIdentity, lists: ChunkListCache) {
    super()
    this.root = root
    this.#lists = lists
    this.ignored = ignored
    this.#store = store
    this.#rootId = rootId
    this.#complete = new Promise((resolve) => {
      this.#markComplete = () => {
        this.#isComplete = true
        resolve()
      }
    })
    store.events = {
      changed: (paths) => this.emit('changed', paths),
      skipped: (s) => this.reportSkipped(s),
    }
  }

  /**
   * Resolves `root` (ERR_NOT_FOUND unless it is a folder); the hash cache is loaded when first
   * needed (what needs it waits for it). Call `scan` or `index` next.
   */
  static async open(opts: FolderSourceOptions): Promise<FolderSource> {
    let root: string
    let id: FolderIdentity
    try {
      root = await realpath(opts.root)
      const st = await stat(root)
      if (!st.isDirectory()) throw new Error('not a directory')
      id = folderIdentity(st)
    } catch (err) {
      throw new AssetSyncError('ERR_NOT_FOUND', `cannot serve ${opts.root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
    }
    const ignored = ignoreMatcher(opts.ignore ?? [])
    const file = typeof opts.cacheFile === 'function' ? opts.cacheFile(root) : opts.cacheFile ?? null
    const lists = await ChunkListCache.load(file === null ? null : `${file.replace(/\.bin$/, '')}.chunks.bin`)
    return new FolderSource(root, ignored, new Store(root, ignored, () => HashCache.load(file)), id, lists)
  }

  get description(): string { return `folder ${this.root}` }
  get size(): number { return this.#store.size }
  get version(): number { return this.#store.version }
  /** Every indexed path (the folder feed expands a removed folder into these). */
  paths(): IterableIterator<string> { return this.#store.paths() }
  /** The indexed entry of `path` as it is (no look at the disk), or null. */
  indexed(path: string): ManifestEntry | null { return this.#store.get(path) ?? null }

  async scan(): Promise<ScanResult> {
    const result = await this.#store.scan()
    for (const s of result.skipped ?? []) this.#reported.add(`${s.path}\0${s.reason}`)
    this.#markComplete()
    return result
  }

  /**
   * Indexes the folder in the background (see AssetSource.index and index-run.ts): every call
   * works meanwhile. Its `skipped` are the paths not reported otherwise (the watcher may have
   * reported some first).
   */
  async index(): Promise<ScanResult> {
    const result = await this.#store.index()
    const skipped = (result.skipped ?? []).filter((s) => !this.#reported.has(`${s.path}\0${s.reason}`))
    for (const s of skipped) this.#reported.add(`${s.path}\0${s.reason}`)
    this.#markComplete()
    return { ...result, skipped }
  }

  /** The background index is still running. */
  get indexing(): boolean { return this.#store.indexing }

  /** Stops a background index in progress (what it indexed so far stays) and waits for it to end. */
  async stopIndexing(): Promise<void> { await this.#store.stopIndex() }

  /** Resolves once the folder has been indexed (`scan` or `index` done). */
  whenIndexed(): Promise<void> { return this.#complete }
  /** The folder has been indexed (`scan` or `index` done). */
  get complete(): boolean { return this.#isComplete }

  /** Every indexed path with its hash and mode, now (the folder feed's starting point). */
  heard(): Map<string, { hash: Uint8Array; mode: number }> { return this.#store.heard() }

  async page(match: PathMatcher, after: string, maxBytes?: number, work?: PageWork): Promise<ManifestPage> {
    await this.#ready()
    return this.#store.pageWhenReady(match, after, maxBytes, work)
  }

  async get(path: string): Promise<ManifestEntry | null> {
    await this.#ready()
    return this.#store.refresh(path)
  }

  /** `get`, with where a watcher saw the path on disk (relative to the root) when that is not its own name. */
  async refreshAt(path: string, disk?: string): Promise<(ManifestEntry & FileStamp) | null> {
    await this.#ready()
    return this.#store.refresh(path, disk)
  }

  async open(path: string, opts: OpenOptions = {}): Promise<SourceReader | null> {
    await this.#ready()
    if (this.#store.isIgnored(path)) return null
    for (let attempt = 0; attempt < OPEN_RETRIES; attempt++) {
      let entry: Entry | null = this.#store.get(path) ?? await this.#store.refresh(path)
      if (!entry) return await this.#absent(path)
      let fh: FileHandle
      try {
        fh = await open(diskPath(this.root, path, entry.disk), OPEN_FLAGS | (entry.link ? 0 : NOFOLLOW))
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'ELOOP' && code !== 'EISDIR') throw err
        // Not what the index says any more (gone, moved, a folder, or swapped for a link).
        await this.#store.refresh(path)
        continue
      }
      let reader: FolderReader | null = null
      try {
        const st = await fh.stat()
        if (!st.isFile()) {
          await this.#store.refresh(path)
          continue
        }
        // The opened inode must be the one the path names now, resolved inside the root.
        let now
        try {
          now = await stat(await resolveForRead(this.root, path, entry.disk))
        } catch (err) {
          if (err instanceof AssetSyncError && err.code === 'ERR_NOT_FOUND') continue
          throw err // ERR_PATH_REFUSED: it resolves outside the root now
        }
        if (now.ino !== st.ino || now.dev !== st.dev) continue
        // The index must describe exactly the inode we opened, or the hash we announce could lie.
        if (!sameStamp(entry, st)) {
          entry = await this.#store.refresh(path)
          if (!entry) return await this.#absent(path)
          if (!sameStamp(entry, st)) continue
        }
        if (opts.distrust && equalHash(opts.distrust, entry.hash)) {
          // The client was just sent this hash and its bytes did not match: hash what is there.
          entry = await this.#store.verify(path, fh, st)
          if (!entry || !sameStamp(entry, st)) continue
        }
        reader = new FolderReader(fh, path, entry)
        return reader
      } finally {
        if (!reader) await fh.close().catch(() => {})
      }
    }
    throw new AssetSyncError('ERR_CHANGED', `${printable(path)} keeps changing; try again`)
  }

  /**
   * The small-file fast path (AssetSource.readNow): `open`'s checks, synchronously, for an indexed
   * regular file whose stamp still matches (folder-reads.ts); anything else ('slow') is left to
   * `open`, which refreshes the index and knows every answer.
   */
  readNow(path: string, maxBytes: number): WholeRead | 'slow' | null {
    if (this.#gate || this.#gone) return 'slow'
    // The index holds no ignored path (the walk and every refresh skip them): only a path it does
    // not hold needs the ignore rules (7 % of the server's batch time when asked per file). A path
    // the background index has not reached yet goes 'slow': `open` looks at it on demand.
    const entry = this.#store.get(path)
    if (!entry) return this.#store.isIgnored(path) ? null : 'slow'
    return readWholeNow(this.root, path, entry, maxBytes)
  }

  /**
   * The chunk list of `path`'s content (see AssetSource.chunkList): from the list cache when the
   * file's stamp is the one it was chunked with, else chunked now (one read pass) and kept. The
   * list is computed from the bytes on disk and accepted only if its whole-file hash is the
   * indexed one, so a list never describes other content than the announced hash.
   */
  async chunkList(path: string, hash: Uint8Array | null): Promise<ChunkedEntry | null> {
    await this.#ready()
    if (this.#store.isIgnored(path)) return null
    const entry = await this.#store.refresh(path)
    if (!entry) return await this.#absent(path)
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
        // Through the hardened read path (no links followed, the inode the index hashed).
        const reader = await this.open(path)
        if (!reader) return null
        let list
        try {
          if (!equalHash(reader.entry.hash, entry.hash)) throw new AssetSyncError('ERR_CHANGED', `${path} changed; try again`)
          list = await chunkReads((buf, pos, n) => reader.read(buf, pos, n), entry.size)
        } finally {
          await reader.close()
        }
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
    await this.#store.stopIndex()
    await this.#store.saveCache()
    await this.#lists.save()
  }

  /** No entry at `path`: null (not found), or ERR_PATH_REFUSED when it leads out of the root. */
  async #absent(path: string): Promise<null> {
    try {
      await resolveForRead(this.root, path)
    } catch (err) {
      if (err instanceof AssetSyncError && err.code === 'ERR_PATH_REFUSED') throw err
    }
    return null
  }

  // --- skipped paths ---------------------------------------------------------------------------

  /** Reports a path that will not be served ('skipped' event), unless it was reported already. */
  reportSkipped(s: SkippedPath): void {
    const key = `${s.path}\0${s.reason}`
    if (this.#reported.has(key)) return
    this.#reported.add(key)
    this.emit('skipped', s)
  }

  // --- the root replaced or gone (driven by the folder feed) --------------------------------------

  /** Whether the root's path still names the folder indexed, another folder, or nothing usable. */
  async rootState(): Promise<RootState> {
    try {
      const st = await lstat(this.root)
      if (!st.isDirectory()) return 'gone' // removed, or a file or a symlink now
      return sameFolder(folderIdentity(st), this.#rootId) ? 'same' : 'replaced'
    } catch {
      return 'gone'
    }
  }

  /** From now on every call waits (the root is being looked for) until `rescan` or `gone`. */
  suspend(): void {
    if (this.#gate) return
    this.#gate = new Promise((resolve) => { this.#release = resolve })
  }

  /**
   * Indexes the folder now at the root's path (it was replaced), releases the waiting calls, and
   * reports paths it skips that were not reported before. The caller diffs the old list against
   * the new one.
   */
  async rescan(): Promise<ScanResult> {
    const st = await stat(this.root)
    this.#rootId = folderIdentity(st)
    try {
      const result = await this.#store.scan()
      for (const s of result.skipped ?? []) this.reportSkipped(s)
      this.emit('rescanned', result)
      return result
    } finally {
      this.#open()
    }
  }

  /** The root is gone for good: every waiting and later call fails with `err`. */
  gone(err: AssetSyncError): void {
    this.#gone = err
    this.#open()
  }

  #open(): void {
    const release = this.#release
    this.#gate = null
    this.#release = null
    release?.()
  }

  async #ready(): Promise<void> {
    if (this.#gate) await this.#gate
    if (this.#gone) throw this.#gone
  }
}

/** An open file whose stamp matched the index entry when it was opened. */
