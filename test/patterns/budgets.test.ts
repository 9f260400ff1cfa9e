// Patterns are a cost-bounded language (issue 12): every cap of src/limits.ts, section "patterns",
// at its limit (N works, N + 1 is ERR_LIMIT), and the attack inputs refused or matched
// within bounded work. Work is asserted on the matcher's own counter (PatternSet.steps), never on
// wall time.
import { describe, expect, it } from 'vitest'
import { PatternSet, scanSelected } from '../../src/core/fs/patterns.js'
import { AssetSyncError } from '../../src/errors.js'
import {
  MANIFEST_PAGE_MATCH_STEPS, MAX_PATH_BYTES, MAX_PATTERN_BYTES, MAX_PATTERNS, PATTERN_DFA_CACHE_CELLS, PATTERN_MAX_EXPANSIONS,
  PATTERN_SET_MAX_STATES, PATTERN_SET_MAX_WIDTH,
} from '../../src/limits.js'

function refusal(patterns: string[]): AssetSyncError {
  try {
    new PatternSet(patterns)
  } catch (err) {
    if (err instanceof AssetSyncError) return err
    throw err
  }
  throw new Error(`expected ERR_LIMIT for ${JSON.stringify(patterns).slice(0, 80)}`)
}

/** Deterministic 0…7 (the high bits of an LCG: its low bits cycle). */
function lcg(seed: number): () => number {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) & 7
}

/** Steps one match of `path` costs. */
function cost(set: PatternSet, path: string): number {
  const s0 = set.steps
  set.matches(path)
  return set.steps - s0
}

/**
 * The documented bound for one path: each character is one table step, and a character that
 * needs a new DFA state costs at most a few passes over the states active at once (≤ width).
 */
const bound = (set: PatternSet, path: string): number => 4 * (set.width + 1) * (path.length + 1)

describe('the issue-12 attack inputs', () => {
  it("'**/' + '*?' × 11 + '#' against a 48-character path: a few hundred steps, not exponential", () => {
    const set = new PatternSet(['**/' + '*?'.repeat(11) + '#'])
    const path = 'a'.repeat(48)
    const first = cost(set, path)
    expect(set.matches(path)).toBe(false)
    expect(first).toBeLessThan(2000)
    expect(first).toBeLessThanOrEqual(bound(set, path))
    expect(cost(set, path)).toBe(path.length) // warm: one table step per character
    // linear in the path, at the longest path there is
    const long = 'a'.repeat(MAX_PATH_BYTES - 1) + '#'
    expect(set.matches(long)).toBe(true)
    expect(cost(set, long.replace('#', 'b'))).toBeLessThanOrEqual(bound(set, long))
  })

  it("64 patterns of ~1 KiB ('ab?c[de]{f,g}/' repeated) are refused at once, before expanding", () => {
    const unit = 'ab?c[de]{f,g}/'
    const patterns = Array.from({ length: MAX_PATTERNS }, (_, i) => `${i}${unit.repeat(80)}`.slice(0, MAX_PATTERN_BYTES))
    const err = refusal(patterns)
    expect(err.code).toBe('ERR_LIMIT')
    expect(err.message).toContain(`more than ${PATTERN_MAX_EXPANSIONS} alternatives`)
  })

  it('the same shape without braces compiles and matches a deep path within the bound', () => {
    const set = new PatternSet(Array.from({ length: MAX_PATTERNS }, (_, i) => `${i}${'ab?c[de]f/'.repeat(12)}`))
    const path = ('0' + 'abxcdf/'.repeat(140)).slice(0, MAX_PATH_BYTES)
    expect(set.matches(path)).toBe(true)
    const miss = path.replace(/f\/a/g, 'f/z')
    expect(cost(set, miss)).toBeLessThanOrEqual(bound(set, miss))
  })

  it('a set built to defeat the DFA cache (many stars at full width) stays within the bound per path', () => {
    const letters = 'abcdefgh'
    // largest 8-pattern star set that fits the width cap
    let n = 1
    while (new PatternSet(Array.from({ length: 8 }, (_, j) => ('*' + letters[j]).repeat(n + 1))).width <= PATTERN_SET_MAX_WIDTH - 8 * 2) n++
    const set = new PatternSet(Array.from({ length: 8 }, (_, j) => ('*' + letters[j]).repeat(n)))
    expect(set.width).toBeGreaterThan(PATTERN_SET_MAX_WIDTH * 0.9)
    const rnd = lcg(7)
    for (let i = 0; i < 6; i++) {
      const path = Array.from({ length: MAX_PATH_BYTES }, () => letters[rnd()]).join('')
      expect(cost(set, path)).toBeLessThanOrEqual(bound(set, path))
    }
    expect(set.cache.flushes).toBeGreaterThan(0) // the cache did thrash
    expect(set.cache.cells).toBeLessThanOrEqual(PATTERN_DFA_CACHE_CELLS)
  })
})

describe('each cap at its limit', () => {
  it(`MAX_PATTERN_BYTES: ${MAX_PATTERN_BYTES} bytes compile, one more is ERR_LIMIT (UTF-8 bytes, not characters)`, () => {
    expect(new PatternSet(['a'.repeat(MAX_PATTERN_BYTES)]).states).toBe(MAX_PATTERN_BYTES + 1)
    expect(new PatternSet(['é'.repeat(MAX_PATTERN_BYTES / 2)]).matches('é'.repeat(MAX_PATTERN_BYTES / 2))).toBe(true)
    expect(refusal(['a'.repeat(MAX_PATTERN_BYTES + 1)]).code).toBe('ERR_LIMIT')
    expect(refusal(['é'.repeat(MAX_PATTERN_BYTES / 2) + 'a']).code).toBe('ERR_LIMIT')
  })

  it(`PATTERN_MAX_EXPANSIONS: ${PATTERN_MAX_EXPANSIONS} alternatives compile, one more is ERR_LIMIT (ranges, products, sums)`, () => {
    const N = PATTERN_MAX_EXPANSIONS
    expect(new PatternSet([`{1..${N}}`]).matches(String(N))).toBe(true)
    expect(refusal([`{1..${N + 1}}`]).code).toBe('ERR_LIMIT')
    const bits = Math.log2(N)
    expect(Number.isInteger(bits)).toBe(true)
    expect(new PatternSet(['{a,b}'.repeat(bits)]).matches('ab'.repeat(bits / 2))).toBe(true)
    expect(refusal(['{a,b}'.repeat(bits) + '{a,b,c}']).code).toBe('ERR_LIMIT') // 3N/2
    // one brace of N alternatives (two hex digits each: fits MAX_PATTERN_BYTES)
    const list = (k: number): string => `{${Array.from({ length: k }, (_, i) => i.toString(16).padStart(2, '0')).join(',')}}`
    expect(new PatternSet([list(N)]).matches((N - 1).toString(16))).toBe(true)
    expect(refusal([list(N + 1)]).code).toBe('ERR_LIMIT')
    expect(refusal(['{a,b}'.repeat(200)]).code).toBe('ERR_LIMIT') // 2^200: counted, never built
  })

  it(`PATTERN_SET_MAX_STATES: ${PATTERN_SET_MAX_STATES} states compile, one more is ERR_LIMIT`, () => {
    // a literal pattern of n characters is n + 1 states (one per character, one MATCH)
    const per = MAX_PATTERN_BYTES
    const k = PATTERN_SET_MAX_STATES / per
    expect(Number.isInteger(k)).toBe(true)
    const patterns = Array.from({ length: k }, (_, i) => `${String(i).padStart(3, '0')}`.padEnd(per - 1, 'x'))
    const set = new PatternSet(patterns)
    expect(set.states).toBe(PATTERN_SET_MAX_STATES)
    expect(set.matches(patterns[5] as string)).toBe(true)
    const err = refusal([...patterns.slice(1), `${patterns[0]}y`])
    expect(err.code).toBe('ERR_LIMIT')
    expect(err.message).toContain(`more than ${PATTERN_SET_MAX_STATES} automaton states`)
  })

  it(`PATTERN_SET_MAX_WIDTH: width ${PATTERN_SET_MAX_WIDTH} compiles, one more is ERR_LIMIT`, () => {
    // '*' + n literals: every state from the star on can be active at once
    const w1 = new PatternSet(['*' + 'a'.repeat(100)]).width
    const w2 = new PatternSet(['*' + 'a'.repeat(101)]).width
    expect(w2 - w1).toBe(1)
    const base = w1 - 100 // width of '*' + 0 literals
    const total = PATTERN_SET_MAX_WIDTH - 2 * base // literals the two patterns may carry together
    const a = Math.floor(total / 2)
    const at = ['*' + 'a'.repeat(a), '*' + 'b'.repeat(total - a)]
    expect(new PatternSet(at).width).toBe(PATTERN_SET_MAX_WIDTH)
    const err = refusal([at[0] as string, `${at[1]}b`])
    expect(err.message).toContain(`width over ${PATTERN_SET_MAX_WIDTH}`)
    // text before the first wildcard is matched one state at a time: it adds no width
    expect(new PatternSet(['x'.repeat(900) + '/**']).width).toBe(new PatternSet(['x/**']).width)
  })

  it(`PATTERN_DFA_CACHE_CELLS: the cache never holds more than ${PATTERN_DFA_CACHE_CELLS} cells; a typical set never fills it`, () => {
    const small = new PatternSet(['textures/**', '!**/*.psd', 'scripts/**/*.lua'])
    for (let i = 0; i < 2000; i++) small.matches(`textures/dir${i % 50}/file${i}.${i % 3 ? 'png' : 'psd'}`)
    expect(small.cache.flushes).toBe(0)
    const big = new PatternSet(Array.from({ length: 8 }, (_, j) => ('*' + 'abcdefgh'[j]).repeat(60)))
    const rnd = lcg(3)
    for (let i = 0; i < 20; i++) {
      big.matches(Array.from({ length: 300 }, () => 'abcdefgh'[rnd()]).join(''))
      expect(big.cache.cells).toBeLessThanOrEqual(PATTERN_DFA_CACHE_CELLS)
    }
    expect(big.cache.flushes).toBeGreaterThan(0)
  })

  it('MANIFEST_PAGE_MATCH_STEPS: scanSelected stops a page once the budget is spent, and always progresses', () => {
    const set = new PatternSet(['**/*.psd'])
    const paths = Array.from({ length: 20_000 }, (_, i) => `dir${String(i % 100).padStart(3, '0')}/file${String(i).padStart(6, '0')}.png`).sort()
    const L = (paths[0] as string).length
    expect(paths.every((p) => p.length === L)).toBe(true)
    for (const p of paths.slice(0, 50)) set.matches(p) // warm: now every path costs exactly L steps
    expect(cost(set, paths[1] as string)).toBe(L)
    // a budget of exactly k paths' work examines k paths; one step more examines k + 1
    const k = 7
    expect(scanSelected(set, paths, 0, k * L, () => true)).toEqual({ next: k, done: false })
    expect(scanSelected(set, paths, 0, k * L + 1, () => true)).toEqual({ next: k + 1, done: false })
    // the real budget: each call spends at most MANIFEST_PAGE_MATCH_STEPS (+ one path), and the
    // calls together walk the whole list
    let from = 0
    let calls = 0
    for (;;) {
      const s0 = set.steps
      const r = scanSelected(set, paths, from, MANIFEST_PAGE_MATCH_STEPS, () => true)
      expect(set.steps - s0).toBeLessThan(MANIFEST_PAGE_MATCH_STEPS + L)
      expect(r.next).toBeGreaterThan(from)
      from = r.next
      calls++
      if (r.done) break
    }
    expect(from).toBe(paths.length)
    expect(calls).toBe(Math.ceil((paths.length * L) / MANIFEST_PAGE_MATCH_STEPS))
    // a page that fills up stops before the path that did not fit
    const hits: string[] = []
    const psd = paths.map((p, i) => (i % 10 === 0 ? p.replace('.png', '.psd') : p)).sort()
    expect(scanSelected(set, psd, 0, MANIFEST_PAGE_MATCH_STEPS, (p) => hits.push(p) <= 3)).toEqual({ next: 30, done: false })
    expect(hits).toHaveLength(4)
  })
})
