/**
 * Bringing a mirror to a manifest (Mirror.sync): what is already here (the looks taken while
 * connecting, or an lstat and the hash cache per file; only what the cache cannot vouch for is
 * hashed), mode-only changes, downloads — small files in batches (feature `batch-request`), the
 * others one by one (a local copy, a delta or the whole file: delta-download.ts) — and the prune of
 * what the server no longer lists. The folder's writes themselves are the Mirror's (mirror.ts):
 * this module decides what to write, the Mirror writes it safely.
 */
import type { Stats } from 'node:fs'
import { join } from 'node:path'
import { AssetSyncError, writeError } from '../../errors.js'
import { CLIENT_PARALLEL_CHECKS } from '../../limits.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import { type TempFd, createTempFd, dropTempSync, finishWholeSync } from '../fs/atomic-file.js'
import { equalHash } from '../fs/hash.js'
import { assertWirePath, printable } from '../fs/paths.js'
import { mapLimit } from '../fs/pool.js'
import type { PinnedDir, WriteRoot } from '../fs/write-root.js'
import { type BatchTarget, type FetchJob, batchable, fetchInBatches } from './batch-fetch.js'
import type { AssetClient } from './client.js'
import type { DeltaContext } from './delta-download.js'
import type { ListedRecord } from './listed.js'
import type { Look } from './local-looks.js'
import { localFile, split } from './local-writes.js'
import type { Mirror } from './mirror.js'
import type { FileAction, MirrorWarning, SyncOptions, SyncSummary } from './mirror-types.js'
import { listingFileFor, saveListing } from './saved-listing.js'
import { SyncTally, unmatchedPatterns } from './sync-tally.js'

/** The parts of its Mirror a sync works with that are not the Mirror's public methods. */
export interface MirrorParts {
  /** The selection's patterns (absent or empty: everything). */
  readonly patterns: readonly string[] | undefined
  /** Downloads at once (CLIENT_PARALLEL_TRANSFERS unless set). */
  readonly parallel: number
  /** The config folder (the saved listing's home). */
  configDir(): string
  /** The record of files the server listed into this folder (replaced when the folder is opened). */
  listed(): ListedRecord
  match(wire: string): boolean
  /** May `wire` be deleted? Only a file the server listed, in the current selection. */
  deletable(wire: string): boolean
  /** A file stands where a folder must be: removed (and reported) if deletable. */
  clearFile(wire: string): boolean
  /** The current write session (inside Mirror.writes). */
  session(): WriteRoot
  lookFor(root: string, wire: string): Look
  hashLocal(wire: string, full: string, st: Stats): Promise<Buffer | null>
  /** The current sync's delta context (a content already here is found through it). */
  context(): DeltaContext | null
  setContext(ctx: DeltaContext | null): void
  /** Saves the hash cache and the chunk-list cache. */
  saveCaches(): Promise<void>
}

/** One Mirror's syncs: it remembers the warnings given, so each is given once. */
export class MirrorSync {
  readonly #m: Mirror
  readonly #p: MirrorParts
  readonly #warned = new Set<string>()

  constructor(mirror: Mirror, parts: MirrorParts) {
    this.#m = mirror
    this.#p = parts
  }

  /**
   * Batched files (feature batch-request): the folder is pinned and the temp file made in it while
   * the batch before is on the wire; the verified content is then written whole with a few
   * synchronous calls and installed as a staged file is (folder re-checked, rename).
   */
  readonly #batchTarget: BatchTarget<{ final: string; temp: TempFd; dir: PinnedDir; w: WriteRoot }> = {
    prepare: async (wire) => {
      assertWirePath(wire)
      this.#p.listed().add(wire)
      const w = this.#p.session()
      const [dirWire, name] = split(wire)
      const dir = await w.dir(dirWire, true, this.#p.clearFile)
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
      return this.#m.install({ wire, temp: temp.tempPath, final, hash: Buffer.from(meta.hash), bytes: data.byteLength, reused: 0, dir, session: w })
    },
    drop: ({ temp, dir, w }) => {
      dropTempSync(temp)
      w.release(dir)
    },
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
  async sync(client: AssetClient, manifest: readonly ManifestEntry[], opts: SyncOptions): Promise<SyncSummary> {
    const wanted = manifest.filter((e) => this.#p.match(e.path))
    if (this.#p.patterns && this.#p.patterns.length > 0) {
      for (const p of unmatchedPatterns(this.#p.patterns, manifest)) {
        this.#warn({ code: 'NO_MATCH', pattern: p, message: `pattern "${printable(p)}" matches no file on the server` }, opts)
      }
    }
    if (opts.dryRun) return this.#sync(client, wanted, opts)
    const summary = await this.#m.writes(async () => {
      await this.#m.root()
      this.#p.setContext(this.#m.deltaContext())
      return this.#sync(client, wanted, opts).finally(() => this.#p.setContext(null))
    })
    const root = opts.saveListing && summary.vanished === 0 ? await this.#m.root(false) : null
    if (root) await saveListing(listingFileFor(this.#p.configDir(), root), manifest)
    return summary
  }

  async #sync(client: AssetClient, wanted: ManifestEntry[], opts: SyncOptions): Promise<SyncSummary> {
    const tally = new SyncTally(opts, wanted.length)
    const report = tally.report.bind(tally)
    const dry = !!opts.dryRun
    const vanished = new Set<string>()
    if (!dry) await this.#m.cleanTemp()
    const root = await this.#m.root(false)
    if (this.#p.listed().damaged) {
      this.#warn({ code: 'RECORD_DAMAGED', message: `the record of files the server listed (${this.#p.listed().file}) is damaged: nothing is deleted until a listing rebuilds it` }, opts)
    }
    // Listed now: the files this sync may later delete once the server no longer has them.
    if (!dry) for (const e of wanted) this.#p.listed().add(e.path)
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
          const l = ahead?.take(e.path) ?? this.#p.lookFor(root, e.path)
          modes[i] = l.mode
          if (l.hash) haves[i] = l.hash
          else if (l.st) unknown.push({ i, full: l.full, st: l.st })
        })
      }
      await mapLimit(unknown, CLIENT_PARALLEL_CHECKS, async ({ i, full, st }) => {
        haves[i] = await this.#p.hashLocal((wanted[i] as ManifestEntry).path, full, st)
      })
      const reportCleared = (): void => { for (const p of this.#m.takeCleared()) report(p, 'deleted', 0) }
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
        if (dry || (await this.#m.setMode(e.path, e.mode, e.hash))) report(e.path, 'mode', 0)
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
            const r = await this.#m.fetch(client, e.path, have, e)
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
      const parallel = this.#p.parallel
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
          if (batchable(job) && !this.#p.context()?.opts.copyOf?.(e.hash, e.path)) {
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
    const gone = [...this.#p.listed().paths()].filter((p) => !keep.has(p) && this.#p.deletable(p)).sort()
    for (const p of gone) {
      if (dry) {
        if (root && localFile(join(root, ...p.split('/')))) report(p, 'deleted', 0)
      } else if (await this.#m.remove(p)) report(p, 'deleted', 0)
    }
  }

  async #save(opts: SyncOptions, dry: boolean): Promise<void> {
    await this.#p.saveCaches()
    if (dry) return
    try {
      await this.#p.listed().save()
    } catch (err) {
      this.#warn({ code: 'RECORD_NOT_SAVED', message: `could not save the record of files the server listed: ${(err as Error).message}` }, opts)
    }
  }
}
