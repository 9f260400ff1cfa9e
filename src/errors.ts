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

/** An undecodable or out-of-order frame: ends that connection, never the process. */
export class ProtocolError extends AssetSyncError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PROTOCOL', message, options)
    this.name = 'ProtocolError'
  }
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
