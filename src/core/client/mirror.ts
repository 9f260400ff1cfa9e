/**
 * A local mirror of (part of) a server's folder: diff a manifest against what is on disk, fetch
 * what differs with several transfers in flight, apply mode-only changes, delete what the server
 * no longer has (prune). Used by `pull` and by `watch` (initial sync and resync after a reconnect).
 *
 * Only files the server listed into this mirror (ListedRecord) and the patterns select are ever
 * deleted: by prune, by a watcher, or to make room when a path changes type (issue 11). Writes go
 * through a WriteRoot (folders opened without following symlinks, creates and renames through
 * their descriptors): no swap of a folder can redirect one outside `--out` (issue 12).
 */
import type { Stats } from 'node:fs'
import { lstatSync, renameSync } from 'node:fs'
import { mkdir, realpath } from 'node:fs/promises'
import { join } from 'node:path'
import { writeError } from '../../errors.js'
import { CLIENT_PARALLEL_TRANSFERS } from '../../limits.js'
import type { FileMeta, ManifestEntry } from '../../protocol/messages.js'
import { removeTemp, tempInstalled } from '../fs/atomic-write.js'
import { HashCache, cacheFileFor } from '../fs/hash-cache.js'
import { type FolderIdentity, folderIdentity, sameFolder } from '../fs/stamp.js'
import { equalHash, hashFile } from '../fs/hash.js'
import { patternMatcher } from '../fs/ignore.js'
import { configDir } from '../fs/keys.js'
import { assertWirePath, checkWirePath } from '../fs/paths.js'
import { type PinnedDir, WriteRoot } from '../fs/write-root.js'
import type { AssetClient } from './client.js'
import { DeltaContext, fetchFileRetrying } from './delta-download.js'
import { LocalContent } from './local-content.js'
import { ListedRecord } from './listed.js'
import { type Look, LocalLooks } from './local-looks.js'
import { chmodFile, clearFolder, codeOf, folderInTheWay, localFile, removeEmptyParents, removeFile, removeTempFiles, split } from './local-writes.js'
import { MirrorSync } from './mirror-sync.js'
import type { MirrorOptions, StagedFile, SyncOptions, SyncSummary } from './mirror-types.js'
import { type Listing, listingFileFor, loadListing } from './saved-listing.js'

export type { FileAction, FileEvent, MirrorOptions, MirrorWarning, StagedFile, SyncOptions, SyncSummary } from './mirror-types.js'

export class Mirror {
  readonly patterns: string[]
  readonly #opts: MirrorOptions
  readonly #match: (p: string) => boolean
  #root: string | null = null
  #rootId: FolderIdentity | null = null
  #cache: HashCache | null = null
  #listed: ListedRecord = ListedRecord.memory()
  #session: WriteRoot | null = null
  /** What the folder holds by content, and the current sync's delta context (docs/delta.md). */
  #local: LocalContent | null = null
  #ctx: DeltaContext | null = null
  #opening: Promise<WriteRoot> | null = null
  #users = 0
  /** Paths removed to make room for a write (type changes), not yet reported (takeCleared). */
  #cleared: string[] = []
  /** Brings the folder to a manifest (mirror-sync.ts), through this Mirror's writes. */
  readonly #syncer: MirrorSync

  constructor(opts: MirrorOptions) {
    this.#opts = opts
    this.patterns = opts.patterns && opts.patterns.length > 0 ? opts.patterns : ['**']
    this.#match = patternMatcher(this.patterns)
    this.#syncer = new MirrorSync(this, {
      patterns: opts.patterns,
      parallel: opts.parallel ?? CLIENT_PARALLEL_TRANSFERS,
      configDir: () => this.#configDir,
      listed: () => this.#listed,
      match: this.#match,
      deletable: (wire) => this.#deletable(wire),
      clearFile: this.#clearFile,
      session: () => this.#session as WriteRoot,
      lookFor: (root, wire) => this.#lookFor(root, wire),
      hashLocal: (wire, full, st) => this.#hashLocal(wire, full, st),
      context: () => this.#ctx,
      setContext: (ctx) => { this.#ctx = ctx },
      saveCaches: async () => { await this.#cache?.save(); await this.#local?.save() },
    })
  }

  /** The real path of the out folder (created on first use unless `create` is false). */
  async root(create = true): Promise<string | null> {
    if (this.#root) return this.#root
    try {
      if (create) await mkdir(this.#opts.out, { recursive: true })
      this.#root = await realpath(this.#opts.out)
    } catch (err) {
      if (!create && codeOf(err) === 'ENOENT') return null
      throw writeError(this.#opts.out, err)
    }
    const dir = this.#configDir
    this.#cache = await HashCache.load(cacheFileFor(dir, 'mirror', this.#root))
    this.#listed = await ListedRecord.load(cacheFileFor(dir, 'listed', this.#root))
    this.#local = await LocalContent.load(dir, this.#root, this.#cache)
    return this.#root
  }

  get #configDir(): string { return this.#opts.configDir ?? configDir() }

  /** The listing last applied in full to this folder, with its digest (see SyncOptions.saveListing), or null. */
  async savedListing(): Promise<Listing | null> {
    const root = await this.root(false)
    return root ? loadListing(listingFileFor(this.#configDir, root)) : null
  }

  /**
   * True if the out folder is gone or is another folder than the one the last write session
   * pinned (deleted, or deleted and made again): a full resync is then due (issue 11, case 10).
   */
  rootMoved(): boolean {
    if (!this.#root || !this.#rootId) return false
    try {
      const st = lstatSync(this.#root)
      return !st.isDirectory() || !sameFolder(this.#rootId, folderIdentity(st))
    } catch {
      return true
    }
  }

  /** True if the server listed `wire` into this mirror (and the local copy was not deleted since). */
  isListed(wire: string): boolean { return this.#listed.has(wire) }

  /**
   * Runs `fn` inside one write session: folders opened for one file are reused by the next (one
   * open per folder, not per file). Nested and overlapping calls share the session.
   */
  async writes<T>(fn: () => Promise<T>): Promise<T> {
    this.#users++
    try {
      if (!this.#session) {
        this.#opening ??= this.#openSession().finally(() => { this.#opening = null })
        this.#session = await this.#opening
      }
      return await fn()
    } finally {
      // Closed when the last user leaves (a batch and a resync may overlap after a reconnect).
      if (--this.#users === 0 && this.#session) {
        this.#session.close()
        this.#session = null
      }
    }
  }

  async #openSession(): Promise<WriteRoot> {
    const root = (await this.root()) as string
    // It may have been deleted since (watch).
    await mkdir(root, { recursive: true }).catch((err: unknown) => { throw writeError(this.#opts.out, err) })
    const w = WriteRoot.open(root, this.#opts.writeMode)
    this.#rootId = w.rootId
    return w
  }

  /** `fn` with the current session, or a session of its own. */
  async #withSession<T>(fn: (w: WriteRoot) => Promise<T>): Promise<T> {
    return this.writes(() => fn(this.#session as WriteRoot))
  }

  /** Paths removed to make room for a write since the last call (report them as deleted). */
  takeCleared(): string[] { return this.#cleared.splice(0) }

  /** May `wire` be deleted? Only a file the server listed, in the current selection. */
  #deletable(wire: string): boolean {
    return checkWirePath(wire) === null && this.#listed.has(wire) && this.#match(wire)
  }

  #forgetFile(wire: string): void {
    this.#cache?.delete(wire)
    this.#listed.delete(wire)
  }

  /** A file stands where a folder must be: it may go only if deletable (then it is reported). */
  readonly #clearFile = (wire: string): boolean => {
    if (!this.#deletable(wire)) return false
    this.#forgetFile(wire)
    this.#cleared.push(wire)
    return true
  }

  /**
   * One lstat and a cache lookup, synchronous (a sync of 20,000 unchanged files makes no promise
   * per file): `st` null if the file is absent; `hash` null if the cache cannot vouch for it.
   */
  #look(root: string, wire: string): { full: string; st: Stats | null; hash: Buffer | null } {
    const full = join(root, ...wire.split('/'))
    const st = localFile(full)
    return { full, st, hash: st && this.#cache ? this.#cache.lookup(wire, st) : null }
  }

  /** #look as a LocalLooks entry: the mode of a regular file (-1 for none), the stat only to hash it. */
  #lookFor(root: string, wire: string): Look {
    const { full, st, hash } = this.#look(root, wire)
    return { hash, mode: st ? st.mode & 0o777 : -1, full, st: st && !hash ? st : null }
  }

  /**
   * Looks at the local copies of `entries` (a listing in path order) now, in slices, so that a
   * later `sync` (SyncOptions.ahead) need not: a pull does this while it connects. Null if the
   * folder does not exist yet.
   */
  async lookAhead(entries: readonly ManifestEntry[]): Promise<LocalLooks | null> {
    const root = await this.root(false)
    if (!root) return null
    return LocalLooks.of(entries.filter((e) => this.#match(e.path)).map((e) => e.path), (wire) => this.#lookFor(root, wire))
  }

  /** Hashes a local file the cache could not vouch for, and remembers it. Null if unreadable. */
  async #hashLocal(wire: string, full: string, st: Stats): Promise<Buffer | null> {
    try {
      const { hash } = await hashFile(full, st.size)
      this.#cache?.set(wire, st, hash)
      return hash
    } catch {
      return null
    }
  }

  /** The local file's hash if it exists (cache first: size + mtime + inode). */
  async localHash(wire: string): Promise<Buffer | null> {
    const root = await this.root(false)
    if (!root || !this.#cache) return null
    const { full, st, hash } = this.#look(root, wire)
    if (!st) return null
    return hash ?? this.#hashLocal(wire, full, st)
  }

  /** The local file's permission bits (mode & 0o777), or null if it is not a regular file. */
  async localMode(wire: string): Promise<number | null> {
    const root = await this.root(false)
    const st = root ? localFile(join(root, ...wire.split('/'))) : null
    return st ? st.mode & 0o777 : null
  }

  /** True if the local copy already has `meta`'s content and mode. */
  async isCurrent(wire: string, meta: FileMeta): Promise<boolean> {
    return equalHash(await this.localHash(wire), meta.hash) && (await this.localMode(wire)) === (meta.mode & 0o777)
  }

  /**
   * Downloads one file to a verified temp file beside its final path, without making it visible
   * (watch installs a whole batch together). Returns null when the server says the local copy is
   * already current. The temp file is created in its folder as pinned by the write session.
   */
  async stage(client: AssetClient, wire: string, haveHash: Buffer | null, meta?: FileMeta, ctx?: DeltaContext): Promise<StagedFile | null> {
    assertWirePath(wire)
    this.#listed.add(wire)
    return this.#withSession(async (w) => {
      const [dirWire, name] = split(wire)
      const dir = await w.dir(dirWire, true, this.#clearFile)
      if (meta && this.#opts.fetcher) {
        // pull --direct: the file comes from the origin's bucket, into the same pinned folder.
        try {
          const direct = await this.#opts.fetcher(client, meta, w.at(dir, name))
          if (direct) return { wire, temp: direct.tempPath, final: w.at(dir, name), hash: Buffer.from(meta.hash), bytes: direct.bytes, reused: 0, dir, session: w }
        } catch (err) {
          w.release(dir)
          throw err
        }
      }
      try {
        // Local copy, delta or whole file (delta-download.ts), retried as AssetClient.download is.
        const final = w.at(dir, name)
        const r = await fetchFileRetrying(client, { wire, final, meta: meta ?? null, have: haveHash, stage: true }, ctx ?? this.#ctx ?? this.deltaContext())
        if (!r) {
          w.release(dir)
          return null
        }
        return { wire, temp: r.temp, final, hash: Buffer.from(r.meta.hash), bytes: r.bytes, reused: r.reused, list: r.list, dir, session: w }
      } catch (err) {
        w.release(dir)
        throw err
      }
    })
  }

  /**
   * Makes a staged file visible: checks that its folder is still the one pinned (a swap is
   * ERR_PATH_REFUSED, and nothing is renamed), then renames over the final path (synchronously:
   * one metadata syscall). A folder standing at the final path is removed first if everything in
   * it is deletable (a folder that became a file), else ERR_WRITE and nothing is removed.
   */
  async install(s: StagedFile): Promise<void> {
    const w = s.session
    const name = split(s.wire)[1]
    try {
      w.check(s.dir, s.wire)
      await this.#rename(w, s.temp, s.final, s.wire, () => w.check(s.dir, s.wire))
      tempInstalled(s.temp)
      const st = localFile(w.at(s.dir, name))
      // Later files of the sync read this one by its real path (the pinned folder is released).
      this.#ctx?.installed(s.temp, join(this.#root as string, ...s.wire.split('/')))
      if (st) {
        this.#cache?.set(s.wire, st, s.hash)
        this.#local?.installed(s.wire, st, s.hash, s.list)
      }
      this.#listed.add(s.wire)
    } catch (err) {
      await removeTemp(s.temp)
      throw writeError(s.wire, err)
    } finally {
      w.release(s.dir)
    }
  }

  /** Drops a staged file that will not be installed. */
  async discard(s: StagedFile): Promise<void> {
    await removeTemp(s.temp)
    s.session.release(s.dir)
  }

  /** Fetches one file into place (atomically). Returns payload bytes received and bytes reused. */
  async fetch(client: AssetClient, wire: string, haveHash: Buffer | null, meta?: FileMeta): Promise<{ bytes: number; reused: number; upToDate: boolean }> {
    return this.#withSession(async () => {
      const staged = await this.stage(client, wire, haveHash, meta)
      if (!staged) return { bytes: 0, reused: 0, upToDate: true }
      await this.install(staged)
      return { bytes: staged.bytes, reused: staged.reused, upToDate: false }
    })
  }

  /** What the downloads of one sync or watch batch share: local sources and each other (dedup). */
  deltaContext(): DeltaContext {
    return this.#local?.context() ?? new DeltaContext()
  }

  /**
   * Sets the permission bits of a local file whose content is current (`hash`): a mode-only change
   * needs no download. On the open file where possible (never through a symlink). False if the
   * file is not there.
   */
  async setMode(wire: string, mode: number, hash: Uint8Array): Promise<boolean> {
    assertWirePath(wire)
    const st = await this.#withSession((w) => chmodFile(w, wire, mode))
    if (st) this.#cache?.set(wire, st, Buffer.from(hash))
    return st !== null
  }

  /** Moves a local file (a rename whose content is already here: no download). */
  async move(from: string, to: string): Promise<void> {
    assertWirePath(from)
    assertWirePath(to)
    await this.#withSession(async (w) => {
      const [fromDir, fromName] = split(from)
      const [toDir, toName] = split(to)
      let src: PinnedDir | null = null
      let dst: PinnedDir | null = null
      try {
        src = await w.dir(fromDir, false)
        dst = await w.dir(toDir, true, this.#clearFile)
        const a = w.at(src, fromName)
        const b = w.at(dst, toName)
        // A rename keeps inode, size and mtime (not ctime): the hash known for `from` holds for
        // `to`, recorded with the stamp taken after the rename (no re-hash on the next sync).
        const st = localFile(a)
        const known = st ? this.#cache?.lookup(from, st) ?? null : null
        const check = (): void => { w.check(src as PinnedDir, from); w.check(dst as PinnedDir, to) }
        check()
        await this.#rename(w, a, b, to, check)
        this.#forgetFile(from)
        this.#listed.add(to)
        const moved = known ? localFile(b) : null
        if (st && known && moved && moved.ino === st.ino && moved.size === st.size && moved.mtimeMs === st.mtimeMs) {
          this.#cache?.set(to, moved, known)
        }
      } catch (err) {
        throw writeError(to, err)
      } finally {
        if (src) w.release(src)
        if (dst) w.release(dst)
      }
      await removeEmptyParents(w, fromDir)
    })
  }

  /**
   * Deletes one local file (and folders it leaves empty) — only a regular file the server listed
   * into this mirror and the patterns select; anything else is left alone (false).
   */
  async remove(wire: string): Promise<boolean> {
    if (!(await this.root(false)) || !this.#deletable(wire)) return false
    const removed = await this.#withSession((w) => removeFile(w, wire))
    this.#forgetFile(wire) // deleted, or not there any more: no longer ours to track
    return removed
  }

  /**
   * rename(a, b). A folder standing at `b` (the file `wire` was a folder here) is cleared first if
   * all in it may go (clearFolder; what goes is reported as deleted), then `check` runs again.
   */
  async #rename(w: WriteRoot, a: string, b: string, wire: string, check: () => void): Promise<void> {
    try {
      renameSync(a, b)
    } catch (err) {
      if (!folderInTheWay(err)) throw err
      await clearFolder(w, wire, (f) => this.#deletable(f), (f) => {
        this.#forgetFile(f)
        this.#cleared.push(f)
      })
      check()
      renameSync(a, b)
    }
  }

  /** Removes temp files a killed run left behind. */
  async cleanTemp(): Promise<void> {
    const root = await this.root(false)
    if (root) await removeTempFiles(root)
  }

  /**
   * Brings the mirror to `manifest`: downloads what differs (hash-skip: a file whose local hash
   * matches is not requested at all; a differing mode alone is applied with chmod), and with
   * `prune` deletes local files the server listed before and no longer has, within the patterns
   * (mirror-sync.ts).
   */
  sync(client: AssetClient, manifest: readonly ManifestEntry[], opts: SyncOptions = {}): Promise<SyncSummary> {
    return this.#syncer.sync(client, manifest, opts)
  }

  /** Saves the hash cache and the record of listed files. */
  async saveCache(): Promise<void> { await Promise.all([this.#cache?.save(), this.#local?.save(), this.#listed.save().catch(() => {})]) }
}
