/**
 * The one retry policy of everything that keeps a connection to a server: `watch` (LiveMirror),
 * `run` (NetworkAssets) and programs using the library. Transient failures are retried with
 * full-jitter backoff, the first connection and the initial sync included; what no retry can
 * help fails at once (docs/protocol.md §6, "Reconnecting").
 *
 *   - fatal (wrong token, server key mismatch, protocol version, usage): never retried;
 *   - until the server has answered once (a connection was authenticated), transient failures
 *     are retried only within the connect timeout (`--timeout`): a server that never answers is
 *     a wrong address or not running, and the caller fails with exit code 3;
 *   - before the first success, a failure that is not transient (a local write error, a
 *     protocol error) fails too, with its own exit code;
 *   - after the first success, everything but fatal is retried, forever, until stopped; so from
 *     the start for a caller that goes on without the server meanwhile (`forever`: `run` serves
 *     its local copies while it reconnects, see client-link.ts).
 */
import { isFatal, isTransient } from '../../errors.js'
import { CONNECT_TIMEOUT_MS, RECONNECT_BASE_MS, RECONNECT_MAX_MS } from '../../limits.js'
import type { Clock } from '../../protocol/clock.js'
import { foregroundClock } from './foreground-clock.js'

/** A reconnect attempt is due in `delayMs`; `reason` says what failed (absent: a clean close). */
export interface ReconnectingEvent { attempt: number; delayMs: number; reason?: string }

/**
 * The delay before reconnect attempt `attempt` (1, 2, ...): full jitter (AWS architecture blog)
 * between 0 and min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2^(attempt-1)); `random` in [0, 1).
 */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(Math.max(attempt, 1) - 1, 10))
  return Math.round(random() * cap)
}

/** Where a retried operation stands, for `shouldRetry`. */
export interface RetryState {
  /** The server authenticated a connection at least once. */
  answered: boolean
  /** The operation has succeeded once (the initial sync is done). */
  succeeded: boolean
  /** Time since the first attempt, ms. */
  elapsedMs: number
  /** The connect timeout: how long a server that never answered is given, ms. */
  budgetMs: number
}

/** Whether `err` is worth another attempt (the rules at the top of this file). */
export function shouldRetry(err: unknown, s: RetryState): boolean {
  if (isFatal(err)) return false
  if (s.succeeded) return true
  if (!isTransient(err)) return false
  return s.answered || s.elapsedMs < s.budgetMs
}

export interface RetryPolicyOptions {
  /** The connect timeout (`--timeout`, `connectTimeoutMs`); default CONNECT_TIMEOUT_MS. */
  connectTimeoutMs?: number
  /** Times the backoff; default real time, with timers that keep the process alive. */
  clock?: Clock
  /** The jitter's random source, in [0, 1); default Math.random. */
  random?: () => number
  /** Retry everything but fatal from the first attempt on (a caller with an offline mode). */
  forever?: boolean
}

/**
 * Retries with backoff under the rules above. One instance per long-lived client (it remembers
 * whether the server ever answered and whether the first run succeeded). `stop()` ends a wait.
 */
export class RetryPolicy {
  readonly #clock: Clock
  readonly #random: () => number
  readonly #budgetMs: number
  #startedAt: number | null = null
  #answered = false
  #succeeded: boolean
  #stopped = false
  #wake: (() => void) | null = null

  constructor(opts: RetryPolicyOptions = {}) {
    this.#clock = opts.clock ?? foregroundClock
    this.#random = opts.random ?? Math.random
    this.#budgetMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
    this.#succeeded = opts.forever ?? false
  }

  /** The server authenticated a connection: from now on transient failures are retried without a budget. */
  markAnswered(): void { this.#answered = true }
  get answered(): boolean { return this.#answered }
  get stopped(): boolean { return this.#stopped }

  /** Ends any wait at once; `run` then returns null. */
  stop(): void {
    this.#stopped = true
    this.#wake?.()
  }

  /**
   * Runs `attempt` until it succeeds and returns its result; null if stopped first. Before each
   * retry `onRetry` gets the attempt number, the delay and the failure; a failure that must not be
   * retried is thrown. With `after` (a reconnect after a lost connection), even the first attempt
   * waits its backoff, so that clients of a restarted server do not all come back at once.
   */
  async run<T>(
    attempt: () => Promise<T>,
    onRetry?: (e: ReconnectingEvent, err: unknown) => void,
    after?: { reason?: string },
  ): Promise<T | null> {
    this.#startedAt ??= this.#clock.now()
    let n = 1
    if (after) {
      const delayMs = reconnectDelay(n++, this.#random)
      onRetry?.({ attempt: 1, delayMs, ...(after.reason ? { reason: after.reason } : {}) }, null)
      await this.sleep(delayMs)
    }
    for (; ; n++) {
      if (this.#stopped) return null
      try {
        const result = await attempt()
        this.#succeeded = true
        return result
      } catch (err) {
        if (this.#stopped) return null
        const state = { answered: this.#answered, succeeded: this.#succeeded, elapsedMs: this.#clock.now() - this.#startedAt, budgetMs: this.#budgetMs }
        if (!shouldRetry(err, state)) throw err
        const delayMs = reconnectDelay(n, this.#random)
        onRetry?.({ attempt: n, delayMs, reason: err instanceof Error ? err.message : String(err) }, err)
        await this.sleep(delayMs)
      }
    }
  }

  /** Waits `ms` on the policy's clock, or until `stop()`. */
  sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const cancel = this.#clock.after(ms, () => { this.#wake = null; resolve() })
      this.#wake = () => { this.#wake = null; cancel(); resolve() }
    })
  }
}
