// 8. `assetsync run` (issue 13): a Lua program whose modules come over the network.
//   require     `require` of a missing 10 KiB module over an open connection: the Lua host and
//               NetworkAssets in this process (from dist/), `assetsync serve` in its own. Each
//               require is timed around the provider's fetch (Lua's part is microseconds; the
//               loop's wall time / count is reported beside it).
//   reload      save on the server → the reloaded module runs in `assetsync run` (the CLI, its own
//               process): the module's first line prints a JSON marker on stdout; the clock starts
//               just before the write on the server's folder. Default --settle, and --settle 0.
//   priority    the same require while a 1 GiB asset downloads on the same connection
//               (load_asset_async), against the same require idle, in the same run; and once more
//               with the `priority` feature switched off (plain round robin).
import { randomBytes } from 'node:crypto'
import { mkdirSync, watch as fsWatch, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { cliEnv, startServe } from '../lib/assetsync.mjs'
import { BIN, REPO, now, sleep, startNode, stop, waitEvent } from '../lib/procs.mjs'
import { row } from '../lib/report.mjs'
import { GiB, MiB, summary } from '../lib/stats.mjs'
import { bigFile } from '../lib/tree.mjs'

export const id = 'run'
export const title = 'assetsync run: network require, hot reload into a running script, priority under bulk'

const MODULE_BYTES = 10 * 1024
const WARMUP = 10

const sink = () => new Writable({ write(_c, _e, cb) { cb() } })
const moduleText = (i) => `return { id = ${i}, pad = "${'m'.repeat(MODULE_BYTES - 40)}" }\n`

async function lib() {
  return import(join(REPO, 'dist', 'index.js'))
}

/** A provider over `assets` that times every fetch whose path `match`es. */
function timed(assets, match) {
  const times = []
  let bigDone = false
  const provider = {
    fetch: async (path, opts) => {
      const t0 = performance.now()
      const r = await assets.fetch(path, opts)
      if (match(path)) times.push({ path, ms: performance.now() - t0, busy: !bigDone })
      if (path.startsWith('big/')) bigDone = true
      return r
    },
    onChange: (l) => assets.onChange(l),
    release: (i) => assets.release(i),
  }
  return { provider, times }
}

/** Runs `script` with `args` in a Lua host over a fresh NetworkAssets into `out`. */
async function host(ctx, server, out, script, args, match, protocol) {
  const { NetworkAssets, LuaHost } = await lib()
  const assets = await NetworkAssets.open({
    server: `127.0.0.1:${server.port}`, key: server.key, dir: out, configDir: join(ctx.tmp, 'client-config'), ...(protocol ? { protocol } : {}),
  })
  const priority = assets.client?.conn.has('priority') ?? false
  try {
    const { provider, times } = timed(assets, match)
    const t0 = performance.now()
    const code = await new LuaHost({ script, provider, args, cwd: out, stdout: sink(), stderr: sink(), tick: 20 }).run()
    if (code !== 0) throw new Error(`${script} exited ${code}`)
    return { times, wallMs: performance.now() - t0, priority }
  } finally {
    await assets.close()
  }
}

async function requireLatency(ctx, server, n) {
  const r = await host(ctx, server, join(ctx.tmp, 'out-require'), 'loop.lua', ['mods', String(n)], (p) => p.startsWith('mods/'))
  const ms = r.times.slice(WARMUP).map((t) => t.ms)
  return { s: summary(ms), meanWallMs: r.wallMs / n, n: r.times.length }
}

/** Save → reloaded module runs, through the CLI. */
async function reloadLatency(ctx, { edits, settle }) {
  const dir = join(ctx.tmp, `reload-${settle ?? 'default'}`)
  const src = join(dir, 'src')
  const out = join(dir, 'out')
  mkdirSync(src, { recursive: true })
  const env = cliEnv(join(dir, 'config'))
  const mod = (i, pad) => `print('{"event":"ran","edit":${i}}')\nreturn { pad = "${pad}" }\n`
  writeFileSync(join(src, 'game.lua'), "local m = require('m', { reload = true })\nfunction update() end\n")
  writeFileSync(join(src, 'm.lua'), mod(-1, ''))
  const server = await startServe(src, { env, args: settle === undefined ? [] : ['--settle', String(settle)] })
  const run = startNode(BIN, ['run', 'game.lua', '--server', `127.0.0.1:${server.port}`, '--key', server.key, '--out', out, '--tick', '60'], { env })
  let floorAt = 0
  let armed = false
  const watcher = fsWatch(src, (_t, name) => { if (name === 'm.lua' && armed && !floorAt) floorAt = now() })
  try {
    await waitEvent(run, (e) => e.event === 'ran' && e.edit === -1, 30_000, 'assetsync run to start')
    const rows = []
    for (let i = 0; i < edits + 5; i++) {
      const pad = randomBytes(50 + ((i * 7919) % 4096)).toString('hex')
      floorAt = 0
      armed = true
      const t0 = now()
      writeFileSync(join(src, 'm.lua'), mod(i, pad))
      const ev = await waitEvent(run, (e) => e.event === 'ran' && e.edit === i, 10_000, `edit ${i} to run`)
      armed = false
      if (i >= 5) rows.push({ ran: ev.at - t0, floor: floorAt ? floorAt - t0 : NaN })
      await sleep(60 + (i % 7) * 3)
    }
    return { ran: summary(rows.map((r) => r.ran)), floor: summary(rows.map((r) => r.floor)) }
  } finally {
    watcher.close()
    await stop(run, 5000)
    await server.stop()
  }
}

/** Requires under a bulk download (busy) and without (idle), with or without the priority feature. */
async function priority(ctx, server, n, { idle, protocol, tag }) {
  const prefix = idle ? 'idle' : `busy${tag}`
  const out = join(ctx.tmp, `out-prio-${prefix}`)
  const r = await host(ctx, server, out, 'bulk.lua', [prefix, String(n), idle ? '' : 'big/asset.bin'], (p) => p.startsWith(`${prefix}/`), protocol)
  const kept = r.times.slice(3).filter((t) => idle || t.busy)
  return { s: summary(kept.map((t) => t.ms)), priority: r.priority, busyCount: kept.length }
}

export async function run(ctx) {
  const nRequire = ctx.quick ? 80 : 250
  const edits = ctx.quick ? 30 : 120
  const nPrio = ctx.quick ? 20 : 100
  const bigBytes = ctx.quick ? 256 * MiB : GiB
  const src = join(ctx.tmp, 'src')
  mkdirSync(join(src, 'big'), { recursive: true })
  for (const dir of ['mods', 'idle', 'busy', 'busyfifo']) {
    mkdirSync(join(src, dir), { recursive: true })
    const n = dir === 'mods' ? nRequire : nPrio
    for (let i = 1; i <= n; i++) writeFileSync(join(src, dir, `m${String(i).padStart(4, '0')}.lua`), moduleText(i))
  }
  writeFileSync(join(src, 'loop.lua'), "local prefix, n = arg[1], tonumber(arg[2])\nfor i = 1, n do require(string.format('%s.m%04d', prefix, i)) end\n")
  writeFileSync(join(src, 'bulk.lua'), `local prefix, n, big = arg[1], tonumber(arg[2]), arg[3]
if big ~= '' then load_asset_async(big, function() end) end
local i = 0
function update()
  if i >= n then os.exit(0) end
  i = i + 1
  require(string.format('%s.m%04d', prefix, i))
end
`)
  ctx.log(`  writing a ${(bigBytes / MiB).toFixed(0)} MiB asset`)
  await bigFile(join(src, 'big', 'asset.bin'), bigBytes)
  const server = await startServe(src, { env: cliEnv(join(ctx.tmp, 'server-config')) })
  let req, idle, busy, fifo
  try {
    req = await requireLatency(ctx, server, nRequire)
    ctx.log(`  require of a missing 10 KiB module: p50 ${req.s.p50.toFixed(2)} / p99 ${req.s.p99.toFixed(2)} ms (n ${req.s.n}), loop wall ${req.meanWallMs.toFixed(2)} ms each`)
    idle = await priority(ctx, server, nPrio, { idle: true })
    busy = await priority(ctx, server, nPrio, { idle: false, tag: '' })
    fifo = await priority(ctx, server, nPrio, { idle: false, tag: 'fifo', protocol: { features: 0 } })
    ctx.log(`  require idle p50 ${idle.s.p50.toFixed(2)} ms; under a ${(bigBytes / MiB).toFixed(0)} MiB download: priority p50 ${busy.s.p50.toFixed(2)} / p99 ${busy.s.p99.toFixed(2)} ms (${busy.busyCount} during the download), no priority p50 ${fifo.s.p50.toFixed(2)} / p99 ${fifo.s.p99.toFixed(2)} ms (${fifo.busyCount})`)
  } finally {
    await server.stop()
  }
  const rl = await reloadLatency(ctx, { edits })
  const rl0 = await reloadLatency(ctx, { edits, settle: 0 })
  ctx.log(`  save → reloaded module runs: p50 ${rl.ran.p50.toFixed(1)} / p99 ${rl.ran.p99.toFixed(1)} ms (default settle), ${rl0.ran.p50.toFixed(1)} / ${rl0.ran.p99.toFixed(1)} ms (--settle 0)`)
  const idleBase = { label: 'the same require, idle connection (p50)', value: idle.s.p50 }
  const floor = (s, p) => ({ label: `fs.watch on the source folder (floor) ${p}`, value: s.floor[p] })
  return {
    params: { moduleBytes: MODULE_BYTES, requires: nRequire, warmup: WARMUP, edits, bigBytes, prioRequires: nPrio, transport: 'udp' },
    rows: [
      row({ id: 'require-p50', label: 'require of a missing 10 KiB module, p50', unit: 'ms', n: req.s.n, value: req.s.p50, target: { on: 'value', op: '<=', value: 5, text: '≤ 5 ms' } }),
      row({ id: 'require-p99', label: 'require of a missing 10 KiB module, p99', unit: 'ms', n: req.s.n, value: req.s.p99, target: { on: 'value', op: '<=', value: 15, text: '≤ 15 ms' } }),
      row({ id: 'require-wall', label: 'require loop wall time per module (mean)', unit: 'ms', n: req.n, value: req.meanWallMs }),
      row({ id: 'reload-p50', label: 'save → reloaded module runs, p50 (default settle)', unit: 'ms', n: rl.ran.n, value: rl.ran.p50, baseline: floor(rl, 'p50'), target: { on: 'value', op: '<=', value: 25, text: '≤ 25 ms' } }),
      row({ id: 'reload-p99', label: 'save → reloaded module runs, p99 (default settle)', unit: 'ms', n: rl.ran.n, value: rl.ran.p99, baseline: floor(rl, 'p99'), target: { on: 'value', op: '<=', value: 60, text: '≤ 60 ms' } }),
      row({ id: 'reload0-p50', label: 'save → reloaded module runs, p50 (--settle 0)', unit: 'ms', n: rl0.ran.n, value: rl0.ran.p50, baseline: floor(rl0, 'p50') }),
      row({ id: 'reload0-p99', label: 'save → reloaded module runs, p99 (--settle 0)', unit: 'ms', n: rl0.ran.n, value: rl0.ran.p99, baseline: floor(rl0, 'p99') }),
      row({ id: 'prio-p50', label: `require during a ${(bigBytes / MiB).toFixed(0)} MiB download, p50 (priority)`, unit: 'ms', n: busy.s.n, value: busy.s.p50, baseline: idleBase, target: { on: 'ratio', op: '<=', value: 2, text: '≤ 2× idle' } }),
      row({ id: 'prio-p99', label: `require during a ${(bigBytes / MiB).toFixed(0)} MiB download, p99 (priority)`, unit: 'ms', n: busy.s.n, value: busy.s.p99, baseline: { label: 'idle p99', value: idle.s.p99 } }),
      row({ id: 'fifo-p50', label: 'the same without the priority feature, p50', unit: 'ms', n: fifo.s.n, value: fifo.s.p50, baseline: idleBase }),
    ],
    detail: { require: req, reload: rl, reloadSettle0: rl0, idle, busy, fifo },
  }
}
