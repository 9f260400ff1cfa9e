// Rows, targets, the console table and the results JSON.
import { fmt, median, round } from './stats.mjs'

/**
 * One table row. `runs` are the per-run values (the row's value is their median unless `value`
 * is given). `baseline` is {label, value} measured in the same bench run; ratio = value / baseline.
 * `target`: {on: 'value'|'ratio', op: '>='|'<='|'==', value, text}.
 */
export function row({ id, label, unit, runs = [], n, value, baseline = null, target = null, note, extra }) {
  const v = value ?? median(runs)
  const b = baseline && Number.isFinite(baseline.value) ? baseline : baseline ? { ...baseline, value: NaN } : null
  const ratio = b && Number.isFinite(b.value) && b.value !== 0 && Number.isFinite(v) ? v / b.value : null
  let pass = null
  if (target) {
    const x = target.on === 'ratio' ? ratio : v
    if (x !== null && Number.isFinite(x)) {
      pass = target.op === '>=' ? x >= target.value : target.op === '<=' ? x <= target.value : x === target.value
    }
  }
  return { id, label, unit, value: v, runs, ...(n ? { n } : {}), baseline: b, ratio, target, pass, ...(note ? { note } : {}), ...(extra ? { extra } : {}) }
}

const TARGET_TEXT = (t) => t ? (t.text ?? `${t.on === 'ratio' ? 'ratio ' : ''}${t.op} ${t.value}`) : ''

/** Prints the table: one line per row, grouped by scenario. */
export function printTable(scenarios) {
  const head = ['scenario', 'row', 'median', 'unit', 'runs', 'baseline (same run)', 'base', 'ratio', 'target', 'result']
  const lines = []
  for (const s of scenarios) {
    for (const r of s.rows) {
      lines.push([
        s.id, r.label, fmt(r.value), r.unit, String(r.n ?? (r.runs.length || '')), r.baseline?.label ?? '', r.baseline ? fmt(r.baseline.value) : '',
        r.ratio === null ? '' : `${fmt(r.ratio)}×`, TARGET_TEXT(r.target), r.target ? (r.pass === null ? 'n/a' : r.pass ? 'PASS' : 'FAIL') : '',
      ])
    }
    if (s.skipped) lines.push([s.id, `skipped: ${s.skipped}`, '', '', '', '', '', '', '', ''])
  }
  const widths = head.map((h, i) => Math.min(i === 1 || i === 5 ? 46 : 40, Math.max(h.length, ...lines.map((l) => l[i].length))))
  const cut = (s, w) => (s.length > w ? `${s.slice(0, w - 1)}…` : s)
  const fmtLine = (l) => l.map((c, i) => (i >= 2 && i <= 4) || i === 6 || i === 7 ? cut(c, widths[i]).padStart(widths[i]) : cut(c, widths[i]).padEnd(widths[i])).join('  ')
  console.log(fmtLine(head))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  let prev = ''
  for (const l of lines) {
    if (prev && l[0] !== prev) console.log('')
    prev = l[0]
    console.log(fmtLine(l))
  }
}

/** A compact, JSON-friendly copy (rounded numbers). */
export function compact(scenarios) {
  const r = (o) => {
    if (Array.isArray(o)) return o.map(r)
    if (typeof o === 'number') return round(o)
    if (o && typeof o === 'object') return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).map(([k, v]) => [k, r(v)]))
    return o
  }
  return r(scenarios)
}

/** JSON with one-space indent, but arrays of plain values on one line (a small, diffable file). */
export function stringify(doc) {
  return `${JSON.stringify(doc, null, 1).replace(/\[\n\s+([^[\]{}]*?)\n\s*\]/g, (_m, items) => `[${items.split(/,\n\s*/).join(', ')}]`)}\n`
}
