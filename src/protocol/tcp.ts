/**
 * TCP transport (`--transport tcp`): the same Noise layer and framing over node:net, for networks
 * that block UDP.
 */
import { EventEmitter } from 'node:events'
import { type Server, type Socket, createConnection, createServer } from 'node:net'
import { AssetSyncError } from '../errors.js'
import { CLOSE_GRACE_MS, HANDSHAKE_RATE_PER_ADDR, MAX_CLIENTS } from '../limits.js'
import { PerSecond, addressKey } from './address.js'
import { type Clock, systemClock } from './clock.js'
import { NONCE_BYTES, REJECT_REASON, encodeHandshake } from './handshake-packets.js'
import { COMPAT_VERSION } from './messages.js'
import type { ListenOptions, Listener, ListenerStats, RawStream } from './transport.js'

/**
 * What a full TCP listener writes before it closes: the UDP handshake's REJECT(full) packet with
 * a zero nonce (docs/protocol.md §1.1). Without it the client only saw its Noise handshake fail
 * ("is it an assetsync server?"); with it, the client fails with ERR_LIMIT "server full" as over
 * UDP. As a secret-stream length prefix it would announce 283,457 bytes, so no Noise message is
 * ever mistaken for it. Its version byte stays COMPAT_VERSION (2): protocol-2 clients compare
 * these exact bytes.
 */
const TCP_FULL = encodeHandshake({ type: 'reject', version: COMPAT_VERSION, nonce: Buffer.alloc(NONCE_BYTES), reason: REJECT_REASON.full })

/** Tells a client we cannot take that the server is full, then closes (bounded by a timer). */
function refuseFull(socket: Socket): void {
  socket.on('error', () => {})
  // Read and drop the client's Noise message: closing with unread data would send a RST, which
  // can make the client's kernel discard our REJECT before the client reads it.
  socket.resume()
  socket.end(TCP_FULL)
  socket.setTimeout(CLOSE_GRACE_MS, () => socket.destroy())
}

export interface TcpListenOptions extends ListenOptions {
  clock?: Clock
}

export class TcpListener extends EventEmitter implements Listener {
  readonly transport = 'tcp' as const
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  readonly stats: ListenerStats = { rateLimited: 0, refusedFull: 0 }

  private constructor(server: Server, opts: TcpListenOptions) {
    super()
    this.#server = server
    const maxClients = opts.maxClients ?? MAX_CLIENTS
    const admit = opts.admit ?? (() => true)
    const clock = opts.clock ?? systemClock
    // A connect counts as two, as over UDP (two HELLOs): one host opens up to ~250 a second.
    const rate = new PerSecond(HANDSHAKE_RATE_PER_ADDR, MAX_CLIENTS, () => clock.now())
    server.on('connection', (socket) => {
      const host = socket.remoteAddress ?? ''
      if (rate.over(addressKey(host), 2)) {
        // Like a dropped HELLO: nothing is said, and no Noise work is done for it.
        this.stats.rateLimited++
        socket.on('error', () => {})
        socket.destroy()
        return
      }
      if (!admit(host) || this.#sockets.size >= maxClients) {
        this.stats.refusedFull++
        refuseFull(socket)
        return
      }
      socket.setNoDelay(true)
      socket.on('error', () => { /* surfaced through the secure layer's close */ })
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
      this.emit('connection', socket, `${host}:${socket.remotePort}`, host)
    })
  }

  static async listen(host: string, port: number, opts: TcpListenOptions = {}): Promise<TcpListener> {
    const server = createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new AssetSyncError('ERR_CONNECT', `cannot listen on tcp://${host}:${port}: ${err.message}`, { cause: err })))
      server.listen(port, host, () => resolve())
    })
    return new TcpListener(server, opts)
  }

  address(): { host: string; port: number } {
    const a = this.#server.address()
    return typeof a === 'object' && a ? { host: a.address, port: a.port } : { host: '', port: 0 }
  }

  get connections(): number { return this.#sockets.size }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

export async function connectTcp(host: string, port: number, opts: { timeoutMs: number; clock?: Clock }): Promise<RawStream> {
  const clock = opts.clock ?? systemClock
  const target = `tcp://${host}:${port}`
  return new Promise<RawStream>((resolve, reject) => {
    const socket = createConnection({ host, port })
    const cancel = clock.after(opts.timeoutMs, () => {
      socket.destroy()
      reject(new AssetSyncError('ERR_TIMEOUT', `no answer from ${target} within ${opts.timeoutMs / 1000} s`))
    })
    socket.once('connect', () => {
      cancel()
      socket.setNoDelay(true)
      socket.removeAllListeners('error')
      socket.on('error', () => { /* surfaced through the secure layer's close */ })
      // A full server answers with TCP_FULL instead of Noise; the error is surfaced by dial().
      let head = Buffer.alloc(0)
      const sniff = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk.subarray(0, TCP_FULL.length - head.length)])
        if (!head.equals(TCP_FULL.subarray(0, head.length))) socket.off('data', sniff)
        else if (head.length === TCP_FULL.length) {
          socket.off('data', sniff)
          socket.destroy(new AssetSyncError('ERR_LIMIT', `${target} refused the connection: server full`))
        }
      }
      socket.on('data', sniff)
      resolve(socket)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      cancel()
      reject(new AssetSyncError('ERR_CONNECT', `cannot connect to ${target}: ${err.code ?? err.message}`, { cause: err }))
    })
  })
}
