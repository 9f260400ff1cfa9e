/**
 * The subscription registry: pattern → client → set of instance ids. One client (connection)
 * may carry several instances (e.g. several game modules in one process), each subscribing to
 * its own patterns. When a client disconnects, `dropClient` releases everything it held.
 *
 * Each instance's patterns form one selection read as in pull (docs/patterns.md): in the order
 * it subscribed them, last match wins, `!` excludes, and a list that starts with `!` begins from
 * everything. All patterns of one client compile into ONE automaton (PatternSet), so a changed
 * path costs one pass per client, and a SUBSCRIBE that would take a client's set over the
 * pattern budget (src/limits.ts, "patterns") is refused with ERR_LIMIT and changes nothing.
 */
import { type PatternBudget, PatternSet } from '../fs/patterns.js'

/** Memoized "matched patterns → instance ids" results per client; cleared past this many. */
const MEMO_MAX = 256

interface ClientState {
  /** instance id → its patterns in subscription order */
  instances: Map<number, string[]>
  /** The client's distinct patterns, compiled; null when it must be rebuilt (after an unsubscribe). */
  set: PatternSet | null
  /** pattern → its index in `set` */
  index: Map<string, number>
  /** DFA match result (identity) → instance ids selected */
  memo: Map<Int32Array, Set<number>>
  /** Match steps this client's sets have cost so far (its sets are rebuilt; this is not). */
  work: number
}

/** The distinct patterns a client's instances hold. */
function held(st: ClientState): Set<string> {
  const all = new Set<string>()
  for (const list of st.instances.values()) for (const p of list) all.add(p)
  return all
}

export class Subscriptions<C = string> {
  /** pattern → client → instance ids */
  readonly #byPattern = new Map<string, Map<C, Set<number>>>()
  readonly #clients = new Map<C, ClientState>()
  /** client → (pattern, instance id) pairs it holds, for the per-connection cap. */
  readonly #held = new Map<C, number>()
  readonly #budget: Partial<PatternBudget>
  #work = 0

  /** `budget` applies to every set compiled for a client (the server passes a smaller DFA cache). */
  constructor(budget: Partial<PatternBudget> = {}) {
    this.#budget = budget
  }

  /**
   * Adds `instanceId` of `client` to each pattern. Returns, per pattern, whether it was the first
   * subscriber. Throws ERR_LIMIT (changing nothing) when the client's patterns would exceed the
   * pattern budget, ERR_USAGE for a malformed pattern. `admit` sees the client's new compiled set
   * before anything changes, and may refuse it by throwing (the server's memory budget).
   */
  subscribe(client: C, patterns: readonly string[], instanceId: number, admit?: (set: PatternSet) => void): boolean[] {
    const st = this.#clients.get(client)
    const known = st ? held(st) : new Set<string>()
    const added = [...new Set(patterns)].filter((p) => !known.has(p))
    let compiled: PatternSet | null = null
    if (added.length > 0 || !st?.set) compiled = new PatternSet([...known, ...added], 'select', this.#budget) // throws before anything changes
    if (compiled) admit?.(compiled)
    const state = st ?? { instances: new Map(), set: null, index: new Map(), memo: new Map(), work: 0 }
    if (!st) this.#clients.set(client, state)
    if (compiled) {
      state.set = compiled
      state.index = new Map(compiled.patterns.map((p, i) => [p, i]))
    }
    state.memo.clear()
    let list = state.instances.get(instanceId)
    if (!list) state.instances.set(instanceId, (list = []))
    for (const p of patterns) if (!list.includes(p)) list.push(p)

    return patterns.map((pattern) => {
      let clients = this.#byPattern.get(pattern)
      const first = !clients
      if (!clients) this.#byPattern.set(pattern, (clients = new Map()))
      let ids = clients.get(client)
      if (!ids) clients.set(client, (ids = new Set()))
      if (!ids.has(instanceId)) this.#held.set(client, (this.#held.get(client) ?? 0) + 1)
      ids.add(instanceId)
      return first
    })
  }

  /** Removes `instanceId` of `client` from each pattern. Returns, per pattern, whether it was the last subscriber. */
  unsubscribe(client: C, patterns: readonly string[], instanceId: number): boolean[] {
    const st = this.#clients.get(client)
    const list = st?.instances.get(instanceId)
    if (st && list) {
      const gone = new Set(patterns)
      const kept = list.filter((p) => !gone.has(p))
      if (kept.length < list.length) {
        if (kept.length > 0) st.instances.set(instanceId, kept)
        else st.instances.delete(instanceId)
        if (st.instances.size === 0) this.#clients.delete(client)
        else {
          st.set = null // rebuilt, smaller, when next needed
          st.memo.clear()
        }
      }
    }
    return patterns.map((pattern) => {
      const clients = this.#byPattern.get(pattern)
      const ids = clients?.get(client)
      if (!clients || !ids) return false
      if (ids.delete(instanceId)) this.#held.set(client, (this.#held.get(client) ?? 1) - 1)
      if (ids.size === 0) clients.delete(client)
      if (clients.size > 0) return false
      this.#byPattern.delete(pattern)
      return true
    })
  }

  /** Drops every subscription of `client`; returns the patterns that now have no subscriber. */
  dropClient(client: C): string[] {
    this.#held.delete(client)
    this.#clients.delete(client)
    const released: string[] = []
    for (const [pattern, clients] of this.#byPattern) {
      if (!clients.delete(client)) continue
      if (clients.size === 0) {
        this.#byPattern.delete(pattern)
        released.push(pattern)
      }
    }
    return released
  }

  /** (pattern, instance id) pairs `client` holds. */
  held(client: C): number { return this.#held.get(client) ?? 0 }

  /** Match steps spent on `client`'s subscriptions so far (issue 12: bounded per batch by the server). */
  workOf(client: C): number { return this.#clients.get(client)?.work ?? 0 }

  /** The clients holding subscriptions now (a copy). */
  clients(): C[] { return [...this.#clients.keys()] }

  /** Match steps spent on all clients' subscriptions so far. */
  get work(): number { return this.#work }

  /** `client`'s compiled subscription set, if it holds any (for the server's memory accounting). */
  setOf(client: C): PatternSet | null {
    const st = this.#clients.get(client)
    if (st && !st.set) this.#compiled(st)
    return st?.set ?? null
  }

  /** (pattern, instance id) pairs all clients hold together. */
  get total(): number {
    let n = 0
    for (const h of this.#held.values()) n += h
    return n
  }

  /** How many of `patterns` (duplicates counted once) `client` does not yet hold for `instanceId`. */
  newPairs(client: C, patterns: readonly string[], instanceId: number): number {
    let n = 0
    for (const p of new Set(patterns)) if (!this.#byPattern.get(p)?.get(client)?.has(instanceId)) n++
    return n
  }

  /** Clients (with their instance ids) whose selections include `path`. */
  subscribers(path: string): Map<C, Set<number>> {
    const out = new Map<C, Set<number>>()
    for (const [client, st] of this.#clients) {
      const ids = this.#select(st, path)
      if (ids.size > 0) out.set(client, new Set(ids))
    }
    return out
  }

  /** The instances of one client whose selection includes `path` (memoized per DFA result). */
  #compiled(st: ClientState): PatternSet {
    if (!st.set) {
      st.set = new PatternSet([...held(st)], 'select', this.#budget) // a subset of a set that compiled: within budget
      st.index = new Map(st.set.patterns.map((p, i) => [p, i]))
    }
    return st.set
  }

  #select(st: ClientState, path: string): Set<number> {
    const set = this.#compiled(st)
    const before = set.steps
    const hits = set.matching(path)
    st.work += set.steps - before
    this.#work += set.steps - before
    let ids = st.memo.get(hits)
    if (ids) return ids
    ids = new Set()
    const matched = new Set(hits)
    for (const [id, list] of st.instances) {
      // last match wins; with none, a list that starts with an exclusion selects
      let sel = list[0]?.startsWith('!') ?? false
      for (let k = list.length - 1; k >= 0; k--) {
        const p = list[k] as string
        if (matched.has(st.index.get(p) as number)) {
          sel = !p.startsWith('!')
          break
        }
      }
      if (sel) ids.add(id)
    }
    if (st.memo.size >= MEMO_MAX) st.memo.clear()
    st.memo.set(hits, ids)
    return ids
  }

  /** Patterns `client` holds, with their instance ids. */
  patternsOf(client: C): Map<string, Set<number>> {
    const out = new Map<string, Set<number>>()
    for (const [pattern, clients] of this.#byPattern) {
      const ids = clients.get(client)
      if (ids) out.set(pattern, new Set(ids))
    }
    return out
  }

  get patternCount(): number { return this.#byPattern.size }

  get clientCount(): number { return this.#clients.size }
}
