/** A counting semaphore: at most `limit` of the functions given to `run` run at once, in arrival order. */
export class Semaphore {
  readonly limit: number
  #active = 0
  readonly #waiting: (() => void)[] = []

  constructor(limit: number) {
    this.limit = Math.max(1, limit)
  }

  /** Runs `fn` when a slot is free; the slot is released when it settles. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.limit) await new Promise<void>((resolve) => this.#waiting.push(resolve))
    else this.#active++
    try {
      return await fn()
    } finally {
      const next = this.#waiting.shift()
      if (next) next() // the slot passes straight to the next waiter
      else this.#active--
    }
  }
}
