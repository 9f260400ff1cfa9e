/**
 * Brace expansion, bounded: `{a,b}` (nestable), `{1..12}`, `{a..e}`. The count of alternatives
 * is computed before anything is expanded, so `{a,b}` × 70 is refused without building 2^70
 * strings. Escaped braces (`\{`) and braces inside a character class (`[{]`) are literal, as is
 * a brace with neither a top-level comma nor a range in it (`{a}`), or one that is never closed.
 */
import { AssetSyncError } from '../../../errors.js'

type Part = string | Part[][] // text, or alternatives (each a sequence of parts)

/** Index just past the `]` closing a class that opens at `i` (`s[i] === '['`), or -1. */
export function classEnd(s: string, i: number): number {
  let j = i + 1
  if (s[j] === '!' || s[j] === '^') j++
  if (s[j] === ']') j++ // a leading ']' is a member
  while (j < s.length) {
    const c = s[j]
    if (c === '\\') j += 2
    else if (c === '[' && s[j + 1] === ':') {
      const close = s.indexOf(':]', j + 2)
      j = close < 0 ? j + 1 : close + 2
    } else if (c === ']') return j + 1
    else j++
  }
  return -1
}

/** Index of the `}` matching the `{` at `i`, and the top-level comma positions; null if unclosed. */
function braceEnd(s: string, i: number): { end: number; commas: number[] } | null {
  const commas: number[] = []
  let depth = 0
  for (let j = i + 1; j < s.length; j++) {
    const c = s[j]
    if (c === '\\') j++
    else if (c === '[') {
      const e = classEnd(s, j)
      if (e > 0) j = e - 1
    } else if (c === '{') depth++
    else if (c === '}') {
      if (depth === 0) return { end: j, commas }
      depth--
    } else if (c === ',' && depth === 0) commas.push(j)
  }
  return null
}

/**
 * `x..y` with integers or single characters: its members (escaped, so each is literal), or null
 * if `body` is not a range. A range of more than `max` members is refused before it is built.
 */
function range(body: string, max: number, pattern: string): string[] | null {
  const num = /^(-?\d+)\.\.(-?\d+)$/.exec(body)
  const chr = num ? null : /^([^\\])\.\.([^\\])$/u.exec(body)
  const m = num ?? chr
  if (!m) return null
  const a = m[1] as string
  const b = m[2] as string
  const from = num ? Number(a) : (a.codePointAt(0) as number)
  const to = num ? Number(b) : (b.codePointAt(0) as number)
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || Math.abs(to - from) >= max) tooMany(pattern, max)
  // as in bash, a leading zero on either bound pads every member to the wider bound: {01..10}
  const pad = num && (/^-?0\d/.test(a) || /^-?0\d/.test(b)) ? Math.max(a.length, b.length) : 0
  const out: string[] = []
  const step = to >= from ? 1 : -1
  for (let v = from; ; v += step) {
    if (!num) out.push('\\' + String.fromCodePoint(v))
    else if (pad === 0) out.push(String(v))
    else out.push(v < 0 ? '-' + String(-v).padStart(pad - 1, '0') : String(v).padStart(pad, '0'))
    if (v === to) return out
  }
}

function tooMany(pattern: string, max: number): never {
  throw new AssetSyncError('ERR_LIMIT', `pattern ${JSON.stringify(pattern.slice(0, 60))} expands to more than ${max} alternatives`)
}

/** Parses `s` into text and alternatives. */
function parse(s: string, max: number, pattern: string): Part[] {
  const parts: Part[] = []
  let text = ''
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string
    if (c === '\\') {
      text += s.slice(i, i + 2)
      i++
    } else if (c === '[') {
      const e = classEnd(s, i)
      if (e < 0) text += c
      else {
        text += s.slice(i, e)
        i = e - 1
      }
    } else if (c === '{') {
      const b = braceEnd(s, i)
      const body = b ? s.slice(i + 1, b.end) : ''
      const members = b && b.commas.length === 0 ? range(body, max, pattern) : null
      if (!b || (b.commas.length === 0 && !members)) {
        text += c // literal '{'; braces inside it may still expand
        continue
      }
      if (text) parts.push(text)
      text = ''
      if (members) parts.push(members.map((m) => [m]))
      else {
        const bounds = [i, ...b.commas, b.end]
        const alts: Part[][] = []
        for (let k = 0; k + 1 < bounds.length; k++) alts.push(parse(s.slice((bounds[k] as number) + 1, bounds[k + 1]), max, pattern))
        parts.push(alts)
      }
      i = b.end
    } else text += c
  }
  if (text) parts.push(text)
  return parts
}

function count(parts: Part[], cap: number): number {
  let n = 1
  for (const p of parts) {
    if (typeof p === 'string') continue
    let sum = 0
    for (const alt of p) sum = Math.min(cap + 1, sum + count(alt, cap))
    n = Math.min(cap + 1, n * sum)
  }
  return n
}

function expandParts(parts: Part[], from = 0): string[] {
  if (from === parts.length) return ['']
  const rest = expandParts(parts, from + 1)
  const head = parts[from] as Part
  const heads = typeof head === 'string' ? [head] : head.flatMap((alt) => expandParts(alt))
  const out: string[] = []
  for (const h of heads) for (const r of rest) out.push(h + r)
  return out
}

/**
 * The alternatives `pattern` expands to (itself when it has no braces). Refuses more than
 * `maxExpansions` with ERR_LIMIT before expanding anything.
 */
export function expandBraces(pattern: string, maxExpansions: number): string[] {
  if (!pattern.includes('{')) return [pattern]
  const parts = parse(pattern, maxExpansions, pattern)
  if (count(parts, maxExpansions) > maxExpansions) tooMany(pattern, maxExpansions)
  return expandParts(parts)
}
