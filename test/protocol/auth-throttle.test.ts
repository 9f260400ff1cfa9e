/**
 * The connection guard's pieces on a ManualClock (issue 12): AuthThrottle's schedule, bucket,
 * refusals, memory and warnings; PreAuthPool's eviction order; addressKey. The live attacks are
 * test/hardening/token-guessing.test.ts and handshake-slots.test.ts.
 */
import { describe, expect, it } from 'vitest'
import {
  AUTH_FAILURE_ADDRESSES, AUTH_FAILURE_DELAY_MAX_MS, AUTH_FAILURE_DELAY_MS, AUTH_FAILURE_FORGET_MS, AUTH_FAILURE_WARN_COUNT,
  AUTH_FAILURE_WARN_MS, AUTH_FAILURES_PER_SEC,
} from '../../src/limits.js'
import { PerSecond, addressKey } from '../../src/protocol/address.js'
import { type AuthFailureBurst, AuthThrottle, type AuthVerdict } from '../../src/protocol/auth-throttle.js'
import { ManualClock } from '../../src/protocol/clock.js'
import { PreAuthPool } from '../../src/protocol/preauth-pool.js'

const FAR = 1e12 // a deadline that never binds

/** Starts an attempt; `settled()` is its verdict once it has one (the clock must be advanced). */
function start(t: AuthThrottle, host: string, deadlineAt: number, ok: boolean | null = false): { settled: () => AuthVerdict | null; checked: () => boolean } {
  let v: AuthVerdict | null = null
  let checked = false
  void t.attempt(host, deadlineAt, () => { checked = true; return ok }).then((x) => { v = x })
  return { settled: () => v, checked: () => checked }
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('AuthThrottle', () => {
  it('one address: checks wait AUTH_FAILURE_DELAY_MS after a failure, doubling per failure, up to the maximum', async () => {
    const clock = new ManualClock()
    const t = new AuthThrottle({ clock })
    const when: number[] = []
    for (let i = 0; i < 12; i++) {
      const a = start(t, '10.0.0.1', FAR)
      while (!a.checked()) clock.advance(1)
      await flush()
      expect(a.settled()).toMatchObject({ result: 'rejected', failures: i + 1 })
      when.push(clock.now())
    }
    const gaps = when.slice(1).map((x, i) => x - (when[i] as number))
    expect(gaps).toEqual(gaps.map((_, i) => Math.min(AUTH_FAILURE_DELAY_MAX_MS, AUTH_FAILURE_DELAY_MS * 2 ** i)))
    expect(t.stats).toMatchObject({ checks: 12, failures: 12 })
  })

  it('parallel attempts from one address are checked one at a time', async () => {
    const clock = new ManualClock()
    const t = new AuthThrottle({ clock })
    const first = start(t, '10.0.0.2', FAR)
    await flush()
    expect(first.settled()).toMatchObject({ result: 'rejected' })
    const more = Array.from({ length: 5 }, () => start(t, '10.0.0.2', FAR))
    clock.advance(AUTH_FAILURE_DELAY_MS - 1)
    expect(more.filter((a) => a.checked())).toHaveLength(0)
    clock.advance(1)
    expect(more.filter((a) => a.checked())).toHaveLength(1) // the next waits 2 × the delay
    clock.advance(2 * AUTH_FAILURE_DELAY_MS - 1)
    expect(more.filter((a) => a.checked())).toHaveLength(1)
    clock.advance(1)
    expect(more.filter((a) => a.checked())).toHaveLength(2)
  })

  it('an attempt that would wait past its deadline is refused at once, unchecked; one that fits waits', async () => {
    const clock = new ManualClock()
    const t = new AuthThrottle({ clock })
    start(t, '10.0.0.3', FAR)
    const late = start(t, '10.0.0.3', clock.now() + AUTH_FAILURE_DELAY_MS) // would be checked exactly at its deadline
    await flush()
    expect(late.checked()).toBe(false)
    expect(late.settled()).toEqual({ result: 'locked', failures: 1, retryMs: AUTH_FAILURE_DELAY_MS })
    const fits = start(t, '10.0.0.3', clock.now() + AUTH_FAILURE_DELAY_MS + 1, true)
    clock.advance(AUTH_FAILURE_DELAY_MS)
    await flush()
    expect(fits.settled()).toEqual({ result: 'ok' })
    expect(t.stats).toMatchObject({ checks: 2, failures: 1, locked: 1, waited: 1 })
  })

  it('a success clears the address; so do AUTH_FAILURE_FORGET_MS without a failure', async () => {
    const clock = new ManualClock()
    const t = new AuthThrottle({ clock })
    start(t, '10.0.0.4', FAR)
    clock.advance(AUTH_FAILURE_DELAY_MS)
    start(t, '10.0.0.4', FAR, true)
    await flush()
    const again = start(t, '10.0.0.4', FAR)
    await flush()
    expect(again.settled()).toMatchObject({ result: 'rejected', failures: 1 }) // at once, and counting from 1
    clock.advance(AUTH_FAILURE_FORGET_MS + 1)
    const later = start(t, '10.0.0.4', FAR)
    await flush()
    expect(later.settled()).toMatchObject({ result: 'rejected', failures: 1 })
  })

  it('server-wide: at most AUTH_FAILURES_PER_SEC wrong tokens a second from many addresses; a trusted address does not wait', async () => {
    const clock = new ManualClock()
    const t = new AuthThrottle({ clock })
    start(t, '10.1.0.1', FAR, true) // a client that got in: trusted
    await flush()
    const attempts = Array.from({ length: 100 }, (_, i) => start(t, `10.2.${i >> 8}.${i & 255}`, FAR))
    await flush()
    expect(attempts.filter((a) => a.checked())).toHaveLength(AUTH_FAILURES_PER_SEC) // the bucket
    const known = start(t, '10.1.0.1', FAR, true)
    const stranger = start(t, '10.3.0.1', FAR, true)
    await flush()
    expect(known.settled()).toEqual({ result: 'ok' })
    expect(stranger.checked()).toBe(false)
    // 100 attackers and the stranger share the bucket: all are served within ~10 s, never faster.
    for (let s = 1; s <= 10; s++) {
      clock.advance(1000)
      await flush()
      expect(t.stats.failures).toBeLessThanOrEqual(AUTH_FAILURES_PER_SEC * (1 + s))
    }
    expect(attempts.every((a) => a.checked())).toBe(true)
    expect(stranger.settled()).toEqual({ result: 'ok' }) // waited its turn; a right token then costs nothing
  })

  it('server busy: an attempt that cannot get a check before its deadline is refused unchecked', async () => {
    const clock = new ManualClock()
    const t = new AuthThrottle({ clock })
    for (let i = 0; i < AUTH_FAILURES_PER_SEC; i++) start(t, `10.4.0.${i}`, FAR)
    await flush()
    const b = start(t, '10.5.0.1', clock.now() + 50)
    await flush()
    expect(b.checked()).toBe(false)
    expect(b.settled()).toMatchObject({ result: 'busy' })
    expect(t.stats.busy).toBe(1)
  })

  it('warns at AUTH_FAILURE_WARN_COUNT failures in a row from one address and at each doubling; server-wide at most every AUTH_FAILURE_WARN_MS', async () => {
    const clock = new ManualClock()
    const t = new AuthThrottle({ clock, failuresPerSec: 1000 })
    const bursts: AuthFailureBurst[] = []
    t.on('burst', (b: AuthFailureBurst) => bursts.push(b))
    for (let i = 0; i < 4 * AUTH_FAILURE_WARN_COUNT; i++) {
      const a = start(t, '10.6.0.1', FAR)
      while (!a.checked()) clock.advance(100)
    }
    expect(bursts.map((b) => b.count)).toEqual([AUTH_FAILURE_WARN_COUNT, 2 * AUTH_FAILURE_WARN_COUNT, 4 * AUTH_FAILURE_WARN_COUNT])
    expect(bursts.every((b) => b.remote === '10.6.0.1')).toBe(true)

    const t2 = new AuthThrottle({ clock })
    const wide: AuthFailureBurst[] = []
    t2.on('burst', (b: AuthFailureBurst) => wide.push(b))
    for (let i = 0; i < 3 * AUTH_FAILURES_PER_SEC; i++) start(t2, `10.7.0.${i}`, FAR)
    clock.advance(AUTH_FAILURE_WARN_MS - 1)
    expect(wide.filter((b) => b.remote === '*')).toHaveLength(1)
    expect(wide[0]).toMatchObject({ remote: '*', count: AUTH_FAILURES_PER_SEC })
  })

  it('remembers at most AUTH_FAILURE_ADDRESSES addresses, dropping the oldest', async () => {
    const clock = new ManualClock()
    const t = new AuthThrottle({ clock, maxAddresses: 3, failuresPerSec: 1e6 })
    expect(AUTH_FAILURE_ADDRESSES).toBeGreaterThan(3) // the option scales the real table down
    for (const h of ['10.8.0.1', '10.8.0.2', '10.8.0.3', '10.8.0.4']) start(t, h, FAR)
    await flush()
    const first = start(t, '10.8.0.1', FAR) // forgotten: checked at once
    const last = start(t, '10.8.0.4', FAR) // remembered: waits
    await flush()
    expect(first.checked()).toBe(true)
    expect(last.checked()).toBe(false)
  })
})

describe('PreAuthPool', () => {
  it('full: evicts the stalest handshake of the source holding the most; a source at its share evicts its own stalest', () => {
    const clock = new ManualClock()
    const pool = new PreAuthPool({ clock, max: 6, perAddr: 3 })
    const evicted: string[] = []
    const add = (host: string, name: string): ReturnType<PreAuthPool['add']> => pool.add(host, () => evicted.push(name))
    const a1 = add('10.0.0.1', 'a1'); clock.advance(10)
    add('10.0.0.1', 'a2'); clock.advance(10)
    add('10.0.0.2', 'b1'); clock.advance(10)
    add('10.0.0.2', 'b2'); clock.advance(10)
    add('10.0.0.3', 'c1'); clock.advance(10)
    add('10.0.0.1', 'a3'); clock.advance(10)
    a1.touch() // a1 spoke: a2 is now a's stalest
    expect(pool.size).toBe(6)
    add('10.0.0.4', 'd1') // full: a holds the most (3), its stalest is a2
    expect(evicted).toEqual(['a2'])
    add('10.0.0.5', 'e1') // full: a and b hold 2 each; b's stalest (b1) is staler than a's (a3)
    expect(evicted).toEqual(['a2', 'b1'])
    expect(pool.size).toBe(6)
    expect(pool.stats).toEqual({ admitted: 8, evicted: 2 })
  })

  it('a source at its share gives up its own stalest handshake, even with room in the pool', () => {
    const clock = new ManualClock()
    const pool = new PreAuthPool({ clock, max: 100, perAddr: 2 })
    const evicted: string[] = []
    for (const name of ['x1', 'x2', 'x3', 'x4']) {
      pool.add('10.0.0.9', () => evicted.push(name))
      clock.advance(5)
    }
    expect(evicted).toEqual(['x1', 'x2'])
    expect(pool.from('10.0.0.9')).toBe(2)
  })

  it('release frees the slot once (idempotent), also after an eviction', () => {
    const clock = new ManualClock()
    const pool = new PreAuthPool({ clock, max: 2, perAddr: 2 })
    const a = pool.add('10.0.0.1', () => {})
    pool.add('10.0.0.1', () => {})
    pool.add('10.0.0.1', () => {}) // evicts a
    a.release()
    a.release()
    expect(pool.size).toBe(2)
  })
})

describe('addressKey, PerSecond', () => {
  it('IPv4 as is (also IPv4-mapped), IPv6 by its /64', () => {
    expect(addressKey('192.0.2.7')).toBe('192.0.2.7')
    expect(addressKey('::ffff:192.0.2.7')).toBe('192.0.2.7')
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64')
    expect(addressKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64')
    expect(addressKey('2001:DB8:1:2:a::1')).toBe('2001:db8:1:2::/64')
    expect(addressKey('::1')).toBe('0:0:0:0::/64')
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64')
    expect(addressKey('not an address')).toBe('not an address')
  })

  it('counts per key per one-second window, with a bounded table', () => {
    const clock = new ManualClock()
    const r = new PerSecond(4, 2, () => clock.now())
    expect([1, 2, 3, 4, 5].map(() => r.over('a'))).toEqual([false, false, false, false, true])
    expect(r.over('b', 2)).toBe(false)
    expect(r.over('c')).toBe(true) // a third key in this window
    clock.advance(1000)
    expect(r.over('a')).toBe(false)
    expect(r.over('c')).toBe(false)
  })
})
