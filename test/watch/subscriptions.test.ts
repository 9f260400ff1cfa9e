// The subscription registry (src/core/server/subscriptions.ts): pattern → client → instance ids.
import { describe, expect, it } from 'vitest'
import { Subscriptions } from '../../src/core/server/subscriptions.js'

/** subscribers(path) as plain data: client → sorted instance ids. */
function subs(s: Subscriptions, path: string): Record<string, number[]> {
  const out: Record<string, number[]> = {}
  for (const [c, ids] of s.subscribers(path)) out[c] = [...ids].sort((a, b) => a - b)
  return out
}

describe('Subscriptions.subscribe / unsubscribe', () => {
  it('reports, per pattern, whether the caller is the first subscriber', () => {
    const s = new Subscriptions()
    expect(s.subscribe('a', ['**/*.png', 'scripts/**'], 1)).toEqual([true, true])
    // Same client, another instance; another client: nobody is first any more.
    expect(s.subscribe('a', ['**/*.png'], 2)).toEqual([false])
    expect(s.subscribe('b', ['scripts/**', 'levels/*.json'], 7)).toEqual([false, true])
    // Subscribing the same instance twice is idempotent.
    expect(s.subscribe('b', ['levels/*.json'], 7)).toEqual([false])
    expect(s.patternCount).toBe(3)
    expect(s.clientCount).toBe(2)
  })

  it('reports, per pattern, whether the caller was the last subscriber', () => {
    const s = new Subscriptions()
    s.subscribe('a', ['p/**'], 1)
    s.subscribe('a', ['p/**'], 2)
    s.subscribe('b', ['p/**', 'q/**'], 1)
    expect(s.unsubscribe('a', ['p/**'], 1)).toEqual([false]) // a/2 and b/1 remain
    expect(s.unsubscribe('a', ['p/**'], 2)).toEqual([false]) // b/1 remains
    expect(s.unsubscribe('b', ['p/**', 'q/**'], 1)).toEqual([true, true])
    expect(s.patternCount).toBe(0)
    expect(s.clientCount).toBe(0)
    expect(subs(s, 'p/x')).toEqual({})
  })

  it('unsubscribing what was never subscribed changes nothing and is never "last"', () => {
    const s = new Subscriptions()
    s.subscribe('a', ['p/**'], 1)
    expect(s.unsubscribe('a', ['nope/**'], 1)).toEqual([false])
    expect(s.unsubscribe('b', ['p/**'], 1)).toEqual([false])
    expect(s.unsubscribe('a', ['p/**'], 99)).toEqual([false])
    expect(subs(s, 'p/x')).toEqual({ a: [1] })
  })
})

describe('Subscriptions.subscribers', () => {
  it('matches globs (including dot files) and merges instance ids over patterns', () => {
    const s = new Subscriptions()
    s.subscribe('a', ['**/*.png'], 1)
    s.subscribe('a', ['textures/**'], 2)
    s.subscribe('b', ['textures/*.png'], 3)
    s.subscribe('c', ['scripts/**'], 4)
    expect(subs(s, 'textures/hero.png')).toEqual({ a: [1, 2], b: [3] })
    expect(subs(s, 'textures/deep/hero.png')).toEqual({ a: [1, 2] }) // * does not cross '/'
    expect(subs(s, 'textures/.hidden.png')).toEqual({ a: [1, 2], b: [3] })
    expect(subs(s, 'ui/icon.png')).toEqual({ a: [1] })
    expect(subs(s, 'scripts/main.lua')).toEqual({ c: [4] })
    expect(subs(s, 'levels/1.json')).toEqual({})
  })

  it('returns copies: mutating the result does not change the registry', () => {
    const s = new Subscriptions()
    s.subscribe('a', ['**'], 1)
    s.subscribers('x')?.get('a')?.add(42)
    expect(subs(s, 'x')).toEqual({ a: [1] })
  })

  it('patternsOf lists a client\'s patterns with their instance ids', () => {
    const s = new Subscriptions()
    s.subscribe('a', ['p/**', 'q/**'], 1)
    s.subscribe('a', ['p/**'], 2)
    s.subscribe('b', ['q/**'], 3)
    expect(Object.fromEntries([...s.patternsOf('a')].map(([p, ids]) => [p, [...ids].sort()]))).toEqual({ 'p/**': [1, 2], 'q/**': [1] })
    expect(s.patternsOf('nobody').size).toBe(0)
  })
})

describe('Subscriptions.dropClient', () => {
  it('releases everything the client held and returns the patterns left without subscribers', () => {
    const s = new Subscriptions()
    s.subscribe('a', ['p/**', 'q/**', 'r/**'], 1)
    s.subscribe('a', ['p/**'], 2)
    s.subscribe('b', ['q/**'], 5)
    expect(s.dropClient('a').sort()).toEqual(['p/**', 'r/**'])
    expect(subs(s, 'p/x')).toEqual({})
    expect(subs(s, 'r/x')).toEqual({})
    expect(subs(s, 'q/x')).toEqual({ b: [5] })
    expect(s.patternsOf('a').size).toBe(0)
    expect(s.patternCount).toBe(1)
    expect(s.clientCount).toBe(1)
    // Dropping twice, or an unknown client, is harmless.
    expect(s.dropClient('a')).toEqual([])
    expect(s.dropClient('zzz')).toEqual([])
    // A later subscriber of a released pattern is "first" again.
    expect(s.subscribe('c', ['p/**'], 1)).toEqual([true])
  })

  it('works with object identities as client keys (the server uses sessions)', () => {
    const s = new Subscriptions<object>()
    const one = {}
    const two = {}
    s.subscribe(one, ['**'], 1)
    s.subscribe(two, ['**'], 1)
    expect(s.dropClient(one)).toEqual([])
    expect([...s.subscribers('x').keys()]).toEqual([two])
    expect(s.dropClient(two)).toEqual(['**'])
  })
})
