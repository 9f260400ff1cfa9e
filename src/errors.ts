/**
 * Errors with a stable `code`, and the one table that maps a code to the CLI's exit code.
 * Core and protocol code throw these; only src/cli.ts turns them into messages and exit codes.
 */

/** Exit codes of the CLI contract (../shared/design.md). */
export const EXIT = {
  OK: 0,
  UNEXPECTED: 1,
  USAGE: 2,
  CONNECTION: 3,
  AUTH: 4,
  NOT_FOUND: 5,
  INTEGRITY: 6,
  /** `run`: an uncaught Lua error in the main chunk, an `update` or a callback. */
  SCRIPT: 7,
  /**
   * Stopped by SIGINT (Ctrl-C) or SIGTERM before the work was done (pull, get), after removing the
   * process's temp files: 128 + the signal's number, what a shell reports for a process that signal
   * ended, so scripts and CI that already treat those as "interrupted" keep doing so. (serve, watch
   * and run stop on these signals as their normal end: exit 0.)
   */
  INTERRUPTED: 130,
  TERMINATED: 143,
} as const
export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

/** Stable error codes; the value is the exit code the CLI uses for it. */
export const ERROR_EXIT = {
  ERR_USAGE: EXIT.USAGE,
  ERR_CONNECT: EXIT.CONNECTION,
  ERR_TIMEOUT: EXIT.CONNECTION,
  ERR_CONNECTION_LOST: EXIT.CONNECTION,
  ERR_PROTOCOL: EXIT.CONNECTION,
  ERR_VERSION: EXIT.CONNECTION,
  ERR_LIMIT: EXIT.CONNECTION,
  ERR_AUTH: EXIT.AUTH,
  ERR_KEY_MISMATCH: EXIT.AUTH,
  ERR_NOT_FOUND: EXIT.NOT_FOUND,
  ERR_PATH_REFUSED: EXIT.NOT_FOUND,
  ERR_INTEGRITY: EXIT.INTEGRITY,
  ERR_WRITE: EXIT.INTEGRITY,
  ERR_CHANGED: EXIT.INTEGRITY,
  ERR_SCRIPT: EXIT.SCRIPT,
  ERR_INTERRUPTED: EXIT.INTERRUPTED,
  ERR_TERMINATED: EXIT.TERMINATED,
  ERR_INTERNAL: EXIT.UNEXPECTED,
} as const
export type ErrorCode = keyof typeof ERROR_EXIT

/** An error assetsync expects and can explain in one line. */
export class AssetSyncError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'AssetSyncError'
    this.code = code
  }
}

/**
 * Not a failure: a command ends with a chosen exit code (`os.exit(n)` in a `run` script, 0–255).
 * cli.ts returns `exitCode` and prints nothing.
 */
export class ExitRequest extends Error {
  readonly exitCode: number
  constructor(exitCode: number) {
    super(`exit ${exitCode}`)
    this.name = 'ExitRequest'
    this.exitCode = exitCode
  }
}

/** An undecodable or out-of-order frame: ends that connection, never the process. */
export class ProtocolError extends AssetSyncError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PROTOCOL', message, options)
    this.name = 'ProtocolError'
  }
}

/**
 * What to do about a failure, by code: the one place that decides whether an operation is worth
 * repeating. Callers pick the scope (a download retries on the same connection, `pull` resumes on
 * a new one, `watch` reconnects forever unless fatal); this table only says what may help.
 *
 * | recovery    | codes                                                       | meaning |
 * |-------------|-------------------------------------------------------------|---------|
 * | `retry`     | ERR_CHANGED, ERR_INTEGRITY                                  | the same request again, on the same connection: the file changed on the server mid-transfer, or the bytes did not match their hash (a download retries these up to DOWNLOAD_ATTEMPTS) |
 * | `reconnect` | ERR_CONNECTION_LOST, ERR_TIMEOUT, ERR_CONNECT               | the connection is gone, or never came up: a new one may work (pull resumes; watch reconnects with backoff; a first connect still fails at once) |
 * | `fatal`     | ERR_AUTH, ERR_KEY_MISMATCH, ERR_VERSION, ERR_USAGE, ERR_INTERRUPTED, ERR_TERMINATED | no repetition can help: wrong token, another server key, another protocol, bad input, or the user stopped it (SIGINT, SIGTERM). Stop |
 * | `final`     | ERR_NOT_FOUND, ERR_PATH_REFUSED, ERR_WRITE, ERR_LIMIT, ERR_PROTOCOL, ERR_SCRIPT, ERR_INTERNAL, anything not an AssetSyncError | this operation failed for good; other work goes on, and a long-lived mirror may try again later (watch reconnects after them, since they are not fatal) |
 */
export type Recovery = 'retry' | 'reconnect' | 'fatal' | 'final'

/** The recovery of each error code (the table above). */
export const ERROR_RECOVERY = {
  ERR_USAGE: 'fatal',
  ERR_CONNECT: 'reconnect',
  ERR_TIMEOUT: 'reconnect',
  ERR_CONNECTION_LOST: 'reconnect',
  ERR_PROTOCOL: 'final',
  ERR_VERSION: 'fatal',
  ERR_LIMIT: 'final',
  ERR_AUTH: 'fatal',
  ERR_KEY_MISMATCH: 'fatal',
  ERR_NOT_FOUND: 'final',
  ERR_PATH_REFUSED: 'final',
  ERR_INTEGRITY: 'retry',
  ERR_WRITE: 'final',
  ERR_CHANGED: 'retry',
  ERR_SCRIPT: 'final',
  ERR_INTERRUPTED: 'fatal',
  ERR_TERMINATED: 'fatal',
  ERR_INTERNAL: 'final',
} as const satisfies Record<ErrorCode, Recovery>

/** How `err` may be recovered from; anything but an AssetSyncError is `final` (a bug, not a plan). */
export function recoveryOf(err: unknown): Recovery {
  return err instanceof AssetSyncError ? ERROR_RECOVERY[err.code] : 'final'
}

/** Worth repeating: the same request (`retry`) or on a new connection (`reconnect`). */
export function isTransient(err: unknown): boolean {
  const r = recoveryOf(err)
  return r === 'retry' || r === 'reconnect'
}

/** The request may be repeated on the same connection (ERR_CHANGED, ERR_INTEGRITY). */
export function isRetryable(err: unknown): boolean {
  return recoveryOf(err) === 'retry'
}

/** The connection is lost or never came up; a new connection may succeed. */
export function needsReconnect(err: unknown): boolean {
  return recoveryOf(err) === 'reconnect'
}

/** Nothing can help (authentication, key mismatch, version, usage): stop, do not retry. */
export function isFatal(err: unknown): boolean {
  return recoveryOf(err) === 'fatal'
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_EXIT, code)
}

export function exitCodeOf(err: unknown): ExitCode {
  if (err instanceof AssetSyncError) return ERROR_EXIT[err.code]
  return EXIT.UNEXPECTED
}

/** Wraps a local filesystem failure while writing as ERR_WRITE (exit 6), keeping the cause. */
export function writeError(what: string, err: unknown): AssetSyncError {
  if (err instanceof AssetSyncError) return err
  const e = err as NodeJS.ErrnoException
  const reason = e?.code === 'ENOSPC' ? 'no space left on device' : e?.code ?? String(err)
  return new AssetSyncError('ERR_WRITE', `cannot write ${what}: ${reason}`, { cause: err })
}

/** The error of work stopped by a signal: ERR_INTERRUPTED (SIGINT, exit 130) or ERR_TERMINATED (SIGTERM, 143). */
export function interruptedBy(signal: NodeJS.Signals): AssetSyncError {
  return new AssetSyncError(signal === 'SIGTERM' ? 'ERR_TERMINATED' : 'ERR_INTERRUPTED', `interrupted by ${signal}; temp files removed`)
}
