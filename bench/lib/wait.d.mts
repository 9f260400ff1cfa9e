// Types of wait.mjs (test/helpers/common.ts re-exports it).

export interface WaitOptions {
  /** Poll interval in ms (default 10). */
  everyMs?: number
  /** Called once on timeout; its value is appended to the error message. */
  detail?: () => unknown
}

/**
 * Polls `cond` every `everyMs` until it returns something truthy, and resolves with that; rejects
 * naming `what` (and `detail()`) after `ms`.
 */
export function waitFor<T>(cond: () => T | Promise<T>, ms: number, what: string, options?: number | WaitOptions): Promise<NonNullable<T>>
