/**
 * What a wrong token costs (issue 12). Per source address (addressKey): after a failure the next
 * token check waits AUTH_FAILURE_DELAY_MS, doubling with each further failure up to
 * AUTH_FAILURE_DELAY_MAX_MS, so parallel connections from one host are checked one at a time and
 * ever more slowly. Server-wide: a bucket of AUTH_FAILURES_PER_SEC failed checks a second, so many
 * hosts together guess no faster; while it is empty, checks from addresses without a recent
 * success wait. A check that would wait past its connection's handshake deadline is not made at
 * all: the attempt is refused unchecked, which tells the guesser nothing.
 *
 * Both tables are bounded (AUTH_FAILURE_ADDRESSES, oldest dropped first) and forget an address
 * AUTH_FAILURE_FORGET_MS after its last failure. Checks run synchronously inside `attempt`, so two
 * waiting attempts can never both pass on the strength of one free slot.
 */
import { EventEmitter } from 'node:events'
import {
  AUTH_FAILURE_ADDRESSES, AUTH_FAILURE_DELAY_MAX_MS, AUTH_FAILURE_DELAY_MS, AUTH_FAILURE_FORGET_MS,
  AUTH_FAILURE_WARN_COUNT, AUTH_FAILURE_WARN_MS, AUTH_FAILURES_PER_SEC,
} from '../limits.js'
import { addressKey } from './address.js'
import type { Clock } from './clock.js'

/** The outcome of one attempt. */
export type AuthVerdict =
  | { result: 'ok' }
  /** The token was checked and is wrong. */
  | { result: 'rejected'; failures: number }
  /** Not checked: this address must wait `retryMs` (its failures) past the attempt's deadline. */
  | { result: 'locked'; failures: number; retryMs: number }
  /** Not checked: the server-wide failure budget is spent for longer than the attempt may wait. */
  | { result: 'busy'; retryMs: number }
  /** Not checked: the connection went away while it waited. */
  | { result: 'gone' }

/** 'burst': many failures — from one address (`remote` is its addressKey) or server-wide (`remote` "*"). */
export interface AuthFailureBurst {
  remote: string
  /** Failures in a row from that address; server-wide: failures since the last such warning. */
  count: number
  /** How long that address's (or, server-wide, any unknown address's) next check waits. */
  delayMs: number
}

export interface AuthThrottleOptions {
  clock: Clock
  delayMs?: number
  maxDelayMs?: number
  forgetMs?: number
  maxAddresses?: number
  failuresPerSec?: number
}

interface Failures {
  count: number
  last: number
  nextAt: number
}

/** Counters for tests, `status` and the bench. */
export interface AuthThrottleStats {
  /** Tokens compared. */
  checks: number
  /** Of those, wrong. */
  failures: number
  /** Attempts refused unchecked: address locked, server busy. */
  locked: number
  busy: number
  /** Attempts that had to wait before their check (or refusal). */
  waited: number
}

export class AuthThrottle extends EventEmitter {
  readonly #clock: Clock
  readonly #delayMs: number
  readonly #maxDelayMs: number
  readonly #forgetMs: number
  readonly #maxAddresses: number
  readonly #rate: number
  readonly #failures = new Map<string, Failures>()
  readonly #trusted = new Map<string, number>()
  #tokens: number
  #refilledAt: number
  #warnedAt = -Infinity
  #sinceWarning = 0
  readonly stats: AuthThrottleStats = { checks: 0, failures: 0, locked: 0, busy: 0, waited: 0 }

  constructor(opts: AuthThrottleOptions) {
    super()
    this.#clock = opts.clock
    this.#delayMs = opts.delayMs ?? AUTH_FAILURE_DELAY_MS
    this.#maxDelayMs = opts.maxDelayMs ?? AUTH_FAILURE_DELAY_MAX_MS
    this.#forgetMs = opts.forgetMs ?? AUTH_FAILURE_FORGET_MS
    this.#maxAddresses = opts.maxAddresses ?? AUTH_FAILURE_ADDRESSES
    this.#rate = opts.failuresPerSec ?? AUTH_FAILURES_PER_SEC
    this.#tokens = this.#rate
    this.#refilledAt = this.#clock.now()
  }

  /**
   * Runs `check` (true: the token is right; null: the connection is gone) for a connection from
   * `host` once this address and the server-wide budget allow, or refuses without running it when
   * that would be at or after `deadlineAt` (clock time).
   */
  attempt(host: string, deadlineAt: number, check: () => boolean | null): Promise<AuthVerdict> {
    const key = addressKey(host)
    return new Promise((resolve) => {
      let waited = false
      const step = (): void => {
        const now = this.#clock.now()
        const rec = this.#record(key, now)
        let waitMs = 0
        if (rec && rec.nextAt > now) {
          waitMs = rec.nextAt - now
          if (rec.nextAt >= deadlineAt) {
            this.stats.locked++
            resolve({ result: 'locked', failures: rec.count, retryMs: waitMs })
            return
          }
        } else if (!this.#isTrusted(key, now)) {
          waitMs = this.#tokenWait(now)
          if (waitMs > 0 && now + waitMs >= deadlineAt) {
            this.stats.busy++
            resolve({ result: 'busy', retryMs: waitMs })
            return
          }
        }
        if (waitMs > 0) {
          if (!waited) this.stats.waited++
          waited = true
          this.#clock.after(waitMs, step)
          return
        }
        const ok = check()
        if (ok === null) resolve({ result: 'gone' })
        else if (ok) {
          this.stats.checks++
          this.#succeeded(key, now)
          resolve({ result: 'ok' })
        } else {
          this.stats.checks++
          resolve({ result: 'rejected', failures: this.#failed(key, now) })
        }
      }
      step()
    })
  }

  /** The failures of `key`, or null once forgotten. */
  #record(key: string, now: number): Failures | null {
    const rec = this.#failures.get(key)
    if (!rec) return null
    if (now - rec.last <= this.#forgetMs) return rec
    this.#failures.delete(key)
    return null
  }

  #isTrusted(key: string, now: number): boolean {
    const at = this.#trusted.get(key)
    if (at === undefined) return false
    if (now - at <= this.#forgetMs) return true
    this.#trusted.delete(key)
    return false
  }

  /** Milliseconds until the server-wide bucket holds a whole failure again (0: it does now). */
  #tokenWait(now: number): number {
    this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#rate)
    this.#refilledAt = now
    return this.#tokens >= 1 ? 0 : Math.ceil(((1 - this.#tokens) / this.#rate) * 1000)
  }

  #succeeded(key: string, now: number): void {
    this.#failures.delete(key)
    this.#trusted.delete(key) // re-inserted last: the Map's order is oldest first
    this.#trusted.set(key, now)
    if (this.#trusted.size > this.#maxAddresses) this.#trusted.delete(this.#trusted.keys().next().value as string)
  }

  /** Records a failure of `key`; returns its failures in a row. */
  #failed(key: string, now: number): number {
    this.stats.failures++
    this.#trusted.delete(key) // a failure from a trusted address ends its trust
    const rec = this.#record(key, now) ?? { count: 0, last: now, nextAt: now }
    rec.count++
    rec.last = now
    const delay = Math.min(this.#maxDelayMs, this.#delayMs * 2 ** Math.min(rec.count - 1, 30))
    rec.nextAt = now + delay
    this.#failures.delete(key)
    this.#failures.set(key, rec)
    if (this.#failures.size > this.#maxAddresses) this.#failures.delete(this.#failures.keys().next().value as string)

    this.#tokenWait(now)
    this.#tokens -= 1
    this.#sinceWarning++
    const n = rec.count / AUTH_FAILURE_WARN_COUNT
    if (n >= 1 && Number.isInteger(n) && (n & (n - 1)) === 0) {
      this.emit('burst', { remote: key, count: rec.count, delayMs: delay } satisfies AuthFailureBurst)
    }
    if (this.#tokens < 1 && now - this.#warnedAt >= AUTH_FAILURE_WARN_MS) {
      this.#warnedAt = now
      this.emit('burst', { remote: '*', count: this.#sinceWarning, delayMs: this.#tokenWait(now) } satisfies AuthFailureBurst)
      this.#sinceWarning = 0
    }
    return rec.count
  }
}
