/** Runs `fn` over `items` with at most `limit` calls in flight; rejects on the first failure. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  let failed = false
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++
      try {
        out[i] = await fn(items[i] as T, i)
      } catch (err) {
        failed = true
        throw err
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

/**
 * mapLimit that, on a failure, starts nothing more and rejects only once every call in flight has
 * settled: for work that leaves things behind (temp files) which the caller removes afterwards —
 * a rejection while calls still run would let them make more after the cleanup.
 */
export async function mapLimitSettled<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  let failure: { err: unknown } | null = null
  const worker = async (): Promise<void> => {
    while (!failure && next < items.length) {
      const i = next++
      try {
        out[i] = await fn(items[i] as T, i)
      } catch (err) {
        failure ??= { err }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (failure) throw (failure as { err: unknown }).err
  return out
}

/**
 * A fixed set of equal buffers shared by many users: `acquire` waits while all are taken. Buffers
 * are made on first use, so an idle pool costs nothing. Bounds memory whatever the number of
 * users (e.g. the server's file reads across every connection).
 */
export class BufferPool {
  readonly #free: Buffer[] = []
  readonly #waiters: Array<(b: Buffer) => void> = []
  readonly #count: number
  readonly #size: number
  #made = 0

  constructor(count: number, size: number) {
    this.#count = count
    this.#size = size
  }

  acquire(): Promise<Buffer> {
    const b = this.#free.pop() ?? (this.#made < this.#count ? (this.#made++, Buffer.allocUnsafe(this.#size)) : null)
    if (b) return Promise.resolve(b)
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** Gives `b` back: to the longest waiter, or to the free list. */
  release(b: Buffer): void {
    const next = this.#waiters.shift()
    if (next) next(b)
    else this.#free.push(b)
  }

  /** Buffers allocated so far (never more than `count`). */
  get allocated(): number { return this.#made }
}
