/**
 * Which instances of a program follow which paths, and what the server is told about it. The
 * server hears only the transitions: SUBSCRIBE when the first instance follows a path, unsubscribe
 * when the last one leaves (one server-side instance id for the whole NetworkAssets). A path is
 * subscribed as an exact pattern (glob characters escaped); past RUNTIME_MAX_PATH_SUBSCRIPTIONS
 * paths, one `**` subscription replaces them and pushed changes are filtered here.
 */
import { randomBytes } from 'node:crypto'
import { MAX_PATTERN_BYTES, MAX_PATTERNS, RUNTIME_MAX_PATH_SUBSCRIPTIONS } from '../../limits.js'
import type { AssetClient } from './client.js'

/** A glob that matches exactly `wirePath`: every character a glob dialect may read is escaped. */
export function exactPattern(wirePath: string): string {
  // Wire paths hold no backslash (paths.ts), so a backslash always escapes here.
  return wirePath.replace(/[*?[\]{}()!+@|,^$#\\]/g, '\\$&')
}

const WIDE = '**'

export class PathSubscriptions {
  /** Our instance id on the server (SUBSCRIBE's u32). */
  readonly serverInstance = randomBytes(4).readUInt32BE(0)
  readonly #limit: number
  /** wire path → instances following it. */
  readonly #paths = new Map<string, Set<string>>()
  /** The server holds `**` for us instead of exact patterns. */
  #wide = false

  constructor(limit = RUNTIME_MAX_PATH_SUBSCRIPTIONS) {
    this.#limit = limit
  }

  has(path: string): boolean { return this.#paths.has(path) }
  instances(path: string): string[] { return [...(this.#paths.get(path) ?? [])] }
  paths(): string[] { return [...this.#paths.keys()] }
  get size(): number { return this.#paths.size }
  /** Whether one `**` subscription stands in for the paths. */
  get wide(): boolean { return this.#wide }

  /**
   * `instance` follows `path`. When it is the path's first, tells the server through `client`
   * (if connected): the SUBSCRIBE frame leaves before this returns, so a REQUEST sent after it is
   * answered after the subscription holds. The promise settles with the server's ack.
   */
  add(path: string, instance: string, client: AssetClient | null): Promise<void> {
    const set = this.#paths.get(path)
    if (set) {
      set.add(instance)
      return Promise.resolve()
    }
    this.#paths.set(path, new Set([instance]))
    if (!client) return Promise.resolve() // resubscribe() tells the server on connect
    if (this.#wide) return Promise.resolve()
    const pattern = exactPattern(path)
    if (this.#paths.size > this.#limit || Buffer.byteLength(pattern) > MAX_PATTERN_BYTES) return this.#widen(client)
    return client.subscribe([pattern], this.serverInstance, true)
  }

  /**
   * Drops every path of `instance`; the server is told about the paths nobody follows any more.
   * Returns the paths dropped.
   */
  async release(instance: string, client: AssetClient | null): Promise<string[]> {
    const gone: string[] = []
    for (const [path, set] of this.#paths) {
      if (!set.delete(instance) || set.size > 0) continue
      this.#paths.delete(path)
      gone.push(path)
    }
    if (!client || gone.length === 0) {
      if (this.#paths.size === 0) this.#wide = false
      return gone
    }
    if (this.#wide) {
      if (this.#paths.size === 0) {
        this.#wide = false
        await client.subscribe([WIDE], this.serverInstance, false)
      }
      return gone
    }
    await this.#send(client, gone.map(exactPattern), false)
    return gone
  }

  /** A new connection holds nothing: subscribes every followed path again. */
  async resubscribe(client: AssetClient): Promise<void> {
    if (this.#paths.size === 0) return
    if (this.#wide || this.#paths.size > this.#limit) {
      this.#wide = true
      await client.subscribe([WIDE], this.serverInstance, true)
      return
    }
    await this.#send(client, this.paths().map(exactPattern), true)
  }

  /** Switches to one `**` subscription: subscribe it first (no change is missed), then drop the exact ones. */
  async #widen(client: AssetClient): Promise<void> {
    this.#wide = true
    const exact = this.paths().map(exactPattern).filter((p) => Buffer.byteLength(p) <= MAX_PATTERN_BYTES)
    await client.subscribe([WIDE], this.serverInstance, true)
    await this.#send(client, exact, false)
  }

  async #send(client: AssetClient, patterns: string[], subscribe: boolean): Promise<void> {
    const acks: Promise<void>[] = []
    for (let i = 0; i < patterns.length; i += MAX_PATTERNS) {
      acks.push(client.subscribe(patterns.slice(i, i + MAX_PATTERNS), this.serverInstance, subscribe))
    }
    await Promise.all(acks)
  }
}
