/**
 * The events an AssetServer emits, one payload object each: the contract between the server and
 * whoever renders or counts them (`assetsync serve`, the status and metrics endpoints, library
 * users). serve's --json events carry these fields as they are named here.
 */
import type { AssetSyncError, ErrorCode } from '../../errors.js'
import type { RejectReason } from '../../protocol/endpoint.js'
import type { SkippedPath } from '../fs/disk-names.js'
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

/**
 * A path in the served folder that is not served because it cannot travel: its name is not UTF-8,
 * holds a backslash or a control character, the path is deeper than MAX_PATH_DEPTH or longer than
 * MAX_PATH_BYTES, it has the same NFC form as another name, or it is a symlink out of the root.
 * Emitted once per path and reason, for what appears after the start; what the first scan found is
 * in `AssetServer.scan.skipped` (or, when the folder was indexed in the background, the 'indexed'
 * event's `skipped`).
 */
export type SkippedEvent = SkippedPath

/**
 * Handling a client's frame failed in a way the server did not plan for (a bug, or the file
 * system failing in an unexpected way). The client got ERROR ERR_INTERNAL (for that request, or
 * for the connection, which then closed). Emitted once per failure.
 */
export interface InternalErrorEvent {
  remote: string
  /** One line: what failed, and why. */
  message: string
  /** The error thrown (its stack is the cause to log). */
  cause: unknown
}

/** The served folder was replaced (deleted and made again, another folder moved in) and indexed anew. */
export interface ReindexedEvent {
  files: number
  hashed: number
  ms: number
}

/**
 * The folder's background index is complete (a folder too large to index within
 * SERVE_LISTEN_WAIT_MS is indexed while the server already serves: issue 15). `skipped`: the paths
 * it found that will not be served and that no 'skipped' event named yet.
 */
export interface IndexedEvent {
  files: number
  hashed: number
  bytes: number
  ms: number
  skipped: SkippedPath[]
}

/**
 * The server cannot go on: its folder is gone for good (deleted or moved away, and not back within
 * ROOT_GONE_MS). It answers every request with `error` (ERR_NOT_FOUND) until closed: close it.
 */
export interface FatalEvent {
  error: AssetSyncError
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
  'auth-failures': AuthFailuresEvent
  refused: PathRefusedEvent
  subscriptions: SubscriptionsEvent
  batch: BatchEvent
  skipped: SkippedEvent
  internal: InternalErrorEvent
  reindexed: ReindexedEvent
  indexed: IndexedEvent
  fatal: FatalEvent
  report: ReloadReportEvent
  /** A problem the server survives (a folder it cannot watch, a failed forward); never fatal. */
  error: unknown
}

export type AssetServerEventName = keyof AssetServerEvents
