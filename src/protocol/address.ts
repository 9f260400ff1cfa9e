/**
 * Source addresses as the server's per-address limits see them (issue 12): one key per host that
 * an attacker cannot cheaply multiply, and a bounded per-second counter table keyed by it.
 */
import { isIPv4, isIPv6 } from 'node:net'

/** Groups of an IPv6 address, with `::` expanded and an embedded IPv4 tail turned into 2 groups. */
function ipv6Groups(host: string): string[] | null {
  let h = host.split('%')[0] as string // zone id
  const v4 = /:(\d+\.\d+\.\d+\.\d+)$/.exec(h)
  if (v4) {
    const b = (v4[1] as string).split('.').map(Number)
    const hex = (x: number, y: number): string => ((x << 8) | y).toString(16)
    h = `${h.slice(0, v4.index)}:${hex(b[0] as number, b[1] as number)}:${hex(b[2] as number, b[3] as number)}`
  }
  const [head, tail] = h.split('::') as [string, string | undefined]
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const fill = tail === undefined ? 0 : 8 - left.length - right.length
  if (fill < 0) return null
  const groups = [...left, ...Array<string>(fill).fill('0'), ...right]
  return groups.length === 8 ? groups.map((g) => parseInt(g, 16).toString(16)) : null
}

/**
 * The key a source counts under: an IPv4 address as is (also when it arrives IPv4-mapped,
 * `::ffff:a.b.c.d`, on a dual-stack socket), an IPv6 address by its /64 prefix, since one host
 * is usually given a whole /64 and could otherwise use a fresh address for every attempt.
 */
export function addressKey(host: string): string {
  if (isIPv4(host)) return host
  if (!isIPv6(host)) return host
  const g = ipv6Groups(host)
  if (!g) return host
  if (g.slice(0, 5).every((x) => x === '0') && g[5] === 'ffff') {
    const n = (parseInt(g[6] as string, 16) << 16) | parseInt(g[7] as string, 16)
    return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
  }
  return `${g.slice(0, 4).join(':')}::/64`
}

/**
 * Events per key in the current one-second window, for "at most N a second from one source".
 * Bounded: past `maxKeys` distinct keys in one window, events from new keys are over the limit
 * (a flood of fresh sources is then refused wholesale rather than growing the table).
 */
export class PerSecond {
  readonly #limit: number
  readonly #maxKeys: number
  readonly #now: () => number
  #window = 0
  #counts = new Map<string, number>()

  constructor(limit: number, maxKeys: number, now: () => number) {
    this.#limit = limit
    this.#maxKeys = maxKeys
    this.#now = now
  }

  /** Counts `weight` events for `key`; true when that takes it over the limit (refuse the event). */
  over(key: string, weight = 1): boolean {
    const window = Math.floor(this.#now() / 1000)
    if (window !== this.#window) {
      this.#window = window
      this.#counts.clear()
    }
    const before = this.#counts.get(key)
    if (before === undefined && this.#counts.size >= this.#maxKeys) return true
    const n = (before ?? 0) + weight
    this.#counts.set(key, n)
    return n > this.#limit
  }
}
