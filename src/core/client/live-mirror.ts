/**
 * A mirror kept live: initial sync, then subscribe and apply pushed batches atomically (every
 * changed file is downloaded and verified first, then the whole batch becomes visible), run the
 * hook per batch, and on a lost connection reconnect with jittered backoff forever, resyncing by
 * manifest diff so changes made meanwhile (deletes included) are applied. Never prints.
 */
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { AssetSyncError, isFatal } from '../../errors.js'
import { CLIENT_PARALLEL_TRANSFERS, RECONNECT_BASE_MS, RECONNECT_MAX_MS } from '../../limits.js'
import type { Clock } from '../../protocol/clock.js'
import type { FileMeta, UpdateEntry } from '../../protocol/messages.js'
import { AssetClient, type AssetClientOptions, type ClientReport } from './client.js'
import { equalHash } from '../fs/hash.js'
import { foregroundClock } from './foreground-clock.js'
import type { Change } from './hooks.js'
import { patternMatcher } from '../fs/ignore.js'
import { Mirror, type MirrorWarning, type StagedFile, type SyncSummary } from './mirror.js'
import { assertWirePath } from '../fs/paths.js'
import { mapLimit } from '../fs/pool.js'

export interface LiveMirrorOptions {
  client: AssetClientOptions
  out: string
  patterns?: string[]
  /** Identifies this subscriber within its connection; random by default. */
  instanceId?: number
  configDir?: string
  /** Times the reconnect backoff; default real time (timers that keep the process alive). */
  clock?: Clock
  /** The jitter's random source, in [0, 1); default Math.random. */
  random?: () => number
}

/** A sync finished: the initial one, or a resync after a reconnect. */
export interface SyncedEvent { summary: SyncSummary; initial: boolean }

/** What an applied batch cost: payload bytes received on the wire, and bytes taken from local files. */
export interface AppliedStats { bytesReceived: number; bytesReused: number }

/** A reconnect attempt is due in `delayMs`. */
export interface ReconnectingEvent { attempt: number; delayMs: number }

/** The events of a LiveMirror, by name: the listener's arguments. */
export type LiveMirrorEvents = {
  synced: [e: SyncedEvent]
  /** A batch became visible (pushed, or the changes a resync made). */
  applied: [changes: Change[], stats: AppliedStats]
  /** The connection was lost (null: closed without an error); reconnecting follows. */
  disconnected: [err: AssetSyncError | null]
  reconnecting: [e: ReconnectingEvent]
  /** A batch could not be applied; the next resync applies it. */
  'batch-error': [err: Error]
  /** A failure no retry can help (see isFatal in errors.ts): the mirror stops. */
  fatal: [err: AssetSyncError]
  /** Something to tell the user that does not stop the mirror (a pattern matching nothing, ...). */
  warning: [w: MirrorWarning]
}

/**
 * The delay before reconnect attempt `attempt` (1, 2, ...): full jitter (AWS architecture blog)
 * between 0 and min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2^(attempt-1)); `random` in [0, 1).
 */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(Math.max(attempt, 1) - 1, 10))
  return Math.round(random() * cap)
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)))

/** A mirror kept live. Events: LiveMirrorEvents. */
export class LiveMirror extends EventEmitter<LiveMirrorEvents> {
  readonly mirror: Mirror
  readonly instanceId: number
  readonly #opts: LiveMirrorOptions
  readonly #clock: Clock
  readonly #random: () => number
  readonly #match: (p: string) => boolean
  #client: AssetClient | null = null
  #chain: Promise<void> = Promise.resolve()
  #stopped = false
  #done: Promise<void> | null = null
  #wake: (() => void) | null = null

  constructor(opts: LiveMirrorOptions) {
    super()
    this.#opts = opts
    this.#clock = opts.clock ?? foregroundClock
    this.#random = opts.random ?? Math.random
    this.mirror = new Mirror({ out: opts.out, patterns: opts.patterns, configDir: opts.configDir })
    this.#match = patternMatcher(this.mirror.patterns)
    this.instanceId = opts.instanceId ?? randomBytes(4).readUInt32BE(0)
  }

  /**
   * Connects and runs the initial sync; resolves after it. A failure here rejects (a wrong
   * address should not retry forever); later losses are retried forever until `stop()`.
   */
  async start(): Promise<void> {
    await this.#connectAndSync(true)
    this.#done = this.#reconnectLoop()
  }

  /** Resolves when the mirror stops (after `stop()`, or a fatal error). */
  get done(): Promise<void> { return this.#done ?? Promise.resolve() }

  /** Resolves once every batch received so far is applied. */
  async idle(): Promise<void> {
    for (let c = this.#chain; ; c = this.#chain) {
      await c
      if (c === this.#chain) return
    }
  }

  /**
   * Sends a reload report to the server over the current connection (see AssetClient.report):
   * false when not connected just now, or when the server does not take reports.
   */
  report(r: ClientReport): boolean {
    return this.#client?.report(r) ?? false
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.#client?.close()
    this.#wake?.()
    await this.#done
    await this.#chain
    await this.mirror.saveCache()
  }

  async #connectAndSync(initial: boolean): Promise<void> {
    const client = await AssetClient.connect({ ...this.#opts.client, configDir: this.#opts.configDir ?? this.#opts.client.configDir })
    if (this.#stopped) { client.close(); return }
    this.#client = client
    const lost = new Promise<void>((resolve) => client.once('close', () => resolve()))
    // Subscribe before reading the manifest, so nothing that changes in between is missed;
    // batches wait in the chain until the sync below is done (a no-op if already applied).
    let release!: () => void
    const synced = new Promise<void>((resolve) => { release = resolve })
    this.#chain = this.#chain.then(() => synced)
    client.on('update', (entries: UpdateEntry[]) => {
      this.#chain = this.#chain.then(() => this.#applyBatch(client, entries))
    })
    try {
      await client.subscribe(this.mirror.patterns, this.instanceId)
      await this.#fullSync(client, initial)
    } catch (err) {
      client.close()
      throw err
    } finally {
      release()
    }
    void lost.then(() => {
      if (this.#client === client) this.#client = null
      if (!this.#stopped) this.emit('disconnected', client.conn.closeError)
      this.#wake?.()
    })
  }

  /**
   * Brings the mirror to the server's manifest: downloads what differs, applies mode changes,
   * deletes what the server listed before and no longer has (never a file it did not list).
   */
  async #fullSync(client: AssetClient, initial: boolean): Promise<void> {
    const manifest = await client.manifest(this.mirror.patterns)
    const changes: Change[] = []
    const summary = await this.mirror.sync(client, manifest, {
      prune: true,
      onFile: (ev) => {
        if (ev.action === 'downloaded' || ev.action === 'mode') changes.push({ path: ev.path, action: 'change' })
        else if (ev.action === 'deleted') changes.push({ path: ev.path, action: 'delete' })
      },
      onWarning: (w) => this.emit('warning', w),
    })
    this.emit('synced', { summary, initial })
    if (!initial && changes.length > 0) this.emit('applied', changes, { bytesReceived: summary.bytesReceived, bytesReused: summary.bytesReused })
  }

  async #reconnectLoop(): Promise<void> {
    for (;;) {
      // Sleep until the current connection is lost (or stop()).
      if (this.#client && !this.#stopped) await new Promise<void>((resolve) => { this.#wake = resolve })
      this.#wake = null
      if (this.#stopped) return
      for (let attempt = 1; !this.#stopped; attempt++) {
        const delayMs = reconnectDelay(attempt, this.#random)
        this.emit('reconnecting', { attempt, delayMs })
        await new Promise<void>((resolve) => {
          const cancel = this.#clock.after(delayMs, resolve)
          this.#wake = () => { cancel(); resolve() }
        })
        this.#wake = null
        if (this.#stopped) return
        try {
          await this.#connectAndSync(false)
          break
        } catch (err) {
          if (isFatal(err)) {
            this.#stopped = true
            this.emit('fatal', err as AssetSyncError)
            return
          }
        }
      }
    }
  }

  /**
   * Downloads and verifies everything first (several files at once, CLIENT_PARALLEL_TRANSFERS),
   * then makes the batch visible together. An out folder deleted (or replaced) since the last
   * batch is made again and fully resynced first, so the hook never runs on a partial mirror.
   */
  async #applyBatch(client: AssetClient, entries: UpdateEntry[]): Promise<void> {
    if (this.mirror.rootMoved()) {
      try {
        await this.#fullSync(client, false)
      } catch (err) {
        if (!client.conn.closed) this.emit('batch-error', asError(err))
        return
      }
    }
    await this.mirror.writes(() => this.#applyEntries(client, entries)).catch((err: unknown) => {
      if (!client.conn.closed) this.emit('batch-error', asError(err))
    })
  }

  async #applyEntries(client: AssetClient, entries: UpdateEntry[]): Promise<void> {
    const fetches: { path: string; have: Buffer | null; meta: FileMeta }[] = []
    const modes: { path: string; mode: number; hash: Uint8Array }[] = []
    const moves: { from: string; to: string }[] = []
    const deletes: string[] = []
    const changes: Change[] = []
    let staged: StagedFile[] = []
    try {
      for (const e of entries) {
        assertWirePath(e.path) // a malicious server must not steer writes
        if (e.kind === 'rename') assertWirePath(e.from)
        if (e.kind === 'delete') {
          if (this.#match(e.path)) deletes.push(e.path)
          continue
        }
        if (e.kind === 'rename' && this.#match(e.from)) {
          if (this.#match(e.path) && this.mirror.isListed(e.from) && equalHash(await this.mirror.localHash(e.from), e.hash)) {
            moves.push({ from: e.from, to: e.path })
            if (((await this.mirror.localMode(e.from)) ?? -1) !== (e.mode & 0o777)) modes.push({ path: e.path, mode: e.mode, hash: e.hash })
            continue
          }
          deletes.push(e.from)
        }
        if (!this.#match(e.path)) continue
        const have = await this.mirror.localHash(e.path)
        if (equalHash(have, e.hash)) {
          // Already here (e.g. applied by a resync); a mode-only change is applied with chmod.
          if ((await this.mirror.localMode(e.path)) !== (e.mode & 0o777)) modes.push({ path: e.path, mode: e.mode, hash: e.hash })
          continue
        }
        fetches.push({ path: e.path, have, meta: e })
      }
      // Every download settles before anything is decided, so no staged temp file is left behind
      // by a sibling's failure. One delta context: the batch's files share sources (and chunks).
      const ctx = this.mirror.deltaContext()
      const results = await mapLimit(fetches, CLIENT_PARALLEL_TRANSFERS, async (f) => {
        try {
          return { staged: await this.mirror.stage(client, f.path, f.have, f.meta, ctx) }
        } catch (err) {
          // Deleted again before we asked: the delete arrives in a later batch.
          if (err instanceof AssetSyncError && err.code === 'ERR_NOT_FOUND') return { staged: null }
          return { staged: null, err }
        }
      })
      staged = results.flatMap((r) => (r.staged ? [r.staged] : []))
      const failed = results.find((r) => 'err' in r)
      if (failed) throw failed.err
    } catch (err) {
      for (const s of staged) await this.mirror.discard(s)
      this.#reportCleared(changes)
      if (changes.length > 0) this.emit('applied', changes, { bytesReceived: 0, bytesReused: 0 })
      // A lost connection is not this batch's fault: the resync after reconnecting applies it.
      if (!client.conn.closed) this.emit('batch-error', asError(err))
      return
    }
    let i = 0
    try {
      for (; i < staged.length; i++) {
        const s = staged[i] as StagedFile
        await this.mirror.install(s)
        this.#reportCleared(changes)
        changes.push({ path: s.wire, action: 'change' })
      }
      for (const m of moves) {
        await this.mirror.move(m.from, m.to)
        this.#reportCleared(changes)
        changes.push({ path: m.from, action: 'delete' }, { path: m.to, action: 'change' })
      }
      for (const m of modes) {
        if (await this.mirror.setMode(m.path, m.mode, m.hash)) changes.push({ path: m.path, action: 'change' })
      }
      for (const p of deletes) {
        if (await this.mirror.remove(p)) changes.push({ path: p, action: 'delete' })
      }
    } catch (err) {
      for (const s of staged.slice(i + 1)) await this.mirror.discard(s)
      this.emit('batch-error', asError(err))
    }
    this.#reportCleared(changes)
    const stats: AppliedStats = { bytesReceived: 0, bytesReused: 0 }
    for (const s of staged) {
      stats.bytesReceived += s.bytes
      stats.bytesReused += s.reused
    }
    if (changes.length > 0) this.emit('applied', changes, stats)
  }

  /** Files removed to make room for a write (a path that changed type) are deletes of this batch. */
  #reportCleared(changes: Change[]): void {
    for (const p of this.mirror.takeCleared()) changes.push({ path: p, action: 'delete' })
  }
}
