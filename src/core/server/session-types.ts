/**
 * What a ClientSession needs of its connection, and what it counts: the types the session and its
 * helpers (session-budget.ts, session-features.ts, chunk-serving.ts) share.
 */
import type { AssetSyncError } from '../../errors.js'
import type { ClientMessage, FeatureName, ServerMessage } from '../../protocol/messages.js'

/**
 * What a session needs of its connection (the server half of protocol/connection.ts): named here
 * so the session depends on these methods, not on how the protocol layer splits its classes.
 */
export interface SessionConnection {
  readonly remote: string
  readonly closed: boolean
  /** Frame bytes so far each way (read by the metrics and the status at scrape time). */
  readonly bytesSent: number
  readonly bytesReceived: number
  /** Flow-control credit: CHUNK bytes the client allows us to send now. */
  readonly credit: number
  /** Bytes of frames queued for sending, not yet taken by the transport (the memory budget; 0 if unknown). */
  readonly queuedBytes?: number
  send(msg: ServerMessage): boolean
  drained(): Promise<void>
  credited(bytes: number): Promise<void>
  /** Whether a feature was agreed on this connection (docs/protocol.md §5); absent: none was. */
  has?(name: FeatureName): boolean
  /** Ends the connection with a protocol error. */
  fail(err: AssetSyncError): void
  on(event: 'message', listener: (msg: ClientMessage) => void): unknown
  once(event: 'close', listener: (err: AssetSyncError | null) => void): unknown
}

/** How a REQUEST was answered, for the counters. */
export type RequestOutcome = 'file' | 'up-to-date' | 'not-found' | 'refused' | 'error'

/** What a session counts as it answers (Metrics has these methods; tests may pass their own). */
export interface SessionMetrics {
  /** A REQUEST was answered. */
  request(outcome: RequestOutcome): void
  /** An ERROR frame with this code was sent. */
  error(code: string): void
  /** A file transfer's last chunk was sent, `ms` after its REQUEST arrived. */
  transferDone(ms: number): void
}

export const NO_METRICS: SessionMetrics = { request: () => {}, error: () => {}, transferDone: () => {} }
