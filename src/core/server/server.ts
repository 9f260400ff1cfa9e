/**
 * AssetServer: serves an AssetSource (by default a folder) to authenticated clients — requests,
 * manifests, subscriptions — and pushes the batches of a ChangeFeed (by default the folder's
 * watcher) to the clients subscribed to them. Never prints: it emits typed events
 * (server-events.ts) that the commands render.
 *
 * It owns the endpoint, the sessions, the subscription registry and the fan-out of each batch;
 * where entries, bytes and changes come from is behind the two seams (source.ts, feed.ts).
 * It keeps its own Metrics (Prometheus series) and StatusTracker (StatusJson) up to date as
 * things happen; `serve --http` serves them, and STATUS frames carry the status to clients.
 */
import { EventEmitter } from 'node:events'
import { AssetSyncError } from '../../errors.js'
import {
  DEFAULT_PORT, MAX_SUBSCRIPTIONS_PER_CLIENT, SERVER_READ_BUFFERS, SERVER_READ_BYTES, WATCHER_LAG_MAX_MS,
} from '../../limits.js'
import { ServerEndpoint, type TimingOptions } from '../../protocol/endpoint.js'
import type { KeyPair } from '../../protocol/keypair.js'
import { PROTOCOL_VERSION, type UpdateEntry } from '../../protocol/messages.js'
import { fitStatus } from '../../protocol/status-json.js'
import type { TransportName } from '../../protocol/transport.js'
import { VERSION } from '../../version.js'
import { cacheFileFor } from '../fs/hash-cache.js'
import { configDir, loadIdentity } from '../fs/keys.js'
import { BufferPool } from '../fs/pool.js'
import { checkBatch } from './batch-check.js'
import { fanOut, splitFrames } from './changes.js'
import type { DirectProvider } from './direct.js'
import type { ChangeBatch, ChangeFeed, ChangePublisher } from './feed.js'
import { FolderFeed } from './folder-feed.js'
import { FolderSource } from './folder-source.js'
import { Metrics } from './metrics.js'
import type { AssetServerEvents } from './server-events.js'
import { ClientSession, type SessionConnection } from './session.js'
import type { AssetSource, ScanResult, SkippedPath } from './source.js'
import { StatusTracker, errorLocation } from './status.js'
import { Subscriptions } from './subscriptions.js'

export interface AssetServerOptions extends TimingOptions {
  /** Folder to serve: a FolderSource over it (and a FolderFeed, unless `watch` is false). Give this or `source`. */
  root?: string
  /** Serve this source instead of a folder. The server scans it in start() and closes it in close(). */
  source?: AssetSource
  /**
   * Where change batches come from. Default: a FolderFeed when the source is a folder and `watch`
   * is not false; otherwise none. null: none. The server starts it after the scan and closes it.
   */
  feed?: ChangeFeed | null
  /** Each batch, once pushed to this server's subscribers, is published to each of these (e.g. NATS). */
  forward?: readonly ChangePublisher[]
  /** Address to bind; default 0.0.0.0. */
  host?: string
  /** Port; default 7420, 0 picks a free one. */
  port?: number
  transport?: TransportName
  /** Access token clients must present; null/undefined for none. */
  token?: string | null
  /** Globs to ignore on top of the defaults (with `root`). */
  ignore?: string[]
  /** Where the identity and hash cache live; default configDir(). */
  configDir?: string
  /** Use this identity instead of the one in the config dir. */
  keyPair?: KeyPair
  maxClients?: number
  /** Quiet time before a changed file is announced; default SETTLE_MS (the default folder feed). */
  settleMs?: number
  /** Watch the folder and push changes to subscribers (default true; with `root`). */
  watch?: boolean
  /** Answers DIRECT (`pull --direct`): a server that publishes to or serves from an S3 origin. */
  direct?: DirectProvider | null
  /** Include prom-client's default Node.js process metrics in `metrics` (default true). */
  processMetrics?: boolean
}

/**
 * Save → announced for a batch: now minus its newest mtime. Null when that is unknown: only
 * deletes, or a newest mtime older than WATCHER_LAG_MAX_MS (a copy that kept an old mtime).
 */
export function batchLag(entries: readonly UpdateEntry[], now: number): number | null {
  let newest = -Infinity
  for (const e of entries) if (e.kind !== 'delete' && e.mtime > newest) newest = e.mtime
  if (newest === -Infinity || now - newest > WATCHER_LAG_MAX_MS) return null
  return Math.max(0, now - newest)
}

type Listener<K extends keyof AssetServerEvents> = (event: AssetServerEvents[K]) => void

/** Serves assets until close(). Events: see AssetServerEvents (typed on/once/off/emit). */
export class AssetServer extends EventEmitter {
  /** The served folder's real path, or null when serving another source. */
  readonly root: string | null
  readonly source: AssetSource
  readonly publicKey: Buffer
  /** What indexing the source at start did. */
  readonly scan: ScanResult
  readonly #endpoint: ServerEndpoint
  readonly #sessions = new Set<ClientSession>()
  /** File reads of every transfer share these (bounded memory whatever the number of clients). */
  readonly #readBuffers = new BufferPool(SERVER_READ_BUFFERS, SERVER_READ_BYTES)
  readonly subscriptions = new Subscriptions<ClientSession>()
  readonly #forward: readonly ChangePublisher[]
  #feed: ChangeFeed | null = null
  #direct: DirectProvider | null = null
  /** This server's Prometheus series (`serve --http` serves them as /metrics). */
  readonly metrics: Metrics
  /** What this server is doing, as StatusJson: /status, the live page and STATUS replies. */
  readonly status: StatusTracker

  private constructor(source: AssetSource, endpoint: ServerEndpoint, publicKey: Buffer, scan: ScanResult, forward: readonly ChangePublisher[], processMetrics: boolean) {
    super()
    this.source = source
    this.root = source instanceof FolderSource ? source.root : null
    this.#endpoint = endpoint
    this.publicKey = publicKey
    this.scan = scan
    this.#forward = forward
    this.metrics = new Metrics({ version: VERSION, processMetrics })
    const { host, port } = endpoint.address()
    this.status = new StatusTracker({
      version: VERSION, protocol: PROTOCOL_VERSION, key: publicKey.toString('hex'), transport: endpoint.transport,
      address: `${endpoint.transport}://${host.includes(':') ? `[${host}]` : host}:${port}`, files: () => source.size,
    })
    // Without a listener, an 'error' event would throw; the feed's errors are not fatal.
    this.on('error', () => {})
    endpoint.on('connection', (conn: SessionConnection) => this.#onConnection(conn))
    endpoint.on('rejected', (remote: string, err: AssetSyncError) => {
      const code = err.code ?? 'ERR_INTERNAL'
      this.metrics.handshakeRefused(code)
      this.emit('rejected', { remote, code, message: err.message })
    })
    if (source instanceof FolderSource) {
      source.on('skipped', (s: SkippedPath) => this.emit('skipped', s))
      source.on('rescanned', (r: ScanResult) => this.emit('reindexed', { files: r.files, hashed: r.hashed, ms: r.ms }))
    }
  }

  /** Scans the source (by default indexes `opts.root`), listens, starts the feed. Resolves once clients can connect. */
  static async start(opts: AssetServerOptions): Promise<AssetServer> {
    if ((opts.root === undefined) === (opts.source === undefined)) {
      throw new AssetSyncError('ERR_USAGE', 'AssetServer.start needs either `root` or `source` (one of them)')
    }
    const dir = opts.configDir ?? configDir()
    const source = opts.source ?? await FolderSource.open({
      root: opts.root as string, ignore: opts.ignore ?? [], cacheFile: (real) => cacheFileFor(dir, 'serve', real),
    })
    const keyPair = opts.keyPair ?? (await loadIdentity(dir))
    let feed = opts.feed
    if (feed === undefined) {
      feed = source instanceof FolderSource && opts.watch !== false ? new FolderFeed(source, { settleMs: opts.settleMs }) : null
    }
    let server: AssetServer | null = null
    let endpoint: ServerEndpoint | null = null
    try {
      const scan = await source.scan()
      endpoint = await ServerEndpoint.listen({
        ...opts,
        transport: opts.transport ?? 'udp',
        host: opts.host ?? '0.0.0.0',
        port: opts.port ?? DEFAULT_PORT,
        keyPair,
        token: opts.token ?? null,
      })
      server = new AssetServer(source, endpoint, keyPair.publicKey, scan, opts.forward ?? [], opts.processMetrics !== false)
      server.#direct = opts.direct ?? null
      if (feed) {
        const s = server
        await feed.start({
          deliver: (batch) => s.#deliver(batch),
          error: (err) => { s.emit('error', err) },
          fail: (error) => { s.emit('fatal', { error }) },
        })
        server.#feed = feed
      }
      return server
    } catch (err) {
      await feed?.close().catch(() => {})
      await endpoint?.close().catch(() => {})
      await source.close().catch(() => {})
      throw err
    }
  }

  /**
   * Pushes one batch to the clients subscribed to its paths, then forwards it. Never rejects:
   * a failure is an 'error' event, and the feed goes on with its next batch.
   */
  async #deliver(batch: ChangeBatch): Promise<void> {
    try {
      // A feed may carry batches from another process: entries that break the wire rules are
      // dropped here, before they reach a session.
      const { entries, problems } = checkBatch(batch.entries)
      for (const p of problems) this.emit('error', p)
      if (entries.length === 0) return
      // The batch is ready now: the feed delivers it as soon as it has settled and been diffed.
      const lagMs = batchLag(entries, Date.now())
      const plan = fanOut(entries, (p) => this.subscriptions.subscribers(p))
      for (const [session, list] of plan.perClient) {
        for (const frame of splitFrames(list)) session.conn.send({ type: 'update', entries: frame })
      }
      this.status.batch({ changes: plan.changes, recipients: [...plan.perClient.keys()].map((s) => s.conn.remote), lagMs })
      this.metrics.batchPushed(plan.changes.length, lagMs)
      this.emit('batch', { changes: plan.changes, clients: plan.perClient.size })
      for (const to of this.#forward) {
        try {
          await to.publish({ entries })
        } catch (err) {
          this.emit('error', err)
        }
      }
    } catch (err) {
      this.emit('error', err)
    }
  }

  /** Resolves when every batch the feed has handed over so far has been pushed (tests, shutdown). */
  async idle(): Promise<void> { await this.#feed?.idle() }

  get transport(): TransportName { return this.#endpoint.transport }
  address(): { host: string; port: number } { return this.#endpoint.address() }
  get clients(): number { return this.#sessions.size }
  /** The feed batches come from (null: none). */
  get feed(): ChangeFeed | null { return this.#feed }

  /** Stops the feed (pushing what it already had), closes every connection, then the source. */
  async close(): Promise<void> {
    await this.#feed?.close()
    await this.#endpoint.close()
    await this.source.close()
  }

  override on<K extends keyof AssetServerEvents>(event: K, listener: Listener<K>): this {
    return super.on(event, listener)
  }

  override once<K extends keyof AssetServerEvents>(event: K, listener: Listener<K>): this {
    return super.once(event, listener)
  }

  override off<K extends keyof AssetServerEvents>(event: K, listener: Listener<K>): this {
    return super.off(event, listener)
  }

  override emit<K extends keyof AssetServerEvents>(event: K, payload: AssetServerEvents[K]): boolean {
    return super.emit(event, payload)
  }

  #onConnection(conn: SessionConnection): void {
    const { metrics, status } = this
    const transport = this.#endpoint.transport
    const session = new ClientSession(conn, this.source, this.#readBuffers, metrics)
    this.#sessions.add(session)
    metrics.connectionOpened(transport)
    const stopCounting = metrics.watchBytes(conn)
    status.clientConnected({
      remote: conn.remote,
      transport,
      bytes: () => ({ sent: conn.bytesSent, received: conn.bytesReceived }),
      subscriptions: () => [...this.subscriptions.patternsOf(session)].map(([pattern, ids]) => ({ pattern, instances: [...ids].sort((a, b) => a - b) })),
    })
    session.on('refused', (r: { path: string; reason: string }) => this.emit('refused', { remote: conn.remote, ...r }))
    session.on('internal', (r: { frame: string; error: unknown }) => {
      const why = (r.error as Error)?.message ?? String(r.error)
      this.emit('internal', { remote: conn.remote, message: `internal error while handling a ${r.frame} frame: ${why}`, cause: r.error })
    })
    session.onSubscribe = (msg) => {
      if (msg.subscribe && this.subscriptions.held(session) + this.subscriptions.newPairs(session, msg.patterns, msg.instanceId) > MAX_SUBSCRIPTIONS_PER_CLIENT) {
        // Each pattern costs a compiled matcher: a connection may not hold unbounded numbers.
        metrics.error('ERR_LIMIT')
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
      metrics.subscriptions(this.subscriptions.total)
      status.changed()
      this.emit('subscriptions', {
        remote: conn.remote, action: msg.subscribe ? 'subscribe' : 'unsubscribe', instanceId: msg.instanceId,
        patterns: this.subscriptions.patternsOf(session).size,
      })
    }
    session.onReport = (msg) => {
      metrics.report(msg.ok)
      const kept = status.clientReport(conn.remote, { ok: msg.ok, paths: msg.paths, ms: msg.ms, error: msg.error })
      const where = kept?.error ?? (msg.error ? errorLocation(msg.error) : null)
      this.emit('report', {
        remote: conn.remote, paths: msg.paths, ok: msg.ok, error: msg.error, file: where?.file ?? null, line: where?.line ?? null, ms: msg.ms,
      })
    }
    session.statusJson = (maxBytes) => fitStatus(status.snapshot(), maxBytes)
    const direct = this.#direct
    if (direct) {
      session.onDirect = (msg) => {
        direct.urls(msg.keys).then(
          (r) => { conn.send({ type: 'direct-reply', id: msg.id, store: direct.store, expires: r.expires, urls: r.urls }) },
          (err: unknown) => { conn.send({ type: 'error', id: msg.id, code: 'ERR_INTERNAL', message: `cannot sign URLs: ${(err as Error)?.message ?? err}` }) },
        )
      }
    }
    this.emit('connected', { remote: conn.remote })
    conn.once('close', (err: AssetSyncError | null) => {
      if (err?.code === 'ERR_INTERNAL') {
        // A handler threw while the frame was delivered (frame-channel.ts): the connection ended.
        const cause = err.cause ?? err
        const why = (cause as Error)?.message ?? String(cause)
        this.emit('internal', { remote: conn.remote, message: cause === err ? err.message : `${err.message}: ${why}`, cause })
      }
      stopCounting()
      metrics.connectionClosed(transport)
      // A peer that went away is how connections end; anything else is an error met while serving.
      if (err && err.code !== 'ERR_CONNECTION_LOST') metrics.error(err.code)
      const held = this.subscriptions.patternsOf(session).size
      const released = this.subscriptions.dropClient(session)
      metrics.subscriptions(this.subscriptions.total)
      status.clientDisconnected(conn.remote)
      if (held > 0) this.emit('subscriptions', { remote: conn.remote, action: 'dropped', patterns: held, released: released.length })
      this.#sessions.delete(session)
      this.emit('disconnected', { remote: conn.remote, reason: err?.message ?? 'closed' })
    })
  }
}
