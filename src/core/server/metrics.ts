/**
 * The server's Prometheus series (served as /metrics by `serve --http`), all named assetsync_…
 * after the Prometheus naming rules: base units (seconds, bytes), `_total` on counters, labels
 * only from small fixed sets (a hostile client cannot grow the series count: unknown values
 * become "other").
 *
 * Each Metrics owns its own prom-client Registry, never the global one, so two servers in one
 * process (tests, a library user) do not clash. The default process metrics are process-wide
 * facts, so they live in one shared registry made on first use: their GC observer and event-loop
 * monitor cannot be stopped, and one set per server would pile up.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { isErrorCode } from '../../errors.js'

/** How a REQUEST ended, as the server answered it. */
export type RequestStatus = 'file' | 'up-to-date' | 'not-found' | 'refused' | 'error'
const REQUEST_STATUSES: readonly string[] = ['file', 'up-to-date', 'not-found', 'refused', 'error']
const TRANSPORT_NAMES: readonly string[] = ['udp', 'tcp']

/** Transfer time, seconds: a small file on loopback (~1 ms) to a big one over Wi-Fi (minutes). */
const TRANSFER_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
/** Save → announced, seconds: SETTLE_MS (20 ms) plus hashing, up to a slow disk. */
const LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

let processRegistry: Registry | null = null

/** The process-wide registry of the default Node.js process metrics, made once. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry, prefix: 'assetsync_' })
    // prom-client's three `…_total` gauges break the naming rule (`_total` is for counters); each
    // only sums the per-type gauge of the same name without `_total`, which stays.
    for (const n of ['active_resources', 'active_handles', 'active_requests']) processRegistry.removeSingleMetric(`assetsync_nodejs_${n}_total`)
  }
  return processRegistry
}

function oneOf(v: string, allowed: readonly string[]): string {
  return allowed.includes(v) ? v : 'other'
}

/** An error code label: a code of errors.ts, else "other". */
function codeLabel(code: string): string {
  return isErrorCode(code) ? code : 'other'
}

/** A connection's own byte counters (protocol Connection has these), read at scrape time. */
export interface ByteCounters {
  readonly bytesSent: number
  readonly bytesReceived: number
}

/** What a Metrics reports about itself. */
export interface MetricsOptions {
  /** The assetsync version, for assetsync_build_info. */
  version: string
  /** Include the default process metrics (default true). */
  processMetrics?: boolean
}

/** The series of one server, and the narrow calls the server makes as things happen. */
export class Metrics {
  /** This server's own registry (not the global one). */
  readonly registry = new Registry()
  readonly #process: Registry | null
  readonly #connections: Counter<'transport'>
  readonly #open: Gauge<'transport'>
  readonly #refused: Counter<'reason'>
  readonly #requests: Counter<'status'>
  readonly #sent: Counter
  readonly #received: Counter
  readonly #transfers: Histogram
  readonly #batches: Counter
  readonly #changes: Counter
  readonly #lag: Histogram
  readonly #subscriptions: Gauge
  readonly #errors: Counter<'code'>
  readonly #reports: Counter<'result'>
  /** Bytes of closed connections and of bytes() calls; live connections are added at scrape time. */
  readonly #bytesDone = { sent: 0, received: 0 }
  readonly #live = new Set<ByteCounters>()

  constructor(opts: MetricsOptions) {
    const registers = [this.registry]
    this.#process = opts.processMetrics === false ? null : processMetrics()
    new Gauge({ name: 'assetsync_build_info', help: 'Always 1; the version label says which assetsync this is.', labelNames: ['version'], registers }).set({ version: opts.version }, 1)
    this.#connections = new Counter({ name: 'assetsync_connections_total', help: 'Client connections that completed the handshake and authentication, by transport.', labelNames: ['transport'], registers })
    this.#open = new Gauge({ name: 'assetsync_connections_open', help: 'Client connections open now, by transport.', labelNames: ['transport'], registers })
    this.#refused = new Counter({ name: 'assetsync_handshakes_refused_total', help: 'Connection attempts refused during the handshake or authentication, by reason (an error code).', labelNames: ['reason'], registers })
    this.#requests = new Counter({ name: 'assetsync_requests_total', help: 'File requests answered, by status: file, up-to-date, not-found, refused, error.', labelNames: ['status'], registers })
    // Read from the connections' own counters when scraped: exact, and no call per frame.
    const live = (k: keyof ByteCounters): number => [...this.#live].reduce((n, c) => n + c[k], 0)
    this.#sent = new Counter({
      name: 'assetsync_sent_bytes_total', help: 'Bytes sent to clients (frames, before encryption).', registers,
      collect: () => { this.#sent.reset(); this.#sent.inc(this.#bytesDone.sent + live('bytesSent')) },
    })
    this.#received = new Counter({
      name: 'assetsync_received_bytes_total', help: 'Bytes received from clients (frames, after decryption).', registers,
      collect: () => { this.#received.reset(); this.#received.inc(this.#bytesDone.received + live('bytesReceived')) },
    })
    this.#transfers = new Histogram({ name: 'assetsync_transfer_duration_seconds', help: 'Time from a file request to its last chunk sent.', buckets: TRANSFER_BUCKETS, registers })
    this.#batches = new Counter({ name: 'assetsync_change_batches_total', help: 'Settled change batches pushed to subscribers.', registers })
    this.#changes = new Counter({ name: 'assetsync_changes_total', help: 'Changed, deleted or renamed paths in the pushed batches.', registers })
    this.#lag = new Histogram({ name: 'assetsync_watcher_lag_seconds', help: 'Time from a file being saved (its mtime) to its change being announced.', buckets: LAG_BUCKETS, registers })
    this.#subscriptions = new Gauge({ name: 'assetsync_subscriptions', help: '(pattern, instance id) subscriptions held by all clients now.', registers })
    this.#errors = new Counter({ name: 'assetsync_errors_total', help: 'Errors sent to clients or met while serving, by code.', labelNames: ['code'], registers })
    this.#reports = new Counter({ name: 'assetsync_reload_reports_total', help: 'Reload reports from devices, by result: ok or error.', labelNames: ['result'], registers })
    // Zero series up front, so a dashboard sees 0 rather than no data before the first event.
    for (const t of TRANSPORT_NAMES) { this.#connections.inc({ transport: t }, 0); this.#open.set({ transport: t }, 0) }
    for (const s of REQUEST_STATUSES) this.#requests.inc({ status: s }, 0)
    for (const r of ['ok', 'error']) this.#reports.inc({ result: r }, 0)
  }

  /** A client finished the handshake and authentication. */
  connectionOpened(transport: string): void {
    const t = oneOf(transport, TRANSPORT_NAMES)
    this.#connections.inc({ transport: t })
    this.#open.inc({ transport: t })
  }

  /** An authenticated client's connection closed (for any reason). */
  connectionClosed(transport: string): void {
    this.#open.dec({ transport: oneOf(transport, TRANSPORT_NAMES) })
  }

  /** A connection attempt was refused before it was authenticated; `reason` is its error code. */
  handshakeRefused(reason: string): void {
    this.#refused.inc({ reason: codeLabel(reason) })
  }

  /** A REQUEST was answered with `status`. */
  request(status: RequestStatus): void {
    this.#requests.inc({ status: oneOf(status, REQUEST_STATUSES) })
  }

  /** Bytes moved since the last call (either may be 0), for traffic no watched connection counts. */
  bytes(sent: number, received: number): void {
    if (sent > 0) this.#bytesDone.sent += sent
    if (received > 0) this.#bytesDone.received += received
  }

  /**
   * Counts a connection's bytes from its own counters, read at each scrape, until the returned
   * function is called (at close): its final counts then stay in the totals.
   */
  watchBytes(counters: ByteCounters): () => void {
    this.#live.add(counters)
    return () => {
      if (!this.#live.delete(counters)) return
      this.#bytesDone.sent += counters.bytesSent
      this.#bytesDone.received += counters.bytesReceived
    }
  }

  /** A file transfer finished (its last chunk sent) after `ms` milliseconds. */
  transferDone(ms: number): void {
    this.#transfers.observe(Math.max(0, ms) / 1000)
  }

  /** A batch of `changes` paths was announced, `lagMs` after the newest save in it (null: unknown). */
  batchPushed(changes: number, lagMs: number | null): void {
    this.#batches.inc()
    if (changes > 0) this.#changes.inc(changes)
    if (lagMs !== null && Number.isFinite(lagMs)) this.#lag.observe(Math.max(0, lagMs) / 1000)
  }

  /** Subscriptions held by all clients now. */
  subscriptions(n: number): void {
    this.#subscriptions.set(n)
  }

  /** An error with this code was sent to a client or met while serving. */
  error(code: string): void {
    this.#errors.inc({ code: codeLabel(code) })
  }

  /** A device reported a reload: ok, or failed. */
  report(ok: boolean): void {
    this.#reports.inc({ result: ok ? 'ok' : 'error' })
  }

  /** The Content-Type of `text()` (Prometheus text exposition format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType
  }

  /** Every series, this server's then the process's, in the Prometheus text format. */
  async text(): Promise<string> {
    const own = await this.registry.metrics()
    return this.#process ? `${own}\n${await this.#process.metrics()}` : own
  }
}
