/**
 * The client half of a connection: the AUTH exchange with version/feature negotiation, request
 * ids and their replies, request timeouts, cancel, and giving flow-control credit back.
 */
import type { Duplex } from 'node:stream'
import { AssetSyncError, ProtocolError } from '../errors.js'
import { CREDIT_UPDATE_BYTES, FLOW_WINDOW_BYTES, PRIORITY_CREDIT_STEP_BYTES, REQUEST_TIMEOUT_MS } from '../limits.js'
import { FrameChannel, type ConnectionOptions } from './frame-channel.js'
import {
  COMPAT_VERSION, FEATURES_SINCE_VERSION, flowBytes, isReply, type AuthMsg, type AuthOkMsg, type ClientMessage, type Message,
  type ReplyMessage, type RequestPriority, type ServerMessage,
} from './messages.js'
import { type Agreement, describeVersions, singleVersion } from './negotiation.js'

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

/**
 * How the client authenticates. 'negotiate': the protocol-3 AUTH with its version range and
 * features. 'legacy': the protocol-2 AUTH, for a server known to speak only 2 (a plain WELCOME,
 * or a refused 'negotiate' over TCP; docs/protocol.md §5.2).
 */
export type AuthStyle = 'negotiate' | 'legacy'

interface Pending {
  onReply: ReplyHandler
  holdChunks: boolean
  /** A `background` request (feature `priority`): credit goes back in small steps while one is open. */
  background: boolean
  deadline: number
  resolve: () => void
  reject: (err: Error) => void
}

export class ClientConnection extends FrameChannel {
  readonly role = 'client' as const
  readonly #requestTimeoutMs: number
  readonly #pending = new Map<number, Pending>()
  #nextId = 1
  /** CHUNK bytes the server may still send before it overruns the window. */
  #recvWindow = FLOW_WINDOW_BYTES
  /** CHUNK bytes consumed but not yet granted back with CREDIT. */
  #toGrant = 0
  #refusedNegotiation = false
  /** Open `background` requests (see release). */
  #background = 0

  constructor(stream: Duplex, opts: ConnectionOptions) {
    super(stream, opts)
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS
  }

  /** Requests waiting for replies. */
  get inflight(): number { return this.#pending.size }

  /**
   * True when the server answered our protocol-3 AUTH with ERROR ERR_PROTOCOL, as a protocol-2
   * server does (it refuses the bytes after the token). `dial` then retries with 'legacy'.
   */
  get refusedNegotiation(): boolean { return this.#refusedNegotiation }

  /**
   * `bytes` of CHUNK data held under `holdChunks` have been consumed; the server may send that
   * many more. Credit goes back in CREDIT_UPDATE_BYTES steps (one small frame per MiB), or in
   * PRIORITY_CREDIT_STEP_BYTES steps while a `background` request is open: the server keeps those
   * within BACKGROUND_WINDOW_BYTES, and waits for this credit (docs/protocol.md §4.2).
   */
  release(bytes: number): void {
    this.#toGrant += bytes
    if (this.#toGrant < (this.#background > 0 ? PRIORITY_CREDIT_STEP_BYTES : CREDIT_UPDATE_BYTES) || !this.isOpen) return
    const grant = this.#toGrant
    this.#toGrant = 0
    this.#recvWindow += grant
    this.send({ type: 'credit', bytes: grant })
  }

  /** Sends `build(id)` and feeds reply frames for that id to `onReply` until it returns true. */
  request(build: (id: number) => ClientMessage, onReply: ReplyHandler, opts: RequestOptions = {}): { id: number; done: Promise<void> } {
    const id = this.#allocId()
    const done = new Promise<void>((resolve, reject) => {
      if (!this.isOpen) {
        reject(this.closedError())
        return
      }
      const msg = build(id)
      const p: Pending = {
        onReply, holdChunks: opts.holdChunks ?? false, background: false, deadline: this.clock.now() + this.#requestTimeoutMs, resolve, reject,
      }
      this.#pending.set(id, p)
      try {
        this.send(msg)
      } catch (err) {
        // An unencodable frame (RangeError) never left: forget the id rather than time it out later.
        this.#pending.delete(id)
        throw err
      }
      if (msg.type === 'priority-request') this.#setBackground(p, msg.priority === 'background')
    })
    return { id, done }
  }

  /**
   * Moves open request `id` to another priority class (REPRIORITIZE; feature `priority` must be
   * agreed). A no-op for an id that is no longer open.
   */
  reprioritize(id: number, priority: RequestPriority): void {
    const p = this.#pending.get(id)
    if (!p || !this.isOpen) return
    this.send({ type: 'reprioritize', id, priority })
    this.#setBackground(p, priority === 'background')
  }

  #setBackground(p: Pending, background: boolean): void {
    if (p.background === background) return
    p.background = background
    this.#background += background ? 1 : -1
  }

  /** Forgets request `id` (answered, failed or cancelled). */
  #end(id: number): Pending | undefined {
    const p = this.#pending.get(id)
    if (!p) return undefined
    this.#pending.delete(id)
    this.#setBackground(p, false)
    return p
  }

  /** Ends request `id` locally (its late replies are dropped) and tells the server to stop. */
  cancel(id: number, reason: Error): void {
    const p = this.#end(id)
    if (!p) return
    this.send({ type: 'cancel', id })
    p.reject(reason)
  }

  /**
   * Sends the token with our protocol offer; resolves on AUTH_OK (the agreed version and
   * features are then `version`, `features`, `has()`), rejects with ERR_AUTH, ERR_VERSION, ...
   */
  authenticate(token: string, style: AuthStyle = 'negotiate'): Promise<void> {
    return new Promise((resolve, reject) => {
      const legacy = style === 'legacy'
      if (legacy && this.offer.minVersion > COMPAT_VERSION) {
        reject(new AssetSyncError('ERR_VERSION', `${this.remote} speaks protocol version ${COMPAT_VERSION} only, this assetsync speaks ${describeVersions(this.offer)}: use matching versions`))
        return
      }
      const onClose = (err: AssetSyncError | null): void => reject(err ?? this.closedError())
      this.once('close', onClose)
      this.expectAuth((msg) => {
        this.off('close', onClose)
        let outcome: Agreement | AssetSyncError
        if (msg.type === 'auth-ok') outcome = this.#agreement(msg, legacy)
        else if (msg.type === 'error') {
          // A protocol-2 server refuses our AUTH's protocol-3 tail as trailing bytes.
          if (!legacy && msg.code === 'ERR_PROTOCOL') this.#refusedNegotiation = true
          outcome = this.remoteError(msg.code, msg.message)
        } else outcome = new ProtocolError(`expected AUTH_OK, got ${msg.type}`)
        if (outcome instanceof AssetSyncError) {
          reject(outcome)
          this.close(outcome)
          return
        }
        this.opened(outcome)
        this.emit('open')
        resolve()
      })
      const auth: AuthMsg = legacy
        ? { type: 'auth', version: COMPAT_VERSION, token }
        : { type: 'auth', version: this.offer.maxVersion, token, minVersion: this.offer.minVersion, features: this.offer.features }
      this.send(auth)
    })
  }

  /** What an AUTH_OK agrees to, or why it is unacceptable. */
  #agreement(msg: AuthOkMsg, legacy: boolean): Agreement | AssetSyncError {
    const ours = legacy ? singleVersion(COMPAT_VERSION) : this.offer
    if (msg.version < ours.minVersion || msg.version > ours.maxVersion) {
      return new AssetSyncError('ERR_VERSION',
        `${this.remote} speaks protocol version ${msg.version}, this assetsync speaks ${describeVersions(ours)}: use matching versions`)
    }
    const features = (msg.features ?? 0) >>> 0
    if (features !== 0 && (legacy || msg.version < FEATURES_SINCE_VERSION || (features & ~this.offer.features) !== 0)) {
      return new ProtocolError(`server agreed to features 0x${features.toString(16)} that were not offered`)
    }
    return { version: msg.version, features }
  }

  protected override onClose(failure: AssetSyncError): void {
    for (const p of this.#pending.values()) p.reject(failure)
    this.#pending.clear()
    this.#background = 0
  }

  protected override onTick(now: number): void {
    for (const [id, p] of this.#pending) {
      if (p.deadline <= now) {
        this.cancel(id, new AssetSyncError('ERR_TIMEOUT',
          `request to ${this.remote} timed out after ${this.#requestTimeoutMs / 1000} s without a reply`))
      }
    }
  }

  #allocId(): number {
    // Ids wrap at 2^32 and skip 0 (0 addresses the whole connection in ERROR frames).
    do {
      this.#nextId = (this.#nextId + 1) >>> 0
    } while (this.#nextId === 0 || this.#pending.has(this.#nextId))
    return this.#nextId
  }

  protected override onFrame(frame: Message): void {
    const msg = frame as Exclude<ServerMessage, { type: 'ping' }>
    if (msg.type === 'error' && msg.id === 0) {
      this.close(this.remoteError(msg.code, `server: ${msg.message}`))
      return
    }
    if (!isReply(msg)) {
      if (msg.type !== 'auth-ok') this.deliver(msg)
      return
    }
    // CHUNK, CHUNK_Z and CHUNK_DATA: their data bytes as sent (compressed ones count as sent);
    // BATCH_DATA: the content bytes of its files.
    const chunkBytes = flowBytes(msg)
    if (chunkBytes > this.#recvWindow) {
      this.fail(new ProtocolError(`server sent ${chunkBytes} ${msg.type} bytes with ${this.#recvWindow} left in the flow-control window`))
      return
    }
    this.#recvWindow -= chunkBytes
    const p = this.#pending.get(msg.id)
    if (!p) { // a late reply to a cancelled or timed-out request
      this.release(chunkBytes)
      return
    }
    p.deadline = this.clock.now() + this.#requestTimeoutMs
    if (msg.type === 'error') {
      this.#end(msg.id)
      p.reject(this.remoteError(msg.code, msg.message))
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
      this.#end(msg.id)
      p.resolve()
    }
  }
}
