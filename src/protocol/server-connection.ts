/**
 * The server half of a connection: the AUTH check with version/feature negotiation, and the
 * flow-control credit the client grants for CHUNK data (FLOW_WINDOW_BYTES, CREDIT frames).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { AssetSyncError, ProtocolError } from '../errors.js'
import { FLOW_WINDOW_BYTES } from '../limits.js'
import { FrameChannel } from './frame-channel.js'
import { type ChunkMsg, type Message, type ServerMessage, flowBytes } from './messages.js'
import { type Agreement, describeVersions, negotiate, offerOfAuth } from './negotiation.js'

function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

/** Constant-time token comparison (both sides hashed to one length first). */
export function tokenMatches(expected: string, given: string): boolean {
  return timingSafeEqual(tokenDigest(expected), tokenDigest(given))
}

export class ServerConnection extends FrameChannel {
  readonly role = 'server' as const
  /** CHUNK bytes the client has allowed us to send. */
  #sendCredit = FLOW_WINDOW_BYTES

  /**
   * Queues one frame (see FrameChannel.send). A CHUNK (or BATCH_DATA) spends flow-control credit; sending one
   * beyond the credit is a bug (RangeError): wait with `credited()` or use `sendChunk()`.
   */
  override send(msg: Message): boolean {
    if (this.closed) return false
    if (msg.type === 'chunk' || msg.type === 'batch-data') {
      const bytes = flowBytes(msg as ServerMessage)
      if (bytes > this.#sendCredit) {
        throw new RangeError(`${msg.type} of ${bytes} file bytes exceeds the flow-control credit of ${this.#sendCredit}`)
      }
      this.#sendCredit -= bytes
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

  /** Sends a CHUNK once the client's credit allows it, then waits for the stream to drain. */
  async sendChunk(msg: ChunkMsg): Promise<void> {
    await this.credited(msg.data.byteLength)
    if (!this.send(msg)) await this.drained()
  }

  /**
   * The first frame must be AUTH, with a protocol version range that overlaps ours and, when
   * `token` is set, that token. Agrees on the highest common version and the common features,
   * answers AUTH_OK (in the client's layout: protocol 2 gets the 3-byte one) and resolves; on
   * failure tells the client why and closes.
   */
  acceptAuth(token: string | null): Promise<void> {
    return new Promise((resolve, reject) => {
      const onClose = (err: AssetSyncError | null): void => reject(err ?? this.closedError())
      this.once('close', onClose)
      this.expectAuth((msg) => {
        this.off('close', onClose)
        let outcome: Agreement | AssetSyncError
        if (msg.type !== 'auth') outcome = new ProtocolError(`expected AUTH, got ${msg.type}`)
        else {
          const theirs = offerOfAuth(msg)
          const agreed = negotiate(this.offer, theirs)
          if (!agreed) {
            outcome = new AssetSyncError('ERR_VERSION',
              `client speaks protocol ${describeVersions(theirs)}, server speaks ${describeVersions(this.offer)}`)
          } else if (token !== null && !tokenMatches(token, msg.token)) {
            outcome = new AssetSyncError('ERR_AUTH', 'access token rejected by the server')
          } else outcome = agreed
        }
        if (outcome instanceof AssetSyncError) {
          this.send({ type: 'error', id: 0, code: outcome.code, message: outcome.message })
          reject(outcome)
          this.close(outcome)
          return
        }
        this.opened(outcome)
        const negotiating = msg.type === 'auth' && msg.minVersion !== undefined
        this.send(negotiating
          ? { type: 'auth-ok', version: outcome.version, features: outcome.features }
          : { type: 'auth-ok', version: outcome.version })
        this.emit('open')
        resolve()
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
