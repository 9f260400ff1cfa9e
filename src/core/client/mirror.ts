/**
 * A local mirror of (part of) a server's folder: diff a manifest against what is on disk, fetch
 * what differs with several transfers in flight, delete what the server no longer has (prune).
 * Used by `pull` and by `watch` (initial sync and resync after a reconnect).
 */
import type { Stats } from 'node:fs'
import { lstatSync, renameSync } from 'node:fs'
import { mkdir, readdir, realpath, rename, rmdir, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { AssetSyncError, writeError } from '../../errors.js'
import { CLIENT_PARALLEL_CHECKS, CLIENT_PARALLEL_TRANSFERS } from '../../limits.js'
import type { FileMeta, ManifestEntry } from '../../protocol/messages.js'
import { isTempName } from '../fs/atomic-write.js'
import type { AssetClient } from './client.js'
import { type BatchTarget, type FetchJob, batchable, fetchInBatches } from './batch-fetch.js'
import { type Listing, listingFileFor, loadListing, saveListing } from './saved-listing.js'
import { fileSink } from './temp-file-sink.js'
import { type TempFd, createTempFd, dropTempSync, finishWholeSync } from '../fs/atomic-file.js'
import { HashCache, cacheFileFor } from '../fs/hash-cache.js'
import { equalHash, hashFile } from '../fs/hash.js'
import { ignoreMatcher, patternMatcher } from '../fs/ignore.js'
import { configDir } from '../fs/keys.js'
import { resolveForWrite } from '../fs/paths.js'
import { mapLimit } from '../fs/pool.js'
import { walkFiles } from '../fs/walk.js'

/**
 * 'vanished': in the manifest, but gone from the server by the time it was requested (deleted or
 * renamed mid-pull); nothing is written, and the pull goes on (rsync: "file has vanished").
 */
export type FileAction = 'downloaded' | 'up-to-date' | 'deleted' | 'vanished'

export interface FileEvent {
  path: string
  action: FileAction
  /** File payload bytes received (0 for up-to-date, deleted and dry runs). */
  bytes: number
}

export interface SyncSummary {
  files: number
  downloaded: number
  upToDate: number
  deleted: number
  /** Manifest files the server no longer had when they were requested. */
  vanished: number
  bytesReceived: number
  ms: number
}

/** A verified download waiting beside its final path. */
export interface StagedFile { wire: string; temp: string; final: string; hash: Buffer; bytes: number }

export interface MirrorOptions {
  /** The local folder. */
  out: string
  patterns?: string[]
  configDir?: string
  parallel?: number
}

export interface SyncOptions {
  prune?: boolean
  dryRun?: boolean
  onFile?: (ev: FileEvent) => void
  /** Bytes received so far, for progress output. */
  onProgress?: (p: { bytes: number; done: number; total: number }) => void
  /**
   * After a sync in which every listed file was verified (not a dry run, none vanished), save the
   * manifest as this folder's listing, with its digest (feature manifest-digest: the next pull
   * asks whether it still holds). Pass the manifest exactly as the server listed it.
   */
  saveListing?: boolean
}

/**
 * What a local file is, or null if absent / not a regular file. Synchronous on purpose: a no-op
 * pull of 20,000 files spent a third of its time in async lstat round trips through the thread
 * pool (docs/benchmarks.md); one lstat syscall is microseconds.
 */
function localFile(path: string): Stats | null {
  try {
    const st = lstatSync(path, { throwIfNoEntry: false })
    return st?.isFile() ? st : null
  } catch {
    return null
  }
}

export class Mirror {
  readonly patterns: string[]
  readonly #opts: MirrorOptions
  #root: string | null = null
  #cache: HashCache | null = null
  /**
   * Folders created and checked during the current `sync` (see resolveForWrite: one realpath and
   * one mkdir per folder, not per file). Only within one sync: between syncs (watch) folders may
   * be removed or replaced, so every stage outside a sync checks again.
   */
  #dirsOk: Set<string> | null = null

  constructor(opts: MirrorOptions) {
    this.#opts = opts
    this.patterns = opts.patterns && opts.patterns.length > 0 ? opts.patterns : ['**']
  }

  /** The real path of the out folder (created on first use unless `create` is false). */
  async root(create = true): Promise<string | null> {
    if (this.#root) return this.#root
    try {
      if (create) await mkdir(this.#opts.out, { recursive: true })
      this.#root = await realpath(this.#opts.out)
    } catch (err) {
      if (!create && (err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw writeError(this.#opts.out, err)
    }
    this.#cache = await HashCache.load(cacheFileFor(this.#configDir, 'mirror', this.#root))
    return this.#root
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

  /** The listing last applied in full to this folder, with its digest (see SyncOptions.saveListing), or null. */
  async savedListing(): Promise<Listing | null> {
    const root = await this.root(false)
    return root ? loadListing(listingFileFor(this.#configDir, root)) : null
  }

  get #configDir(): string { return this.#opts.configDir ?? configDir() }

  /** True if the local copy already has `meta`'s content. */
  async isCurrent(wire: string, meta: FileMeta): Promise<boolean> {
    return equalHash(await this.localHash(wire), meta.hash)
  }

  /**
   * Downloads one file to a verified temp file beside its final path, without making it visible
   * (watch installs a whole batch together). Returns null when the server says the local copy is
   * already current.
   */
  async stage(client: AssetClient, wire: string, haveHash: Buffer | null): Promise<StagedFile | null> {
    const final = await this.#target(wire)
    const r = await client.download(wire, fileSink(final, { stage: true }), haveHash)
    if (r.status === 'up-to-date') return null
    return { wire, temp: r.result.tempPath, final, hash: Buffer.from(r.meta.hash), bytes: r.bytes }
  }

  /** Where `wire` goes: its local path, with the parent folders made and checked. */
  async #target(wire: string): Promise<string> {
    const root = (await this.root()) as string
    // Outside a sync (a watch batch) the set lives for this one file: an existing parent folder
    // is then resolved once, with no mkdir and no second check.
    const checked = this.#dirsOk ?? new Set<string>()
    const final = await resolveForWrite(root, wire, checked)
    const dir = dirname(final)
    if (checked.has(dir)) return final
    try {
      await mkdir(dir, { recursive: true })
    } catch (err) {
      throw writeError(wire, err)
    }
    // Re-check after creating folders: a planted symlink must not have redirected them.
    return resolveForWrite(root, wire, checked)
  }

  /**
   * Batched files (feature batch-request): the temp file is made while the batch before is on the
   * wire; the verified content is written whole, synchronously, and remembered.
   */
  readonly #batchTarget: BatchTarget<{ final: string; temp: TempFd }> = {
    prepare: async (wire) => {
      const final = await this.#target(wire)
      return { final, temp: await createTempFd(final) }
    },
    write: (wire, { final, temp }, meta, data) => {
      finishWholeSync(temp, final, meta, data, true, wire)
      const st = localFile(final)
      if (st) this.#cache?.set(wire, st, Buffer.from(meta.hash))
    },
    drop: ({ temp }) => dropTempSync(temp),
  }

  /**
   * Makes a staged file visible (rename over the final path). Synchronous: one metadata syscall,
   * where an async rename was a thread-pool round trip per file.
   */
  async install(s: StagedFile): Promise<void> {
    try {
      renameSync(s.temp, s.final)
    } catch (err) {
      await unlink(s.temp).catch(() => {})
      throw writeError(s.wire, err)
    }
    const st = localFile(s.final)
    if (st) this.#cache?.set(s.wire, st, s.hash)
  }

  /** Drops a staged file that will not be installed. */
  async discard(s: StagedFile): Promise<void> {
    await unlink(s.temp).catch(() => {})
  }

  /** Fetches one file into place (atomically). Returns payload bytes received. */
  async fetch(client: AssetClient, wire: string, haveHash: Buffer | null): Promise<{ bytes: number; upToDate: boolean }> {
    const staged = await this.stage(client, wire, haveHash)
    if (!staged) return { bytes: 0, upToDate: true }
    await this.install(staged)
    return { bytes: staged.bytes, upToDate: false }
  }

  /** Moves a local file (a rename whose content is already here: no download). */
  async move(from: string, to: string): Promise<void> {
    const root = (await this.root()) as string
    const src = await resolveForWrite(root, from)
    const dst = await resolveForWrite(root, to)
    // A rename keeps inode, size and mtime (not ctime): the hash known for `from` holds for `to`,
    // recorded with the stamp taken after the rename (no re-hash on the next sync).
    const st = localFile(src)
    const known = st ? this.#cache?.lookup(from, st) ?? null : null
    try {
      await mkdir(dirname(dst), { recursive: true })
      await resolveForWrite(root, to)
      await rename(src, dst)
    } catch (err) {
      throw writeError(to, err)
    }
    this.#cache?.delete(from)
    const moved = known ? localFile(dst) : null
    if (st && known && moved && moved.ino === st.ino && moved.size === st.size && moved.mtimeMs === st.mtimeMs) {
      this.#cache?.set(to, moved, known)
    }
    await this.#removeEmptyParents(root, src)
  }

  /** Deletes one local file (and folders it leaves empty). */
  async remove(wire: string): Promise<boolean> {
    const root = await this.root(false)
    if (!root) return false
    const target = await resolveForWrite(root, wire)
    try {
      await unlink(target)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw writeError(wire, err)
    }
    this.#cache?.delete(wire)
    await this.#removeEmptyParents(root, target)
    return true
  }

  /** Removes the folders above `file` that are left empty, up to (not including) the root. */
  async #removeEmptyParents(root: string, file: string): Promise<void> {
    for (let dir = dirname(file); dir !== root && dir.startsWith(root); dir = dirname(dir)) {
      try {
        if ((await readdir(dir)).length > 0) break
        await rmdir(dir)
      } catch {
        break
      }
    }
  }

  /** Local files matching the patterns (wire paths), excluding ignores and our temp files. */
  async localPaths(): Promise<string[]> {
    const root = await this.root(false)
    if (!root) return []
    const match = patternMatcher(this.patterns)
    const out: string[] = []
    for await (const f of walkFiles(root, ignoreMatcher())) if (match(f.wire)) out.push(f.wire)
    return out
  }

  /** Removes temp files a killed run left behind. */
  async cleanTemp(): Promise<void> {
    const root = await this.root(false)
    if (!root) return
    const stack = [root]
    while (stack.length > 0) {
      const dir = stack.pop() as string
      let names
      try {
        names = await readdir(dir, { withFileTypes: true })
      } catch {
        continue
      }
      for (const d of names) {
        if (d.isDirectory()) stack.push(join(dir, d.name))
        else if (d.isFile() && isTempName(d.name)) await unlink(join(dir, d.name)).catch(() => {})
      }
    }
  }

  /**
   * Brings the mirror to `manifest`: downloads what differs (hash-skip: a file whose local hash
   * matches is not requested at all), and with `prune` deletes local files the manifest lacks.
   */
  async sync(client: AssetClient, manifest: readonly ManifestEntry[], opts: SyncOptions = {}): Promise<SyncSummary> {
    const match = patternMatcher(this.patterns)
    const wanted = manifest.filter((e) => match(e.path))
    this.#dirsOk = new Set()
    try {
      const summary = await this.#sync(client, wanted, opts)
      const root = opts.saveListing && !opts.dryRun && summary.vanished === 0 ? await this.root(false) : null
      if (root) await saveListing(listingFileFor(this.#configDir, root), manifest)
      return summary
    } finally {
      this.#dirsOk = null
    }
  }

  async #sync(client: AssetClient, wanted: ManifestEntry[], opts: SyncOptions): Promise<SyncSummary> {
    const t0 = performance.now()
    const summary: SyncSummary = { files: 0, downloaded: 0, upToDate: 0, deleted: 0, vanished: 0, bytesReceived: 0, ms: 0 }
    const vanished = new Set<string>()
    if (!opts.dryRun) {
      await this.root()
      await this.cleanTemp()
    }
    let done = 0
    // What is already here: a synchronous lstat + cache lookup per file; only files the cache
    // cannot vouch for are hashed (stat- and read-bound: many at once).
    const root = await this.root(false)
    // Only the files to hash keep their stat: holding 20,000 Stats until the end made the no-op's
    // garbage collection a fifth of its time.
    const haves: (Buffer | null)[] = new Array(wanted.length).fill(null)
    const unknown: Array<{ i: number; full: string; st: Stats }> = []
    if (root) {
      wanted.forEach((e, i) => {
        const l = this.#look(root, e.path)
        if (l.hash) haves[i] = l.hash
        else if (l.st) unknown.push({ i, full: l.full, st: l.st })
      })
    }
    await mapLimit(unknown, CLIENT_PARALLEL_CHECKS, async ({ i, full, st }) => {
      haves[i] = await this.#hashLocal((wanted[i] as ManifestEntry).path, full, st)
    })
    const report = (path: string, action: FileAction, bytes: number): void => {
      if (action === 'vanished') summary.vanished++
      else {
        summary.files++
        if (action === 'downloaded') summary.downloaded++
        else summary.upToDate++
      }
      summary.bytesReceived += bytes
      opts.onFile?.({ path, action, bytes })
      opts.onProgress?.({ bytes: summary.bytesReceived, done: ++done, total: wanted.length })
    }
    // Up to date: reported at once, in manifest order, with no transfer slot and no promise.
    const toFetch: number[] = []
    wanted.forEach((e, i) => { if (equalHash(haves[i], e.hash)) report(e.path, 'up-to-date', 0); else toFetch.push(i) })
    const fetchOne = async (i: number): Promise<void> => {
      const e = wanted[i] as ManifestEntry
      const have = haves[i] ?? null
      let action: FileAction = 'downloaded'
      let bytes = 0
      if (!opts.dryRun) {
        try {
          const r = await this.fetch(client, e.path, have)
          bytes = r.bytes
          action = r.upToDate ? 'up-to-date' : 'downloaded'
        } catch (err) {
          if (!(err instanceof AssetSyncError && err.code === 'ERR_NOT_FOUND')) throw err
          action = 'vanished'
          vanished.add(e.path)
        }
      }
      report(e.path, action, bytes)
    }
    // Fetching is not stat-bound: fewer at once.
    const parallel = this.#opts.parallel ?? CLIENT_PARALLEL_TRANSFERS
    if (opts.dryRun || !client.batches) {
      await mapLimit(toFetch, parallel, fetchOne)
    } else {
      // Small files in batches (feature batch-request), the others one by one meanwhile; what a
      // batch leaves (answered `alone`) is fetched one by one after.
      const jobs = new Map<string, number>()
      const small: FetchJob[] = []
      const large: number[] = []
      for (const i of toFetch) {
        const e = wanted[i] as ManifestEntry
        const job: FetchJob = { path: e.path, size: e.size, have: haves[i] ?? null }
        if (batchable(job)) {
          small.push(job)
          jobs.set(e.path, i)
        } else large.push(i)
      }
      const [left] = await Promise.all([
        fetchInBatches(client, small, this.#batchTarget, (path, o) => {
          if (o.action === 'vanished') vanished.add(path)
          report(path, o.action, o.bytes)
        }),
        mapLimit(large, parallel, fetchOne),
      ])
      await mapLimit(left.map((j) => jobs.get(j.path) as number), parallel, fetchOne)
    }
    if (opts.prune) {
      const keep = new Set(wanted.filter((e) => !vanished.has(e.path)).map((e) => e.path))
      for (const p of await this.localPaths()) {
        if (keep.has(p)) continue
        if (!opts.dryRun) await this.remove(p)
        summary.deleted++
        opts.onFile?.({ path: p, action: 'deleted', bytes: 0 })
      }
    }
    await this.#cache?.save()
    summary.ms = Math.round(performance.now() - t0)
    return summary
  }

  async saveCache(): Promise<void> { await this.#cache?.save() }
}
