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
  DEFAULT_PORT, MAX_SUBSCRIPTIONS_PER_CLIENT, SERVE_LISTEN_WAIT_MS, SERVER_READ_BUFFERS, SERVER_READ_BYTES, SERVER_SET_DFA_CELLS,
  WATCHER_LAG_MAX_MS,
} from '../../limits.js'
import type { AuthFailureBurst } from '../../protocol/auth-throttle.js'
import { type RejectReason, ServerEndpoint, type ServeEndpointOptions, type TimingOptions } from '../../protocol/endpoint.js'
import type { KeyPair } from '../../protocol/keypair.js'
import { PROTOCOL_VERSION, type UpdateEntry } from '../../protocol/messages.js'
import { fitStatus } from '../../protocol/status-json.js'
import type { TransportName } from '../../protocol/transport.js'
import { VERSION } from '../../version.js'
import { cacheFileFor } from '../fs/hash-cache.js'
import { configDir, loadIdentity } from '../fs/keys.js'
import { BufferPool } from '../fs/pool.js'
import { checkBatch } from './batch-check.js'
import { fanOutInSlices } from './batch-fanout.js'
import { splitFrames } from './changes.js'
import type { DirectProvider } from './direct.js'
import type { ChangeBatch, ChangeFeed, ChangePublisher } from './feed.js'
import { FolderFeed } from './folder-feed.js'
import { FolderSource } from './folder-source.js'
import { MatchScheduler } from './match-work.js'
import { MemoryBudget, patternSetBytes } from './memory-budget.js'
import { Metrics } from './metrics.js'
import type { AssetServerEvents } from './server-events.js'
import { ClientSession } from './session.js'
import type { SessionConnection } from './session-types.js'
import type { AssetSource, ScanResult, SkippedPath } from './source.js'
import { StatusTracker, errorLocation } from './status.js'
import { Subscriptions } from './subscriptions.js'

export interface AssetServerOptions extends TimingOptions {
  /** Folder to serve: a FolderSource over it (and a FolderFeed, unless `watch` is false). Give this or `source`. */
  root?: string
  /**
   * Serve this source instead of a folder. The server scans it in start() (or, if it has `index`,
   * indexes it, listening after at most `listenWaitMs`) and closes it in close().
   */
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
  /** Authenticated connections at once (default MAX_CLIENTS). */
  maxClients?: number
  /** Handshake slots in total and per source address, and the handshake deadline (issue 12; defaults in src/limits.ts). */
  maxPreAuth?: number
  maxPreAuthPerAddr?: number
  connectTimeoutMs?: number
  /** What wrong tokens cost (defaults: AUTH_FAILURE_* in src/limits.ts). */
  authThrottle?: ServeEndpointOptions['authThrottle']
  /** Server memory per connection and in all (defaults CONNECTION_MEMORY_BYTES, SERVER_MEMORY_BYTES); for tests. */
  memory?: { perConnection?: number; total?: number }
  /** Quiet time before a changed file is announced; default SETTLE_MS (the default folder feed). */
  settleMs?: number
  /** Watch the folder and push changes to subscribers (default true; with `root`). */
  watch?: boolean
  /** Answers DIRECT (`pull --direct`): a server that publishes to or serves from an S3 origin. */
  direct?: DirectProvider | null
  /** Include prom-client's default Node.js process metrics in `metrics` (default true). */
  processMetrics?: boolean
  /**
   * How long start() waits for a source with `index` (a folder) to be indexed before it resolves
   * and the rest is indexed in the background; default SERVE_LISTEN_WAIT_MS. Infinity: wait for all.
   */
  listenWaitMs?: number
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
  #scan: ScanResult | null
  readonly #started = performance.now()
  /** Resolves with what indexing the source did, once it is complete. */
  readonly indexed: Promise<ScanResult>
  readonly #endpoint: ServerEndpoint
  readonly #sessions = new Set<ClientSession>()
  /** File reads of every transfer share these (bounded memory whatever the number of clients). */
  readonly #readBuffers = new BufferPool(SERVER_READ_BUFFERS, SERVER_READ_BYTES)
  readonly subscriptions = new Subscriptions<ClientSession>({ maxCells: SERVER_SET_DFA_CELLS })
  /** Glob matching for clients, one slice per event-loop turn (issue 12). */
  readonly matching = new MatchScheduler()
  /** What connections make the server hold (issue 12). */
  readonly memory: MemoryBudget
  readonly #forward: readonly ChangePublisher[]
  #feed: ChangeFeed | null = null
  #direct: DirectProvider | null = null
  /** This server's Prometheus series (`serve --http` serves them as /metrics). */
  readonly metrics: Metrics
  /** What this server is doing, as StatusJson: /status, the live page and STATUS replies. */
  readonly status: StatusTracker

  private constructor(
    source: AssetSource, endpoint: ServerEndpoint, publicKey: Buffer, indexed: Promise<ScanResult>, forward: readonly ChangePublisher[], processMetrics: boolean,
    memory: MemoryBudget,
  ) {
    super()
    this.memory = memory
    this.source = source
    this.root = source instanceof FolderSource ? source.root : null
    this.#endpoint = endpoint
    this.publicKey = publicKey
    this.#scan = null
    this.indexed = indexed.then((r) => {
      this.#scan = r
      return r
    })
    this.indexed.catch(() => {}) // start() or the 'fatal' event reports it
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
    endpoint.on('rejected', (remote: string, err: AssetSyncError, reason: RejectReason) => {
      const code = err.code ?? 'ERR_INTERNAL'
      this.metrics.handshakeRefused(code)
      this.emit('rejected', { remote, code, message: err.message, reason })
    })
    endpoint.on('auth-failures', (b: AuthFailureBurst) => this.emit('auth-failures', { remote: b.remote, count: b.count, delayMs: b.delayMs }))
    if (source instanceof FolderSource) {
      source.on('skipped', (s: SkippedPath) => this.emit('skipped', s))
      source.on('rescanned', (r: ScanResult) => this.emit('reindexed', { files: r.files, hashed: r.hashed, ms: r.ms }))
    }
  }

  /**
   * What indexing the source at start did. While the source is still being indexed in the
   * background (`indexing`), the files indexed so far, and nothing hashed or skipped yet: the
   * whole result comes with `indexed` (and the 'indexed' event).
   */
  get scan(): ScanResult {
    return this.#scan ?? { files: this.source.size, hashed: 0, bytes: 0, ms: performance.now() - this.#started, skipped: [] }
  }

  /** The source is still being indexed in the background (see `indexed`). */
  get indexing(): boolean { return this.#scan === null }

  /**
   * Indexes the source (by default `opts.root`), listens, starts the feed; resolves once clients
   * can connect. A source with `index` (a folder) is watched first, then indexed while the server
   * listens: start() resolves when the index is complete or after `listenWaitMs`, whichever is
   * first, and the rest is indexed in the background (issue 15). Any other source is scanned
   * before the server listens.
   */
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
    // Batches wait for the server (a folder feed's wait for the index, which starts after it).
    let ready!: (s: AssetServer) => void
    const made = new Promise<AssetServer>((resolve) => { ready = resolve })
    const sink = {
      deliver: async (batch: ChangeBatch) => (await made).#deliver(batch),
      error: (err: unknown) => { void made.then((s) => s.emit('error', err)) },
      fail: (error: AssetSyncError) => { void made.then((s) => s.emit('fatal', { error })) },
    }
    const background = typeof source.index === 'function'
    try {
      const scanned = background ? null : await source.scan()
      // A folder indexed in the background is watched before it is listed: every path changed
      // after that is either listed as it is then or raises an event.
      if (feed && background) await feed.start(sink)
      endpoint = await ServerEndpoint.listen({
        ...opts,
        transport: opts.transport ?? 'udp',
        host: opts.host ?? '0.0.0.0',
        port: opts.port ?? DEFAULT_PORT,
        keyPair,
        token: opts.token ?? null,
      })
      const indexing = scanned ? Promise.resolve(scanned) : (source.index as () => Promise<ScanResult>).call(source)
      server = new AssetServer(source, endpoint, keyPair.publicKey, indexing, opts.forward ?? [], opts.processMetrics !== false,
        new MemoryBudget(opts.memory?.perConnection, opts.memory?.total))
      server.#direct = opts.direct ?? null
      ready(server)
      if (feed) {
        if (!background) await feed.start(sink)
        server.#feed = feed
      }
      const wait = opts.listenWaitMs ?? SERVE_LISTEN_WAIT_MS
      let timer: NodeJS.Timeout | undefined
      const early = await Promise.race([
        server.indexed.then(() => false),
        new Promise<boolean>((resolve) => { if (wait !== Infinity) timer = setTimeout(() => resolve(true), wait) }),
      ]).finally(() => clearTimeout(timer))
      if (early) {
        const s = server
        s.indexed.then((r) => s.emit('indexed', { files: r.files, hashed: r.hashed, bytes: r.bytes, ms: r.ms, skipped: r.skipped ?? [] }), (err: unknown) => {
          const error = err instanceof AssetSyncError ? err : new AssetSyncError('ERR_INTERNAL', `indexing ${source.description} failed: ${(err as Error)?.message ?? err}`, { cause: err })
          s.emit('fatal', { error })
        })
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
      const plan = await fanOutInSlices(entries, this.subscriptions, this.matching, (session) => {
        session.conn.fail(new AssetSyncError('ERR_LIMIT', 'subscriptions too costly to match against this server\'s changes: use fewer wildcards'))
      })
      for (const [session, list] of plan.perClient) {
        if (session.conn.closed) continue
        for (const frame of splitFrames(list)) session.conn.send({ type: 'update', entries: frame })
        session.budget.checkQueue() // a subscriber that does not read is closed past its memory budget
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
  /** Handshake slots and token checks so far (issue 12): for tests, `status` and the bench. */
  get guard(): ServerEndpoint['guard'] { return this.#endpoint.guard }
  /** The feed batches come from (null: none). */
  get feed(): ChangeFeed | null { return this.#feed }

  /** Stops the feed (pushing what it already had), closes every connection, then the source. */
  async close(): Promise<void> {
    // A background index stops first: the feed's batches wait for it (what it indexed stays).
    if (this.source instanceof FolderSource) await this.source.stopIndexing()
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
    // The account may close the session when the server is over its memory total and this
    // connection queues the most (evictions come from later queue checks, after `session` is set).
    const account = this.memory.account(() => session.conn.fail(session.budget.notReading("the server's memory budget")))
    const guard = { scheduler: this.matching, account, shed: () => { this.memory.shed() } }
    const session: ClientSession = new ClientSession(conn, this.source, this.#readBuffers, metrics, guard)
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
    // Runs in order, on a turn of the MatchScheduler; an AssetSyncError thrown here is the answer.
    session.onSubscribe = (msg) => {
      if (msg.subscribe && this.subscriptions.held(session) + this.subscriptions.newPairs(session, msg.patterns, msg.instanceId) > MAX_SUBSCRIPTIONS_PER_CLIENT) {
        // Each pattern costs a compiled matcher: a connection may not hold unbounded numbers.
        throw new AssetSyncError('ERR_LIMIT', `more than ${MAX_SUBSCRIPTIONS_PER_CLIENT} subscriptions on one connection`)
      }
      const { account } = session.budget
      if (msg.subscribe) {
        // Over the pattern or memory budget (ERR_LIMIT) or malformed (ERR_USAGE): thrown before anything changes.
        this.subscriptions.subscribe(session, msg.patterns, msg.instanceId, (set) => {
          // The new set replaces the old: charge what it can grow to, dropping MANIFEST caches first.
          const bytes = patternSetBytes(set)
          if (!account.fits('subscriptions', bytes)) session.budget.manifests.dropCache()
          account.charge('subscriptions', bytes, 'these subscriptions')
        })
      } else {
        this.subscriptions.unsubscribe(session, msg.patterns, msg.instanceId)
        const set = this.subscriptions.setOf(session)
        account.set('subscriptions', set ? patternSetBytes(set) : 0)
      }
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
