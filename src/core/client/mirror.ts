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
import { AssetSyncError, writeError } from '../../errors.js'
import { CLIENT_PARALLEL_CHECKS, CLIENT_PARALLEL_TRANSFERS } from '../../limits.js'
import type { FileMeta, ManifestEntry } from '../../protocol/messages.js'
import { type TempFd, createTempFd, dropTempSync, finishWholeSync } from '../fs/atomic-file.js'
import { removeTemp, tempInstalled } from '../fs/atomic-write.js'
import { HashCache, cacheFileFor } from '../fs/hash-cache.js'
import { equalHash, hashFile } from '../fs/hash.js'
import { patternMatcher } from '../fs/ignore.js'
import { configDir } from '../fs/keys.js'
import { assertWirePath, checkWirePath, printable } from '../fs/paths.js'
import { mapLimit } from '../fs/pool.js'
import { type PinnedDir, WriteRoot } from '../fs/write-root.js'
import { type BatchTarget, type FetchJob, batchable, fetchInBatches } from './batch-fetch.js'
import type { AssetClient } from './client.js'
import { DeltaContext, fetchFileRetrying } from './delta-download.js'
import { LocalContent } from './local-content.js'
import { ListedRecord } from './listed.js'
import { type Look, LocalLooks } from './local-looks.js'
import { chmodFile, clearFolder, codeOf, folderInTheWay, localFile, removeEmptyParents, removeFile, removeTempFiles, split } from './local-writes.js'
import type { FileAction, MirrorOptions, MirrorWarning, StagedFile, SyncOptions, SyncSummary } from './mirror-types.js'
import { type Listing, listingFileFor, loadListing, saveListing } from './saved-listing.js'
import { SyncTally, unmatchedPatterns } from './sync-tally.js'

export type { FileAction, FileEvent, MirrorOptions, MirrorWarning, StagedFile, SyncOptions, SyncSummary } from './mirror-types.js'

export class Mirror {
  readonly patterns: string[]
  readonly #opts: MirrorOptions
  readonly #match: (p: string) => boolean
  #root: string | null = null
  #rootId: { dev: number; ino: number } | null = null
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
  readonly #warned = new Set<string>()

  constructor(opts: MirrorOptions) {
    this.#opts = opts
    this.patterns = opts.patterns && opts.patterns.length > 0 ? opts.patterns : ['**']
    this.#match = patternMatcher(this.patterns)
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
      return !st.isDirectory() || st.dev !== this.#rootId.dev || st.ino !== this.#rootId.ino
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

  /**
   * Batched files (feature batch-request): the folder is pinned and the temp file made in it while
   * the batch before is on the wire; the verified content is then written whole with a few
   * synchronous calls and installed as a staged file is (folder re-checked, rename).
   */
  readonly #batchTarget: BatchTarget<{ final: string; temp: TempFd; dir: PinnedDir; w: WriteRoot }> = {
    prepare: async (wire) => {
      assertWirePath(wire)
      this.#listed.add(wire)
      const w = this.#session as WriteRoot
      const [dirWire, name] = split(wire)
      const dir = await w.dir(dirWire, true, this.#clearFile)
      try {
        const final = w.at(dir, name)
        return { final, temp: await createTempFd(final), dir, w }
      } catch (err) {
        w.release(dir)
        throw writeError(wire, err)
      }
    },
    write: (wire, { final, temp, dir, w }, meta, data) => {
      try {
        finishWholeSync(temp, final, meta, data, false, wire)
      } catch (err) {
        w.release(dir)
        throw err
      }
      return this.install({ wire, temp: temp.tempPath, final, hash: Buffer.from(meta.hash), bytes: data.byteLength, reused: 0, dir, session: w })
    },
    drop: ({ temp, dir, w }) => {
      dropTempSync(temp)
      w.release(dir)
    },
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

  #warn(w: MirrorWarning, opts: SyncOptions): void {
    const key = `${w.code}\0${w.pattern ?? ''}`
    if (this.#warned.has(key)) return
    this.#warned.add(key)
    opts.onWarning?.(w)
  }

  /**
   * Brings the mirror to `manifest`: downloads what differs (hash-skip: a file whose local hash
   * matches is not requested at all; a differing mode alone is applied with chmod), and with
   * `prune` deletes local files the server listed before and no longer has, within the patterns.
   */
  async sync(client: AssetClient, manifest: readonly ManifestEntry[], opts: SyncOptions = {}): Promise<SyncSummary> {
    const wanted = manifest.filter((e) => this.#match(e.path))
    if (this.#opts.patterns && this.#opts.patterns.length > 0) {
      for (const p of unmatchedPatterns(this.#opts.patterns, manifest)) {
        this.#warn({ code: 'NO_MATCH', pattern: p, message: `pattern "${printable(p)}" matches no file on the server` }, opts)
      }
    }
    if (opts.dryRun) return this.#sync(client, wanted, opts)
    const summary = await this.writes(async () => {
      await this.root()
      this.#ctx = this.deltaContext()
      return this.#sync(client, wanted, opts).finally(() => { this.#ctx = null })
    })
    const root = opts.saveListing && summary.vanished === 0 ? await this.root(false) : null
    if (root) await saveListing(listingFileFor(this.#configDir, root), manifest)
    return summary
  }

  async #sync(client: AssetClient, wanted: ManifestEntry[], opts: SyncOptions): Promise<SyncSummary> {
    const tally = new SyncTally(opts, wanted.length)
    const report = tally.report.bind(tally)
    const dry = !!opts.dryRun
    const vanished = new Set<string>()
    if (!dry) await this.cleanTemp()
    const root = await this.root(false)
    if (this.#listed.damaged) {
      this.#warn({ code: 'RECORD_DAMAGED', message: `the record of files the server listed (${this.#listed.file}) is damaged: nothing is deleted until a listing rebuilds it` }, opts)
    }
    // Listed now: the files this sync may later delete once the server no longer has them.
    if (!dry) for (const e of wanted) this.#listed.add(e.path)
    try {
      // What is already here: a synchronous lstat + cache lookup per file; only files the cache
      // cannot vouch for are hashed (stat- and read-bound: many at once).
      // Only the files to hash keep their stat: holding 20,000 Stats until the end made the no-op's
      // garbage collection a fifth of its time.
      const haves: (Buffer | null)[] = new Array(wanted.length).fill(null)
      const modes: number[] = new Array(wanted.length).fill(-1)
      const unknown: Array<{ i: number; full: string; st: Stats }> = []
      if (root) {
        const ahead = opts.ahead ?? null
        wanted.forEach((e, i) => {
          const l = ahead?.take(e.path) ?? this.#lookFor(root, e.path)
          modes[i] = l.mode
          if (l.hash) haves[i] = l.hash
          else if (l.st) unknown.push({ i, full: l.full, st: l.st })
        })
      }
      await mapLimit(unknown, CLIENT_PARALLEL_CHECKS, async ({ i, full, st }) => {
        haves[i] = await this.#hashLocal((wanted[i] as ManifestEntry).path, full, st)
      })
      const reportCleared = (): void => { for (const p of this.takeCleared()) report(p, 'deleted', 0) }
      // Up to date: reported at once, in manifest order, with no transfer slot and no promise.
      const toFetch: number[] = []
      const modeOnly: number[] = []
      wanted.forEach((e, i) => {
        if (!equalHash(haves[i], e.hash)) toFetch.push(i)
        else if ((modes[i] as number) !== (e.mode & 0o777)) modeOnly.push(i)
        else report(e.path, 'up-to-date', 0)
      })
      for (const i of modeOnly) {
        const e = wanted[i] as ManifestEntry
        if (dry || (await this.setMode(e.path, e.mode, e.hash))) report(e.path, 'mode', 0)
        else toFetch.push(i) // gone meanwhile: fetch it
      }
      const fetchOne = async (i: number): Promise<void> => {
        const e = wanted[i] as ManifestEntry
        const have = haves[i] ?? null
        let action: FileAction = 'downloaded'
        let bytes = 0
        let reused = 0
        if (!dry) {
          try {
            const r = await this.fetch(client, e.path, have, e)
            bytes = r.bytes
            reused = r.reused
            action = r.upToDate ? 'up-to-date' : 'downloaded'
          } catch (err) {
            reportCleared()
            if (!(err instanceof AssetSyncError && err.code === 'ERR_NOT_FOUND')) throw err
            action = 'vanished'
            vanished.add(e.path)
          }
        }
        reportCleared()
        report(e.path, action, bytes, reused)
      }
      // Fetching is not stat-bound: fewer at once.
      const parallel = this.#opts.parallel ?? CLIENT_PARALLEL_TRANSFERS
      if (dry || !client.batches) await mapLimit(toFetch, parallel, fetchOne)
      else {
        // Small files in batches (feature batch-request), the others (and those whose content is a
        // local copy away) one by one meanwhile; what a batch leaves (answered `alone`) is fetched
        // one by one after.
        const index = new Map<string, number>()
        const small: FetchJob[] = []
        const large: number[] = []
        for (const i of toFetch) {
          const e = wanted[i] as ManifestEntry
          const job: FetchJob = { path: e.path, size: e.size, have: haves[i] ?? null }
          // Content already here (a copy, a rename) is copied locally by the one-file path: nothing crosses the wire.
          if (batchable(job) && !this.#ctx?.opts.copyOf?.(e.hash, e.path)) {
            small.push(job)
            index.set(e.path, i)
          } else large.push(i)
        }
        // Both settle before a failure is thrown: batches still making temp files must not outlive it.
        const [batched, single] = await Promise.allSettled([
          fetchInBatches(client, small, this.#batchTarget, (path, o) => {
            if (o.action === 'vanished') vanished.add(path)
            reportCleared()
            report(path, o.action, o.bytes)
          }),
          mapLimit(large, parallel, fetchOne),
        ])
        if (batched.status === 'rejected') throw batched.reason
        if (single.status === 'rejected') throw single.reason
        await mapLimit(batched.value.map((j) => index.get(j.path) as number), parallel, fetchOne)
      }
      if (opts.prune) await this.#prune(root, wanted, vanished, dry, tally)
    } finally {
      await this.#save(opts, dry)
    }
    return tally.finish()
  }

  /** Deletes what the server listed before and no longer has (within the patterns); sorted. */
  async #prune(root: string | null, wanted: ManifestEntry[], vanished: Set<string>, dry: boolean, tally: SyncTally): Promise<void> {
    const report = tally.report.bind(tally)
    const keep = new Set(wanted.filter((e) => !vanished.has(e.path)).map((e) => e.path))
    const gone = [...this.#listed.paths()].filter((p) => !keep.has(p) && this.#deletable(p)).sort()
    for (const p of gone) {
      if (dry) {
        if (root && localFile(join(root, ...p.split('/')))) report(p, 'deleted', 0)
      } else if (await this.remove(p)) report(p, 'deleted', 0)
    }
  }

  async #save(opts: SyncOptions, dry: boolean): Promise<void> {
    await this.#cache?.save()
    await this.#local?.save()
    if (dry) return
    try {
      await this.#listed.save()
    } catch (err) {
      this.#warn({ code: 'RECORD_NOT_SAVED', message: `could not save the record of files the server listed: ${(err as Error).message}` }, opts)
    }
  }

  /** Saves the hash cache and the record of listed files. */
  async saveCache(): Promise<void> { await Promise.all([this.#cache?.save(), this.#local?.save(), this.#listed.save().catch(() => {})]) }
}
