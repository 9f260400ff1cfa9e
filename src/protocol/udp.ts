/**
 * UDP transport: udx-native streams (BBR, RACK-TLP, pacing, PMTU probing) plus assetsync's own
 * stateless-cookie handshake on the same socket (see handshake-packets.ts and docs/protocol.md).
 *
 * Server rules: nothing is allocated for an address that has not echoed a valid cookie, and
 * before that no reply is larger than the HELLO it answers (no amplification). One `message`
 * dispatcher per socket. Stream ids are random 32-bit values, so a blind attacker must guess.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { lookup } from 'node:dns/promises'
import { EventEmitter } from 'node:events'
import { isIP } from 'node:net'
import UDX, { type UDXSocket, type UDXStream } from 'udx-native'
import { AssetSyncError } from '../errors.js'
import {
  COOKIE_BUCKET_MS, HANDSHAKE_RATE_PER_ADDR, HANDSHAKE_RETRY_MAX_MS, HANDSHAKE_RETRY_MS, MAX_CLIENTS,
  SOCKET_BUFFER_BYTES,
} from '../limits.js'
import { PerSecond, addressKey } from './address.js'
import { type Clock, systemClock } from './clock.js'
import {
  COOKIE_BYTES, NONCE_BYTES, REJECT_REASON, decodeHandshake, encodeHandshake, type HandshakePacket,
} from './handshake-packets.js'
import { type ProtocolOffer, LOCAL_OFFER, describeVersions, negotiate, singleVersion } from './negotiation.js'
import type { AdmitFn, ListenOptions, Listener, ListenerStats, RawStream } from './transport.js'

let sharedUdx: UDX | null = null
function udx(): UDX {
  sharedUdx ??= new UDX()
  return sharedUdx
}

function raiseBuffers(socket: UDXSocket): void {
  // Bursts of a fast sender overflow the default ~200 KiB kernel buffer; the kernel caps the ask
  // at net.core.rmem_max, which is fine.
  try {
    socket.setRecvBufferSize(SOCKET_BUFFER_BYTES)
    socket.setSendBufferSize(SOCKET_BUFFER_BYTES)
  } catch { /* best effort */ }
}

function randomId(taken: ReadonlySet<number>): number {
  for (;;) {
    const id = randomBytes(4).readUInt32BE(0)
    if (id !== 0 && !taken.has(id)) return id
  }
}

export interface UdpListenOptions extends ListenOptions {
  clock?: Clock
  /** What the server speaks (default LOCAL_OFFER): a HELLO with no common version gets REJECT. */
  offer?: ProtocolOffer
}

/** Stats a test or the status output can read. */
export interface UdpListenerStats extends ListenerStats {
  datagramsIn: number
  bytesIn: number
  handshakeBytesOut: number
  cookiesSent: number
  streamsCreated: number
}

export class UdpListener extends EventEmitter implements Listener {
  readonly transport = 'udp' as const
  readonly #socket: UDXSocket
  readonly #secret = randomBytes(32)
  readonly #sessions = new Map<string, { stream: UDXStream; serverId: number }>()
  readonly #ids = new Set<number>()
  readonly #clock: Clock
  readonly #maxClients: number
  readonly #admit: AdmitFn
  readonly #offer: ProtocolOffer
  // Bounded: past MAX_CLIENTS distinct sources in one second, HELLOs from new ones are dropped.
  readonly #rate: PerSecond
  readonly stats: UdpListenerStats = {
    datagramsIn: 0, bytesIn: 0, handshakeBytesOut: 0, cookiesSent: 0, streamsCreated: 0, rateLimited: 0, refusedFull: 0,
  }

  private constructor(socket: UDXSocket, opts: UdpListenOptions) {
    super()
    this.#socket = socket
    this.#clock = opts.clock ?? systemClock
    this.#maxClients = opts.maxClients ?? MAX_CLIENTS
    this.#admit = opts.admit ?? (() => true)
    this.#offer = opts.offer ?? LOCAL_OFFER
    this.#rate = new PerSecond(HANDSHAKE_RATE_PER_ADDR, MAX_CLIENTS, () => this.#clock.now())
    socket.on('message', (buf, rinfo) => this.#onMessage(buf, rinfo.host, rinfo.port))
  }

  static listen(host: string, port: number, opts: UdpListenOptions = {}): UdpListener {
    const socket = udx().createSocket()
    try {
      socket.bind(port, host)
    } catch (err) {
      throw new AssetSyncError('ERR_CONNECT', `cannot listen on udp://${host}:${port}: ${(err as Error).message}`, { cause: err })
    }
    raiseBuffers(socket)
    return new UdpListener(socket, opts)
  }

  address(): { host: string; port: number } {
    const a = this.#socket.address()
    return { host: a?.host ?? '', port: a?.port ?? 0 }
  }

  get connections(): number { return this.#sessions.size }

  async close(): Promise<void> {
    for (const { stream } of this.#sessions.values()) stream.destroy()
    this.#sessions.clear()
    await this.#socket.close()
  }

  #send(p: HandshakePacket, port: number, host: string): void {
    const b = encodeHandshake(p)
    this.stats.handshakeBytesOut += b.length
    this.#socket.trySend(b, port, host)
  }

  #cookie(host: string, port: number, clientId: number, nonce: Buffer, bucket: number): Buffer {
    const mac = createHmac('sha256', this.#secret)
      .update(`${host}|${port}|${clientId}|${bucket}|`).update(nonce).digest().subarray(0, COOKIE_BYTES - 4)
    const out = Buffer.alloc(COOKIE_BYTES)
    out.writeUInt32BE(bucket >>> 0, 0)
    mac.copy(out, 4)
    return out
  }

  #cookieValid(c: Buffer, host: string, port: number, clientId: number, nonce: Buffer): boolean {
    const bucket = c.readUInt32BE(0)
    const now = Math.floor(this.#clock.now() / COOKIE_BUCKET_MS) >>> 0
    if (bucket !== now && bucket !== ((now - 1) >>> 0)) return false
    return timingSafeEqual(c, this.#cookie(host, port, clientId, nonce, bucket))
  }

  #onMessage(buf: Buffer, host: string, port: number): void {
    this.stats.datagramsIn++
    this.stats.bytesIn += buf.length
    const p = decodeHandshake(buf)
    if (p === null || p.type !== 'hello') return
    if (this.#rate.over(addressKey(host))) {
      this.stats.rateLimited++
      return
    }
    // A protocol-2 HELLO has no offer: its version byte is the one version it speaks.
    const agreed = negotiate(this.#offer, p.offer ?? singleVersion(p.version))
    // Our offer goes only to a client that sent one: a protocol-2 client drops a WELCOME or
    // REJECT of any other length than its own (24 and 21 bytes).
    const offer = p.offer ? { offer: this.#offer } : {}
    if (!agreed) {
      this.#send({ type: 'reject', version: this.#offer.maxVersion, nonce: p.nonce, reason: REJECT_REASON.version, ...offer }, port, host)
      return
    }
    const version = agreed.version
    if (p.cookie === null || !this.#cookieValid(p.cookie, host, port, p.clientId, p.nonce)) {
      const bucket = Math.floor(this.#clock.now() / COOKIE_BUCKET_MS)
      this.stats.cookiesSent++
      this.#send({ type: 'cookie', version, nonce: p.nonce, cookie: this.#cookie(host, port, p.clientId, p.nonce, bucket) }, port, host)
      return
    }
    // The address has proven it receives our datagrams: from here on we may allocate.
    const key = `${host}|${port}|${p.clientId}|${p.nonce.toString('hex')}`
    const existing = this.#sessions.get(key)
    if (existing) {
      // Our WELCOME was lost and the client retransmitted: answer again, allocate nothing new.
      this.#send({ type: 'welcome', version, nonce: p.nonce, serverId: existing.serverId, ...offer }, port, host)
      return
    }
    if (!this.#admit(host) || this.#sessions.size >= this.#maxClients) {
      this.stats.refusedFull++
      this.#send({ type: 'reject', version, nonce: p.nonce, reason: REJECT_REASON.full, ...offer }, port, host)
      return
    }
    const serverId = randomId(this.#ids)
    const stream = udx().createStream(serverId)
    stream.connect(this.#socket, p.clientId, port, host)
    this.#ids.add(serverId)
    this.#sessions.set(key, { stream, serverId })
    this.stats.streamsCreated++
    stream.on('error', () => { /* surfaced through the secure layer's close */ })
    stream.once('close', () => {
      this.#sessions.delete(key)
      this.#ids.delete(serverId)
    })
    this.#send({ type: 'welcome', version, nonce: p.nonce, serverId, ...offer }, port, host)
    this.emit('connection', stream, `${host}:${port}`, host)
  }
}

export interface UdpConnectOptions {
  timeoutMs: number
  clock?: Clock
  /** What the client speaks (default LOCAL_OFFER), sent in the HELLO's padding. */
  offer?: ProtocolOffer
}

/** A finished client handshake. */
export interface UdpHandshake {
  /** The connected udx stream; it owns its socket (when the stream closes, the socket closes). */
  stream: RawStream
  /**
   * The server's offer from its WELCOME, or null from a protocol-2 listener (plain WELCOME): the
   * client must then authenticate with a protocol-2 AUTH. Unauthenticated: a hint, not a grant.
   */
  server: ProtocolOffer | null
}

/** Resolves a host name to one IP address (udx takes addresses only). */
export async function resolveHost(host: string): Promise<string> {
  if (isIP(host)) return host
  try {
    return (await lookup(host)).address
  } catch (err) {
    throw new AssetSyncError('ERR_CONNECT', `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err })
  }
}

/**
 * Runs the client side of the handshake and returns a connected udx stream. The stream owns its
 * socket: when the stream closes, the socket closes.
 */
export async function connectUdp(host: string, port: number, opts: UdpConnectOptions): Promise<RawStream> {
  return (await udpHandshake(host, port, opts)).stream
}

/** `connectUdp`, also returning what the WELCOME said about the server's protocol versions. */
export async function udpHandshake(host: string, port: number, opts: UdpConnectOptions): Promise<UdpHandshake> {
  const clock = opts.clock ?? systemClock
  const offer = opts.offer ?? LOCAL_OFFER
  const ip = await resolveHost(host)
  const socket = udx().createSocket()
  socket.bind(0, isIP(ip) === 6 ? '::' : '0.0.0.0')
  raiseBuffers(socket)
  const clientId = randomId(new Set())
  const stream = udx().createStream(clientId)
  const nonce = randomBytes(NONCE_BYTES)
  const target = `udp://${host}:${port}`

  return new Promise<UdpHandshake>((resolve, reject) => {
    let cookie: Buffer | null = null
    let delay = HANDSHAKE_RETRY_MS
    let cancelRetry = (): void => {}
    const hello = (): void => {
      // The version byte is our lowest version: a protocol-2 listener accepts exactly 2 and
      // never reads the offer in the padding.
      socket.trySend(encodeHandshake({ type: 'hello', version: offer.minVersion, clientId, nonce, cookie, offer }), port, ip)
    }
    const retry = (): void => {
      hello()
      cancelRetry = clock.after(delay, retry)
      delay = Math.min(delay * 2, HANDSHAKE_RETRY_MAX_MS)
    }
    const finish = (err: Error | null, server: ProtocolOffer | null = null): void => {
      cancelRetry()
      cancelTimeout()
      socket.removeListener('message', onMessage)
      if (err) {
        stream.destroy()
        void socket.close()
        reject(err)
        return
      }
      stream.once('close', () => { void socket.close() })
      resolve({ stream, server })
    }
    const onMessage = (buf: Buffer, rinfo: { host: string; port: number }): void => {
      if (rinfo.port !== port || rinfo.host !== ip) return
      const p = decodeHandshake(buf)
      if (p === null || p.type === 'hello' || !p.nonce.equals(nonce)) return
      if (p.type === 'cookie') {
        cookie = p.cookie
        cancelRetry()
        delay = HANDSHAKE_RETRY_MS
        retry()
      } else if (p.type === 'welcome') {
        stream.connect(socket, p.serverId, port, ip)
        finish(null, p.offer ?? null)
      } else if (p.reason === REJECT_REASON.version) {
        const theirs = describeVersions(p.offer ?? singleVersion(p.version))
        finish(new AssetSyncError('ERR_VERSION', `${target} speaks protocol ${theirs}, this assetsync speaks ${describeVersions(offer)}: use matching versions`))
      } else {
        finish(new AssetSyncError('ERR_LIMIT', `${target} refused the connection: server full`))
      }
    }
    const cancelTimeout = clock.after(opts.timeoutMs, () => finish(new AssetSyncError('ERR_TIMEOUT',
      `no answer from ${target} within ${opts.timeoutMs / 1000} s (is the server running, with --transport udp?)`)))
    socket.on('message', onMessage)
    retry()
  })
}
