/**
 * Runs at most `limit` jobs at once from two lanes: every queued `blocking` job starts before any
 * queued `background` one (issue 13: a blocking require must not queue behind bulk
 * `load_asset_async` downloads). Jobs with the same key share one run; asking again for a queued
 * background key with `blocking` moves it to the blocking lane.
 */
import type { FetchPriority } from './provider.js'

interface Job<T> {
  key: string
  priority: FetchPriority
  run: () => Promise<T>
  promise: Promise<T>
  resolve: (v: T) => void
  reject: (e: unknown) => void
  started: boolean
}

export class TransferQueue<T> {
  readonly #limit: number
  readonly #blocking: Job<T>[] = []
  readonly #background: Job<T>[] = []
  readonly #byKey = new Map<string, Job<T>>()
  #running = 0

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`queue limit must be a positive integer, got ${limit}`)
    this.#limit = limit
  }

  /** Jobs running now. */
  get running(): number { return this.#running }
  /** Jobs waiting for a slot. */
  get queued(): number { return this.#blocking.length + this.#background.length }

  /** Runs `run` (or joins the job already queued or running under `key`). */
  add(key: string, priority: FetchPriority, run: () => Promise<T>): Promise<T> {
    const known = this.#byKey.get(key)
    if (known) {
      if (priority === 'blocking' && known.priority === 'background' && !known.started) {
        this.#background.splice(this.#background.indexOf(known), 1)
        known.priority = 'blocking'
        this.#blocking.push(known)
      }
      return known.promise
    }
    let resolve!: (v: T) => void
    let reject!: (e: unknown) => void
    const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
    const job: Job<T> = { key, priority, run, promise, resolve, reject, started: false }
    this.#byKey.set(key, job)
    ;(priority === 'blocking' ? this.#blocking : this.#background).push(job)
    this.#drain()
    return promise
  }

  #drain(): void {
    while (this.#running < this.#limit) {
      const job = this.#blocking.shift() ?? this.#background.shift()
      if (!job) return
      job.started = true
      this.#running++
      job.run().then(job.resolve, job.reject).finally(() => {
        this.#running--
        this.#byKey.delete(job.key)
        this.#drain()
      })
    }
  }
}
