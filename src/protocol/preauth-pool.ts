/**
 * The server's handshake slots (issue 12): connections between accept and a successful AUTH,
 * counted apart from authenticated ones, in total and per source address. A full pool never turns
 * a newcomer away: it evicts the stalest handshake (the one silent the longest) — of the same
 * source when that source is at its own cap, otherwise of the source holding the most slots. An
 * idle socket is always staler than a client that is talking, so a flood of idle sockets only
 * makes room, and the client with the token gets in at once.
 */
import { MAX_PREAUTH_CONNECTIONS, MAX_PREAUTH_PER_ADDR } from '../limits.js'
import { addressKey } from './address.js'
import type { Clock } from './clock.js'

/** One handshake's slot. */
export interface PreAuthSlot {
  /** The peer sent bytes: it is not idle. */
  touch(): void
  /** The handshake ended (authenticated, refused or closed): frees the slot. Idempotent. */
  release(): void
}

export interface PreAuthPoolOptions {
  clock: Clock
  max?: number
  perAddr?: number
}

interface Entry {
  key: string
  lastSeen: number
  evict: () => void
}

export class PreAuthPool {
  readonly #byAddr = new Map<string, Set<Entry>>()
  readonly #clock: Clock
  readonly #max: number
  readonly #perAddr: number
  #size = 0
  /** Handshakes admitted and evicted so far. */
  readonly stats = { admitted: 0, evicted: 0 }

  constructor(opts: PreAuthPoolOptions) {
    this.#clock = opts.clock
    this.#max = opts.max ?? MAX_PREAUTH_CONNECTIONS
    this.#perAddr = Math.min(opts.perAddr ?? MAX_PREAUTH_PER_ADDR, this.#max)
  }

  /** Handshakes in progress. */
  get size(): number { return this.#size }

  /** Handshakes in progress from `host`'s address (its addressKey). */
  from(host: string): number { return this.#byAddr.get(addressKey(host))?.size ?? 0 }

  /**
   * Takes a slot for a new handshake from `host`, first evicting another handshake if the pool
   * (or `host`'s share of it) is full. `evict` is called if this handshake is later evicted: it
   * must close the connection (the slot is already gone by then).
   */
  add(host: string, evict: () => void): PreAuthSlot {
    const key = addressKey(host)
    const mine = this.#byAddr.get(key)
    if (mine && mine.size >= this.#perAddr) this.#evict(stalest(mine))
    else if (this.#size >= this.#max) this.#evict(stalest(this.#heaviest()))
    const entry: Entry = { key, lastSeen: this.#clock.now(), evict }
    let set = this.#byAddr.get(key)
    if (!set) this.#byAddr.set(key, (set = new Set()))
    set.add(entry)
    this.#size++
    this.stats.admitted++
    let held = true
    return {
      touch: () => { entry.lastSeen = this.#clock.now() },
      release: () => {
        if (!held) return
        held = false
        this.#remove(entry)
      },
    }
  }

  /** The slots of the source holding the most (ties: the one whose stalest is stalest). */
  #heaviest(): Set<Entry> {
    let best: Set<Entry> | null = null
    let bestAge = Infinity
    for (const set of this.#byAddr.values()) {
      if (best && set.size < best.size) continue
      const age = stalest(set).lastSeen
      if (!best || set.size > best.size || age < bestAge) {
        best = set
        bestAge = age
      }
    }
    return best as Set<Entry>
  }

  #remove(e: Entry): boolean {
    const set = this.#byAddr.get(e.key)
    if (!set?.delete(e)) return false
    if (set.size === 0) this.#byAddr.delete(e.key)
    this.#size--
    return true
  }

  #evict(e: Entry): void {
    if (!this.#remove(e)) return
    this.stats.evicted++
    e.evict()
  }
}

function stalest(set: Set<Entry>): Entry {
  let out: Entry | null = null
  for (const e of set) if (!out || e.lastSeen < out.lastSeen) out = e
  return out as Entry
}
