// The subscription registry (src/core/server/subscriptions.ts): pattern → client → instance ids.
import { describe, expect, it } from 'vitest'
import { Subscriptions } from '../../src/core/server/subscriptions.js'
import { AssetSyncError } from '../../src/errors.js'

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

describe('Subscriptions: each instance\'s patterns are one selection (docs/patterns.md)', () => {
  it('exclusions apply within an instance: last match wins, in subscription order', () => {
    const s = new Subscriptions()
    s.subscribe('a', ['tex/**', '!**/*.psd'], 1) // issue 11's selection
    s.subscribe('a', ['!**/*.psd'], 2) // only an exclusion: everything else
    s.subscribe('b', ['tex/**'], 3)
    expect(subs(s, 'tex/a.png')).toEqual({ a: [1, 2], b: [3] })
    expect(subs(s, 'tex/c.psd')).toEqual({ b: [3] })
    expect(subs(s, '.env')).toEqual({ a: [2] })
    // a later SUBSCRIBE of the same instance comes after: it re-includes one file
    s.subscribe('a', ['tex/c.psd'], 1)
    expect(subs(s, 'tex/c.psd')).toEqual({ a: [1], b: [3] })
    // unsubscribing the exclusion widens the selection again
    s.unsubscribe('a', ['!**/*.psd'], 1)
    expect(subs(s, 'tex/d.psd')).toEqual({ a: [1], b: [3] })
  })

  it('a SUBSCRIBE over the pattern budget is ERR_LIMIT and changes nothing', () => {
    const s = new Subscriptions()
    s.subscribe('a', ['keep/**'], 1)
    const heavy = Array.from({ length: 8 }, (_, j) => ('*' + 'abcdefgh'[j]).repeat(100)) // width > PATTERN_SET_MAX_WIDTH
    let err: unknown = null
    try { s.subscribe('a', ['new/**', ...heavy], 2) } catch (e) { err = e }
    expect(err).toBeInstanceOf(AssetSyncError)
    expect((err as AssetSyncError).code).toBe('ERR_LIMIT')
    expect(s.patternCount).toBe(1)
    expect(s.held('a')).toBe(1)
    expect(subs(s, 'new/x')).toEqual({})
    expect(subs(s, 'keep/x')).toEqual({ a: [1] })
    // the budget is per connection: another client may hold a heavy set of its own
    s.subscribe('b', heavy.slice(0, 4), 1)
    expect(s.patternCount).toBe(5)
  })

  it('a malformed pattern is ERR_USAGE and changes nothing', () => {
    const s = new Subscriptions()
    expect(() => s.subscribe('a', ['ok/**', '!'], 1)).toThrow(/nothing after/)
    expect(s.patternCount).toBe(0)
    expect(s.clientCount).toBe(0)
  })
})
