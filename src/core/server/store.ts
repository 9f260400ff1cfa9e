/**
 * FolderSource's index of the served folder: wire path → {hash, size, mode, mtime}, the file's
 * stamp, where it is on disk and whether it is a link, kept current by `refresh` (called by the
 * folder feed and on every request), with a persistent hash cache so a restart does not re-hash
 * unchanged files.
 *
 * Aliases (issue 11): a symlink inside the root and a hard link share their target's inode, and
 * an edit raises an event for one name only. So paths are also indexed by inode: when a refresh
 * finds a path changed, every other path that shared its old or has its new inode is refreshed
 * too, and the ones that changed are told to `events.changed` (the feed announces them).
 */
import { constants } from 'node:fs'
import { type FileHandle, lstat, open, stat } from 'node:fs/promises'
import { relative, sep } from 'node:path'
import { AssetSyncError } from '../../errors.js'
import { type SkippedPath, displayName } from '../fs/disk-names.js'
import { HashCache } from '../fs/hash-cache.js'
import { equalHash, hashFile, hashHandle } from '../fs/hash.js'
import type { PathMatcher } from '../fs/ignore.js'
import { diskPath, findOnDisk, printable, resolveForRead } from '../fs/paths.js'
import { mapLimit } from '../fs/pool.js'
import { type FileStamp, sameStamp } from '../fs/stamp.js'
import { type WalkedFile, walkFiles } from '../fs/walk.js'
import { INDEX_PAGE_WAIT_MS, MANIFEST_PAGE_BYTES } from '../../limits.js'
import { IndexRun } from './index-run.js'
import { pageOf } from './manifest-page.js'
import type { ManifestPage, PageWork, ScanResult } from './source.js'
import { type Entry, diskRel, entryOf, keepFirst, ownRel } from './store-entry.js'
import { type IndexHost, indexFolder } from './store-index.js'

export type { Entry } from './store-entry.js'

/** Files hashed at once during a scan. */
const SCAN_PARALLEL = 4
/** Looks at a path that keeps changing while it is hashed, before refresh gives up (ERR_CHANGED). */
const LOOK_ATTEMPTS = 3
/** Hashing opens the resolved path without following a link: a swap in between is seen (ELOOP). */
const HASH_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0)

/** What the store tells its owner besides the answers to its calls. */
export interface StoreEvents {
  /** Entries that changed as a side effect: aliases of a refreshed path, or a hash corrected by `verify`. */
  changed(paths: string[]): void
  /** A path found while refreshing that will not be served (another name took its wire path). */
  skipped(skipped: SkippedPath): void
}

function sameEntry(a: Entry | null | undefined, b: Entry | null | undefined): boolean {
  if (!a || !b) return !a && !b
  return sameStamp(a, b) && a.link === b.link && a.disk === b.disk && equalHash(a.hash, b.hash)
}

/** Nothing by that name: gone, a file where a folder should be, or a name no file system holds. */
const isMissing = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException | null)?.code
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG'
}

export class Store {
  readonly root: string
  readonly #ignored: PathMatcher
  /** The hash cache; an empty stand-in until it is loaded: only `#useCache` callers touch it. */
  #cache: HashCache
  #loader: (() => Promise<HashCache>) | null
  #loading: Promise<void> | null = null
  #entries = new Map<string, Entry>()
  /** The background index in progress (see index-run.ts), or null. */
  #run: IndexRun | null = null
  /** Inode → the indexed path(s) with it (aliases: hard links, symlinks to one file). */
  #byIno = new Map<number, string | string[]>()
  #sorted: string[] | null = null
  /** Moves with every change of the listing (AssetSource.version). */
  #version = 0
  /** Set by the owner (FolderSource); none by default. */
  events: StoreEvents | null = null

  /**
   * `cache`, or how to load it: then it is loaded on first need (the background index needs it
   * only after listing the folder, so `serve` listens before it parses 100,000 records).
   */
  constructor(root: string, ignored: PathMatcher, cache: HashCache | (() => Promise<HashCache>)) {
    this.root = root
    this.#ignored = ignored
    if (cache instanceof HashCache) {
      this.#cache = cache
      this.#loader = null
    } else {
      this.#cache = new HashCache(null)
      this.#loader = cache
    }
  }

  async #useCache(): Promise<void> {
    if (this.#loader) {
      const load = this.#loader
      this.#loader = null
      this.#loading = load().then((c) => { this.#cache = c }, () => { /* only a cache: none then */ })
    }
    if (this.#loading) await this.#loading
  }

  get size(): number { return this.#entries.size }
  /** Moves with every change of the listing (AssetSource.version). */
  get version(): number { return this.#version }
  /** The background index is still running (`index`). */
  get indexing(): boolean { return this.#run !== null }
  get(path: string): Entry | undefined { return this.#entries.get(path) }
  isIgnored(path: string): boolean { return this.#ignored(path) }
  paths(): IterableIterator<string> { return this.#entries.keys() }
  /** Every indexed path with its hash and mode. */
  heard(): Map<string, { hash: Uint8Array; mode: number }> {
    const m = new Map<string, { hash: Uint8Array; mode: number }>()
    for (const [p, e] of this.#entries) m.set(p, { hash: e.hash, mode: e.mode })
    return m
  }

  /**
   * Indexes the whole folder, hashing only what the cache cannot vouch for. The index is replaced
   * at once when the walk is done (a rescan after the root was replaced never shows half a list).
   * Paths that cannot be served are in `skipped`.
   */
  async scan(): Promise<ScanResult> {
    await this.stopIndex()
    await this.#useCache()
    const t0 = performance.now()
    const skipped: SkippedPath[] = []
    const byWire = new Map<string, WalkedFile>()
    for await (const f of walkFiles(this.root, this.#ignored, { onSkip: (s) => skipped.push(s) })) {
      const other = byWire.get(f.wire)
      if (!other) {
        byWire.set(f.wire, f)
        continue
      }
      // Two names on disk with one NFC form: the one stored as NFC wins, else the first by bytes.
      const [keep, drop] = keepFirst(this.root, f.wire, other, f) ? [other, f] : [f, other]
      byWire.set(f.wire, keep)
      skipped.push(this.#collision(drop.full, keep.full))
    }
    let hashed = 0
    let bytes = 0
    const next = new Map<string, Entry>()
    await mapLimit([...byWire.values()], SCAN_PARALLEL, async ({ wire, full, st, link }) => {
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
      next.set(wire, entryOf(wire, st, hash, link, diskRel(this.root, wire, full)))
    })
    this.#entries = next
    this.#version++
    this.#byIno = new Map()
    for (const [p, e] of next) this.#indexIno(e.ino, p)
    this.#sorted = null
    this.#cache.retain(new Set(next.keys()))
    await this.#cache.save()
    return { files: next.size, hashed, bytes, ms: performance.now() - t0, skipped }
  }

  /**
   * Indexes the whole folder in the background (issue 15; store-index.ts): the index fills as
   * paths are looked at, in wire order, while every other call works (a REQUEST looks at its one
   * path itself; `pageWhenReady` pages over what is complete). Resolves with what it did when
   * every listed path was looked at, or early after `stopIndex`.
   */
  index(): Promise<ScanResult> {
    if (this.#run) return this.stopIndex().then(() => this.index())
    // Set before the first await: `indexing` is true as soon as this returns.
    const run = new IndexRun()
    this.#run = run
    const host: IndexHost = {
      root: this.root,
      ignored: this.#ignored,
      cache: async () => {
        await this.#useCache()
        return this.#cache
      },
      indexed: () => this.#entries,
      put: (path, entry) => this.#put(path, entry),
      hashAt: (real, st) => this.#hashAt(real, st),
      collision: (drop, keep) => this.#collision(drop, keep),
    }
    return indexFolder(run, host).finally(() => {
      if (this.#run === run) this.#run = null
      this.#sorted = null
      run.end()
    })
  }

  /** Stops a background index in progress (its paths looked at so far stay indexed) and waits for it to end. */
  async stopIndex(): Promise<void> {
    const run = this.#run
    if (!run) return
    run.stopped = true
    while (this.#run === run) await run.progress()
  }

  /**
   * One manifest page (see AssetSource.page). While the background index runs, a page covers
   * only paths before its frontier: it waits until the frontier has moved far enough to fill a
   * page, the index is done, or INDEX_PAGE_WAIT_MS passed with at least one entry to send.
   */
  async pageWhenReady(match: PathMatcher, after: string, maxBytes = MANIFEST_PAGE_BYTES, work?: PageWork): Promise<ManifestPage> {
    const started = performance.now()
    for (;;) {
      const run = this.#run
      if (!run) return this.page(match, after, maxBytes, work)
      const { page, full } = run.page((p) => this.#entries.get(p), match, after, maxBytes, work)
      // A page cut by `work` goes back at once: its caller goes on from `resume` in its next slice.
      if (full || page.resume !== undefined || (page.entries.length > 0 && performance.now() - started >= INDEX_PAGE_WAIT_MS)) return page
      await Promise.race([run.progress(), new Promise((resolve) => setTimeout(resolve, INDEX_PAGE_WAIT_MS).unref())])
    }
  }

  /**
   * Re-reads one path from disk and updates the index. Returns the current entry, or null if the
   * path is gone, ignored, not a regular file or outside the root. Hashes only when the file's
   * stamp moved (sameStamp). `hint`: where a watcher saw it on disk (relative to the root), when
   * that is not its wire path's own name. When the entry changed, its aliases are refreshed too
   * (see the module comment) before this resolves. ERR_CHANGED if it kept changing while hashed.
   */
  async refresh(path: string, hint?: string): Promise<Entry | null> {
    await this.#useCache()
    const old = this.#entries.get(path) ?? null
    const entry = await this.#look(path, old, hint)
    this.#set(path, entry)
    if (!sameEntry(old, entry)) await this.#refreshAliases(path, old, entry)
    return entry
  }

  /**
   * Re-hashes the content of `fh`, the open file at `path` whose fstat `st` matches its entry's
   * stamp, because a client found that the bytes did not match the entry's hash (a change that
   * kept the stamp: a file system with coarse timestamps, or a wrong cache record). Corrects the
   * entry (and its aliases at that stamp) if the hash differs, tells `events.changed`, and returns
   * the entry to announce. ERR_CHANGED if the file changed while hashed.
   */
  async verify(path: string, fh: FileHandle, st: FileStamp): Promise<Entry | null> {
    const e = this.#entries.get(path)
    if (!e || !sameStamp(e, st)) return e ?? null
    const { hash, size } = await hashHandle(fh, st.size)
    if (size !== st.size || !sameStamp(await fh.stat(), st)) {
      throw new AssetSyncError('ERR_CHANGED', `${printable(path)} changed while it was checked; try again`)
    }
    const cur = this.#entries.get(path)
    if (!cur || !sameStamp(cur, st) || equalHash(cur.hash, hash)) return cur ?? null
    const changed: string[] = []
    for (const p of [path, ...this.#group(st.ino)]) {
      const a = this.#entries.get(p)
      if (!a || !sameStamp(a, st) || equalHash(a.hash, hash) || changed.includes(p)) continue
      this.#set(p, { ...a, hash })
      this.#cache.set(p, st, hash)
      changed.push(p)
    }
    this.events?.changed(changed)
    return this.#entries.get(path) ?? null
  }

  /** One manifest page (see AssetSource.page). */
  page(match: PathMatcher, after: string, maxBytes?: number, work?: PageWork): ManifestPage {
    this.#sorted ??= [...this.#entries.keys()].sort()
    return pageOf(this.#sorted, (p) => this.#entries.get(p) as Entry, match, after, maxBytes, work)
  }

  async saveCache(): Promise<void> {
    if (this.#loader) return // never loaded: nothing changed
    await this.#useCache()
    await this.#cache.save()
  }

  // --- internals -----------------------------------------------------------------------------

  /** The entry `path` has on disk now (see refresh), without touching the index. */
  async #look(path: string, old: Entry | null, hint: string | undefined): Promise<Entry | null> {
    if (this.#ignored(path)) return null
    for (let attempt = 0; attempt < LOOK_ATTEMPTS; attempt++) {
      try {
        const disk = await this.#locate(path, old, hint)
        if (disk === null) return null
        const link = (await lstat(diskPath(this.root, path, disk))).isSymbolicLink()
        const real = await resolveForRead(this.root, path, disk)
        const st = await stat(real)
        if (!st.isFile()) return null
        if (old && sameStamp(old, st) && old.link === link && old.disk === disk) return old
        let hash = this.#cache.lookup(path, st) ?? this.#aliasHash(st)
        if (!hash) {
          hash = await this.#hashAt(real, st)
          if (!hash) continue // changed while hashed: look again
          // A parent folder swapped meanwhile for a link out of the root would have led the open
          // elsewhere: the path must still resolve, inside the root, to the inode hashed.
          const again = await stat(await resolveForRead(this.root, path, disk))
          if (again.ino !== st.ino || again.dev !== st.dev) continue
          this.#cache.set(path, st, hash)
        }
        return entryOf(path, st, hash, link, disk)
      } catch (err) {
        if (err instanceof AssetSyncError && (err.code === 'ERR_NOT_FOUND' || err.code === 'ERR_PATH_REFUSED')) return null
        if (isMissing(err)) return null
        throw err
      }
    }
    throw new AssetSyncError('ERR_CHANGED', `${printable(path)} keeps changing; try again`)
  }

  /**
   * Where `path` is on disk: its own name (undefined), else the name it had or the watcher saw
   * (`hint`), else a search for another normalization of it (NFD); null if nowhere. When its own
   * name exists and the hint names another file on disk, that one is reported as skipped.
   */
  async #locate(path: string, old: Entry | null, hint: string | undefined): Promise<string | undefined | null> {
    const exists = async (disk: string | undefined): Promise<boolean> => {
      try {
        await lstat(diskPath(this.root, path, disk))
        return true
      } catch (err) {
        if (isMissing(err)) return false
        // A loop of links, a folder we may not enter: as resolveForRead says of it.
        throw new AssetSyncError('ERR_PATH_REFUSED', `cannot resolve ${printable(path)}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err })
      }
    }
    const own = ownRel(path)
    if (await exists(undefined)) {
      for (const other of new Set([hint, old?.disk])) {
        if (other !== undefined && other !== own && (await exists(other))) {
          this.events?.skipped(this.#collision(diskPath(this.root, path, other), diskPath(this.root, path)))
        }
      }
      return undefined
    }
    for (const d of new Set([old?.disk, hint])) if (d !== undefined && d !== own && (await exists(d))) return d
    const found = await findOnDisk(this.root, path)
    return found === null ? null : found === own ? undefined : found
  }

  /**
   * Hashes the file at `real` (a resolved path, whose stat was `st`) through one handle opened
   * without following a link, and only if that handle is the stat'ed inode before and after:
   * the hash then describes exactly that inode at that stamp. Null if it changed meanwhile.
   */
  async #hashAt(real: string, st: FileStamp): Promise<Buffer | null> {
    let fh: FileHandle
    try {
      fh = await open(real, HASH_FLAGS)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') return null // swapped for a link meanwhile
      throw err
    }
    try {
      if (!sameStamp(await fh.stat(), st)) return null
      const { hash, size } = await hashHandle(fh, st.size)
      if (size !== st.size || !sameStamp(await fh.stat(), st)) return null
      return hash
    } finally {
      await fh.close().catch(() => {})
    }
  }

  /** The hash of another indexed path at exactly this inode and stamp (a link to the same file). */
  #aliasHash(st: FileStamp): Buffer | null {
    for (const p of this.#group(st.ino)) {
      const e = this.#entries.get(p)
      if (e && sameStamp(e, st)) return e.hash as Buffer
    }
    return null
  }

  /** Refreshes the paths sharing `path`'s old or new inode; tells `events.changed` which changed. */
  async #refreshAliases(path: string, old: Entry | null, now: Entry | null): Promise<void> {
    const others = new Set([...(old ? this.#group(old.ino) : []), ...(now ? this.#group(now.ino) : [])])
    others.delete(path)
    const changed: string[] = []
    for (const p of others) {
      const before = this.#entries.get(p) ?? null
      let after: Entry | null
      try {
        after = await this.#look(p, before, undefined)
      } catch {
        continue // keeps changing: its own events will bring it
      }
      this.#set(p, after)
      if (!sameEntry(before, after)) changed.push(p)
    }
    if (changed.length > 0) this.events?.changed(changed)
  }

  /** `#set` from any look but the background index's own: the index run then leaves `path` be. */
  #set(path: string, entry: Entry | null): void {
    this.#run?.touch(path, entry !== null)
    this.#put(path, entry)
  }

  /** Puts `entry` (null: none) at `path` in the index, keeping the inode index and order in step. */
  #put(path: string, entry: Entry | null): void {
    const cur = this.#entries.get(path)
    if (cur === entry) return
    this.#version++
    if (cur) this.#unindexIno(cur.ino, path)
    if (entry) {
      if (!cur) this.#sorted = null
      this.#entries.set(path, entry)
      this.#indexIno(entry.ino, path)
    } else if (cur) {
      this.#entries.delete(path)
      this.#sorted = null
      this.#cache.delete(path)
    }
  }

  #group(ino: number): string[] {
    const g = this.#byIno.get(ino)
    return g === undefined ? [] : typeof g === 'string' ? [g] : [...g]
  }

  #indexIno(ino: number, path: string): void {
    if (ino === 0) return // no inode numbers here: no alias tracking
    const g = this.#byIno.get(ino)
    if (g === undefined) this.#byIno.set(ino, path)
    else if (typeof g === 'string') {
      if (g !== path) this.#byIno.set(ino, [g, path])
    } else if (!g.includes(path)) g.push(path)
  }

  #unindexIno(ino: number, path: string): void {
    const g = this.#byIno.get(ino)
    if (g === path) this.#byIno.delete(ino)
    else if (Array.isArray(g)) {
      const i = g.indexOf(path)
      if (i >= 0) g.splice(i, 1)
      if (g.length === 1) this.#byIno.set(ino, g[0] as string)
    }
  }

  /** The report for `drop` (a full disk path) losing its wire path to `keep`. */
  #collision(drop: string, keep: string): SkippedPath {
    const show = (full: string): string => displayName(relative(this.root, full).split(sep).join('/'))
    return { path: show(drop), reason: `its name is "${show(keep)}" once Unicode-normalized (NFC); that file is served`, folder: false }
  }
}
