/**
 * What each connection may make the server hold (issue 12, case 5): its compiled subscription
 * set, the MANIFEST sets it keeps for its next pages, its in-flight requests and the frames
 * queued for it, all counted in bytes against one budget per connection
 * (CONNECTION_MEMORY_BYTES) and one for the whole server (SERVER_MEMORY_BYTES). A request that
 * would go over gets ERR_LIMIT (after the connection's caches are dropped); a connection whose
 * queued frames go over is closed (it is not reading).
 *
 * Pattern sets are charged what they can grow to, not what they hold now: their states, their
 * DFA cache at its cap (server-side sets get SERVER_SET_DFA_CELLS), their pattern strings. So a
 * charge that fits stays true while the set is used. The byte figures per state and per cell are
 * measured (docs/security.md, "Memory per connection"), rounded up.
 */
import { AssetSyncError } from '../../errors.js'
import { CONNECTION_MEMORY_BYTES, SERVER_MEMORY_BYTES, SERVER_SET_DFA_CELLS } from '../../limits.js'
import type { PatternSet } from '../fs/patterns.js'

/** Heap bytes per NFA state of a compiled set (measured 13–18 with 16,102 states). */
const STATE_BYTES = 24
/** Heap bytes per DFA cache cell (a cell is a 4-byte slot; with the arrays around it, measured 10.5). */
const CELL_BYTES = 12
/** A compiled set's fixed part: the objects, maps and typed arrays of an empty set. */
const SET_BYTES = 2048
/** One in-flight request: its Transfer, the source's reader (a file handle), promises. */
export const REQUEST_BYTES = 1024

/**
 * What `set` may come to hold, in bytes: its states, its DFA cache at `maxCells` (or less for a
 * tiny set, whose DFA cannot have more states than subsets of its NFA), its pattern strings.
 */
export function patternSetBytes(set: PatternSet, maxCells = SERVER_SET_DFA_CELLS): number {
  const s = set.states
  const tiny = s < 16 ? 2 ** s * (3 * s + 8) : Infinity
  let chars = 0
  for (const p of set.patterns) chars += p.length
  return SET_BYTES + STATE_BYTES * s + CELL_BYTES * Math.min(maxCells, tiny) + 2 * chars
}

/** The server's budget, shared by every connection's account. */
export class MemoryBudget {
  readonly perConnection: number
  readonly total: number
  readonly #accounts = new Set<MemoryAccount>()
  #used = 0
  /** Charges refused so far (either budget). */
  refused = 0

  constructor(perConnection = CONNECTION_MEMORY_BYTES, total = SERVER_MEMORY_BYTES) {
    this.perConnection = perConnection
    this.total = total
  }

  /** Bytes charged to all accounts now. */
  get used(): number { return this.#used }

  /**
   * A new connection's account. `evict` closes that connection: the budget calls it when the
   * server is over its total because of queued frames and this account holds the most of them.
   */
  account(evict: () => void = () => {}): MemoryAccount {
    const a: MemoryAccount = new MemoryAccount(this, (delta) => { this.#used += delta }, evict, () => this.#accounts.delete(a))
    this.#accounts.add(a)
    return a
  }

  /**
   * Over the total (only queued frames can take it there: every other charge is checked first):
   * closes the connections holding the most queued bytes until it is not. Returns how many.
   */
  shed(): number {
    let n = 0
    while (this.#used > this.total) {
      let victim: MemoryAccount | null = null
      for (const a of this.#accounts) if (a.of('queue') > (victim?.of('queue') ?? 0)) victim = a
      if (!victim) break
      victim.evict()
      victim.close()
      n++
    }
    this.shedConnections += n
    return n
  }

  /** Connections closed by `shed` so far. */
  shedConnections = 0
}

/** One connection's charges, by item ('subscriptions', 'inflight', 'queue', 'manifest:…'). */
export class MemoryAccount {
  readonly #budget: MemoryBudget
  readonly #add: (delta: number) => void
  readonly #forget: () => void
  readonly #items = new Map<string, number>()
  #used = 0
  #closed = false
  /** Closes the connection (the server is over its total and this account queues the most). */
  readonly evict: () => void

  constructor(budget: MemoryBudget, add: (delta: number) => void, evict: () => void, forget: () => void) {
    this.#budget = budget
    this.#add = add
    this.evict = evict
    this.#forget = forget
  }

  get used(): number { return this.#used }
  /** Bytes charged under `key` (0 if none). */
  of(key: string): number { return this.#items.get(key) ?? 0 }
  /** Over the connection's budget. */
  get over(): boolean { return this.#used > this.#budget.perConnection }

  /** Whether setting `key` to `bytes` would stay within both budgets. */
  fits(key: string, bytes: number): boolean {
    const delta = bytes - this.of(key)
    if (delta <= 0) return true
    return this.#used + delta <= this.#budget.perConnection && this.#budget.used + delta <= this.#budget.total
  }

  /**
   * Sets `key` to `bytes` if that fits both budgets; otherwise changes nothing and throws
   * ERR_LIMIT naming `what` (the caller drops its caches first and retries, if it has any).
   */
  charge(key: string, bytes: number, what: string): void {
    if (!this.fits(key, bytes)) {
      this.#budget.refused++
      const server = this.#budget.used + bytes - this.of(key) > this.#budget.total
      throw new AssetSyncError('ERR_LIMIT', server
        ? `${what} refused: the server's memory budget (${mib(this.#budget.total)}) is spent`
        : `${what} would take this connection's server memory past ${mib(this.#budget.perConnection)}`)
    }
    this.set(key, bytes)
  }

  /**
   * Sets `key` to a measured `bytes` whatever the budgets (see `over`; the server's total is kept
   * by MemoryBudget.shed). Nothing once closed.
   */
  set(key: string, bytes: number): void {
    if (this.#closed) return
    const delta = bytes - this.of(key)
    if (bytes > 0) this.#items.set(key, bytes)
    else this.#items.delete(key)
    this.#used += delta
    this.#add(delta)
  }

  release(key: string): void { this.set(key, 0) }

  /** Releases every charge (the connection closed); later charges are ignored. */
  close(): void {
    for (const key of [...this.#items.keys()]) this.release(key)
    this.#closed = true
    this.#forget()
  }
}

function mib(bytes: number): string {
  return `${Math.round((bytes / 1048576) * 10) / 10} MiB`
}
