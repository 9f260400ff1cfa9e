// The pattern matcher (src/core/fs/glob, docs/patterns.md) against picomatch, which it replaced:
//   attack 1  '**/' + '*?' × 11 + '#' against one path of --attack1-length 'a's (issue 12:
//             picomatch's regex backtracks exponentially: ×1.5 a character; here 40 took 5.9 s,
//             48 took 218 s, so the default is 40)
//   attack 2  64 patterns of ~1 KiB ('ab?c[de]{f,g}/' repeated) compiled, then matched against one path
//   realistic 100,000 generated asset paths against a typical selection and the serve ignore list
// Times are wall-clock on this machine (other load included); `steps` is the matcher's own work
// counter (PatternSet.steps), the figure tests bound.
//
// Usage: npm run build && node bench/patterns.mjs [--paths 100000] [--attack1-length 40] [--no-attack-before]
// Prints a table, then one JSON line (last line of stdout) with every figure.
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import picomatch from 'picomatch'
import { DEFAULT_IGNORES } from '../dist/core/fs/ignore.js'
import { PatternSet } from '../dist/core/fs/patterns.js'

const { values: args } = parseArgs({
  options: {
    paths: { type: 'string', default: '100000' },
    'attack1-length': { type: 'string', default: '40' },
    'no-attack-before': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log('usage: npm run build && node bench/patterns.mjs [--paths 100000] [--attack1-length 40] [--no-attack-before]')
  process.exit(0)
}

const results = {}
const rows = []
const ms = (t0) => performance.now() - t0
const fmt = (v) => (typeof v === 'number' ? (v >= 100 ? v.toFixed(0) : v.toFixed(2)) : String(v))
function record(name, fields) {
  results[name] = fields
  rows.push([name, ...Object.entries(fields).map(([k, v]) => `${k}=${fmt(v)}`)])
}

/** Compile with picomatch as the old code did (dot: true), or report the error. */
function pmCompile(patterns) {
  const t0 = performance.now()
  try {
    const m = picomatch(patterns, { dot: true })
    return { m, ms: ms(t0) }
  } catch (err) {
    return { m: null, ms: ms(t0), error: err.message }
  }
}

function ours(patterns, mode = 'select') {
  const t0 = performance.now()
  try {
    const set = new PatternSet(patterns, mode)
    return { set, ms: ms(t0) }
  } catch (err) {
    return { set: null, ms: ms(t0), error: `${err.code}: ${err.message}` }
  }
}

// --- attack 1 ----------------------------------------------------------------------------------
{
  const pattern = '**/' + '*?'.repeat(11) + '#'
  const path = 'a'.repeat(Number(args['attack1-length']))
  if (!args['no-attack-before']) {
    const c = pmCompile([pattern])
    const t0 = performance.now()
    const r = c.m(path)
    record('attack1 picomatch', { length: path.length, compileMs: c.ms, matchMs: ms(t0), result: r })
  }
  const o = ours([pattern])
  const s0 = o.set.steps
  const t0 = performance.now()
  const r = o.set.matches(path)
  record('attack1 ours', { length: path.length, compileMs: o.ms, matchMs: ms(t0), result: r, steps: o.set.steps - s0, states: o.set.states })
}

// --- attack 2 ----------------------------------------------------------------------------------
{
  const unit = 'ab?c[de]{f,g}/'
  const one = unit.repeat(Math.floor(1024 / unit.length))
  const patterns = Array.from({ length: 64 }, (_, i) => `${i}${one}`.slice(0, 1024))
  // a path that runs deep into the patterns before failing: what makes a backtracking matcher work
  const path = ('0' + 'abxcdf/'.repeat(140)).slice(0, 1000) + 'z'
  if (!args['no-attack-before']) {
    const c = pmCompile(patterns)
    const t0 = performance.now()
    const r = c.m ? c.m(path) : c.error
    record('attack2 picomatch', { compileMs: c.ms, matchMs: ms(t0), result: r })
  }
  const o = ours(patterns)
  record('attack2 ours', { compileMs: o.ms, refused: o.error ?? 'no' })
  // the same shape without braces (no 2^73 expansion), so it compiles: how long does matching take?
  const flat = Array.from({ length: 64 }, (_, i) => `${i}${'ab?c[de]f/'.repeat(12)}`)
  const f = ours(flat)
  const s0 = f.set.steps
  const t0 = performance.now()
  const r = f.set.matches(path)
  record('attack2-flat ours', { compileMs: f.ms, matchMs: ms(t0), result: r, steps: f.set.steps - s0, states: f.set.states })
}

// --- realistic throughput ------------------------------------------------------------------------
/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
function assetPaths(n) {
  const r = rng(42)
  const pick = (a) => a[Math.floor(r() * a.length)]
  const tops = ['textures', 'models', 'scripts', 'audio', 'levels', 'ui', 'shaders', 'src', 'docs', 'tools']
  const subs = ['characters', 'props', 'env', 'weapons', 'fx', 'common', 'temp', 'lod', 'hero', 'npc', 'forest', 'city']
  const exts = ['png', 'psd', 'dds', 'fbx', 'glb', 'lua', 'json', 'wav', 'ogg', 'glsl', 'txt', 'tga']
  const out = new Set()
  while (out.size < n) {
    const depth = 1 + Math.floor(r() * 4)
    const parts = [pick(tops)]
    for (let i = 0; i < depth; i++) parts.push(`${pick(subs)}${r() < 0.5 ? '_' + Math.floor(r() * 100) : ''}`)
    parts.push(`${pick(['hero', 'rock', 'tree', 'main', 'door', 'wall', 'sky', 'step'])}_${Math.floor(r() * 1000)}.${pick(exts)}`)
    if (r() < 0.02) parts.splice(1, 0, '.git')
    out.add(parts.join('/'))
  }
  return [...out]
}

{
  const n = Number(args.paths)
  const paths = assetPaths(n)
  const avgLen = paths.reduce((s, p) => s + p.length, 0) / n
  const select = ['textures/**', 'models/**/*.{fbx,glb}', 'scripts/**/*.lua', 'levels/*.json', 'audio/**/*.{wav,ogg}']
  const withExclusions = [...select, '!**/*.psd', '!**/temp*/**']
  const ignore = [...DEFAULT_IGNORES, '**/*.psd', '**/temp*/**']
  const time = (label, fn, stepsOf) => {
    fn(paths[0]) // compile lazily-built parts once
    const s0 = stepsOf?.() ?? 0
    const t0 = performance.now()
    let hits = 0
    for (const p of paths) if (fn(p)) hits++
    const t = ms(t0)
    const fields = { ms: t, pathsPerSec: (n / t) * 1000, selected: hits }
    if (stepsOf) fields.stepsPerPath = (stepsOf() - s0) / n
    record(label, fields)
  }
  console.error(`realistic: ${n} paths, ${avgLen.toFixed(1)} characters on average`)
  const pmSel = pmCompile(select).m
  time('select picomatch', pmSel)
  const oSel = ours(select).set
  time('select ours', (p) => oSel.matches(p), () => oSel.steps)
  const oEx = ours(withExclusions).set
  time('select+exclusions ours', (p) => oEx.matches(p), () => oEx.steps)
  const pmIgn = pmCompile(ignore).m
  time('ignore picomatch', pmIgn)
  const oIgn = ours(ignore, 'ignore').set
  time('ignore ours', (p) => oIgn.matches(p), () => oIgn.steps)
  results.realistic = { paths: n, avgLen, cache: { select: oSel.cache, ignore: oIgn.cache } }
}

const w = rows.reduce((m, r) => Math.max(m, r[0].length), 0)
for (const r of rows) console.log(`${r[0].padEnd(w)}  ${r.slice(1).join('  ')}`)
console.log(JSON.stringify(results))
