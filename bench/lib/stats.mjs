// Small statistics helpers: median, nearest-rank percentiles, formatting.

/** Nearest-rank percentile of an array (sorted or not). */
export function percentile(values, p) {
  const s = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
}

/** Median (mean of the middle two for an even count). */
export function median(values) {
  const s = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

export function summary(values) {
  const s = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), min: s[0] ?? NaN, max: s.at(-1) ?? NaN }
}

/** Rounds to `digits` significant-ish decimals for the JSON file (keeps it small). */
export function round(v, digits = 3) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return v ?? null
  const a = Math.abs(v)
  const d = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : digits
  return Number(v.toFixed(d))
}

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB
/** Decimal megabytes, the unit of the memory targets. */
export const MB = 1e6

/** Human formatting for the table. */
export function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–'
  if (typeof v !== 'number') return String(v)
  const a = Math.abs(v)
  if (a >= 1e6) return v.toExponential(2)
  if (a >= 100) return v.toFixed(0)
  if (a >= 10) return v.toFixed(1)
  if (a >= 1) return v.toFixed(2)
  if (a === 0) return '0'
  return v.toFixed(3)
}
