/**
 * A list of glob patterns read the way .gitignore reads them: `!` marks an exclusion, and for
 * each path the last pattern that matches it decides. One automaton runs all patterns at once
 * (nfa.ts, dfa.ts), so a path costs one pass whatever the number of patterns, and every cost is
 * capped when the set is compiled (src/limits.ts, section "patterns"). docs/patterns.md is the
 * user-facing description.
 */
import { AssetSyncError } from '../../../errors.js'
import {
  MAX_PATTERN_BYTES, PATTERN_DFA_CACHE_CELLS, PATTERN_MAX_EXPANSIONS, PATTERN_SET_MAX_STATES, PATTERN_SET_MAX_WIDTH,
} from '../../../limits.js'
import { expandBraces } from './braces.js'
import { DEAD, LazyDfa, STOPPED } from './dfa.js'
import { ALL, MATCH, NfaBuilder, normalizeEnds } from './nfa.js'

const SLASH = 0x2f

/** Caps on one pattern set (defaults: src/limits.ts). */
export interface PatternBudget {
  /** UTF-8 bytes of one pattern. */
  maxPatternBytes: number
  /** Alternatives one pattern's braces may expand to. */
  maxExpansions: number
  /** NFA states of the whole set. */
  maxStates: number
  /** States of the set that can be active at once (NfaBuilder.width): bounds work per path character. */
  maxWidth: number
  /** Cells of the DFA cache before it is dropped and rebuilt. */
  maxCells: number
}

export const DEFAULT_BUDGET: Readonly<PatternBudget> = {
  maxPatternBytes: MAX_PATTERN_BYTES,
  maxExpansions: PATTERN_MAX_EXPANSIONS,
  maxStates: PATTERN_SET_MAX_STATES,
  maxWidth: PATTERN_SET_MAX_WIDTH,
  maxCells: PATTERN_DFA_CACHE_CELLS,
}

/**
 * - `select` (pull/watch/MANIFEST/SUBSCRIBE): a path is selected when the last pattern matching it
 *   is an include. When none matches, it is selected only if the first pattern is an exclusion
 *   (`'!**\/*.psd'` alone means "everything except .psd files").
 * - `ignore` (serve --ignore): a path is ignored when the last pattern matching it is an include,
 *   or when one of its folders is ignored (as in git: nothing inside an ignored folder can be
 *   re-included). An include's trailing `x/**` ignores what is inside x, not the folder x, so
 *   `!x/keep` still works; an exclusion's `!x/**` re-includes the folder x too.
 */
export type PatternMode = 'select' | 'ignore'

const EMPTY = new Int32Array(0)

/** Compiled patterns; see PatternMode for the semantics. Not safe to share between threads (it caches). */
export class PatternSet {
  /** The patterns as given. */
  readonly patterns: readonly string[]
  readonly mode: PatternMode
  /** States that can be active at once (what PATTERN_SET_MAX_WIDTH caps). */
  readonly width: number
  readonly #negated: Uint8Array
  readonly #initial: boolean
  readonly #dfa: LazyDfa
  readonly #hit: Uint8Array

  /** Compiles `patterns`; ERR_USAGE for a malformed one, ERR_LIMIT when over the budget. */
  constructor(patterns: readonly string[], mode: PatternMode = 'select', budget: Partial<PatternBudget> = {}) {
    const b = { ...DEFAULT_BUDGET, ...budget }
    this.patterns = [...patterns]
    this.mode = mode
    this.#negated = new Uint8Array(patterns.length)
    this.#hit = new Uint8Array(patterns.length)
    const builder = new NfaBuilder(b.maxStates, b.maxWidth)
    patterns.forEach((raw, i) => {
      if (typeof raw !== 'string' || raw.length === 0) throw new AssetSyncError('ERR_USAGE', 'empty pattern')
      if (Buffer.byteLength(raw) > b.maxPatternBytes) {
        throw new AssetSyncError('ERR_LIMIT', `pattern longer than ${b.maxPatternBytes} bytes: ${JSON.stringify(raw.slice(0, 60))}…`)
      }
      const p = raw.normalize('NFC') // wire paths are NFC: a pattern typed in NFD must still match
      const negated = p.startsWith('!')
      const body = negated ? p.slice(1) : p
      if (body.length === 0) throw new AssetSyncError('ERR_USAGE', `pattern "${raw}" has nothing after "!"`)
      this.#negated[i] = negated ? 1 : 0
      for (const alt of expandBraces(normalizeEnds(body), b.maxExpansions)) builder.add(alt, i, negated)
    })
    this.#initial = mode === 'select' && (patterns.length === 0 || this.#negated[0] === 1)
    this.width = builder.width
    this.#dfa = new LazyDfa(builder.build(), b.maxCells)
  }

  /** Work done by every match so far (DFA steps + NFA states visited): bound a request's work with it. */
  get steps(): number { return this.#dfa.steps }
  /** NFA states of the set (what PATTERN_SET_MAX_STATES caps). */
  get states(): number { return this.#dfa.nfa.size }
  /** The DFA cache: states held, cells used, times it was dropped for being full. */
  get cache(): { states: number; cells: number; flushes: number } {
    return { states: this.#dfa.states, cells: this.#dfa.cells, flushes: this.#dfa.flushes }
  }

  /** Whether pattern `i` starts with `!`. */
  isExclusion(i: number): boolean { return this.#negated[i] === 1 }

  /**
   * Patterns that matched none of the paths tested so far (include and exclusion alike). A
   * pattern can match without deciding (a later one overrode it): it still counts as matched.
   */
  unmatched(which: 'all' | 'include' | 'exclude' = 'all'): string[] {
    return this.patterns.filter((_, i) => this.#hit[i] === 0 && (which === 'all' || (which === 'exclude') === (this.#negated[i] === 1)))
  }

  /** Runs the DFA over `path`: DEAD, STOPPED (ignore mode: a folder on the way is ignored) or the final state. */
  #run(path: string): number {
    const d = this.#dfa.run(path, this.mode === 'ignore' ? this.#atSlash : null)
    if (d >= 0) {
      const m = this.#dfa.matched(d)
      for (let k = 0; k < m.length; k++) this.#hit[m[k] as number] = 1
    }
    return d
  }

  readonly #atSlash = (d: number): boolean => this.#folderIgnored(d)

  #folderIgnored(d: number): boolean {
    const p = this.#dfa.bestFolder(d)
    return p >= 0 && this.#negated[p] === 0
  }

  /**
   * Whether the set selects (select mode) or ignores (ignore mode) `path`. With `folder` (ignore
   * mode), whether a walk may skip the folder `path` whole: it is ignored itself, or every path
   * inside it is, and no exclusion can re-include anything in it.
   */
  matches(path: string, folder = false): boolean {
    const d = this.#run(path)
    if (d === STOPPED) return true
    if (d === DEAD) return this.#initial
    const dfa = this.#dfa
    if (folder && this.mode === 'ignore') {
      return this.#folderIgnored(d) || this.#coversAll(dfa.next(d, dfa.classOf(SLASH)))
    }
    const p = dfa.best(d)
    return p >= 0 ? this.#negated[p] === 0 : this.#initial
  }

  /** Indices of the patterns whose glob matches `path`, ascending, whatever their `!` (shared: do not modify). */
  matching(path: string): Int32Array {
    const d = this.#run(path)
    return d < 0 ? EMPTY : this.#dfa.matched(d)
  }

  /** After `<folder>/` was read into `d`: is every path continuing from here decided "yes"? */
  #coversAll(d: number): boolean {
    const { kind, owner } = this.#dfa.nfa
    const members = this.#dfa.members(d)
    let all = -1 // highest pattern that matches everything from here (a trailing `**` loop)
    for (const s of members) if (kind[s] === ALL && (owner[s] as number) > all) all = owner[s] as number
    this.#dfa.steps += members.length
    if (all < 0) return false // some path inside matches nothing: then `initial` decides, false when ignoring
    if (this.#negated[all] === 1) return false
    // a later exclusion still alive could re-include something inside
    for (const s of members) if (kind[s] !== MATCH && (owner[s] as number) > all && this.#negated[owner[s] as number] === 1) return false
    return true
  }
}

/**
 * Hands `take` each path of `sorted[from…]` that `set` selects, in order, until `take` refuses
 * one (it did not fit: the scan stops before it) or the set has spent `maxSteps` of work in this
 * call (at least one path is always examined, so a caller always progresses). Returns the index
 * of the first path not examined and whether that is the end. A manifest pager cuts its page
 * there: no request costs more than `maxSteps` plus one path.
 */
export function scanSelected(
  set: PatternSet, sorted: readonly string[], from: number, maxSteps: number, take: (path: string) => boolean,
): { next: number; done: boolean } {
  const stop = set.steps + maxSteps
  for (let i = from; i < sorted.length; i++) {
    if (i > from && set.steps >= stop) return { next: i, done: false }
    const p = sorted[i] as string
    if (set.matches(p) && !take(p)) return { next: i, done: false }
  }
  return { next: sorted.length, done: true }
}
