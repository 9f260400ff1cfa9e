/**
 * A lazily built DFA over an NFA (the RE2 approach): each DFA state is a set of NFA states,
 * made the first time a path needs it and cached with its transitions, so matching a path costs
 * one table lookup per character once warm. The cache is bounded (`maxCells`); when full it is
 * dropped and rebuilt on demand, so memory stays bounded and time stays linear: a new DFA state
 * costs at most the NFA's size. `steps` counts all of it, so callers can bound work per request.
 */
import { ALL, ANY, CHAR, CLASS, MATCH, SPLIT, type Nfa } from './nfa.js'

const SLASH = 0x2f

/** The alphabet cut into intervals no state tells apart: starts of each interval, ascending. */
function alphabet(nfa: Nfa): Int32Array {
  const cuts = new Set<number>([0, SLASH, SLASH + 1])
  for (let s = 0; s < nfa.size; s++) {
    if (nfa.kind[s] === CHAR) {
      const c = nfa.arg[s] as number
      cuts.add(c).add(c + 1)
    }
  }
  for (const ranges of nfa.classes) for (let i = 0; i < ranges.length; i += 2) cuts.add(ranges[i] as number).add((ranges[i + 1] as number) + 1)
  cuts.delete(0x110000)
  return Int32Array.from(cuts).sort()
}

/** FNV-1a over the state ids. */
function hash(set: Int32Array): number {
  let h = 0x811c9dc5
  for (let i = 0; i < set.length; i++) h = Math.imul(h ^ (set[i] as number), 0x01000193)
  return h >>> 0
}

function inRanges(ranges: Int32Array, cp: number): boolean {
  let lo = 0
  let hi = (ranges.length >> 1) - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (cp < (ranges[2 * mid] as number)) hi = mid - 1
    else if (cp > (ranges[2 * mid + 1] as number)) lo = mid + 1
    else return true
  }
  return false
}

/** run(): the automaton died (no pattern can match). */
export const DEAD = -1
/** run(): `atSlash` stopped the run. */
export const STOPPED = -2

export class LazyDfa {
  readonly nfa: Nfa
  /** Work done so far: one per character stepped, plus one per NFA state visited building a DFA state. */
  steps = 0
  /** Times the cache was dropped for being full. */
  flushes = 0
  readonly #bounds: Int32Array
  readonly #ascii = new Uint16Array(128)
  readonly #maxCells: number
  readonly #startSet: Int32Array
  #start = 0
  /** Id of the empty set (nothing can match any more), or -1 while not made. */
  #dead = -1
  #cells = 0
  #members: Int32Array[] = []
  #trans: Int32Array[] = []
  #matched: Int32Array[] = []
  #best: number[] = []
  #bestFolder: number[] = []
  /** hash of a state's NFA set → ids of the cached states with that hash */
  #ids = new Map<number, number[]>()
  readonly #mark: Uint32Array
  #gen = 0
  #list: number[] = []
  #stack: number[] = []

  constructor(nfa: Nfa, maxCells: number) {
    this.nfa = nfa
    this.#maxCells = maxCells
    this.#mark = new Uint32Array(nfa.size)
    this.#bounds = alphabet(nfa)
    for (let cp = 0; cp < 128; cp++) this.#ascii[cp] = this.#classOfSlow(cp)
    this.#gen++
    this.#list = []
    for (const e of nfa.entries) this.#closure(e)
    this.#startSet = Int32Array.from(this.#list).sort()
    this.#start = this.#intern(this.#startSet)
  }

  /** Intervals of the alphabet (transition table width). */
  get classes(): number { return this.#bounds.length }
  /** Cached DFA states. */
  get states(): number { return this.#members.length }
  /** Cache size in cells (table entries + NFA state ids held); at most about `maxCells`. */
  get cells(): number { return this.#cells }
  get start(): number { return this.#start }

  #classOfSlow(cp: number): number {
    const b = this.#bounds
    let lo = 0
    let hi = b.length - 1
    while (lo < hi) { // last start <= cp
      const mid = (lo + hi + 1) >> 1
      if ((b[mid] as number) <= cp) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  classOf(cp: number): number { return cp < 128 ? (this.#ascii[cp] as number) : this.#classOfSlow(cp) }

  /** The state after `d` reads a code point of class `k`. */
  next(d: number, k: number): number {
    this.steps++
    const t = (this.#trans[d] as Int32Array)[k] as number
    return t >= 0 ? t : this.#compute(d, k)
  }

  /** NFA states (consuming ones and MATCHes) of `d`, ascending. */
  members(d: number): Int32Array { return this.#members[d] as Int32Array }
  /** Patterns with a MATCH in `d`, ascending: the patterns matching the text read so far. */
  matched(d: number): Int32Array { return this.#matched[d] as Int32Array }
  /** Highest pattern index matching, or -1. */
  best(d: number): number { return this.#best[d] as number }
  /** Highest pattern index matching other than by an include's trailing `/**` matching its own folder, or -1. */
  bestFolder(d: number): number { return this.#bestFolder[d] as number }
  /** No NFA state left: nothing can match any more. */
  dead(d: number): boolean { return d === this.#dead }

  /**
   * Runs `path` from the start state: the final state, DEAD if the automaton died on the way,
   * or STOPPED when `atSlash` (asked with the state before each '/') returned true. The hot
   * loop: one table lookup per character once the states it needs are cached.
   */
  run(path: string, atSlash: ((d: number) => boolean) | null): number {
    const ascii = this.#ascii
    let trans = this.#trans
    let dead = this.#dead
    let d = this.#start
    const n = path.length
    for (let i = 0; i < n; i++) {
      let cp = path.charCodeAt(i)
      let k: number
      if (cp < 128) {
        if (cp === SLASH && atSlash !== null && atSlash(d)) {
          this.steps += i
          return STOPPED
        }
        k = ascii[cp] as number
      } else {
        if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
          const lo = path.charCodeAt(i + 1)
          if (lo >= 0xdc00 && lo <= 0xdfff) {
            cp = ((cp - 0xd800) << 10) + (lo - 0xdc00) + 0x10000
            i++
          }
        }
        k = this.#classOfSlow(cp)
      }
      let t = (trans[d] as Int32Array)[k] as number
      if (t < 0) {
        t = this.#compute(d, k)
        trans = this.#trans // a full cache was dropped: new tables, new ids
        dead = this.#dead
      }
      d = t
      if (d === dead) {
        this.steps += i + 1
        return DEAD
      }
    }
    this.steps += n
    return d
  }

  #closure(from: number): void {
    const { kind, out, out2 } = this.nfa
    const stack = this.#stack
    stack.push(from)
    while (stack.length > 0) {
      const s = stack.pop() as number
      if (this.#mark[s] === this.#gen) continue
      this.#mark[s] = this.#gen
      this.steps++
      if (kind[s] === SPLIT) {
        stack.push(out2[s] as number, out[s] as number)
      } else this.#list.push(s)
    }
  }

  #compute(d: number, k: number): number {
    const { kind, arg, out, classes } = this.nfa
    const rep = this.#bounds[k] as number
    const from = this.#members[d] as Int32Array
    this.#gen++
    this.#list = []
    for (let i = 0; i < from.length; i++) {
      const s = from[i] as number
      const kd = kind[s]
      const ok = kd === CHAR ? arg[s] === rep
        : kd === ANY ? rep !== SLASH
          : kd === CLASS ? inRanges(classes[arg[s] as number] as Int32Array, rep)
            : kd === ALL
      this.steps++
      if (ok) this.#closure(out[s] as number)
    }
    const set = Int32Array.from(this.#list).sort()
    this.steps += set.length // sorting and hashing it
    const h = hash(set)
    const known = this.#find(set, h)
    if (known >= 0) {
      ;(this.#trans[d] as Int32Array)[k] = known
      return known
    }
    const cost = set.length + this.#bounds.length + 8
    if (this.#cells + cost > this.#maxCells) {
      this.#flush()
      const again = this.#find(set, h)
      return again >= 0 ? again : this.#intern(set, h)
    }
    const id = this.#intern(set, h)
    ;(this.#trans[d] as Int32Array)[k] = id
    return id
  }

  #find(set: Int32Array, h: number): number {
    const ids = this.#ids.get(h)
    if (!ids) return -1
    for (const id of ids) {
      const m = this.#members[id] as Int32Array
      if (m.length !== set.length) continue
      let i = 0
      while (i < m.length && m[i] === set[i]) i++
      if (i === m.length) return id
    }
    return -1
  }

  #flush(): void {
    this.flushes++
    this.#members = []
    this.#trans = []
    this.#matched = []
    this.#best = []
    this.#bestFolder = []
    this.#ids.clear()
    this.#cells = 0
    this.#dead = -1
    this.#start = this.#intern(this.#startSet)
  }

  #intern(set: Int32Array, h = hash(set)): number {
    const { kind, arg, self } = this.nfa
    const pats: number[] = []
    let best = -1
    let bestFolder = -1
    for (let i = 0; i < set.length; i++) {
      const s = set[i] as number
      if (kind[s] !== MATCH) continue
      const p = arg[s] as number
      pats.push(p)
      if (p > best) best = p
      if (!self[s] && p > bestFolder) bestFolder = p
    }
    const matched = Int32Array.from(new Set(pats)).sort()
    const id = this.#members.length
    this.#members.push(set)
    this.#trans.push(new Int32Array(this.#bounds.length).fill(-1))
    this.#matched.push(matched)
    this.#best.push(best)
    this.#bestFolder.push(bestFolder)
    const same = this.#ids.get(h)
    if (same) same.push(id)
    else this.#ids.set(h, [id])
    if (set.length === 0) this.#dead = id
    this.#cells += set.length + this.#bounds.length + matched.length + 8
    return id
  }
}
