/**
 * The clock behind every timer in the protocol layer, injected so timeouts are testable without
 * sleeping (nats.js style). Background timers are unref()'d: they never keep a process alive.
 */
export interface Clock {
  now(): number
  /** Calls fn every ms; returns the cancel function. */
  every(ms: number, fn: () => void): () => void
  /** Calls fn once after ms; returns the cancel function. */
  after(ms: number, fn: () => void): () => void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  every(ms, fn) {
    const t = setInterval(fn, ms)
    t.unref()
    return () => clearInterval(t)
  },
  after(ms, fn) {
    const t = setTimeout(fn, ms)
    t.unref()
    return () => clearTimeout(t)
  },
}

/** A clock that moves only when told: `advance(ms)` fires due timers in order. For tests. */
export class ManualClock implements Clock {
  #now = 0
  #timers = new Map<number, { at: number; every: number; fn: () => void }>()
  #next = 1
  now(): number { return this.#now }
  every(ms: number, fn: () => void): () => void { return this.#add(ms, ms, fn) }
  after(ms: number, fn: () => void): () => void { return this.#add(ms, 0, fn) }
  #add(ms: number, every: number, fn: () => void): () => void {
    const id = this.#next++
    this.#timers.set(id, { at: this.#now + ms, every, fn })
    return () => { this.#timers.delete(id) }
  }
  advance(ms: number): void {
    const end = this.#now + ms
    for (;;) {
      let dueId = 0
      let due: { at: number; every: number; fn: () => void } | undefined
      for (const [id, t] of this.#timers) if (t.at <= end && (!due || t.at < due.at)) { due = t; dueId = id }
      if (!due) break
      this.#now = due.at
      if (due.every > 0) due.at += due.every
      else this.#timers.delete(dueId)
      due.fn()
    }
    this.#now = end
  }
  /**
   * Moves time forward by `ms` as a blocked event loop lives it (a long synchronous job, a GC
   * pause, SIGSTOP): nothing fires meanwhile; then each timer that fell due fires once, in due
   * order, and a repeating one is rescheduled from the new time, as Node's timers do.
   */
  stall(ms: number): void {
    this.#now += ms
    const due = [...this.#timers].filter(([, t]) => t.at <= this.#now).sort(([, x], [, y]) => x.at - y.at)
    for (const [id, t] of due) {
      if (!this.#timers.has(id)) continue // cancelled by an earlier one
      if (t.every > 0) t.at = this.#now + t.every
      else this.#timers.delete(id)
      t.fn()
    }
  }
}
