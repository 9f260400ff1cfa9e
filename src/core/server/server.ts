/**
 * AssetServer: indexes a folder and serves it to authenticated clients (requests, manifests,
 * subscriptions with pushed updates). Never prints: it emits events the commands render.
 */
import { EventEmitter } from 'node:events'
import { realpath, stat } from 'node:fs/promises'
import type { KeyPair } from '@hyperswarm/secret-stream'
import { AssetSyncError } from '../../errors.js'
import { DEFAULT_PORT, MAX_SUBSCRIPTIONS_PER_CLIENT, SERVER_READ_BUFFERS, SERVER_READ_BYTES } from '../../limits.js'
import type { Connection } from '../../protocol/connection.js'
import { ServerEndpoint, type TimingOptions } from '../../protocol/endpoint.js'
import type { TransportName } from '../../protocol/transport.js'
import { HashCache, cacheFileFor } from '../fs/hash-cache.js'
import { ignoreMatcher } from '../fs/ignore.js'
import { configDir, loadIdentity } from '../fs/keys.js'
import { BufferPool } from '../fs/pool.js'
import { planUpdates } from './changes.js'
import { ClientSession } from './session.js'
import { type ScanResult, Store } from './store.js'
import { Subscriptions } from './subscriptions.js'
import { FolderWatcher } from './watcher.js'

export interface AssetServerOptions extends TimingOptions {
  /** Folder to serve. */
  root: string
  /** Address to bind; default 0.0.0.0. */
  host?: string
  /** Port; default 7420, 0 picks a free one. */
  port?: number
  transport?: TransportName
  /** Access token clients must present; null/undefined for none. */
  token?: string | null
  /** Globs to ignore on top of the defaults. */
  ignore?: string[]
  /** Where the identity and hash cache live; default configDir(). */
  configDir?: string
  /** Use this identity instead of the one in the config dir. */
  keyPair?: KeyPair
  maxClients?: number
  /** Quiet time before a changed file is announced; default SETTLE_MS. */
  settleMs?: number
  /** Watch the folder and push changes to subscribers (default true). */
  watch?: boolean
}


/**
 * Events: 'connected' ({remote}), 'disconnected' ({remote, reason}), 'rejected' ({remote, code,
 * message}) for clients that failed the handshake or auth, 'refused' ({remote, path, reason}),
 * 'subscriptions' ({remote, action: subscribe|unsubscribe|dropped, patterns, released}),
 * 'batch' ({changes: [{path, action}], clients}) for each settled change set, 'error' (err).
 */
export class AssetServer extends EventEmitter {
  readonly root: string
  readonly store: Store
  readonly publicKey: Buffer
  readonly scan: ScanResult
  readonly #endpoint: ServerEndpoint
  readonly #sessions = new Set<ClientSession>()
  /** File reads of every transfer share these (bounded memory whatever the number of clients). */
  readonly #readBuffers = new BufferPool(SERVER_READ_BUFFERS, SERVER_READ_BYTES)
  readonly subscriptions = new Subscriptions<ClientSession>()
  #watcher: FolderWatcher | null = null
  #batches: Promise<void> = Promise.resolve()
  /**
   * Each path's hash as last announced to subscribers (or indexed at start). A batch is diffed
   * against this, not against the store: a REQUEST for a changed file refreshes the store before
   * the watcher's batch arrives, and the change must still be pushed.
   */
  readonly #published = new Map<string, Uint8Array>()

  private constructor(root: string, store: Store, endpoint: ServerEndpoint, publicKey: Buffer, scan: ScanResult) {
    super()
    this.root = root
    this.store = store
    this.#endpoint = endpoint
    this.publicKey = publicKey
    this.scan = scan
    for (const p of store.paths()) this.#published.set(p, (store.get(p) as { hash: Uint8Array }).hash)
    // Without a listener, an 'error' event would throw; the watcher's errors are not fatal.
    this.on('error', () => {})
    endpoint.on('connection', (conn: Connection) => this.#onConnection(conn))
    endpoint.on('rejected', (remote: string, err: AssetSyncError) => {
      this.emit('rejected', { remote, code: err.code ?? 'ERR_INTERNAL', message: err.message })
    })
  }

  /** Indexes `opts.root`, then listens. Resolves once clients can connect. */
  static async start(opts: AssetServerOptions): Promise<AssetServer> {
    let root: string
    try {
      root = await realpath(opts.root)
      if (!(await stat(root)).isDirectory()) throw new Error('not a directory')
    } catch (err) {
      throw new AssetSyncError('ERR_NOT_FOUND', `cannot serve ${opts.root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
    }
    const dir = opts.configDir ?? configDir()
    const keyPair = opts.keyPair ?? (await loadIdentity(dir))
    const cache = await HashCache.load(cacheFileFor(dir, 'serve', root))
    const store = new Store(root, ignoreMatcher(opts.ignore ?? []), cache)
    const scan = await store.scan()
    const endpoint = await ServerEndpoint.listen({
      ...opts,
      transport: opts.transport ?? 'udp',
      host: opts.host ?? '0.0.0.0',
      port: opts.port ?? DEFAULT_PORT,
      keyPair,
      token: opts.token ?? null,
    })
    const server = new AssetServer(root, store, endpoint, keyPair.publicKey, scan)
    if (opts.watch !== false) {
      const watcher = new FolderWatcher(root, ignoreMatcher(opts.ignore ?? []), () => store.paths(), opts.settleMs)
      watcher.on('batch', (paths: string[]) => server.#enqueueBatch(paths))
      watcher.on('error', (err: unknown) => server.emit('error', err))
      await watcher.start()
      server.#watcher = watcher
    }
    return server
  }

  /** Settled paths are processed one batch at a time, in order. */
  #enqueueBatch(paths: string[]): void {
    this.#batches = this.#batches.then(() => this.#onBatch(paths)).catch((err: unknown) => { this.emit('error', err) })
  }

  /** Resolves when every batch handed over so far has been pushed (tests, shutdown). */
  idle(): Promise<void> { return this.#batches }

  async #onBatch(paths: string[]): Promise<void> {
    const before = new Map(paths.map((p) => [p, this.#published.get(p) ?? null]))
    const after = new Map<string, Awaited<ReturnType<Store['refresh']>>>()
    for (const p of paths) {
      const now = await this.store.refresh(p)
      after.set(p, now)
      if (now) this.#published.set(p, now.hash)
      else this.#published.delete(p)
    }
    const plan = planUpdates(before, after, (p) => this.subscriptions.subscribers(p))
    if (plan.changes.length === 0) return
    for (const [session, entries] of plan.perClient) {
      for (const frame of plan.frames(entries)) session.conn.send({ type: 'update', entries: frame })
    }
    this.emit('batch', { changes: plan.changes, clients: plan.perClient.size })
  }

  get transport(): TransportName { return this.#endpoint.transport }
  address(): { host: string; port: number } { return this.#endpoint.address() }
  get clients(): number { return this.#sessions.size }

  async close(): Promise<void> {
    await this.#watcher?.close()
    await this.#batches
    await this.#endpoint.close()
    await this.store.saveCache()
  }

  #onConnection(conn: Connection): void {
    const session = new ClientSession(conn, this.store, this.#readBuffers)
    this.#sessions.add(session)
    session.on('refused', (r: { path: string; reason: string }) => this.emit('refused', { remote: conn.remote, ...r }))
    session.onSubscribe = (msg) => {
      if (msg.subscribe && this.subscriptions.held(session) + this.subscriptions.newPairs(session, msg.patterns, msg.instanceId) > MAX_SUBSCRIPTIONS_PER_CLIENT) {
        // Each pattern costs a compiled matcher: a connection may not hold unbounded numbers.
        conn.send({ type: 'error', id: msg.id, code: 'ERR_LIMIT', message: `more than ${MAX_SUBSCRIPTIONS_PER_CLIENT} subscriptions on one connection` })
        return
      }
      if (msg.subscribe) {
        try {
          this.subscriptions.subscribe(session, msg.patterns, msg.instanceId)
        } catch (err) {
          // over the pattern budget (ERR_LIMIT) or malformed (ERR_USAGE): refused, nothing changed
          if (!(err instanceof AssetSyncError)) throw err
          conn.send({ type: 'error', id: msg.id, code: err.code, message: err.message })
          return
        }
      } else this.subscriptions.unsubscribe(session, msg.patterns, msg.instanceId)
      conn.send({ type: 'subscribe-ack', id: msg.id })
      this.emit('subscriptions', {
        remote: conn.remote, action: msg.subscribe ? 'subscribe' : 'unsubscribe', instanceId: msg.instanceId,
        patterns: this.subscriptions.patternsOf(session).size,
      })
    }
    this.emit('connected', { remote: conn.remote })
    conn.once('close', (err: AssetSyncError | null) => {
      const held = this.subscriptions.patternsOf(session).size
      const released = this.subscriptions.dropClient(session)
      if (held > 0) this.emit('subscriptions', { remote: conn.remote, action: 'dropped', patterns: held, released: released.length })
      this.#sessions.delete(session)
      this.emit('disconnected', { remote: conn.remote, reason: err?.message ?? 'closed' })
    })
  }
}
