/**
 * Runs at most `limit` jobs at once from two lanes (the Lua host's providers, NetworkAssets): every queued `blocking` job starts before any
 * queued `background` one (issue 13: a blocking require must not queue behind bulk
 * `load_asset_async` downloads). Jobs with the same key share one run; asking again for a queued
 * background key with `blocking` moves it to the blocking lane (and for a running one, tells
 * `onRaise`). With `blockingExtra`, blocking jobs may also use that many slots background jobs
 * never take, so a require never waits for a slot held by a long download.
 */

/** `blocking`: someone is stopped until the job is done; `background`: it may wait. */
export type JobPriority = 'blocking' | 'background'

export interface TransferQueueOptions {
  /** Slots only blocking jobs may use, on top of `limit` (default 0). */
  blockingExtra?: number
  /** A running background job was asked for with `blocking` (e.g. raise its priority on the server). */
  onRaise?: (key: string) => void
}

interface Job<T> {
  key: string
  priority: JobPriority
  run: () => Promise<T>
  promise: Promise<T>
  resolve: (v: T) => void
  reject: (e: unknown) => void
  started: boolean
}

export class TransferQueue<T> {
  readonly #limit: number
  readonly #extra: number
  readonly #onRaise: ((key: string) => void) | undefined
  readonly #blocking: Job<T>[] = []
  readonly #background: Job<T>[] = []
  readonly #byKey = new Map<string, Job<T>>()
  #running = 0

  constructor(limit: number, opts: TransferQueueOptions = {}) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`queue limit must be a positive integer, got ${limit}`)
    const extra = opts.blockingExtra ?? 0
    if (!Number.isInteger(extra) || extra < 0) throw new RangeError(`blockingExtra must be a non-negative integer, got ${extra}`)
    this.#limit = limit
    this.#extra = extra
    this.#onRaise = opts.onRaise
  }

  /** Jobs running now. */
  get running(): number { return this.#running }
  /** Jobs waiting for a slot. */
  get queued(): number { return this.#blocking.length + this.#background.length }

  /** Runs `run` (or joins the job already queued or running under `key`). */
  add(key: string, priority: JobPriority, run: () => Promise<T>): Promise<T> {
    const known = this.#byKey.get(key)
    if (known) {
      if (priority === 'blocking' && known.priority === 'background') {
        known.priority = 'blocking'
        if (known.started) this.#onRaise?.(key)
        else {
          this.#background.splice(this.#background.indexOf(known), 1)
          this.#blocking.push(known)
          this.#drain()
        }
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
    for (;;) {
      let job: Job<T> | undefined
      if (this.#blocking.length > 0 && this.#running < this.#limit + this.#extra) job = this.#blocking.shift()
      else if (this.#running < this.#limit) job = this.#background.shift()
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
