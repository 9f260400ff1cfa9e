/**
 * One encrypted, authenticated assetsync connection over a message-framed stream (Noise secret
 * stream: one write = one frame). Owns: the auth exchange, request ids and their timeouts,
 * keepalive and idle timeout (one timer per connection), backpressure, and a clean close.
 * Works the same over udx and TCP; never prints.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { AssetSyncError, ProtocolError, isErrorCode } from '../errors.js'
import {
  CLOSE_GRACE_MS, CREDIT_UPDATE_BYTES, FLOW_WINDOW_BYTES, IDLE_TIMEOUT_MS, KEEPALIVE_MS, MAX_TEXT_BYTES, REQUEST_TIMEOUT_MS,
  TIMER_TICK_MS,
} from '../limits.js'
import { type Clock, systemClock } from './clock.js'
import { decode, encode } from './codec.js'
import {
  PROTOCOL_VERSION, type ChunkMsg, type ClientMessage, type Message, type ReplyMessage, type Sender, type ServerMessage,
} from './messages.js'

export interface ConnectionOptions {
  /** Which side this end is. */
  role: Sender
  /** "host:port" of the peer, for messages. */
  remote: string
  clock?: Clock
  keepaliveMs?: number
  idleTimeoutMs?: number
  /** A request with no reply frame for this long fails with ERR_TIMEOUT. */
  requestTimeoutMs?: number
}

/** Called with each reply frame of a request; return true when the request is complete. */
export type ReplyHandler = (reply: ReplyMessage) => boolean

export interface RequestOptions {
  /**
   * CHUNK data handed to the handler stays charged to the flow-control window until the caller
   * gives it back with `release(bytes)` (e.g. once written to disk). Default: released as soon as
   * the handler returns.
   */
  holdChunks?: boolean
}

interface Pending {
  onReply: ReplyHandler
  holdChunks: boolean
  deadline: number
  resolve: () => void
  reject: (err: Error) => void
}

type Phase = 'auth' | 'open' | 'closed'

function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

/** `s` cut to at most `max` UTF-8 bytes, on a character boundary. */
function clipUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s
  let out = Buffer.from(s).subarray(0, max - 3).toString('utf8')
  if (out.endsWith('\ufffd')) out = out.slice(0, -1) // a character cut in half
  return `${out}…`
}

/**
 * Human text (ERROR message, RESPONSE reason) cut to MAX_TEXT_BYTES: the peer refuses a longer
 * one as a protocol error. Messages can quote paths and system errors of any length (a
 * not-found reason quoting a 1024-byte path killed the client's connection; found by fuzzing).
 */
function clipText(msg: Message): Message {
  if (msg.type === 'error') return { ...msg, message: clipUtf8(msg.message, MAX_TEXT_BYTES) }
  if (msg.type === 'response' && msg.status !== 'file') return { ...msg, reason: clipUtf8(msg.reason, MAX_TEXT_BYTES) }
  return msg
}

/** Constant-time token comparison (both sides hashed to one length first). */
export function tokenMatches(expected: string, given: string): boolean {
  return timingSafeEqual(tokenDigest(expected), tokenDigest(given))
}

/**
 * Events: 'message' (msg) — frames that are not replies (server: every client frame once open;
 * client: UPDATE); 'open' — auth done; 'close' (err: AssetSyncError | null) — exactly once.
 */
export class Connection extends EventEmitter {
  readonly remote: string
  readonly role: Sender
  readonly #stream: Duplex
  readonly #clock: Clock
  readonly #keepaliveMs: number
  readonly #idleTimeoutMs: number
  readonly #requestTimeoutMs: number
  readonly #pending = new Map<number, Pending>()
  readonly #cancelTick: () => void
  #phase: Phase = 'auth'
  #nextId = 1
  #lastSent: number
  #lastRecv: number
  #needDrain = false
  #localPause = false
  #closeError: AssetSyncError | null = null
  #onAuth: ((msg: Message) => void) | null = null
  /** Server: CHUNK bytes the client has allowed us to send. */
  #sendCredit = FLOW_WINDOW_BYTES
  /** Client: CHUNK bytes the server may still send before it overruns the window. */
  #recvWindow = FLOW_WINDOW_BYTES
  /** Client: CHUNK bytes consumed but not yet granted back with CREDIT. */
  #toGrant = 0
  bytesSent = 0
  bytesReceived = 0

  constructor(stream: Duplex, opts: ConnectionOptions) {
    super()
    this.#stream = stream
    this.remote = opts.remote
    this.role = opts.role
    this.#clock = opts.clock ?? systemClock
    this.#keepaliveMs = opts.keepaliveMs ?? KEEPALIVE_MS
    this.#idleTimeoutMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS
    this.#lastSent = this.#lastRecv = this.#clock.now()
    stream.on('data', (frame: Buffer) => this.#onFrame(frame))
    stream.on('drain', () => {
      this.#needDrain = false
      this.emit('drain')
    })
    stream.on('end', () => this.#lost('closed by the peer'))
    stream.on('error', (err: Error) => this.#lost(err.message))
    stream.on('close', () => this.#lost('closed'))
    this.#cancelTick = this.#clock.every(Math.min(TIMER_TICK_MS, this.#keepaliveMs), () => this.#tick())
  }

  get isOpen(): boolean { return this.#phase === 'open' }
  get closed(): boolean { return this.#phase === 'closed' }
  get closeError(): AssetSyncError | null { return this.#closeError }
  /** Requests waiting for replies. */
  get inflight(): number { return this.#pending.size }

  /**
   * Queues one frame. Returns false when the caller should wait for `drained()`. A CHUNK spends
   * flow-control credit; sending one beyond the credit is a bug (RangeError): wait with
   * `credited()` or use `sendChunk()`.
   */
  send(msg: Message): boolean {
    if (this.#phase === 'closed') return false
    if (msg.type === 'chunk') {
      if (msg.data.byteLength > this.#sendCredit) {
        throw new RangeError(`CHUNK of ${msg.data.byteLength} bytes exceeds the flow-control credit of ${this.#sendCredit}`)
      }
      this.#sendCredit -= msg.data.byteLength
    }
    const frame = encode(clipText(msg))
    this.bytesSent += frame.length
    this.#lastSent = this.#clock.now()
    const ok = this.#stream.write(frame)
    if (!ok) this.#needDrain = true
    return ok
  }

  /** Resolves when queued frames have drained (at once if nothing waits); rejects once closed. */
  drained(): Promise<void> {
    if (this.#phase === 'closed') return Promise.reject(this.#closedError())
    if (!this.#needDrain) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const done = (): void => { this.off('close', fail); resolve() }
      const fail = (): void => { this.off('drain', done); reject(this.#closedError()) }
      this.once('drain', done)
      this.once('close', fail)
    })
  }

  /** Server: CHUNK data bytes that may be sent now (flow control, see FLOW_WINDOW_BYTES). */
  get credit(): number { return this.#sendCredit }

  /** Server: resolves once `bytes` of CHUNK data may be sent (at once if they may); rejects once closed. */
  credited(bytes: number): Promise<void> {
    if (this.#phase === 'closed') return Promise.reject(this.#closedError())
    if (this.#sendCredit >= bytes) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.#sendCredit < bytes) return
        this.off('credit', check); this.off('close', fail); resolve()
      }
      const fail = (): void => { this.off('credit', check); reject(this.#closedError()) }
      this.on('credit', check)
      this.once('close', fail)
    })
  }

  /** Server: sends a CHUNK once the client's credit allows it, then waits for the stream to drain. */
  async sendChunk(msg: ChunkMsg): Promise<void> {
    await this.credited(msg.data.byteLength)
    if (!this.send(msg)) await this.drained()
  }

  /**
   * Client: `bytes` of CHUNK data held under `holdChunks` have been consumed; the server may send
   * that many more. Credit goes back in CREDIT_UPDATE_BYTES steps (one small frame per MiB).
   */
  release(bytes: number): void {
    this.#toGrant += bytes
    if (this.#toGrant < CREDIT_UPDATE_BYTES || this.#phase !== 'open') return
    const grant = this.#toGrant
    this.#toGrant = 0
    this.#recvWindow += grant
    this.send({ type: 'credit', bytes: grant })
  }

  /**
   * Pauses reading (local backpressure, e.g. a slow disk). The idle timeout is suspended while
   * paused by us, so a slow consumer is never mistaken for a dead peer.
   */
  pause(): void { this.#localPause = true; this.#stream.pause() }
  resume(): void {
    this.#localPause = false
    this.#lastRecv = this.#clock.now()
    this.#stream.resume()
  }

  /** Client: sends `build(id)` and feeds reply frames for that id to `onReply` until it returns true. */
  request(build: (id: number) => ClientMessage, onReply: ReplyHandler, opts: RequestOptions = {}): { id: number; done: Promise<void> } {
    const id = this.#allocId()
    const done = new Promise<void>((resolve, reject) => {
      if (this.#phase !== 'open') {
        reject(this.#closedError())
        return
      }
      this.#pending.set(id, { onReply, holdChunks: opts.holdChunks ?? false, deadline: this.#clock.now() + this.#requestTimeoutMs, resolve, reject })
      try {
        this.send(build(id))
      } catch (err) {
        // An unencodable frame (RangeError) never left: forget the id rather than time it out later.
        this.#pending.delete(id)
        throw err
      }
    })
    return { id, done }
  }

  /** Ends request `id` locally (its late replies are dropped) and tells the server to stop. */
  cancel(id: number, reason: Error): void {
    const p = this.#pending.get(id)
    if (!p) return
    this.#pending.delete(id)
    this.send({ type: 'cancel', id })
    p.reject(reason)
  }

  /** Client side of auth: sends the token, resolves on AUTH_OK, rejects with ERR_AUTH/ERR_VERSION. */
  authenticate(token: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onClose = (err: AssetSyncError | null): void => reject(err ?? this.#closedError())
      this.once('close', onClose)
      this.#onAuth = (msg) => {
        this.off('close', onClose)
        if (msg.type === 'auth-ok' && msg.version !== PROTOCOL_VERSION) {
          const err = new AssetSyncError('ERR_VERSION',
            `${this.remote} speaks protocol version ${msg.version}, this assetsync speaks ${PROTOCOL_VERSION}: use matching versions`)
          reject(err)
          this.close(err)
        } else if (msg.type === 'auth-ok') {
          this.#phase = 'open'
          this.emit('open')
          resolve()
        } else if (msg.type === 'error') {
          const err = this.#remoteError(msg.code, msg.message)
          reject(err)
          this.close(err)
        } else {
          const err = new ProtocolError(`expected AUTH_OK, got ${msg.type}`)
          reject(err)
          this.close(err)
        }
      }
      this.send({ type: 'auth', version: PROTOCOL_VERSION, token })
    })
  }

  /**
   * Server side of auth: the first frame must be AUTH with our version and, when `token` is set,
   * that token. Resolves when open; on failure tells the client why and closes.
   */
  acceptAuth(token: string | null): Promise<void> {
    return new Promise((resolve, reject) => {
      const onClose = (err: AssetSyncError | null): void => reject(err ?? this.#closedError())
      this.once('close', onClose)
      this.#onAuth = (msg) => {
        this.off('close', onClose)
        let err: AssetSyncError | null = null
        if (msg.type !== 'auth') err = new ProtocolError(`expected AUTH, got ${msg.type}`)
        else if (msg.version !== PROTOCOL_VERSION) {
          err = new AssetSyncError('ERR_VERSION', `client speaks protocol version ${msg.version}, server speaks ${PROTOCOL_VERSION}`)
        } else if (token !== null && !tokenMatches(token, msg.token)) {
          err = new AssetSyncError('ERR_AUTH', 'access token rejected by the server')
        }
        if (err) {
          this.send({ type: 'error', id: 0, code: err.code, message: err.message })
          reject(err)
          this.close(err)
          return
        }
        this.#phase = 'open'
        this.send({ type: 'auth-ok', version: PROTOCOL_VERSION })
        this.emit('open')
        resolve()
      }
    })
  }

  /**
   * Closes the connection: fails pending requests with `err` (or ERR_CONNECTION_LOST), flushes
   * queued frames with a graceful end, and destroys the stream after CLOSE_GRACE_MS.
   */
  close(err: AssetSyncError | null = null): void {
    if (this.#phase === 'closed') return
    this.#phase = 'closed'
    this.#closeError = err
    this.#cancelTick()
    const failure = err ?? this.#closedError()
    for (const p of this.#pending.values()) p.reject(failure)
    this.#pending.clear()
    this.#stream.end()
    const cancelGrace = this.#clock.after(CLOSE_GRACE_MS, () => this.#stream.destroy())
    this.#stream.once('close', cancelGrace)
    this.emit('close', err)
  }

  /** Destroys at once (peer known dead, or tests). */
  destroy(err: AssetSyncError | null = null): void {
    this.close(err)
    this.#stream.destroy()
  }

  #closedError(): AssetSyncError {
    return this.#closeError ?? new AssetSyncError('ERR_CONNECTION_LOST', `connection to ${this.remote} closed`)
  }

  #remoteError(code: string, message: string): AssetSyncError {
    return new AssetSyncError(isErrorCode(code) ? code : 'ERR_PROTOCOL', message)
  }

  #allocId(): number {
    // Ids wrap at 2^32 and skip 0 (0 addresses the whole connection in ERROR frames).
    do {
      this.#nextId = (this.#nextId + 1) >>> 0
    } while (this.#nextId === 0 || this.#pending.has(this.#nextId))
    return this.#nextId
  }

  /**
   * Ends the connection for `err` (a protocol violation, a bug). A server tells the client why
   * first (ERROR id 0); a client just closes, since ERROR is a server → client frame.
   */
  fail(err: AssetSyncError): void {
    if (this.role === 'server') {
      const message = err.code === 'ERR_PROTOCOL' ? `protocol error: ${err.message}` : err.message
      this.send({ type: 'error', id: 0, code: err.code, message })
    }
    this.close(err)
  }

  #lost(why: string): void {
    if (this.#phase === 'closed') return
    this.close(new AssetSyncError('ERR_CONNECTION_LOST', `connection to ${this.remote} lost: ${why}`))
  }

  #tick(): void {
    const now = this.#clock.now()
    if (!this.#localPause && now - this.#lastRecv >= this.#idleTimeoutMs) {
      this.destroy(new AssetSyncError('ERR_CONNECTION_LOST',
        `connection to ${this.remote} lost: no data for ${this.#idleTimeoutMs / 1000} s (peer gone)`))
      return
    }
    if (now - this.#lastSent >= this.#keepaliveMs) this.send({ type: 'ping' })
    for (const [id, p] of this.#pending) {
      if (p.deadline <= now) {
        this.cancel(id, new AssetSyncError('ERR_TIMEOUT',
          `request to ${this.remote} timed out after ${this.#requestTimeoutMs / 1000} s without a reply`))
      }
    }
  }

  #onFrame(frame: Buffer): void {
    if (this.#phase === 'closed') return
    this.#lastRecv = this.#clock.now()
    this.bytesReceived += frame.length
    let msg: Message
    try {
      msg = decode(frame, this.role === 'client' ? 'server' : 'client')
    } catch (err) {
      this.fail(err instanceof ProtocolError ? err : new ProtocolError('undecodable frame', { cause: err }))
      return
    }
    if (msg.type === 'ping') return
    if (msg.type === 'credit' && this.#phase === 'open' && this.role === 'server') {
      this.#sendCredit += msg.bytes
      this.emit('credit')
      return
    }
    if (this.#phase === 'auth') {
      const onAuth = this.#onAuth
      this.#onAuth = null
      if (onAuth) onAuth(msg)
      else this.close(new ProtocolError(`${msg.type} frame before authentication`))
      return
    }
    if (this.role === 'server') {
      this.#deliver(msg)
      return
    }
    this.#onServerFrame(msg as Exclude<ServerMessage, { type: 'ping' }>)
  }

  /**
   * Hands a frame to the 'message' listeners. A listener that throws (a bug, or input it did not
   * expect) costs this connection, never the process: the peer gets ERROR ERR_INTERNAL.
   */
  #deliver(msg: Message): void {
    try {
      this.emit('message', msg)
    } catch (err) {
      this.fail(new AssetSyncError('ERR_INTERNAL', `internal error while handling a ${msg.type} frame`, { cause: err }))
    }
  }

  #onServerFrame(msg: Exclude<ServerMessage, { type: 'ping' }>): void {
    if (msg.type === 'error' && msg.id === 0) {
      this.close(this.#remoteError(msg.code, `server: ${msg.message}`))
      return
    }
    if (msg.type === 'update' || msg.type === 'auth-ok') {
      if (msg.type === 'update') this.#deliver(msg)
      return
    }
    const chunkBytes = msg.type === 'chunk' ? msg.data.byteLength : 0
    if (chunkBytes > this.#recvWindow) {
      this.fail(new ProtocolError(`server sent ${chunkBytes} CHUNK bytes with ${this.#recvWindow} left in the flow-control window`))
      return
    }
    this.#recvWindow -= chunkBytes
    const p = this.#pending.get(msg.id)
    if (!p) { // a late reply to a cancelled or timed-out request
      this.release(chunkBytes)
      return
    }
    p.deadline = this.#clock.now() + this.#requestTimeoutMs
    if (msg.type === 'error') {
      this.#pending.delete(msg.id)
      p.reject(this.#remoteError(msg.code, msg.message))
      return
    }
    let complete: boolean
    try {
      complete = p.onReply(msg)
    } catch (err) {
      this.release(chunkBytes)
      this.cancel(msg.id, err instanceof Error ? err : new Error(String(err)))
      return
    }
    if (!p.holdChunks) this.release(chunkBytes)
    if (complete) {
      this.#pending.delete(msg.id)
      p.resolve()
    }
  }
}
