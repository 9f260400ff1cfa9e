/**
 * A connection to one server that comes back by itself: the first attempt at `start()`, then, after
 * any loss (or a failed first attempt), attempts under the retry policy `watch` uses too
 * (retry.ts: jittered backoff on an injected clock, `reconnecting` events) until one succeeds,
 * `close()` is called, or a fatal error (wrong token, another server key, no common protocol
 * version; see isFatal) ends it. Meanwhile its user goes on offline (NetworkAssets serves local copies).
 * Callers that need the server ask `ready(ms)`: the live client, or one within `ms`. Never prints.
 */
import { EventEmitter } from 'node:events'
import { AssetSyncError, isFatal } from '../../errors.js'
import type { Clock } from '../../protocol/clock.js'
import type { UpdateEntry } from '../../protocol/messages.js'
import { AssetClient, type AssetClientOptions } from './client.js'
import { foregroundClock } from './foreground-clock.js'
import { type ReconnectingEvent, RetryPolicy } from './retry.js'

export interface ClientLinkOptions {
  client: AssetClientOptions
  /** Times the backoff and the waits of `ready`; default real time. */
  clock?: Clock
  /** The jitter's random source, in [0, 1); default Math.random. */
  random?: () => number
}

/** A connection came up: the first one (`reconnect` false) or after a loss. */
export interface ConnectedEvent {
  client: AssetClient
  reconnect: boolean
}

/** The events of a ClientLink, by name: the listener's arguments. */
export type ClientLinkEvents = {
  connected: [e: ConnectedEvent]
  /** The connection was lost, or an attempt failed (null: closed without an error). */
  disconnected: [err: AssetSyncError | null]
  reconnecting: [e: ReconnectingEvent]
  /** The server pushed changes (UPDATE) on the current connection. */
  update: [entries: UpdateEntry[]]
  /** No attempt can succeed (see isFatal): the link has stopped. */
  fatal: [err: AssetSyncError]
}

const asAssetError = (err: unknown): AssetSyncError =>
  err instanceof AssetSyncError ? err : new AssetSyncError('ERR_CONNECT', `cannot connect: ${(err as Error)?.message ?? err}`)

export class ClientLink extends EventEmitter<ClientLinkEvents> {
  readonly #opts: ClientLinkOptions
  readonly #clock: Clock
  readonly #retry: RetryPolicy
  #client: AssetClient | null = null
  #everConnected = false
  #lastError: AssetSyncError | null = null
  #fatal: AssetSyncError | null = null
  #closed = false
  #looping = false

  constructor(opts: ClientLinkOptions) {
    super()
    this.#opts = opts
    this.#clock = opts.clock ?? foregroundClock
    this.#retry = new RetryPolicy({ connectTimeoutMs: opts.client.connectTimeoutMs, clock: this.#clock, random: opts.random, forever: true })
  }

  /** The live client, or null while disconnected. */
  get client(): AssetClient | null { return this.#client }
  /** Why the last attempt failed or the last connection ended (null: none failed). */
  get lastError(): AssetSyncError | null { return this.#lastError }
  /** The fatal error that stopped the link, if any. */
  get fatalError(): AssetSyncError | null { return this.#fatal }
  get closed(): boolean { return this.#closed }

  /**
   * The first attempt. Resolves connected, or, after a failure a retry may cure (server down,
   * timeout), disconnected with the reconnect loop running; rejects on a fatal error.
   */
  async start(): Promise<void> {
    try {
      await this.#connect()
    } catch (err) {
      const e = asAssetError(err)
      if (isFatal(e)) {
        this.#fatal = e
        this.#closed = true
        throw e
      }
      this.#lastError = e
      this.emit('disconnected', e)
      void this.#loop()
    }
  }

  /**
   * The live client; while disconnected, waits up to `ms` for the reconnect loop. Rejects with
   * the fatal error, ERR_CONNECTION_LOST after close(), or the last connection error after `ms`.
   */
  ready(ms: number): Promise<AssetClient> {
    if (this.#fatal) return Promise.reject(this.#fatal)
    if (this.#closed) return Promise.reject(new AssetSyncError('ERR_CONNECTION_LOST', 'closed'))
    if (this.#client) return Promise.resolve(this.#client)
    return new Promise((resolve, reject) => {
      const done = (): void => {
        cancel()
        this.off('connected', onConnected)
        this.off('fatal', onFatal)
        this.off('disconnected', onClosed)
      }
      const onConnected = (e: ConnectedEvent): void => { done(); resolve(e.client) }
      const onFatal = (err: AssetSyncError): void => { done(); reject(err) }
      const onClosed = (): void => { if (this.#closed) { done(); reject(new AssetSyncError('ERR_CONNECTION_LOST', 'closed')) } }
      const cancel = this.#clock.after(ms, () => {
        done()
        reject(this.#lastError ?? new AssetSyncError('ERR_CONNECT', `no connection to ${this.#opts.client.server} within ${ms} ms`))
      })
      this.on('connected', onConnected)
      this.on('fatal', onFatal)
      this.on('disconnected', onClosed)
    })
  }

  /** Closes the connection and stops reconnecting. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    const c = this.#client
    this.#client = null
    c?.close()
    this.#retry.stop()
    this.emit('disconnected', null)
  }

  async #connect(): Promise<void> {
    const client = await AssetClient.connect(this.#opts.client)
    if (this.#closed) {
      client.close()
      return
    }
    this.#client = client
    this.#lastError = null
    const reconnect = this.#everConnected
    this.#everConnected = true
    client.on('update', (entries) => { if (this.#client === client) this.emit('update', entries) })
    client.once('close', (err) => {
      if (this.#client !== client) return
      this.#client = null
      if (this.#closed) return
      this.#lastError = err ?? new AssetSyncError('ERR_CONNECTION_LOST', `connection to ${client.server} closed`)
      this.emit('disconnected', this.#lastError)
      void this.#loop()
    })
    this.emit('connected', { client, reconnect })
  }

  /** Attempts with backoff until connected, closed or fatal (RetryPolicy, retry.ts). */
  async #loop(): Promise<void> {
    if (this.#looping) return
    this.#looping = true
    try {
      await this.#retry.run(() => this.#connect(), (e, err) => {
        if (err) this.#lastError = asAssetError(err)
        this.emit('reconnecting', e)
      }, { reason: this.#lastError?.message })
    } catch (err) {
      // Only what no retry can help gets here (isFatal).
      const e = asAssetError(err)
      this.#fatal = e
      this.#closed = true
      this.emit('fatal', e)
    } finally {
      this.#looping = false
    }
  }
}
