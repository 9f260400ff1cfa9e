/**
 * FolderFeed: the ChangeFeed of a served folder. The watcher (watcher.ts) names settled paths; the
 * feed refreshes each in the FolderSource's index and diffs it against what subscribers last
 * heard (batch-diff.ts), so what it delivers is exactly the news: changes, deletes and renames.
 *
 * Entries the source changes on its own (aliases of a changed file, a hash corrected after a
 * client's integrity failure) join the batch being processed, or make one (issue 11).
 *
 * It also keeps the root honest (issue 11): the root's own watch event, or a stat every
 * ROOT_CHECK_MS, tells that the served folder was deleted, moved or replaced. Then the source is
 * suspended (requests wait), and either a folder is back at the root's path within ROOT_GONE_MS —
 * it is watched, indexed again, and the difference to what subscribers had is delivered as one
 * batch — or the feed gives up: the source fails every call and the server is told (`sink.fail`).
 */
import { relative, sep } from 'node:path'
import { AssetSyncError } from '../../errors.js'
import { ROOT_CHECK_MS, ROOT_GONE_MS, SETTLE_MS } from '../../limits.js'
import { type Clock, systemClock } from '../../protocol/clock.js'
import type { FileMeta } from '../../protocol/messages.js'
import type { SkippedPath } from '../fs/disk-names.js'
import { type FileStamp, sameStamp } from '../fs/stamp.js'
import { walkFiles } from '../fs/walk.js'
import { type Heard, diffBatch } from './batch-diff.js'
import type { ChangeFeed, FeedSink } from './feed.js'
import type { FolderSource } from './folder-source.js'
import { FolderWatcher, quietTime } from './watcher.js'

/** How often a missing root is looked for again (within ROOT_GONE_MS). */
const ROOT_RETRY_MS = 100
/**
 * "Subscribers may have any version of it": the published hash of a path that changed while the
 * folder was being indexed in the background. A client may have fetched such a path on demand
 * before the change, so its next batch is announced whatever the index holds (an extra
 * announcement costs a client one hash compare; a missing one would be a lost update).
 */
const UNKNOWN = new Uint8Array(0)

export interface FolderFeedOptions {
  /** Quiet time before a changed file is announced; default SETTLE_MS. */
  settleMs?: number
  /** The watcher's timers (default the system clock); now() must be comparable with file mtimes. */
  clock?: Clock
  /** How long the root may be missing before the feed gives up; default ROOT_GONE_MS. */
  rootGoneMs?: number
}

/** The change feed of a FolderSource: its folder's settled changes, as news for subscribers. */
export class FolderFeed implements ChangeFeed {
  readonly #source: FolderSource
  readonly #settleMs: number
  readonly #clock: Clock
  readonly #rootGoneMs: number
  #watcher: FolderWatcher | null = null
  #sink: FeedSink | null = null
  #chain: Promise<void> = Promise.resolve()
  /**
   * Each path's hash and mode as last announced to subscribers (or listed at start). A batch is diffed
   * against this, not against the index: a REQUEST for a changed file refreshes the index before
   * the watcher's batch arrives, and the change must still be pushed.
   */
  readonly #published = new Map<string, Heard>()
  /** While a batch is processed: paths the source changed on its own meanwhile (they join it). */
  #joining: Set<string> | null = null
  /** #published holds the whole listing (the source's index was complete). */
  #listed = false
  /** Paths that changed before that: their published hash is UNKNOWN. */
  readonly #early = new Set<string>()
  #cancelRootCheck: (() => void) | null = null
  /** The root is being checked or recovered (one at a time). */
  #rootBusy: Promise<void> | null = null
  #closed = false
  readonly #onChanged = (paths: string[]): void => {
    if (this.#joining) for (const p of paths) this.#joining.add(p)
    else this.#enqueue(paths)
  }

  constructor(source: FolderSource, opts: FolderFeedOptions = {}) {
    this.#source = source
    this.#settleMs = opts.settleMs ?? SETTLE_MS
    this.#clock = opts.clock ?? systemClock
    this.#rootGoneMs = opts.rootGoneMs ?? ROOT_GONE_MS
  }

  get description(): string { return this.#source.description }
  /** Folders watched (one OS watch each). */
  get folders(): number { return this.#watcher?.folders ?? 0 }

  /**
   * Starts watching. With the source indexed already, its listing is what subscribers start from.
   * Otherwise (the server indexes in the background, after this resolves) the watch comes first,
   * so nothing changed while the folder is listed is missed, and batches wait for the index.
   */
  async start(sink: FeedSink): Promise<void> {
    this.#sink = sink
    const source = this.#source
    const indexedFirst = source.complete
    if (indexedFirst) this.#list()
    else {
      this.#chain = source.whenIndexed().then(() => this.#list()).catch((err: unknown) => this.#sink?.error(err))
    }
    source.on('changed', this.#onChanged)
    await this.#startWatcher()
    // Indexed before the watch: what was saved in between raised no event we heard. Indexed after
    // it (the background index), every later change is listed as it is or raises an event.
    if (indexedFirst) await this.#catchUp()
    this.#cancelRootCheck = this.#clock.every(ROOT_CHECK_MS, () => this.#checkRoot(false))
  }

  /** What subscribers start from: the whole index, as it is now. */
  #list(): void {
    if (this.#listed) return
    for (const [p, h] of this.#source.heard()) this.#published.set(p, h)
    this.#listed = true
  }

  async #startWatcher(): Promise<void> {
    const source = this.#source
    const watcher = new FolderWatcher(source.root, source.ignored, () => source.paths(), this.#settleMs, this.#clock)
    watcher.on('batch', (paths: string[], disk?: Map<string, string>, seen?: Map<string, FileStamp | null>) => this.#enqueue(paths, disk, seen))
    watcher.on('error', (err: unknown) => this.#sink?.error(err))
    watcher.on('skipped', (s: SkippedPath) => source.reportSkipped(s))
    watcher.on('root', () => this.#checkRoot(true))
    this.#watcher = watcher
    await watcher.start()
  }

  /**
   * For a source indexed before start(): what was saved between the scan and the watch raised
   * events nobody heard, and the index still has the old hash (a server restarted while files
   * were being saved served stale entries for good: issue 14's soak). Every path is looked at once more now that the watch is on; only what
   * really changed goes out, as one batch, before start() resolves (so a later move is still one
   * rename, not split across this batch and the watcher's).
   */
  async #catchUp(): Promise<void> {
    const source = this.#source
    const paths = new Set(source.paths())
    const disk = new Map<string, string>()
    for await (const f of walkFiles(source.root, source.ignored)) {
      paths.add(f.wire)
      const rel = relative(source.root, f.full).split(sep).join('/')
      if (rel !== f.wire) disk.set(f.wire, rel) // stored under another name (NFD)
    }
    this.#enqueue([...paths], disk)
    await this.#chain
  }

  async #stopWatcher(): Promise<void> {
    const w = this.#watcher
    this.#watcher = null
    await w?.close()
  }

  /** Settled paths are processed one batch at a time, in order. */
  #enqueue(paths: string[], disk?: Map<string, string>, seen?: Map<string, FileStamp | null>): void {
    if (!this.#listed) for (const p of paths) this.#early.add(p)
    this.#chain = this.#chain.then(() => this.#onPaths(paths, disk, seen)).catch((err: unknown) => this.#sink?.error(err))
  }

  /**
   * The file was written again after the watcher found it stable (`seen`), so recently that it is
   * not quiet now: a save in progress (a truncating save is empty until its first write). That
   * write raised an event, so the watcher announces it again once it settles; announcing what is
   * there now could show subscribers a half-written file.
   */
  #writtenSince(now: (FileMeta & FileStamp) | null, seen: FileStamp | null | undefined): boolean {
    if (!now || seen === undefined || sameStamp(now, seen)) return false
    const age = this.#clock.now() - now.mtimeMs
    return age >= 0 && age < quietTime(this.#settleMs, now)
  }

  async #onPaths(paths: string[], disk?: Map<string, string>, seen?: Map<string, FileStamp | null>): Promise<void> {
    const after = new Map<string, FileMeta | null>()
    const joining = new Set<string>()
    this.#joining = joining
    try {
      for (const p of paths) {
        try {
          const now = await this.#source.refreshAt(p, disk?.get(p))
          if (this.#writtenSince(now, seen?.get(p))) continue
          after.set(p, now)
        } catch (err) {
          // Still being written: its next event brings it. Anything else ends the batch.
          if (!(err instanceof AssetSyncError && err.code === 'ERR_CHANGED')) throw err
        }
      }
    } finally {
      this.#joining = null
    }
    // A path the source changed meanwhile (a re-hash a client's failed download asked for) takes
    // the index's entry now, even when this batch holds it: its refresh may predate the change.
    for (const p of joining) after.set(p, this.#source.indexed(p))
    await this.#publish(after)
  }

  /** Delivers what changed in `after` (each path's entry now) against what was published. */
  async #publish(after: ReadonlyMap<string, FileMeta | null>): Promise<void> {
    const before = new Map<string, Heard | null>()
    for (const [p, now] of after) {
      before.set(p, this.#early.delete(p) ? UNKNOWN : this.#published.get(p) ?? null)
      if (now) this.#published.set(p, { hash: now.hash, mode: now.mode })
      else this.#published.delete(p)
    }
    const entries = diffBatch(before, after)
    if (entries.length > 0) await this.#sink?.deliver({ entries })
  }

  // --- the root ------------------------------------------------------------------------------

  /**
   * Looks at the root (`event`: its own watch reported it deleted or moved, so its watch is no
   * good any more whatever is there now) and recovers if it is not the folder indexed.
   */
  #checkRoot(event: boolean): void {
    if (this.#closed || this.#rootBusy) return
    this.#rootBusy = (async () => {
      const state = await this.#source.rootState()
      if (state === 'same' && !event) return
      await this.#recover()
    })().catch((err: unknown) => this.#sink?.error(err)).finally(() => { this.#rootBusy = null })
  }

  async #recover(): Promise<void> {
    const source = this.#source
    source.suspend()
    await this.#stopWatcher()
    const deadline = this.#clock.now() + this.#rootGoneMs
    let last: unknown = null
    for (;;) {
      if (this.#closed) {
        source.gone(new AssetSyncError('ERR_NOT_FOUND', `the server stopped while its folder ${source.root} was missing`))
        return
      }
      if ((await source.rootState()) !== 'gone') {
        try {
          await this.#startWatcher() // watched first, listed second: nothing created in between is missed
          await source.rescan()
          break
        } catch (err) {
          last = err
          await this.#stopWatcher()
        }
      }
      if (this.#clock.now() >= deadline) {
        const why = last ? ` (${(last as Error).message})` : ''
        const err = new AssetSyncError('ERR_NOT_FOUND',
          `the served folder ${source.root} is gone (deleted, moved away or replaced by something else than a folder)${why}`)
        source.gone(err)
        this.#sink?.fail?.(err)
        return
      }
      await new Promise<void>((resolve) => this.#clock.after(ROOT_RETRY_MS, resolve))
    }
    // The whole old list against the whole new one, after the batches already queued.
    this.#chain = this.#chain.then(async () => {
      const after = new Map<string, FileMeta | null>()
      for (const p of this.#published.keys()) after.set(p, source.indexed(p))
      for (const p of source.paths()) after.set(p, source.indexed(p))
      await this.#publish(after)
    }).catch((err: unknown) => this.#sink?.error(err))
  }

  idle(): Promise<void> { return this.#chain }

  /** Stops watching; batches the watcher already emitted are still delivered before it resolves. */
  async close(): Promise<void> {
    this.#closed = true
    this.#cancelRootCheck?.()
    this.#source.off('changed', this.#onChanged)
    await this.#watcher?.close()
    await this.#rootBusy
    await this.#chain
  }
}
