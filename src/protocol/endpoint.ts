/**
 * Endpoints: `dial` (client) and `ServerEndpoint` (server) put transport + Noise + auth together
 * and hand out authenticated `Connection`s. The server key check is a callback, so this layer
 * never touches the filesystem (see core/fs/keys.ts for pinning).
 */
import { EventEmitter } from 'node:events'
import SecretStream from '@hyperswarm/secret-stream'
import { AssetSyncError } from '../errors.js'
import { CONNECT_TIMEOUT_MS, MAX_CLIENTS } from '../limits.js'
import { type Clock, systemClock } from './clock.js'
import { Connection } from './connection.js'
import { type FrameGuard, guardFrames } from './frame-guard.js'
import type { KeyPair } from './keypair.js'
import { TcpListener, connectTcp } from './tcp.js'
import type { Listener, RawStream, TransportName } from './transport.js'
import { UdpListener, connectUdp } from './udp.js'

export interface TimingOptions {
  clock?: Clock
  keepaliveMs?: number
  idleTimeoutMs?: number
  requestTimeoutMs?: number
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

/** Connects, runs Noise XX, checks the server key, presents the token; returns an open Connection. */
export async function dial(opts: DialOptions): Promise<Connection> {
  const clock = opts.clock ?? systemClock
  const timeoutMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
  // One budget for the whole handshake: each later phase gets what the earlier ones left.
  const started = clock.now()
  const left = (): number => Math.max(0, timeoutMs - (clock.now() - started))
  const target = `${opts.transport}://${opts.host}:${opts.port}`
  const raw = opts.transport === 'udp'
    ? await connectUdp(opts.host, opts.port, { timeoutMs, clock })
    : await connectTcp(opts.host, opts.port, { timeoutMs, clock })
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
  const conn = new Connection(secure, { ...opts, role: 'client', remote: target, clock })
  await deadline(conn.authenticate(opts.token ?? ''), left(), clock,
    () => new AssetSyncError('ERR_TIMEOUT', `${target} did not answer authentication`), () => conn.destroy())
  return conn
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
 * A listening server endpoint. Events: 'connection' (conn: Connection) once a client is
 * authenticated; 'rejected' (remote: string, err: AssetSyncError) when one fails to get there.
 */
export class ServerEndpoint extends EventEmitter {
  readonly #listener: Listener
  readonly #opts: ServeEndpointOptions
  readonly #clock: Clock
  readonly #conns = new Set<Connection>()

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
      ? UdpListener.listen(opts.host, opts.port, { maxClients, clock })
      : await TcpListener.listen(opts.host, opts.port, { maxClients })
    return new ServerEndpoint(listener, opts)
  }

  get listener(): Listener { return this.#listener }
  get transport(): TransportName { return this.#listener.transport }
  address(): { host: string; port: number } { return this.#listener.address() }
  /** Authenticated connections currently open. */
  get connections(): ReadonlySet<Connection> { return this.#conns }

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
    const conn = new Connection(secure, { ...this.#opts, role: 'server', remote, clock: this.#clock })
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
