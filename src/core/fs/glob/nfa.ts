/**
 * Glob → Thompson NFA over code points. Every construct is a fixed number of states per pattern
 * character, so a set of patterns costs states linear in its (brace-expanded) size, and running
 * the NFA costs at most states × path length: no backtracking, whatever the input
 * (docs/patterns.md has the syntax).
 */
import { AssetSyncError } from '../../../errors.js'
import { classEnd } from './braces.js'

/** State kinds. CHAR/ANY/CLASS/ALL consume one code point; SPLIT and MATCH do not. */
export const CHAR = 0
/** Any code point but '/'. */
export const ANY = 1
/** A code point in `classes[arg]` (never '/'). */
export const CLASS = 2
/** Any code point, '/' included: only in the loop of a trailing `**`, which accepts everything after it. */
export const ALL = 3
export const SPLIT = 4
export const MATCH = 5

const SLASH = 0x2f
const MAX_CP = 0x10ffff

/** One compiled pattern set as flat arrays (state i is kind[i], arg[i], out[i], out2[i]). */
export interface Nfa {
  readonly kind: Uint8Array
  /** CHAR: the code point; CLASS: index into `classes`; MATCH: the pattern index. */
  readonly arg: Int32Array
  readonly out: Int32Array
  /** SPLIT's second branch. */
  readonly out2: Int32Array
  /** The pattern each state belongs to. */
  readonly owner: Int32Array
  /**
   * MATCH reached without consuming anything for a trailing `/**` of an include (`x/**` matching
   * `x` itself): it does not make the folder x ignored, so `!x/keep` can still re-include. (For
   * an exclusion it is an ordinary match: `!x/**` re-includes the folder x too.)
   */
  readonly self: Uint8Array
  /** One entry state per brace alternative. */
  readonly entries: Int32Array
  /** Character classes as sorted, merged [lo, hi] pairs, '/' never included. */
  readonly classes: readonly Int32Array[]
  readonly size: number
}

type Token = { t: 'lit'; cp: number } | { t: 'any' } | { t: 'star' } | { t: 'class'; idx: number }
type Item = Token | { t: 'slash' } | { t: 'gs' } | { t: 'tail' } | { t: 'all' }

const POSIX: Record<string, [number, number][]> = {
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  blank: [[0x09, 0x09], [0x20, 0x20]],
  cntrl: [[0x00, 0x1f], [0x7f, 0x7f]],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[0x09, 0x0d], [0x20, 0x20]],
  upper: [[0x41, 0x5a]],
  word: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
}

/** Sorted, merged, '/' removed; complemented when `negated`. */
function normalizeRanges(ranges: [number, number][], negated: boolean): Int32Array {
  ranges.sort((a, b) => a[0] - b[0])
  const merged: [number, number][] = []
  for (const [lo, hi] of ranges) {
    if (hi < lo) continue
    const last = merged[merged.length - 1]
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi)
    else merged.push([lo, hi])
  }
  let pos = merged
  if (negated) {
    pos = []
    let from = 0
    for (const [lo, hi] of merged) {
      if (lo > from) pos.push([from, lo - 1])
      from = hi + 1
    }
    if (from <= MAX_CP) pos.push([from, MAX_CP])
  }
  const out: number[] = []
  for (const [lo, hi] of pos) {
    // cut '/' out: a class never matches the separator
    if (lo <= SLASH && SLASH <= hi) {
      if (lo < SLASH) out.push(lo, SLASH - 1)
      if (hi > SLASH) out.push(SLASH + 1, hi)
    } else out.push(lo, hi)
  }
  return Int32Array.from(out)
}

/** The class `s.slice(start, end)` (`[` … `]`) as normalized ranges. */
function parseClass(s: string, start: number, end: number): Int32Array {
  let i = start + 1
  const negated = s[i] === '!' || s[i] === '^'
  if (negated) i++
  const ranges: [number, number][] = []
  if (s[i] === ']') { // a leading ']' is a member
    ranges.push([0x5d, 0x5d])
    i++
  }
  const stop = end - 1 // the closing ']'
  while (i < stop) {
    if (s[i] === '[' && s[i + 1] === ':') {
      const close = s.indexOf(':]', i + 2)
      const named = close >= 0 && close < stop ? POSIX[s.slice(i + 2, close)] : undefined
      if (close >= 0 && close < stop) {
        if (!named) throw new AssetSyncError('ERR_USAGE', `unknown character class [:${s.slice(i + 2, close)}:] in pattern`)
        ranges.push(...named.map((r): [number, number] => [r[0], r[1]]))
        i = close + 2
        continue
      }
    }
    let lo: number
    ;[lo, i] = classChar(s, i)
    if (s[i] === '-' && i + 1 < stop) {
      let hi: number
      ;[hi, i] = classChar(s, i + 1)
      ranges.push([lo, hi])
    } else ranges.push([lo, lo])
  }
  return normalizeRanges(ranges, negated)
}

/** The (possibly escaped) member at `i`, and the index after it. */
function classChar(s: string, i: number): [number, number] {
  if (s[i] === '\\' && i + 1 < s.length) i++
  const cp = s.codePointAt(i) as number
  return [cp, i + (cp > 0xffff ? 2 : 1)]
}

/** Splits one brace-free alternative into segments of tokens. */
/** Index of the class `s.slice(start, end)`, parsed once per distinct source. */
type ClassIndex = (s: string, start: number, end: number) => number

function tokenize(s: string, classIndex: ClassIndex): Token[][] {
  const segments: Token[][] = [[]]
  let seg = segments[0] as Token[]
  for (let i = 0; i < s.length; ) {
    let cp = s.codePointAt(i) as number
    let width = cp > 0xffff ? 2 : 1
    if (cp === 0x5c /* \ */ && i + 1 < s.length) {
      cp = s.codePointAt(i + 1) as number
      width = 1 + (cp > 0xffff ? 2 : 1)
      if (cp === SLASH) segments.push((seg = []))
      else seg.push({ t: 'lit', cp })
    } else if (cp === SLASH) segments.push((seg = []))
    else if (cp === 0x2a /* * */) seg.push({ t: 'star' })
    else if (cp === 0x3f /* ? */) seg.push({ t: 'any' })
    else if (cp === 0x5b /* [ */ && classEnd(s, i) > 0) {
      const end = classEnd(s, i)
      seg.push({ t: 'class', idx: classIndex(s, i, end) })
      width = end - i
    } else seg.push({ t: 'lit', cp })
    i += width
  }
  return segments
}

const isGlobstar = (seg: Token[] | 'gs'): seg is 'gs' => seg === 'gs'

/** The items of one alternative, in order (see docs/patterns.md for each rule). */
export function items(s: string, classIndex: ClassIndex): Item[] {
  const raw = tokenize(s, classIndex)
  // a whole segment of two or more '*' is a globstar; elsewhere runs of '*' are one '*'
  const segs: (Token[] | 'gs')[] = raw.map((seg) => {
    if (seg.length >= 2 && seg.every((t) => t.t === 'star')) return 'gs'
    return seg.filter((t, i) => t.t !== 'star' || seg[i - 1]?.t !== 'star')
  })
  const kept = segs.filter((seg, i) => !(isGlobstar(seg) && isGlobstar(segs[i - 1] ?? [])))
  return emit(kept)
}

/** Items of the segments: `**` first, in the middle, last or alone each has its own form. */
function emit(segs: (Token[] | 'gs')[]): Item[] {
  if (segs.length === 1 && isGlobstar(segs[0] as Token[] | 'gs')) return [{ t: 'all' }]
  const out: Item[] = []
  const n = segs.length
  segs.forEach((seg, i) => {
    if (isGlobstar(seg)) out.push({ t: i === n - 1 ? 'tail' : 'gs' })
    else {
      out.push(...seg)
      if (i < n - 1 && !(i + 1 === n - 1 && isGlobstar(segs[i + 1] as Token[] | 'gs'))) out.push({ t: 'slash' })
    }
  })
  return out
}

/**
 * Patterns are relative to the root already: one leading '/' or './' is dropped. A trailing '/'
 * means the folder and everything in it (`tex/` is `tex/**`). Applied to the pattern as written,
 * before brace expansion: `{/a,b}` does not start with '/'.
 */
export function normalizeEnds(body: string): string {
  let s = body
  if (s.startsWith('/')) s = s.slice(1)
  else if (s.startsWith('./')) s = s.slice(2)
  if (body.endsWith('/')) s += '**' // '/' and './' alone: the root and everything in it
  return s
}

/**
 * Appends states, refusing more than `maxStates` in all, or a `width` over `maxWidth`. The width
 * bounds how many states can be active at once, hence the work per path character: an
 * alternative's states up to its first `*` or `**\/` can be active only one at a time (each
 * consumes exactly one character), so it counts 2 (that one, and a trailing `/**` loop) plus
 * every state from that first loop on.
 */
export class NfaBuilder {
  kind: number[] = []
  arg: number[] = []
  out: number[] = []
  out2: number[] = []
  owner: number[] = []
  self: number[] = []
  entries: number[] = []
  classes: Int32Array[] = []
  readonly #classIds = new Map<string, number>()
  readonly #classIndex: ClassIndex = (s, start, end) => {
    const src = s.slice(start, end)
    let idx = this.#classIds.get(src)
    if (idx === undefined) {
      idx = this.classes.push(parseClass(s, start, end)) - 1
      this.#classIds.set(src, idx)
    }
    return idx
  }

  /** Sum over alternatives of the states that can be active at once (see above). */
  width = 0
  readonly #maxStates: number
  readonly #maxWidth: number

  constructor(maxStates: number, maxWidth: number) {
    this.#maxStates = maxStates
    this.#maxWidth = maxWidth
  }

  get size(): number { return this.kind.length }

  #push(kind: number, arg: number, out: number, out2: number, owner: number): number {
    if (this.kind.length >= this.#maxStates) {
      throw new AssetSyncError('ERR_LIMIT', `patterns too complex: more than ${this.#maxStates} automaton states`)
    }
    this.kind.push(kind); this.arg.push(arg); this.out.push(out); this.out2.push(out2); this.owner.push(owner); this.self.push(0)
    return this.kind.length - 1
  }

  /** Adds one brace-free alternative of pattern `p`. Built back to front: each item knows its successor. */
  add(alternative: string, p: number, exclusion: boolean): void {
    const list = items(alternative, this.#classIndex)
    const firstLoop = list.findIndex((it) => it.t === 'star' || it.t === 'gs')
    const before = this.kind.length
    let loopStates = 0
    const match = this.#push(MATCH, p, -1, -1, p)
    let next = match
    for (let k = list.length - 1; k >= 0; k--) {
      if (k === firstLoop - 1) loopStates = this.kind.length - before
      const it = list[k] as Item
      switch (it.t) {
        case 'lit': next = this.#push(CHAR, it.cp, next, -1, p); break
        case 'slash': next = this.#push(CHAR, SLASH, next, -1, p); break
        case 'any': next = this.#push(ANY, 0, next, -1, p); break
        case 'class': next = this.#push(CLASS, it.idx, next, -1, p); break
        case 'star': { // S: SPLIT(A, next); A: ANY → S
          const s = this.#push(SPLIT, -1, -1, next, p)
          this.out[s] = this.#push(ANY, 0, s, -1, p)
          next = s
          break
        }
        case 'gs': { // ([^/]+ '/')*   P: SPLIT(A, next); A: ANY → B; B: SPLIT(A, C); C: '/' → P
          const ps = this.#push(SPLIT, -1, -1, next, p)
          const c = this.#push(CHAR, SLASH, ps, -1, p)
          const b = this.#push(SPLIT, -1, -1, c, p)
          const a = this.#push(ANY, 0, b, -1, p)
          this.out[b] = a
          this.out[ps] = a
          next = ps
          break
        }
        case 'all': next = this.#loop(next, p); break
        case 'tail': { // x/** also matches x itself: T: SPLIT(MATCH(self), '/' → loop)
          const self = this.#push(MATCH, p, -1, -1, p)
          this.self[self] = exclusion ? 0 : 1
          const slash = this.#push(CHAR, SLASH, this.#loop(next, p), -1, p)
          next = this.#push(SPLIT, -1, self, slash, p)
          break
        }
      }
    }
    if (firstLoop === 0) loopStates = this.kind.length - before
    this.width += 2 + loopStates
    if (this.width > this.#maxWidth) {
      throw new AssetSyncError('ERR_LIMIT', `patterns too costly to match: width over ${this.#maxWidth} (too many * and ** with text after them)`)
    }
    this.entries.push(next)
  }

  /** R: SPLIT(L, next); L: ALL → R: anything, then `next` (a MATCH). */
  #loop(next: number, p: number): number {
    const r = this.#push(SPLIT, -1, -1, next, p)
    this.out[r] = this.#push(ALL, 0, r, -1, p)
    return r
  }

  build(): Nfa {
    return {
      kind: Uint8Array.from(this.kind), arg: Int32Array.from(this.arg), out: Int32Array.from(this.out),
      out2: Int32Array.from(this.out2), owner: Int32Array.from(this.owner), self: Uint8Array.from(this.self),
      entries: Int32Array.from(this.entries), classes: this.classes, size: this.kind.length,
    }
  }
}
