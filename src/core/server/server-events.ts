/**
 * The events an AssetServer emits, one payload object each: the contract between the server and
 * whoever renders or counts them (`assetsync serve`, the status and metrics endpoints, library
 * users). serve's --json events carry these fields as they are named here.
 */
import type { ErrorCode } from '../../errors.js'
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

/**
 * A device reported how a reload went (feature `report`: `assetsync run` after each reload,
 * `assetsync watch --exec` after each hook run). serve --json prints it as a `reload` event.
 */
export interface ReloadReportEvent {
  remote: string
  /** The paths it reloaded (or tried to), as sent: print them with care. */
  paths: string[]
  ok: boolean
  /** The error as the device sent it (a Lua message, a hook's failure), or null. */
  error: string | null
  /** Where the error points, when its text names a "file:line:" (Lua style); else null. */
  file: string | null
  line: number | null
  /** How long the reload took on the device. */
  ms: number
}

/** Event name → payload, for AssetServer's typed on/once/off/emit. */
export interface AssetServerEvents {
  connected: ClientConnectedEvent
  disconnected: ClientDisconnectedEvent
  rejected: ClientRejectedEvent
  refused: PathRefusedEvent
  subscriptions: SubscriptionsEvent
  batch: BatchEvent
  report: ReloadReportEvent
  /** A problem the server survives (a folder it cannot watch, a failed forward); never fatal. */
  error: unknown
}

export type AssetServerEventName = keyof AssetServerEvents
