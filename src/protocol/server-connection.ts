/**
 * The server half of a connection: the AUTH check with version/feature negotiation, and the
 * flow-control credit the client grants for CHUNK data (FLOW_WINDOW_BYTES, CREDIT frames).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { AssetSyncError, ProtocolError } from '../errors.js'
import { FLOW_WINDOW_BYTES } from '../limits.js'
import { FrameChannel } from './frame-channel.js'
import { type FlowMessage, type Message, flowBytes } from './messages.js'
import { describeVersions, negotiate, offerOfAuth } from './negotiation.js'

function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

/** Constant-time token comparison (both sides hashed to one length first). */
export function tokenMatches(expected: string, given: string): boolean {
  return timingSafeEqual(tokenDigest(expected), tokenDigest(given))
}

/**
 * Decides when (and whether) an AUTH's token is checked: calls `check` once allowed (true: the
 * token is right; null: the connection is gone) and resolves with null to accept, or with the
 * error to refuse the client with (it may refuse without ever calling `check`).
 */
export type AuthGate = (check: () => boolean | null) => Promise<AssetSyncError | null>

export class ServerConnection extends FrameChannel {
  readonly role = 'server' as const
  /** CHUNK bytes the client has allowed us to send. */
  #sendCredit = FLOW_WINDOW_BYTES

  /**
   * Queues one frame (see FrameChannel.send). A CHUNK (CHUNK_Z, CHUNK_DATA, BATCH_DATA) spends flow-control credit; sending one
   * beyond the credit is a bug (RangeError): wait with `credited()` or use `sendChunk()`.
   */
  override send(msg: Message): boolean {
    if (this.closed) return false
    const cost = flowBytes(msg) // CHUNK, CHUNK_Z, CHUNK_DATA: data bytes as sent; BATCH_DATA: its files' bytes
    if (cost > 0) {
      if (cost > this.#sendCredit) {
        throw new RangeError(`${msg.type} of ${cost} bytes exceeds the flow-control credit of ${this.#sendCredit}`)
      }
      this.#sendCredit -= cost
    }
    return super.send(msg)
  }

  /** CHUNK data bytes that may be sent now (flow control, see FLOW_WINDOW_BYTES). */
  get credit(): number { return this.#sendCredit }

  /** Resolves once `bytes` of CHUNK data may be sent (at once if they may); rejects once closed. */
  credited(bytes: number): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError())
    if (this.#sendCredit >= bytes) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.#sendCredit < bytes) return
        this.off('credit', check); this.off('close', fail); resolve()
      }
      const fail = (): void => { this.off('credit', check); reject(this.closedError()) }
      this.on('credit', check)
      this.once('close', fail)
    })
  }

  /** Sends a CHUNK (CHUNK_Z, CHUNK_DATA) once the client's credit allows it, then waits for the stream to drain. */
  async sendChunk(msg: FlowMessage): Promise<void> {
    await this.credited(flowBytes(msg))
    if (!this.send(msg)) await this.drained()
  }

  /**
   * The first frame must be AUTH, with a protocol version range that overlaps ours and, when
   * `token` is set, that token. Agrees on the highest common version and the common features,
   * answers AUTH_OK (in the client's layout: protocol 2 gets the 3-byte one) and resolves; on
   * failure tells the client why and closes. `gate` decides when the token is checked (it calls
   * `check`, which answers null once the connection is gone) and may refuse instead: the server's
   * AuthThrottle and its authenticated-slot cap (endpoint.ts). Without one, the check runs at once.
   */
  acceptAuth(token: string | null, gate?: AuthGate): Promise<void> {
    return new Promise((resolve, reject) => {
      const onClose = (err: AssetSyncError | null): void => reject(err ?? this.closedError())
      this.once('close', onClose)
      const refuse = (err: AssetSyncError): void => {
        this.off('close', onClose)
        this.send({ type: 'error', id: 0, code: err.code, message: err.message })
        reject(err)
        this.close(err)
      }
      this.expectAuth((msg) => {
        if (msg.type !== 'auth') return refuse(new ProtocolError(`expected AUTH, got ${msg.type}`))
        const theirs = offerOfAuth(msg)
        const agreed = negotiate(this.offer, theirs)
        if (!agreed) {
          return refuse(new AssetSyncError('ERR_VERSION',
            `client speaks protocol ${describeVersions(theirs)}, server speaks ${describeVersions(this.offer)}`))
        }
        const check = (): boolean | null => (this.closed ? null : token === null || tokenMatches(token, msg.token))
        const verdict = gate
          ? gate(check)
          : Promise.resolve(check() === false ? new AssetSyncError('ERR_AUTH', 'access token rejected by the server') : null)
        verdict.then((err) => {
          if (this.closed) return // onClose has rejected
          if (err) return refuse(err)
          this.off('close', onClose)
          this.opened(agreed)
          const negotiating = msg.minVersion !== undefined
          this.send(negotiating
            ? { type: 'auth-ok', version: agreed.version, features: agreed.features }
            : { type: 'auth-ok', version: agreed.version })
          this.emit('open')
          resolve()
        }, (err: unknown) => refuse(err instanceof AssetSyncError ? err : new AssetSyncError('ERR_INTERNAL', 'authentication failed', { cause: err })))
      })
    })
  }

  /** Ends the connection for `err`, telling the client why first (ERROR id 0). */
  override fail(err: AssetSyncError): void {
    const message = err.code === 'ERR_PROTOCOL' ? `protocol error: ${err.message}` : err.message
    this.send({ type: 'error', id: 0, code: err.code, message })
    super.fail(err)
  }

  protected override onFrame(msg: Message): void {
    if (msg.type === 'credit') {
      this.#sendCredit += msg.bytes
      this.emit('credit')
      return
    }
    this.deliver(msg)
  }
}
