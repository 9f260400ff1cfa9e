/**
 * How much glob matching the server does for its clients, and when (issue 12). The matcher
 * (core/fs/patterns.ts) never backtracks and counts its work (`PatternSet.steps`); this module
 * spends that work fairly:
 *
 * - **In slices, one per event-loop turn.** Every MANIFEST scan, compile and batch fan-out runs
 *   in slices of at most MATCH_SLICE_STEPS steps (plus one path). The MatchScheduler hands out
 *   one slice per turn, round robin, with I/O in between, so however many clients ask for costly
 *   matching, the server's loop is never held for more than one slice: transfers, handshakes and
 *   cheap requests go on. (A MANIFEST page is cut after MANIFEST_PAGE_MATCH_STEPS: many slices.)
 * - **At a bounded average cost.** Past its first slice (the DFA cache warming up), a request
 *   may average at most MATCH_STEPS_PER_CHAR steps per path character it examined (a warm DFA
 *   costs about 1). A set that keeps missing its DFA cache on this index is refused: ERR_LIMIT
 *   for a MANIFEST, the connection closed for subscriptions (there is no request to fail).
 */
import { MANIFEST_PAGE_MATCH_STEPS, MATCH_SLICE_STEPS, MATCH_STEPS_PER_CHAR } from '../../limits.js'

/** What the server's matching has done so far (tests, status, the bench). */
export interface MatchStats {
  /** Turns handed out (slices of MANIFEST scans, compiles, SUBSCRIBEs, batch fan-outs). */
  slices: number
  /** The most work any one slice did (steps, plus one per path). */
  maxSliceSteps: number
  /** MANIFEST pages cut by matching work rather than by bytes or the end. */
  pagesCutByWork: number
  /** MANIFEST requests refused for their cost (the average-cost rule). */
  manifestsRefused: number
  /** Connections closed because their subscriptions broke the average-cost rule on a batch. */
  subscribersClosed: number
}

/** Server-wide: at most one slice of matching per event-loop turn, round robin. */
export class MatchScheduler {
  readonly stats: MatchStats = { slices: 0, maxSliceSteps: 0, pagesCutByWork: 0, manifestsRefused: 0, subscribersClosed: 0 }
  readonly #queue: Array<() => void> = []
  /** Pushes of change batches: served before MANIFEST scans (hot reload waits for nobody's manifest). */
  readonly #urgent: Array<() => void> = []
  #scheduled = false
  /**
   * Waits for this caller's turn to run one slice (MATCH_SLICE_STEPS) of matching;
   * `urgent` (a batch fan-out) goes before the MANIFEST scans waiting.
   */
  turn(urgent = false): Promise<void> {
    return new Promise((resolve) => {
      ;(urgent ? this.#urgent : this.#queue).push(resolve)
      this.#pump()
    })
  }

  /** Callers waiting for a turn. */
  get waiting(): number { return this.#queue.length + this.#urgent.length }

  #pump(): void {
    if (this.#scheduled || this.waiting === 0) return
    this.#scheduled = true
    // setImmediate runs after the poll phase: I/O that arrived meanwhile is handled between two
    // slices. The slice itself runs in the resolved promise's continuation, still in this turn;
    // the next one is scheduled from here, so it lands in the next turn.
    setImmediate(() => {
      this.#scheduled = false
      const next = this.#urgent.shift() ?? this.#queue.shift()
      this.stats.slices++
      next?.()
      this.#pump()
    })
  }
}

/**
 * The work of one request (a MANIFEST) or one connection's share of a batch: steps spent (read
 * from the matcher's counter), paths and characters examined.
 */
export class MatchWork {
  readonly #steps: () => number
  readonly #start: number
  /** `spent` when the current slice began. */
  #sliceStart = 0
  #chars = 0
  #paths = 0
  #stopped = false

  readonly #stats: MatchStats | null

  /** `steps` reads the matcher's running counter (PatternSet.steps); slices are reported to `stats`. */
  constructor(steps: () => number, stats: MatchStats | null = null) {
    this.#steps = steps
    this.#start = steps()
    this.#stats = stats
  }

  /** Steps spent since this work began (the matcher's, plus one per path examined). */
  get spent(): number { return this.#steps() - this.#start + this.#paths }
  get paths(): number { return this.#paths }
  /** What the average-cost rule allows so far: one slice to warm up, then MATCH_STEPS_PER_CHAR a character. */
  get allowed(): number { return MANIFEST_PAGE_MATCH_STEPS + MATCH_STEPS_PER_CHAR * (this.#chars + this.#paths) }
  /** Over the average-cost rule: the set is too costly for these paths. */
  get overspent(): boolean { return this.spent > this.allowed }

  /** Whether `examined` has ended the current slice. */
  get stopped(): boolean { return this.#stopped }

  /** Records that `path` was examined; true when the current slice is used up (or the rule broken). */
  examined(path: string): boolean {
    this.#paths++
    this.#chars += path.length
    this.#stopped = this.spent - this.#sliceStart >= MATCH_SLICE_STEPS || this.overspent
    return this.#stopped
  }

  /** Starts a new slice (after waiting for a turn). */
  nextSlice(): void {
    this.end()
    this.#sliceStart = this.spent
    this.#stopped = false
  }

  /** Reports the current slice's size (call when the work is over). */
  end(): void {
    if (this.#stats) this.#stats.maxSliceSteps = Math.max(this.#stats.maxSliceSteps, this.spent - this.#sliceStart)
  }
}
