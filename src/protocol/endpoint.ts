/**
 * Endpoints: `dial` (client) and `ServerEndpoint` (server) put transport + Noise + auth together
 * and hand out authenticated connections (ClientConnection, ServerConnection). The server key
 * check is a callback, so this layer never touches the filesystem (see core/fs/keys.ts for
 * pinning). `dial` also picks how to authenticate with the server's protocol version (§5.2).
 */
import { EventEmitter } from 'node:events'
import SecretStream from '@hyperswarm/secret-stream'
import { AssetSyncError } from '../errors.js'
import { CONNECT_TIMEOUT_MS, MAX_CLIENTS } from '../limits.js'
import { type Clock, systemClock } from './clock.js'
import { type AuthStyle, ClientConnection } from './client-connection.js'
import { type FrameGuard, guardFrames } from './frame-guard.js'
import type { KeyPair } from './keypair.js'
import { livenessOf } from './liveness.js'
import { COMPAT_VERSION } from './messages.js'
import { type ProtocolOffer, offerOf } from './negotiation.js'
import { ServerConnection } from './server-connection.js'
import { TcpListener, connectTcp } from './tcp.js'
import type { Listener, RawStream, TransportName } from './transport.js'
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
  raw: RawStream
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
    return { secure, style, raw }
  }

  const start = ({ secure, style, raw }: SecureLink): { conn: ClientConnection; done: Promise<void> } => {
    const conn = new ClientConnection(secure, { ...opts, remote: target, clock, liveness: livenessOf(raw) })
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
  maxClients?: number
  /** Time a new connection has to finish Noise + auth. */
  connectTimeoutMs?: number
}

/**
 * A listening server endpoint. Events: 'connection' (conn: ServerConnection) once a client is
 * authenticated; 'rejected' (remote: string, err: AssetSyncError) when one fails to get there.
 */
export class ServerEndpoint extends EventEmitter {
  readonly #listener: Listener
  readonly #opts: ServeEndpointOptions
  readonly #clock: Clock
  readonly #conns = new Set<ServerConnection>()

  private constructor(listener: Listener, opts: ServeEndpointOptions) {
    super()
    this.#listener = listener
    this.#opts = opts
    this.#clock = opts.clock ?? systemClock
    listener.on('connection', (raw, remote) => { void this.#accept(raw, remote) })
  }

  static async listen(opts: ServeEndpointOptions): Promise<ServerEndpoint> {
    const maxClients = opts.maxClients ?? MAX_CLIENTS
    const clock = opts.clock ?? systemClock
    const listener = opts.transport === 'udp'
      ? UdpListener.listen(opts.host, opts.port, { maxClients, clock, offer: offerOf(opts.protocol) })
      : await TcpListener.listen(opts.host, opts.port, { maxClients })
    return new ServerEndpoint(listener, opts)
  }

  get listener(): Listener { return this.#listener }
  get transport(): TransportName { return this.#listener.transport }
  address(): { host: string; port: number } { return this.#listener.address() }
  /** Authenticated connections currently open. */
  get connections(): ReadonlySet<ServerConnection> { return this.#conns }

  async close(): Promise<void> {
    for (const c of this.#conns) c.destroy()
    await this.#listener.close()
  }

  async #accept(raw: RawStream, remote: string): Promise<void> {
    const timeoutMs = this.#opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
    const started = this.#clock.now()
    const left = (): number => Math.max(0, timeoutMs - (this.#clock.now() - started))
    const guard = guardFrames(raw)
    const secure = new SecretStream(false, raw, { keyPair: this.#opts.keyPair })
    guard.protect(secure)
    secure.on('error', () => { /* reported through `opened` or the Connection */ })
    try {
      const opened = await deadline(secure.opened, left(), this.#clock,
        () => new AssetSyncError('ERR_TIMEOUT', 'encrypted handshake timed out'), () => secure.destroy())
      if (!opened) throw rawFailure(guard, raw) ?? new AssetSyncError('ERR_CONNECT', 'encrypted handshake failed')
    } catch (err) {
      secure.destroy()
      this.emit('rejected', remote, err)
      return
    }
    const conn = new ServerConnection(secure, { ...this.#opts, remote, clock: this.#clock, liveness: livenessOf(raw) })
    try {
      await deadline(conn.acceptAuth(this.#opts.token), left(), this.#clock,
        () => new AssetSyncError('ERR_TIMEOUT', 'no authentication within the handshake timeout'), () => conn.destroy())
    } catch (err) {
      this.emit('rejected', remote, err)
      return
    }
    this.#conns.add(conn)
    conn.once('close', () => this.#conns.delete(conn))
    this.emit('connection', conn)
  }
}
