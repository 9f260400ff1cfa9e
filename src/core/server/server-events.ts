/**
 * The events an AssetServer emits, one payload object each: the contract between the server and
 * whoever renders or counts them (`assetsync serve`, the status and metrics endpoints, library
 * users). serve's --json events carry these fields as they are named here.
 */
import type { ErrorCode } from '../../errors.js'
import type { RejectReason } from '../../protocol/endpoint.js'
import type { ChangeSummary } from './changes.js'

/** A client finished the handshake and authentication. */
export interface ClientConnectedEvent {
  /** "host:port" of the client. */
  remote: string
}

/** An authenticated client's connection ended. */
export interface ClientDisconnectedEvent {
  remote: string
  /** Why: the error's message, or "closed". */
  reason: string
}

/** A client failed the handshake or authentication (bad token, timeout, not assetsync). */
export interface ClientRejectedEvent {
  remote: string
  code: ErrorCode
  message: string
  /** Why, as a stable name (finer than `code`; see RejectReason). */
  reason: RejectReason
}

/**
 * A burst of wrong tokens (issue 12): one address reached AUTH_FAILURE_WARN_COUNT failures in a
 * row (and again at each doubling), or the server-wide failure budget ran dry (`remote` "*", at
 * most once per AUTH_FAILURE_WARN_MS).
 */
export interface AuthFailuresEvent {
  /** The source address (IPv6: its /64), or "*" for the whole server. */
  remote: string
  /** Failures in a row from that address; for "*", failures since the last such warning. */
  count: number
  /** How long the address's (for "*": any address without a recent success) next check waits. */
  delayMs: number
}

/** A request named a path the server will not serve (unsafe, or resolving outside the root). */
export interface PathRefusedEvent {
  remote: string
  /** The path as asked, made printable. */
  path: string
  reason: string
}

/** A client's subscriptions changed. */
export interface SubscriptionsEvent {
  remote: string
  /** `dropped`: the client disconnected, releasing all it held. */
  action: 'subscribe' | 'unsubscribe' | 'dropped'
  /** Patterns the client holds now (before dropping, for `dropped`). */
  patterns: number
  /** The instance that (un)subscribed (subscribe and unsubscribe only). */
  instanceId?: number
  /** Patterns left without any subscriber (dropped only). */
  released?: number
}

/** A change batch was pushed to subscribers. */
export interface BatchEvent {
  changes: ChangeSummary[]
  /** Clients that got at least one entry of it. */
  clients: number
}

/** Event name → payload, for AssetServer's typed on/once/off/emit. */
export interface AssetServerEvents {
  connected: ClientConnectedEvent
  disconnected: ClientDisconnectedEvent
  rejected: ClientRejectedEvent
  'auth-failures': AuthFailuresEvent
  refused: PathRefusedEvent
  subscriptions: SubscriptionsEvent
  batch: BatchEvent
  /** A problem the server survives (a folder it cannot watch, a failed forward); never fatal. */
  error: unknown
}

export type AssetServerEventName = keyof AssetServerEvents
