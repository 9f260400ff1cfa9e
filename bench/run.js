#!/usr/bin/env node
// `npm run bench`: every assetsync benchmark scenario on loopback, side by side in one run, each
// next to a baseline measured in the same run. Prints a table and writes bench/results/<date>.json.
// See docs/benchmarks.md for what each scenario measures and how to read the figures.
//
//   npm run bench                      full run (≈ 10–20 min)
//   npm run bench -- --quick           smaller sizes, a smoke check (< 2 min); results go to bench/results/tmp/
//   node bench/run.js --only cold-pull,hot-reload --runs 5
//   node bench/run.js --wait-load      first wait (≤ 20 min) for the 1-minute load average to drop below --max-load
//   node bench/run.js --profile cold-pull,warm-noop   extra `node --cpu-prof` passes, summarised
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { REPO, installExitHandlers, loadavg, makeTempDir, removeTempDir, sleep } from './lib/procs.mjs'
import { compact, printTable, row, stringify } from './lib/report.mjs'
import { ensureRsync } from './lib/rsync.mjs'
import * as coldPull from './scenarios/cold-pull.mjs'
import * as warmNoop from './scenarios/warm-noop.mjs'
import * as coldSmall from './scenarios/cold-small.mjs'
import * as lossy from './scenarios/lossy.mjs'
import * as hotReload from './scenarios/hot-reload.mjs'
import * as fanOut from './scenarios/fan-out.mjs'
import * as memory from './scenarios/memory.mjs'
import * as runScenario from './scenarios/run.mjs'
import * as scaleOut from './scenarios/scale-out.mjs'
import * as delta from './scenarios/delta.mjs'
import * as serveStart from './scenarios/serve-start.mjs'

const SCENARIOS = [coldPull, warmNoop, coldSmall, lossy, hotReload, fanOut, memory, runScenario, scaleOut, delta, serveStart]
/** The seed's transport budget: Renet's default 60,000 bytes per tick at 60 Hz. */
const SEED_BYTES_PER_SECOND = 60_000 * 60

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string' },
    out: { type: 'string' },
    profile: { type: 'string' },
    'wait-load': { type: 'boolean', default: false },
    'max-load': { type: 'string', default: '1.0' },
    'wait-minutes': { type: 'string', default: '20' },
    'no-install': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log('usage: node bench/run.js [--quick] [--only ids] [--runs N] [--out file] [--profile ids|all] [--wait-load] [--max-load 1.0] [--wait-minutes 20] [--no-install]')
  console.log(`scenarios: ${SCENARIOS.map((s) => s.id).join(', ')}`)
  process.exit(0)
}
const only = args.only ? new Set(args.only.split(',').map((s) => s.trim())) : null
for (const id of only ?? []) {
  if (!SCENARIOS.some((s) => s.id === id)) { console.error(`bench: unknown scenario "${id}"`); process.exit(2) }
}
const profileSet = args.profile === 'all' ? new Set(SCENARIOS.map((s) => s.id)) : new Set((args.profile ?? '').split(',').filter(Boolean))

installExitHandlers()
if (!existsSync(join(REPO, 'dist', 'cli.js'))) {
  console.error('bench: dist/ is missing; run `npm run bench` (it builds first) or `npm run build`')
  process.exit(2)
}

const t0 = performance.now()
const log = (s) => console.log(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`)
const load = { maxLoad: Number(args['max-load']), waitedS: 0, atStart: null, atEnd: null, perScenario: {} }

if (args['wait-load']) {
  const deadline = Date.now() + Number(args['wait-minutes']) * 60_000
  for (;;) {
    const l = loadavg()
    if (l[0] < load.maxLoad) break
    if (Date.now() > deadline) { log(`load ${l.join(' ')} still ≥ ${load.maxLoad} after ${args['wait-minutes']} min; running anyway`); break }
    log(`waiting for the 1-minute load (${l[0]}) to drop below ${load.maxLoad}`)
    await sleep(30_000)
  }
  load.waitedS = Math.round((performance.now() - t0) / 1000)
}
load.atStart = loadavg()

function git(...a) {
  try { return execFileSync('git', a, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() } catch { return null }
}

const rsync = ensureRsync({ install: !args['no-install'], log })
if (!rsync.ok) log(`rsync rows skipped: ${rsync.reason}`)
const stamp = new Date()
const profDir = join(REPO, 'bench', 'results', 'tmp', `profiles-${stamp.toISOString().replace(/[:.]/g, '-')}`)

log(`assetsync bench${args.quick ? ' --quick' : ''}: node ${process.version}, ${cpus().length} cores, load ${load.atStart.join(' ')}`)
const results = []
for (const s of SCENARIOS) {
  if (only && !only.has(s.id)) continue
  const tmp = makeTempDir(`assetsync-bench-${s.id}-`)
  const ctx = {
    quick: args.quick,
    runs: args.runs ? Number(args.runs) : undefined,
    tmp,
    repo: REPO.replace(/\/$/, ''),
    rsync,
    profile: profileSet.has(s.id),
    profDir,
    log: (m) => log(m),
  }
  const st = performance.now()
  load.perScenario[s.id] = loadavg()[0]
  log(`── ${s.id}: ${s.title}`)
  let r
  try {
    r = await s.run(ctx)
  } catch (err) {
    log(`${s.id} FAILED: ${err.stack ?? err}`)
    r = { rows: [], error: String(err.message ?? err) }
  } finally {
    removeTempDir(tmp)
  }
  results.push({ id: s.id, title: s.title, durationS: (performance.now() - st) / 1000, ...r })
}

// 7. The seed's transport budget, from the UDP cold pull just measured.
const cold = results.find((r) => r.id === 'cold-pull')
if (cold?.udpBytesPerSecond) {
  results.push({
    id: 'seed-budget',
    title: "UDP cold pull against the seed's transport budget",
    params: { seedBytesPerSecond: SEED_BYTES_PER_SECOND, source: 'Renet default: 60,000 bytes per tick at 60 Hz' },
    rows: [row({ id: 'udp-vs-seed', label: 'assetsync pull/udp (cold-pull median)', unit: 'MB/s', value: cold.udpBytesPerSecond / 1e6, runs: [], baseline: { label: 'seed budget (Renet 60 kB × 60 Hz)', value: SEED_BYTES_PER_SECOND / 1e6 } })],
  })
  delete cold.udpBytesPerSecond
}

load.atEnd = loadavg()
const durationS = (performance.now() - t0) / 1000
console.log('')
printTable(results)
const all = results.flatMap((s) => s.rows.filter((r) => r.target).map((r) => ({ ...r, key: `${s.id}/${r.id}` })))
const failed = all.filter((r) => r.pass === false)
console.log(`\ntargets: ${all.filter((r) => r.pass).length} pass, ${failed.length} fail, ${all.filter((r) => r.pass === null).length} n/a`)
for (const s of results.filter((x) => x.error)) console.log(`scenario ${s.id} failed: ${s.error}`)
console.log(`load average: ${load.atStart.join(' ')} at start, ${load.atEnd.join(' ')} at end${load.waitedS ? ` (waited ${load.waitedS} s first)` : ''}`)
console.log(`duration: ${durationS.toFixed(0)} s`)

/** Profile summaries in the results file: the top entries only (the console shows more). */
function trimProfile(p) {
  const { groups: _groups, ...rest } = p
  return { ...rest, top: p.top.slice(0, 8), owners: p.owners?.slice(0, 8) }
}

const date = stamp.toISOString().slice(0, 10)
let out = args.out
if (!out) {
  const dir = args.quick || only ? join(REPO, 'bench', 'results', 'tmp') : join(REPO, 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  out = join(dir, `${date}${args.quick ? '-quick' : ''}.json`)
  if (!args.quick && !only && existsSync(out)) out = out.replace(/\.json$/, `-${stamp.toISOString().slice(11, 19).replace(/:/g, '')}.json`)
}
const dirty = git('status', '--porcelain', '--untracked-files=no')
const doc = {
  bench: 'assetsync',
  schema: 1,
  date: stamp.toISOString(),
  quick: args.quick,
  args: process.argv.slice(2),
  commit: git('rev-parse', '--short', 'HEAD'),
  dirty: dirty === null ? null : dirty.length > 0,
  node: process.version,
  machine: { cpus: cpus().length, model: cpus()[0]?.model?.trim(), memGiB: Math.round(totalmem() / 2 ** 30) },
  rsync: rsync.ok ? rsync.version : `skipped: ${rsync.reason}`,
  load,
  durationS: Math.round(durationS),
  targets: { pass: all.filter((r) => r.pass).length, fail: failed.length, failed: failed.map((r) => r.key) },
  scenarios: compact(results.map((r) => (r.profiles ? { ...r, profiles: r.profiles.map(trimProfile) } : r))),
}
writeFileSync(out, stringify(doc))
console.log(`results: ${out.replace(`${REPO}`, '')}`)
process.exitCode = results.some((r) => r.error) ? 1 : 0
