/**
 * Endpoints: `dial` (client) and `ServerEndpoint` (server) put transport + Noise + auth together
 * and hand out authenticated connections (ClientConnection, ServerConnection). The server key
 * check is a callback, so this layer never touches the filesystem (see core/fs/keys.ts for
 * pinning). `dial` also picks how to authenticate with the server's protocol version (§5.2).
 */
import { EventEmitter } from 'node:events'
import SecretStream from '@hyperswarm/secret-stream'
import { AssetSyncError } from '../errors.js'
import { CONNECT_TIMEOUT_MS, MAX_CLIENTS, MAX_PREAUTH_CONNECTIONS, PREAUTH_TIMEOUT_MS } from '../limits.js'
import { type AuthFailureBurst, AuthThrottle, type AuthThrottleOptions, type AuthThrottleStats } from './auth-throttle.js'
import { type Clock, systemClock } from './clock.js'
import { type AuthStyle, ClientConnection } from './client-connection.js'
import { type FrameGuard, guardFrames } from './frame-guard.js'
import type { KeyPair } from './keypair.js'
import { COMPAT_VERSION } from './messages.js'
import { type ProtocolOffer, offerOf } from './negotiation.js'
import { PreAuthPool } from './preauth-pool.js'
import { ServerConnection } from './server-connection.js'
import { TcpListener, connectTcp } from './tcp.js'
import type { Listener, ListenerStats, RawStream, TransportName } from './transport.js'
import { UdpListener, udpHandshake } from './udp.js'

export interface TimingOptions {
  clock?: Clock
  keepaliveMs?: number
  idleTimeoutMs?: number
  requestTimeoutMs?: number
  /** What this end speaks, over LOCAL_OFFER (versions, features); for tests and feature switches. */
  protocol?: Partial<ProtocolOffer>
}

export interface DialOptions extends TimingOptions {
  transport: TransportName
  host: string
  port: number
  token?: string
  /** Handshake (cookie, Noise, auth) deadline. */
  connectTimeoutMs?: number
  /** Called with the server's static public key once Noise completes; throw to refuse it. */
  verifyServerKey?: (key: Buffer) => void
}

/** Races `p` against a deadline; on expiry calls `onTimeout` and rejects with `err`. */
function deadline<T>(p: Promise<T>, ms: number, clock: Clock, err: () => AssetSyncError, onTimeout: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const cancel = clock.after(ms, () => { onTimeout(); reject(err()) })
    p.then((v) => { cancel(); resolve(v) }, (e: unknown) => { cancel(); reject(e) })
  })
}

/**
 * Why a raw stream died before Noise completed, if we know better than "handshake failed": the
 * frame guard tripped, or the transport said why (a full TCP listener: ERR_LIMIT, see tcp.ts).
 */
function rawFailure(guard: FrameGuard, raw: RawStream): AssetSyncError | null {
  if (guard.error) return guard.error
  return raw.errored instanceof AssetSyncError ? raw.errored : null
}

/** A raw stream with Noise done and the server key checked, and how to authenticate on it. */
interface SecureLink {
  secure: SecretStream
  style: AuthStyle
}

/**
 * Connects, runs Noise XX, checks the server key, presents the token; returns an open
 * ClientConnection with the agreed protocol version and features. Over UDP the WELCOME says
 * whether the server speaks protocol 3; over TCP nothing does before AUTH, so a refused
 * protocol-3 AUTH (a protocol-2 server) is retried once on a new connection with the
 * protocol-2 AUTH (docs/protocol.md §5.2).
 */
export async function dial(opts: DialOptions): Promise<ClientConnection> {
  const clock = opts.clock ?? systemClock
  const timeoutMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
  const offer = offerOf(opts.protocol)
  // One budget for the whole handshake: each later phase gets what the earlier ones left.
  const started = clock.now()
  const left = (): number => Math.max(0, timeoutMs - (clock.now() - started))
  const target = `${opts.transport}://${opts.host}:${opts.port}`

  const link = async (): Promise<SecureLink> => {
    let raw: RawStream
    let style: AuthStyle = 'negotiate'
    if (opts.transport === 'udp') {
      const hs = await udpHandshake(opts.host, opts.port, { timeoutMs: left(), clock, offer })
      raw = hs.stream
      // A plain WELCOME comes from a protocol-2 listener, which refuses the protocol-3 AUTH.
      if (hs.server === null) style = 'legacy'
    } else raw = await connectTcp(opts.host, opts.port, { timeoutMs: left(), clock })
    const guard = guardFrames(raw)
    const secure = new SecretStream(true, raw)
    guard.protect(secure)
    secure.on('error', () => { /* reported through `opened` or the Connection */ })
    const opened = await deadline(secure.opened, left(), clock,
      () => new AssetSyncError('ERR_TIMEOUT', `encrypted handshake with ${target} timed out`), () => secure.destroy())
    if (!opened || !secure.remotePublicKey) {
      secure.destroy()
      throw rawFailure(guard, raw) ?? new AssetSyncError('ERR_CONNECT', `encrypted handshake with ${target} failed (is it an assetsync server?)`)
    }
    try {
      // Check the key BEFORE sending the token, so an impostor never learns it.
      opts.verifyServerKey?.(secure.remotePublicKey)
    } catch (err) {
      secure.destroy()
      throw err
    }
    return { secure, style }
  }

  const start = ({ secure, style }: SecureLink): { conn: ClientConnection; done: Promise<void> } => {
    const conn = new ClientConnection(secure, { ...opts, remote: target, clock })
    const done = deadline(conn.authenticate(opts.token ?? '', style), left(), clock,
      () => new AssetSyncError('ERR_TIMEOUT', `${target} did not answer authentication`), () => conn.destroy())
    return { conn, done }
  }

  const first = start(await link())
  try {
    await first.done
    return first.conn
  } catch (err) {
    // Only a refused protocol-3 AUTH over TCP, and only if we still speak protocol 2.
    if (!first.conn.refusedNegotiation || opts.transport !== 'tcp' || offer.minVersion > COMPAT_VERSION) throw err
  }
  const second = start({ ...(await link()), style: 'legacy' })
  await second.done
  return second.conn
}

export interface ServeEndpointOptions extends TimingOptions {
  transport: TransportName
  host: string
  port: number
  keyPair: KeyPair
  /** Required access token, or null for none. */
  token: string | null
  /** Authenticated connections at once (default MAX_CLIENTS); more get "server full". */
  maxClients?: number
  /** Time a new connection has to finish Noise + auth (default PREAUTH_TIMEOUT_MS). */
  connectTimeoutMs?: number
  /** Handshake slots, in total and per source address (default MAX_PREAUTH_CONNECTIONS, MAX_PREAUTH_PER_ADDR). */
  maxPreAuth?: number
  maxPreAuthPerAddr?: number
  /** What wrong tokens cost (defaults: src/limits.ts, AUTH_FAILURE_*); for tests. */
  authThrottle?: Omit<AuthThrottleOptions, 'clock'>
}

/**
 * Why a connection did not get to be authenticated: a stable name for logs and metrics (the
 * 'rejected' event's third argument), finer than its error code.
 * - `timeout`: Noise + AUTH not done within the handshake deadline (ERR_TIMEOUT)
 * - `evicted`: its handshake slot went to a newer connection (ERR_LIMIT; see preauth-pool.ts)
 * - `full`: every authenticated slot was taken when its AUTH was accepted (ERR_LIMIT)
 * - `noise`: the encrypted handshake failed, or the frame guard tripped (ERR_CONNECT, ERR_PROTOCOL)
 * - `token`: wrong access token, checked (ERR_AUTH)
 * - `locked`: not checked, its address failed too often lately (ERR_AUTH, see auth-throttle.ts)
 * - `busy`: not checked, the server-wide failure budget is spent (ERR_LIMIT)
 * - `version`: no common protocol version (ERR_VERSION)
 * - `protocol`: the first frame was not a valid AUTH (ERR_PROTOCOL)
 * - `closed`: the peer went away mid-handshake (ERR_CONNECTION_LOST)
 */
export type RejectReason = 'timeout' | 'evicted' | 'full' | 'noise' | 'token' | 'locked' | 'busy' | 'version' | 'protocol' | 'closed'

/** The reason for a handshake that failed with `err` (and was not evicted). */
function reasonOf(err: unknown): RejectReason {
  if (!(err instanceof AssetSyncError)) return 'noise'
  switch (err.code) {
    case 'ERR_TIMEOUT': return 'timeout'
    case 'ERR_VERSION': return 'version'
    case 'ERR_PROTOCOL': return 'protocol'
    case 'ERR_CONNECTION_LOST': return 'closed'
    default: return 'noise'
  }
}

/** Carries its RejectReason from the auth gate to the 'rejected' event. */
class Refusal extends AssetSyncError {
  constructor(readonly reason: RejectReason, code: AssetSyncError['code'], message: string) {
    super(code, message)
  }
}

/**
 * A listening server endpoint. Events: 'connection' (conn: ServerConnection) once a client is
 * authenticated; 'rejected' (remote: string, err: AssetSyncError, reason: RejectReason) when one
 * fails to get there; 'auth-failures' (AuthFailureBurst) on a burst of wrong tokens.
 *
 * Connections in their handshake hold a slot of the PreAuthPool (bounded, per source address,
 * idle ones evicted first) and must finish within the handshake deadline; authenticated ones count
 * against maxClients. Token checks go through the AuthThrottle.
 */
export class ServerEndpoint extends EventEmitter {
  readonly #listener: Listener
  readonly #opts: ServeEndpointOptions
  readonly #clock: Clock
  readonly #conns = new Set<ServerConnection>()
  readonly #maxClients: number
  readonly #pool: PreAuthPool
  readonly #throttle: AuthThrottle

  private constructor(listener: Listener, opts: ServeEndpointOptions, pool: PreAuthPool) {
    super()
    this.#listener = listener
    this.#opts = opts
    this.#clock = opts.clock ?? systemClock
    this.#maxClients = opts.maxClients ?? MAX_CLIENTS
    this.#pool = pool
    this.#throttle = new AuthThrottle({ ...opts.authThrottle, clock: this.#clock })
    this.#throttle.on('burst', (b: AuthFailureBurst) => this.emit('auth-failures', b))
    listener.on('connection', (raw, remote, host) => { void this.#accept(raw, remote, host) })
  }

  static async listen(opts: ServeEndpointOptions): Promise<ServerEndpoint> {
    const maxClients = opts.maxClients ?? MAX_CLIENTS
    const clock = opts.clock ?? systemClock
    const pool = new PreAuthPool({ clock, max: opts.maxPreAuth, perAddr: opts.maxPreAuthPerAddr })
    let endpoint: ServerEndpoint | null = null
    // Authenticated slots decide "server full"; the pool makes room for handshakes by itself, so
    // the listener's own cap (both kinds together) is only a backstop.
    const listen = {
      maxClients: maxClients + (opts.maxPreAuth ?? MAX_PREAUTH_CONNECTIONS),
      admit: () => (endpoint?.connections.size ?? 0) < maxClients,
    }
    const listener = opts.transport === 'udp'
      ? UdpListener.listen(opts.host, opts.port, { ...listen, clock, offer: offerOf(opts.protocol) })
      : await TcpListener.listen(opts.host, opts.port, { ...listen, clock })
    endpoint = new ServerEndpoint(listener, opts, pool)
    return endpoint
  }

  get listener(): Listener { return this.#listener }
  get transport(): TransportName { return this.#listener.transport }
  address(): { host: string; port: number } { return this.#listener.address() }
  /** Authenticated connections currently open. */
  get connections(): ReadonlySet<ServerConnection> { return this.#conns }
  /** Connections in their handshake now, and what the slots and the token checks have done so far. */
  get guard(): { preAuth: number; pool: PreAuthPool['stats']; auth: AuthThrottleStats; listener: ListenerStats } {
    return { preAuth: this.#pool.size, pool: this.#pool.stats, auth: this.#throttle.stats, listener: this.#listener.stats }
  }

  async close(): Promise<void> {
    for (const c of this.#conns) c.destroy()
    await this.#listener.close()
  }

  async #accept(raw: RawStream, remote: string, host: string): Promise<void> {
    const deadlineAt = this.#clock.now() + (this.#opts.connectTimeoutMs ?? PREAUTH_TIMEOUT_MS)
    const left = (): number => Math.max(0, deadlineAt - this.#clock.now())
    const guard = guardFrames(raw)
    const secure = new SecretStream(false, raw, { keyPair: this.#opts.keyPair })
    guard.protect(secure)
    secure.on('error', () => { /* reported through `opened` or the Connection */ })
    let evicted = false
    let conn: ServerConnection | null = null
    const slot = this.#pool.add(host, () => {
      evicted = true
      if (conn) conn.destroy(new AssetSyncError('ERR_LIMIT', 'handshake slot given to a newer connection'))
      else secure.destroy()
    })
    raw.on('data', slot.touch)
    const refuse = (err: unknown): void => {
      slot.release()
      raw.off('data', slot.touch)
      const reason = evicted ? 'evicted' : err instanceof Refusal ? err.reason : reasonOf(err)
      const e = err instanceof AssetSyncError ? err : new AssetSyncError('ERR_CONNECT', 'encrypted handshake failed')
      this.emit('rejected', remote, evicted ? new AssetSyncError('ERR_LIMIT', 'handshake slot given to a newer connection') : e, reason)
    }
    try {
      const opened = await deadline(secure.opened, left(), this.#clock,
        () => new AssetSyncError('ERR_TIMEOUT', 'encrypted handshake timed out'), () => secure.destroy())
      if (!opened) throw rawFailure(guard, raw) ?? new AssetSyncError('ERR_CONNECT', 'encrypted handshake failed')
    } catch (err) {
      secure.destroy()
      refuse(err)
      return
    }
    const c = new ServerConnection(secure, { ...this.#opts, remote, clock: this.#clock })
    conn = c
    try {
      await deadline(c.acceptAuth(this.#opts.token, (check) => this.#gate(host, deadlineAt, check)), left(), this.#clock,
        () => new AssetSyncError('ERR_TIMEOUT', 'no authentication within the handshake timeout'), () => c.destroy())
    } catch (err) {
      refuse(err)
      return
    }
    slot.release()
    raw.off('data', slot.touch)
    this.#conns.add(c)
    c.once('close', () => this.#conns.delete(c))
    this.emit('connection', c)
  }

  /** The auth gate: the token check through the throttle, then the authenticated-slot cap. */
  async #gate(host: string, deadlineAt: number, check: () => boolean | null): Promise<AssetSyncError | null> {
    const v = await this.#throttle.attempt(host, deadlineAt, check)
    const secs = (ms: number): number => Math.ceil(ms / 1000)
    switch (v.result) {
      case 'ok':
        if (this.#conns.size < this.#maxClients) return null
        return new Refusal('full', 'ERR_LIMIT', `server full (${this.#maxClients} clients)`)
      case 'rejected':
        return new Refusal('token', 'ERR_AUTH', 'access token rejected by the server')
      case 'locked':
        return new Refusal('locked', 'ERR_AUTH',
          `access token rejected by the server: ${v.failures} failed attempts from this address, try again in ${secs(v.retryMs)} s`)
      case 'busy':
        return new Refusal('busy', 'ERR_LIMIT', `server busy: too many failed authentications, try again in ${secs(v.retryMs)} s`)
      case 'gone':
        return new Refusal('closed', 'ERR_CONNECTION_LOST', 'connection closed during authentication')
    }
  }
}
