/**
 * The part of a connection both sides share: frames over a message-framed stream (Noise secret
 * stream: one write = one frame), send/drain backpressure, keepalive and idle timeout on one
 * timer of the injected clock, the negotiated version and features with the ignore rule for
 * optional frames, and a clean close. ClientConnection and ServerConnection add their halves.
 * Works the same over udx and TCP; never prints.
 */
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { AssetSyncError, ProtocolError, isErrorCode } from '../errors.js'
import {
  CLOSE_GRACE_MS, IDLE_TIMEOUT_MS, KEEPALIVE_MS, MAX_PATH_BYTES, MAX_TEXT_BYTES, REPORT_MAX_ERROR_BYTES, REPORT_MAX_PATHS, TIMER_TICK_MS,
} from '../limits.js'
import { type Clock, systemClock } from './clock.js'
import { decode, encode } from './codec.js'
import {
  FEATURES, MSG, type FeatureName, type Message, type Sender, featureOfCode, skipsFrame,
} from './messages.js'
import { type Agreement, type ProtocolOffer, offerOf } from './negotiation.js'

export interface ConnectionOptions {
  /** "host:port" of the peer, for messages. */
  remote: string
  clock?: Clock
  keepaliveMs?: number
  idleTimeoutMs?: number
  /** Client: a request with no reply frame for this long fails with ERR_TIMEOUT. */
  requestTimeoutMs?: number
  /** What this side speaks, over LOCAL_OFFER (tests; a server turning features off). */
  protocol?: Partial<ProtocolOffer>
}

type Phase = 'auth' | 'open' | 'closed'

/** `s` cut to at most `max` UTF-8 bytes, on a character boundary. */
function clipUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s
  let out = Buffer.from(s).subarray(0, max - 3).toString('utf8')
  if (out.endsWith('\ufffd')) out = out.slice(0, -1) // a character cut in half
  return `${out}…`
}

/**
 * Human text (ERROR message, RESPONSE reason, REPORT error) cut to its cap: the peer refuses a
 * longer one as a protocol error. Messages can quote paths and system errors of any length (a
 * not-found reason quoting a 1024-byte path killed the client's connection; found by fuzzing),
 * and a Lua traceback has no length at all. A REPORT keeps its first REPORT_MAX_PATHS paths that
 * fit the wire, and a whole, non-negative number of milliseconds.
 */
function clipText(msg: Message): Message {
  if (msg.type === 'error') return { ...msg, message: clipUtf8(msg.message, MAX_TEXT_BYTES) }
  if (msg.type === 'response' && msg.status !== 'file') return { ...msg, reason: clipUtf8(msg.reason, MAX_TEXT_BYTES) }
  if (msg.type === 'report') {
    return {
      ...msg,
      ms: Number.isFinite(msg.ms) ? Math.min(0xffff_ffff, Math.max(0, Math.round(msg.ms))) : 0,
      paths: msg.paths.filter((p) => Buffer.byteLength(p) <= MAX_PATH_BYTES).slice(0, REPORT_MAX_PATHS),
      error: msg.error === null ? null : clipUtf8(msg.error, REPORT_MAX_ERROR_BYTES),
    }
  }
  return msg
}

/**
 * Events: 'message' (msg) — frames the side hands up (server: every client frame once open;
 * client: frames that answer no request, such as UPDATE); 'open' — auth done; 'close'
 * (err: AssetSyncError | null) — exactly once; 'drain'.
 */
export abstract class FrameChannel extends EventEmitter {
  readonly remote: string
  /** Which side this end is. */
  abstract readonly role: Sender
  /** What this side speaks. */
  readonly offer: ProtocolOffer
  readonly #stream: Duplex
  readonly #clock: Clock
  readonly #keepaliveMs: number
  readonly #idleTimeoutMs: number
  readonly #cancelTick: () => void
  #phase: Phase = 'auth'
  #lastSent: number
  #lastRecv: number
  #needDrain = false
  #localPause = false
  #closeError: AssetSyncError | null = null
  #onAuth: ((msg: Message) => void) | null = null
  #version = 0
  #features = 0
  #skipped = 0
  bytesSent = 0
  bytesReceived = 0

  constructor(stream: Duplex, opts: ConnectionOptions) {
    super()
    this.#stream = stream
    this.remote = opts.remote
    this.offer = offerOf(opts.protocol)
    this.#clock = opts.clock ?? systemClock
    this.#keepaliveMs = opts.keepaliveMs ?? KEEPALIVE_MS
    this.#idleTimeoutMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS
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
  /** The protocol version agreed at authentication (0 before). */
  get version(): number { return this.#version }
  /** The features agreed at authentication, as a bitset (FEATURES[name].bit); 0 before. */
  get features(): number { return this.#features }
  /** Whether feature `name` was agreed: only then may its optional frames be sent. */
  has(name: FeatureName): boolean { return ((this.#features >>> FEATURES[name].bit) & 1) === 1 }
  /** Optional frames received and skipped: not agreed, or unknown to this build (§5.3). */
  get skippedFrames(): number { return this.#skipped }
  /**
   * Bytes of frames written but not yet taken by the transport (the secret stream's queue; a
   * Node stream's writableLength otherwise). What a peer that does not read makes us hold.
   */
  get queuedBytes(): number {
    const st = this.#stream as Duplex & { _writableState?: { buffered?: unknown } }
    const buffered = st._writableState?.buffered
    return typeof buffered === 'number' ? buffered : st.writableLength
  }

  protected get clock(): Clock { return this.#clock }

  /**
   * Queues one frame. Returns false when the caller should wait for `drained()`. An optional
   * frame of a feature that was not agreed is a local bug (RangeError): a protocol-2 peer would
   * end the connection over it.
   */
  send(msg: Message): boolean {
    if (this.#phase === 'closed') return false
    const code = MSG[msg.type] as number
    if (skipsFrame(code, this.role, this.#features)) {
      throw new RangeError(`${msg.type} frame needs feature ${featureOfCode(code, this.role) ?? '(none)'}, not agreed with ${this.remote}`)
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
    if (this.#phase === 'closed') return Promise.reject(this.closedError())
    if (!this.#needDrain) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const done = (): void => { this.off('close', fail); resolve() }
      const fail = (): void => { this.off('drain', done); reject(this.closedError()) }
      this.once('drain', done)
      this.once('close', fail)
    })
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

  /**
   * Closes the connection: fails pending work with `err` (or ERR_CONNECTION_LOST), flushes
   * queued frames with a graceful end, and destroys the stream after CLOSE_GRACE_MS.
   */
  close(err: AssetSyncError | null = null): void {
    if (this.#phase === 'closed') return
    this.#phase = 'closed'
    this.#closeError = err
    this.#cancelTick()
    this.onClose(err ?? this.closedError())
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

  /** Ends the connection for `err` (a protocol violation, a bug). The server says why first. */
  fail(err: AssetSyncError): void {
    this.close(err)
  }

  // --- for the two sides ---------------------------------------------------------------------

  /** A decoded frame after authentication (PINGs and skipped frames never get here). */
  protected abstract onFrame(msg: Message): void

  /** Every timer tick while not closed (after the keepalive and idle checks). */
  protected onTick(_now: number): void { /* nothing by default */ }

  /** Called once by close(), before 'close' is emitted, with the error pending work fails with. */
  protected onClose(_failure: AssetSyncError): void { /* nothing by default */ }

  /** Hands the first non-PING frame to `handler` (the auth exchange). */
  protected expectAuth(handler: (msg: Message) => void): void { this.#onAuth = handler }

  /** Authentication succeeded with `agreed`: the connection is open. */
  protected opened(agreed: Agreement): void {
    this.#version = agreed.version
    this.#features = agreed.features
    this.#phase = 'open'
  }

  protected closedError(): AssetSyncError {
    return this.#closeError ?? new AssetSyncError('ERR_CONNECTION_LOST', `connection to ${this.remote} closed`)
  }

  /** The error an ERROR frame stands for (a code this build does not know becomes ERR_PROTOCOL). */
  protected remoteError(code: string, message: string): AssetSyncError {
    return new AssetSyncError(isErrorCode(code) ? code : 'ERR_PROTOCOL', message)
  }

  /**
   * Hands a frame to the 'message' listeners. A listener that throws (a bug, or input it did not
   * expect) costs this connection, never the process: the peer gets ERROR ERR_INTERNAL.
   */
  protected deliver(msg: Message): void {
    try {
      this.emit('message', msg)
    } catch (err) {
      this.fail(new AssetSyncError('ERR_INTERNAL', `internal error while handling a ${msg.type} frame`, { cause: err }))
    }
  }

  // --- internals -----------------------------------------------------------------------------

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
    this.onTick(now)
  }

  #onFrame(frame: Buffer): void {
    if (this.#phase === 'closed') return
    this.#lastRecv = this.#clock.now()
    this.bytesReceived += frame.length
    const sender: Sender = this.role === 'client' ? 'server' : 'client'
    // An optional frame we did not agree on, or do not know: skip it, do not fail (§5.3).
    if (frame.length > 0 && skipsFrame(frame[0] as number, sender, this.#features)) {
      this.#skipped++
      return
    }
    let msg: Message
    try {
      msg = decode(frame, sender)
    } catch (err) {
      this.fail(err instanceof ProtocolError ? err : new ProtocolError('undecodable frame', { cause: err }))
      return
    }
    if (msg.type === 'ping') return
    if (this.#phase === 'auth') {
      const onAuth = this.#onAuth
      this.#onAuth = null
      if (onAuth) onAuth(msg)
      else this.close(new ProtocolError(`${msg.type} frame before authentication`))
      return
    }
    this.onFrame(msg)
  }
}
