/**
 * NetworkAssets: the files a running program needs, from an assetsync server, kept in a local
 * folder (issue 13). `fetch` checks a local copy with the server by hash in one round trip and
 * downloads what is missing or stale atomically; `read` returns bytes; `reload` subscriptions per
 * program instance bring `change` events once the new file is on disk. It reconnects by itself,
 * resubscribes and re-checks what it follows; with the server unreachable, local copies are still
 * served (a `warning` says so). It is the network behind `assetsync run`: the Lua host's
 * AssetProvider. Never prints.
 */
import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { AssetSyncError, type ErrorCode, needsReconnect } from '../../errors.js'
import { CONNECT_TIMEOUT_MS, DOWNLOAD_ATTEMPTS, RUNTIME_BLOCKING_FETCHES, RUNTIME_PARALLEL_FETCHES } from '../../limits.js'
import type { Clock } from '../../protocol/clock.js'
import type { UpdateEntry } from '../../protocol/messages.js'
import { assertWirePath, printable } from '../fs/paths.js'
import { TransferQueue } from '../fs/transfer-queue.js'
import type { AssetClient, AssetClientOptions } from './client.js'
import { ClientLink, type ConnectedEvent } from './client-link.js'
import type { ReconnectingEvent } from './live-mirror.js'
import { type LocalCopy, LocalCopies } from './local-copies.js'
import { PathSubscriptions } from './path-subscriptions.js'

/** `blocking`: the program waits for it (a `require`); `background`: it may wait (bulk, `_async`). */
export type AssetPriority = 'blocking' | 'background'

/**
 * How a fetch was answered: `downloaded` (bytes moved), `up-to-date` (the server vouched for the
 * local copy), `local` (served from the folder without the server: offline, or `network: false`).
 */
export type AssetFetchAction = 'downloaded' | 'up-to-date' | 'local'

export interface AssetFetchOptions {
  /** Follow the path for `instance`: its later changes arrive as `change` events. Default false. */
  reload?: boolean
  /** The program instance asking (subscriptions belong to it). Default "default". */
  instance?: string
  /** Default `blocking`. */
  priority?: AssetPriority
  /** false: answer from the local folder only (no server asked). Default true. */
  network?: boolean
}

export interface AssetFetchResult {
  /** The wire path asked for. */
  path: string
  /** Absolute path of the local copy, inside `dir`. */
  localPath: string
  /** BLAKE3-256 of the content, lower-case hex. */
  hash: string
  size: number
  action: AssetFetchAction
  /** File payload bytes received for this fetch (0 unless `downloaded`). */
  bytes: number
}

export interface AssetReadOptions {
  /** Default `blocking`. */
  priority?: AssetPriority
  /** Largest file taken into memory (default MAX_READ_BYTES). */
  maxBytes?: number
}

/** A followed file changed on the server; its new version is already at `localPath`. */
export interface AssetChangeEvent {
  path: string
  localPath: string
  hash: string
  size: number
  /** The instances following the path. */
  instances: string[]
}

/** Something was served without the server (offline), or a subscription could not be made. */
export interface AssetWarning {
  path?: string
  code: ErrorCode
  message: string
}

/** The events of NetworkAssets, by name: the listener's arguments. */
export type NetworkAssetsEvents = {
  change: [e: AssetChangeEvent]
  /** Connected: the first time (`reconnect` false) or again after a loss. */
  connected: [e: { server: string; reconnect: boolean; protocol: number; priority: boolean }]
  /** The connection was lost or could not be made (null: closed by us). */
  disconnected: [err: AssetSyncError | null]
  reconnecting: [e: ReconnectingEvent]
  warning: [w: AssetWarning]
  /** No reconnect can help (wrong token, another server key, protocol version): fetches fail with it. */
  fatal: [err: AssetSyncError]
}

export interface NetworkAssetsOptions extends Omit<AssetClientOptions, 'clock'> {
  /** The local asset folder; created if missing. */
  dir: string
  /** Times the reconnect backoff and the waits for a connection; default real time (the connection's own timers keep real time). */
  clock?: Clock
  /** Backoff jitter source, in [0, 1). */
  random?: () => number
  /** How long a fetch that needs the server waits for a (re)connection; default the connect timeout. */
  offlineWaitMs?: number
  /** Background fetches at once (default RUNTIME_PARALLEL_FETCHES); blocking ones get RUNTIME_BLOCKING_FETCHES more. */
  parallel?: number
}

const DEFAULT_INSTANCE = 'default'
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** Files from a server in a local folder, kept current for a running program. Events: NetworkAssetsEvents. */
export class NetworkAssets extends EventEmitter<NetworkAssetsEvents> {
  readonly server: string
  readonly #link: ClientLink
  readonly #local: LocalCopies
  readonly #subs = new PathSubscriptions()
  readonly #queue: TransferQueue<AssetFetchResult>
  readonly #offlineWaitMs: number
  /** Open requests by path (to raise a background one that a blocking fetch now waits on). */
  readonly #inflight = new Map<string, { client: AssetClient; id: number }>()
  /** The hash the program was last given for a path (fetch result or change event). */
  readonly #delivered = new Map<string, string>()
  /** The hash the server last announced for a followed path. */
  readonly #announced = new Map<string, string>()
  readonly #following = new Set<string>()
  #closed = false

  private constructor(opts: NetworkAssetsOptions) {
    super()
    this.server = opts.server
    const { dir: _dir, clock, random, offlineWaitMs, parallel, ...client } = opts
    this.#link = new ClientLink({ client, clock, random })
    this.#local = new LocalCopies(opts.dir, opts.configDir)
    this.#offlineWaitMs = offlineWaitMs ?? opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
    this.#queue = new TransferQueue(parallel ?? RUNTIME_PARALLEL_FETCHES, {
      blockingExtra: RUNTIME_BLOCKING_FETCHES,
      onRaise: (path) => {
        const r = this.#inflight.get(path)
        r?.client.reprioritize(r.id, 'blocking')
      },
    })
    this.#link.on('connected', (e) => this.#onConnected(e))
    this.#link.on('disconnected', (err) => { if (!this.#closed) this.emit('disconnected', err) })
    this.#link.on('reconnecting', (e) => this.emit('reconnecting', e))
    this.#link.on('fatal', (err) => this.emit('fatal', err))
    this.#link.on('update', (entries) => this.#onUpdate(entries))
  }

  /**
   * Opens the local folder and connects. Resolves connected, or offline when the server cannot be
   * reached (local copies are then served, and it keeps trying); rejects on a fatal error (ERR_AUTH,
   * ERR_KEY_MISMATCH, ERR_VERSION) or a folder it cannot create.
   */
  static async open(opts: NetworkAssetsOptions): Promise<NetworkAssets> {
    const assets = new NetworkAssets(opts)
    await assets.#local.root()
    await assets.#link.start()
    return assets
  }

  /** The live connection, or null while offline (e.g. to send a report). */
  get client(): AssetClient | null { return this.#link.client }
  /** Whether a connection is up now. */
  get connected(): boolean { return this.#link.client !== null }
  /** The real path of the local folder. */
  root(): Promise<string> { return this.#local.root() }

  /**
   * The file at wire path `path`, current in the local folder. A local copy is checked by hash
   * (one round trip: `up-to-date`, or the new bytes); a missing one is downloaded atomically.
   * Concurrent fetches of one path share one request. Offline, a local copy is served (`local`,
   * with a `warning`); without one the fetch waits for a reconnection up to `offlineWaitMs`, then
   * fails with the connection's error. Rejects ERR_PATH_REFUSED for a bad path, ERR_NOT_FOUND.
   */
  async fetch(path: string, opts: AssetFetchOptions = {}): Promise<AssetFetchResult> {
    assertWirePath(path)
    this.#assertUsable()
    const instance = opts.instance ?? DEFAULT_INSTANCE
    const priority = opts.priority ?? 'blocking'
    // Subscribe first (the frame leaves before the REQUEST): a change after the check is not missed.
    const subscribed = opts.reload ? this.#subs.add(path, instance, this.#link.client) : null
    const res = opts.network === false
      ? await this.#fromFolder(path)
      : await this.#queue.add(path, priority, () => this.#check(path, priority))
    if (subscribed) {
      await subscribed.catch((err: unknown) => {
        const e = err instanceof AssetSyncError ? err : new AssetSyncError('ERR_INTERNAL', String(err))
        this.emit('warning', { path, code: e.code, message: `cannot follow ${printable(path)}: ${e.message}` })
      })
    }
    // What the followers of a path have: set when following starts, then by each `change`.
    if (opts.reload && !this.#delivered.has(path)) this.#delivered.set(path, res.hash)
    return { ...res }
  }

  /**
   * The bytes of `path`, verified, in memory (no temp file). A local copy in the folder is checked
   * by hash and read when current (or offline, with a `warning`); otherwise the server's bytes are
   * returned without being written.
   */
  async read(path: string, opts: AssetReadOptions = {}): Promise<Buffer> {
    assertWirePath(path)
    this.#assertUsable()
    const local = await this.#local.look(path)
    let client = this.#link.client
    if (!client) {
      if (local) return this.#offlineRead(path, local, this.#link.lastError)
      client = await this.#link.ready(this.#offlineWaitMs)
    }
    try {
      const bytes = await client.read(path, local?.hash ?? null, { maxBytes: opts.maxBytes, priority: opts.priority ?? 'blocking' })
      return bytes ?? await readFile((local as LocalCopy).localPath)
    } catch (err) {
      if (local && needsReconnect(err)) return this.#offlineRead(path, local, err)
      throw err
    }
  }

  /** Adds a change listener (the runtime's AssetProvider); returns the function that removes it. */
  onChange(listener: (change: AssetChangeEvent) => void): () => void {
    this.on('change', listener)
    return () => { this.off('change', listener) }
  }

  /** Drops every path `instance` follows; the server hears about paths nobody follows any more. */
  async release(instance: string): Promise<void> {
    const gone = await this.#subs.release(instance, this.#link.client).catch(() => [])
    for (const p of gone) {
      this.#announced.delete(p)
      this.#delivered.delete(p)
    }
  }

  /** Paths followed now, with their instances. */
  subscriptions(): { path: string; instances: string[] }[] {
    return this.#subs.paths().map((path) => ({ path, instances: this.#subs.instances(path) }))
  }

  /** Closes the connection, stops reconnecting and saves the hash cache. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#link.close()
    await this.#local.save()
  }

  #assertUsable(): void {
    const fatal = this.#link.fatalError
    if (fatal) throw fatal
    if (this.#closed) throw new AssetSyncError('ERR_USAGE', 'NetworkAssets is closed')
  }

  /** Checks `path` with the server (or serves the local copy offline). */
  async #check(path: string, priority: AssetPriority): Promise<AssetFetchResult> {
    const local = await this.#local.look(path)
    for (let lost = 0; ; lost++) {
      let client = this.#link.client
      if (!client) {
        if (local) return this.#offline(path, local, this.#link.lastError)
        client = await this.#link.ready(this.#offlineWaitMs)
      }
      try {
        return await this.#download(client, path, local, priority)
      } catch (err) {
        if (!needsReconnect(err)) throw err
        if (local) return this.#offline(path, local, err)
        // Lost mid-way: wait for the reconnect and ask again (a timeout on a live connection fails).
        if (!client.conn.closed || lost + 1 >= DOWNLOAD_ATTEMPTS) throw err
      }
    }
  }

  async #download(client: AssetClient, path: string, local: LocalCopy | null, priority: AssetPriority): Promise<AssetFetchResult> {
    const target = await this.#local.target(path)
    try {
      const r = await client.download(path, target, local?.hash ?? null, {
        priority,
        onRequest: (id) => this.#inflight.set(path, { client, id }),
      })
      if (r.status === 'up-to-date') {
        const l = local as LocalCopy
        return { path, localPath: l.localPath, hash: hex(l.hash), size: l.size, action: 'up-to-date', bytes: 0 }
      }
      await this.#local.record(path, target, r.meta.hash)
      return { path, localPath: target, hash: hex(r.meta.hash), size: r.meta.size, action: 'downloaded', bytes: r.bytes }
    } finally {
      this.#inflight.delete(path)
    }
  }

  /** `network: false`: the local copy only. */
  async #fromFolder(path: string): Promise<AssetFetchResult> {
    const local = await this.#local.look(path)
    if (!local) throw new AssetSyncError('ERR_NOT_FOUND', `not in the local folder: ${printable(path)}`)
    return { path, localPath: local.localPath, hash: hex(local.hash), size: local.size, action: 'local', bytes: 0 }
  }

  #offline(path: string, local: LocalCopy, err: unknown): AssetFetchResult {
    this.#warnOffline(path, err)
    return { path, localPath: local.localPath, hash: hex(local.hash), size: local.size, action: 'local', bytes: 0 }
  }

  async #offlineRead(path: string, local: LocalCopy, err: unknown): Promise<Buffer> {
    this.#warnOffline(path, err)
    return readFile(local.localPath)
  }

  #warnOffline(path: string, err: unknown): void {
    const e = err instanceof AssetSyncError ? err : null
    this.emit('warning', {
      path,
      code: e?.code ?? 'ERR_CONNECT',
      message: `${this.server} unreachable (${e?.message ?? 'not connected'}); using the local copy of ${printable(path)}`,
    })
  }

  #onConnected(e: ConnectedEvent): void {
    const { client, reconnect } = e
    this.emit('connected', { server: client.server, reconnect, protocol: client.conn.version, priority: client.conn.has('priority') })
    if (!reconnect && this.#subs.size === 0) return
    // A new connection holds no subscriptions: follow again, then re-check every followed path
    // by hash (a change made while away arrives as a `change` event).
    void this.#subs.resubscribe(client).then(() => {
      for (const path of this.#subs.paths()) {
        this.#announced.delete(path)
        void this.#follow(path)
      }
    }, (err: unknown) => {
      const w = err instanceof AssetSyncError ? err : new AssetSyncError('ERR_INTERNAL', String(err))
      if (!client.conn.closed) this.emit('warning', { code: w.code, message: `cannot follow files again after reconnecting: ${w.message}` })
    })
  }

  #onUpdate(entries: UpdateEntry[]): void {
    for (const e of entries) {
      if (e.kind === 'delete') continue // the program keeps its copy; a later save brings a change
      // A path that breaks the wire rules is never followed, so nothing here steers a write.
      if (!this.#subs.has(e.path)) continue
      const h = hex(e.hash)
      if (this.#delivered.get(e.path) === h) continue
      this.#announced.set(e.path, h)
      void this.#follow(e.path)
    }
  }

  /**
   * Brings a followed path to the server's version and emits `change` when the program's copy
   * changed. One loop per path: a change announced while one download runs is fetched after it.
   */
  async #follow(path: string): Promise<void> {
    if (this.#following.has(path)) return
    this.#following.add(path)
    try {
      for (let i = 0; i < DOWNLOAD_ATTEMPTS && this.#subs.has(path) && !this.#closed; i++) {
        let res: AssetFetchResult
        try {
          res = await this.#queue.add(path, 'blocking', () => this.#check(path, 'blocking'))
        } catch (err) {
          const e = err instanceof AssetSyncError ? err : new AssetSyncError('ERR_INTERNAL', String(err))
          // Deleted meanwhile: the delete is in the UPDATE; otherwise the next reconnect re-checks.
          if (e.code !== 'ERR_NOT_FOUND') this.emit('warning', { path, code: e.code, message: `cannot fetch the new ${printable(path)}: ${e.message}` })
          return
        }
        if (res.action === 'local') return // offline: re-checked after the reconnect
        const before = this.#delivered.get(path)
        if (before !== res.hash && this.#subs.has(path)) {
          this.#delivered.set(path, res.hash)
          this.emit('change', { path, localPath: res.localPath, hash: res.hash, size: res.size, instances: this.#subs.instances(path) })
        }
        const want = this.#announced.get(path)
        if (want === undefined || want === res.hash) return
      }
    } finally {
      this.#following.delete(path)
    }
  }
}
