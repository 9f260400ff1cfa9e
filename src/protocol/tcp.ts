/**
 * TCP transport (`--transport tcp`): the same Noise layer and framing over node:net, for networks
 * that block UDP.
 */
import { EventEmitter } from 'node:events'
import { type Server, type Socket, createConnection, createServer } from 'node:net'
import { AssetSyncError } from '../errors.js'
import { MAX_CLIENTS } from '../limits.js'
import { type Clock, systemClock } from './clock.js'
import type { Listener, RawStream } from './transport.js'

export class TcpListener extends EventEmitter implements Listener {
  readonly transport = 'tcp' as const
  readonly #server: Server
  readonly #sockets = new Set<Socket>()

  private constructor(server: Server, maxClients: number) {
    super()
    this.#server = server
    server.on('connection', (socket) => {
      if (this.#sockets.size >= maxClients) {
        socket.destroy()
        return
      }
      socket.setNoDelay(true)
      socket.on('error', () => { /* surfaced through the secure layer's close */ })
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
      this.emit('connection', socket, `${socket.remoteAddress}:${socket.remotePort}`)
    })
  }

  static async listen(host: string, port: number, opts: { maxClients?: number } = {}): Promise<TcpListener> {
    const server = createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new AssetSyncError('ERR_CONNECT', `cannot listen on tcp://${host}:${port}: ${err.message}`, { cause: err })))
      server.listen(port, host, () => resolve())
    })
    return new TcpListener(server, opts.maxClients ?? MAX_CLIENTS)
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
      resolve(socket)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      cancel()
      reject(new AssetSyncError('ERR_CONNECT', `cannot connect to ${target}: ${err.code ?? err.message}`, { cause: err }))
    })
  })
}
