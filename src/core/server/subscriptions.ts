/**
 * The subscription registry: pattern → client id → set of instance ids. One client (connection)
 * may carry several instances (e.g. several game modules in one process), each subscribing to
 * its own patterns. When a client disconnects, `dropClient` releases everything it held.
 */
import picomatch from 'picomatch'

type Matcher = (path: string) => boolean

export class Subscriptions<C = string> {
  /** pattern → client → instance ids */
  readonly #byPattern = new Map<string, Map<C, Set<number>>>()
  readonly #matchers = new Map<string, Matcher>()
  /** client → (pattern, instance id) pairs it holds, for the per-connection cap. */
  readonly #held = new Map<C, number>()

  /** Adds `instanceId` of `client` to each pattern. Returns, per pattern, whether it was the first subscriber. */
  subscribe(client: C, patterns: readonly string[], instanceId: number): boolean[] {
    return patterns.map((pattern) => {
      let clients = this.#byPattern.get(pattern)
      const first = !clients
      if (!clients) {
        clients = new Map()
        this.#byPattern.set(pattern, clients)
        this.#matchers.set(pattern, picomatch(pattern, { dot: true }))
      }
      let ids = clients.get(client)
      if (!ids) clients.set(client, (ids = new Set()))
      if (!ids.has(instanceId)) this.#held.set(client, (this.#held.get(client) ?? 0) + 1)
      ids.add(instanceId)
      return first
    })
  }

  /** Removes `instanceId` of `client` from each pattern. Returns, per pattern, whether it was the last subscriber. */
  unsubscribe(client: C, patterns: readonly string[], instanceId: number): boolean[] {
    return patterns.map((pattern) => {
      const clients = this.#byPattern.get(pattern)
      const ids = clients?.get(client)
      if (!clients || !ids) return false
      if (ids.delete(instanceId)) this.#held.set(client, (this.#held.get(client) ?? 1) - 1)
      if (ids.size === 0) clients.delete(client)
      if (clients.size > 0) return false
      this.#byPattern.delete(pattern)
      this.#matchers.delete(pattern)
      return true
    })
  }

  /** Drops every subscription of `client`; returns the patterns that now have no subscriber. */
  dropClient(client: C): string[] {
    this.#held.delete(client)
    const released: string[] = []
    for (const [pattern, clients] of this.#byPattern) {
      if (!clients.delete(client)) continue
      if (clients.size === 0) {
        this.#byPattern.delete(pattern)
        this.#matchers.delete(pattern)
        released.push(pattern)
      }
    }
    return released
  }

  /** (pattern, instance id) pairs `client` holds. */
  held(client: C): number { return this.#held.get(client) ?? 0 }

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

  /** Clients (with their instance ids) whose patterns match `path`. */
  subscribers(path: string): Map<C, Set<number>> {
    const out = new Map<C, Set<number>>()
    for (const [pattern, clients] of this.#byPattern) {
      if (!(this.#matchers.get(pattern) as Matcher)(path)) continue
      for (const [client, ids] of clients) {
        let set = out.get(client)
        if (!set) out.set(client, (set = new Set()))
        for (const id of ids) set.add(id)
      }
    }
    return out
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

  get clientCount(): number {
    const s = new Set<C>()
    for (const clients of this.#byPattern.values()) for (const c of clients.keys()) s.add(c)
    return s.size
  }
}
