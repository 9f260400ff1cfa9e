// 5. Fan-out: W watchers (LiveMirror instances, one child process and one UDP connection each)
// subscribed to one server; one 10 MiB incompressible file changes. Measured from just before
// the write on the server's folder until the last watcher has the new file applied (each reports
// its 'applied' time and the hash of what it got). Baseline, in alternating rounds: the floor —
// one process sending the same bytes on W encrypted udx streams at once, received by W processes
// (stream-peer.mjs fan-send / fan-recv: assetsync's own UDP transport and Noise layer, no files,
// no hashing), timed from its "go" to the last receiver's last byte. Also the same change to one
// watcher. Server CPU = utime + stime delta from /proc/<pid>/stat over the change; server RSS
// from /proc/<pid>/status.
import { createHash, randomFillSync } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cliEnv, startServe } from '../lib/assetsync.mjs'
import { cpuProfArgs, monoUs, summariesIn } from '../lib/profile.mjs'
import { LIB, cpuSecondsOf, memOf, now, sleep, startNode, stop, waitEvent } from '../lib/procs.mjs'
import { row } from '../lib/report.mjs'
import { GiB, MB, MiB, median } from '../lib/stats.mjs'

export const id = 'fan-out'
export const title = 'Fan-out: one change to many watchers'

const FILE = 'bundle.pak'

/**
 * Starts `count` LiveMirrors over `procs` child processes; resolves when all are synced.
 * `nodeArgs0`: node options for the first process only (a profile of one watcher).
 */
async function startWatchers(ctx, server, count, procs, tag, nodeArgs0 = []) {
  const children = []
  for (let p = 0; p < procs; p++) {
    const outs = []
    for (let i = p; i < count; i += procs) outs.push(join(ctx.tmp, `${tag}-w${i}`))
    if (outs.length === 0) continue
    const configDir = join(ctx.tmp, `${tag}-cfg${p}`)
    const child = startNode(join(LIB, 'watch-peer.mjs'), [JSON.stringify({ server: `127.0.0.1:${server.port}`, key: server.key, transport: 'udp', outs, configDir })], { env: cliEnv(configDir), nodeArgs: p === 0 ? nodeArgs0 : [] })
    children.push({ child, n: outs.length })
  }
  await Promise.all(children.map(({ child }) => waitEvent(child, (e) => e.event === 'ready', 120_000, `${tag} watchers to sync`)))
  return children
}

/** The floor's sender and `count` receivers (one process each), all connected: {sender, receivers}. */
async function startFloor(count, bytes) {
  const peer = join(LIB, 'stream-peer.mjs')
  const sender = startNode(peer, ['fan-send', '--transport', 'udp', '--encrypt', '--bytes', String(bytes)], { stdin: 'pipe' })
  const { port } = await waitEvent(sender, (e) => e.event === 'listening', 20_000, 'fan-out floor sender')
  const receivers = []
  for (let i = 0; i < count; i++) {
    receivers.push(startNode(peer, ['fan-recv', '--transport', 'udp', '--encrypt', '--bytes', String(bytes), '--port', String(port)]))
  }
  await Promise.all(receivers.map((r) => waitEvent(r, (e) => e.event === 'ready', 120_000, 'fan-out floor receivers to connect')))
  await waitEvent(sender, (e) => e.event === 'connected' && e.n === count, 20_000, `the floor sender to see ${count} streams`)
  return { sender, receivers }
}

/** One floor round `k`: {allMs, firstMs, cpuS} from "go" until every receiver has the bytes. */
async function floorRound(floor, k) {
  const cpu0 = cpuSecondsOf(floor.sender.pid)
  const t0 = now()
  floor.sender.proc.stdin.write('go\n')
  const got = await Promise.all(floor.receivers.map((r) => waitEvent(r, (e) => e.event === 'got' && e.k === k, 120_000, `floor round ${k}`)))
  await waitEvent(floor.sender, (e) => e.event === 'sent' && e.k === k, 20_000, `floor round ${k} sent`)
  const cpuS = cpuSecondsOf(floor.sender.pid) - cpu0
  const ats = got.map((e) => e.at)
  return { allMs: Math.max(...ats) - t0, firstMs: Math.min(...ats) - t0, cpuS }
}

/** Writes a new version; resolves {allMs, firstMs, cpuS} once every watcher has it. */
async function change(ctx, server, src, children, size, k) {
  const buf = randomFillSync(Buffer.allocUnsafe(size))
  const hash = createHash('sha256').update(buf).digest('hex')
  const total = children.reduce((a, c) => a + c.n, 0)
  const cpu0 = cpuSecondsOf(server.pid)
  const t0 = now()
  writeFileSync(join(src, FILE), buf)
  const got = await Promise.all(children.flatMap(({ child, n }) => {
    const seen = new Set()
    return [new Promise((resolve, reject) => {
      const ats = []
      const check = (e) => {
        if (e.event !== 'applied' || e.path !== FILE || e.sha !== hash || seen.has(e.i)) return false
        seen.add(e.i)
        ats.push(e.at)
        return seen.size === n
      }
      waitEvent(child, check, 120_000, `change ${k}: all ${n} watchers of a child`).then(() => resolve(ats), reject)
    })]
  }))
  const ats = got.flat()
  await sleep(200) // let the server finish its bookkeeping before reading its CPU time
  const cpuS = cpuSecondsOf(server.pid) - cpu0
  if (ats.length !== total) throw new Error(`change ${k}: ${ats.length} of ${total} watchers got it`)
  return { allMs: Math.max(...ats) - t0, firstMs: Math.min(...ats) - t0, cpuS }
}

export async function run(ctx) {
  const r = await measure({ ...ctx, tmp: join(ctx.tmp, 'm') }, false)
  if (ctx.profile) {
    ctx.log('profiling fan-out (node --cpu-prof on serve, during the changes to all watchers)')
    r.profiles = (await measure({ ...ctx, tmp: join(ctx.tmp, 'p'), runs: 2 }, true)).profiles
  }
  return r
}

async function measure(ctx, profile) {
  const watchers = ctx.quick ? 10 : 50
  const size = ctx.quick ? 2 * MiB : 10 * MiB
  const changes = ctx.runs ?? (ctx.quick ? 2 : 3)
  const src = join(ctx.tmp, 'src')
  mkdirSync(src, { recursive: true })
  writeFileSync(join(src, FILE), 'placeholder: the first version is small, so the initial syncs are quick\n')
  writeFileSync(join(src, 'readme.txt'), 'fan-out bench\n')
  const sp = profile ? cpuProfArgs(ctx, 'fan-out serve') : null
  const wp = profile ? cpuProfArgs(ctx, 'fan-out watcher') : null
  const server = await startServe(src, { env: cliEnv(join(ctx.tmp, 'config')), nodeArgs: sp?.nodeArgs ?? [] })
  const children = []
  let floor = null
  let window = null
  let result
  try {
    // Baseline: the same change to one watcher.
    const one = await startWatchers(ctx, server, 1, 1, 'single')
    children.push(...one)
    const single = []
    for (let k = 0; k < changes; k++) single.push(await change(ctx, server, src, one, size, `single-${k}`))
    for (const c of one) await stop(c.child)
    ctx.log(`  1 watcher: ${single.map((r) => r.allMs.toFixed(0)).join(', ')} ms`)
    // One process per watcher, as the floor has one per receiver (and as on W machines).
    const many = await startWatchers(ctx, server, watchers, watchers, 'many', wp?.nodeArgs)
    children.push(...many)
    if (!profile) floor = await startFloor(watchers, size)
    await sleep(500)
    const rssIdle = memOf(server.pid)
    const res = []
    const floors = []
    const fromUs = monoUs()
    for (let k = 0; k < changes; k++) {
      if (floor) {
        floors.push(await floorRound(floor, k + 1))
        ctx.log(`  floor, ${watchers} encrypted udx streams, round ${k + 1}/${changes}: all in ${floors[k].allMs.toFixed(0)} ms (first ${floors[k].firstMs.toFixed(0)} ms), sender CPU ${floors[k].cpuS.toFixed(2)} s`)
      }
      res.push(await change(ctx, server, src, many, size, `many-${k}`))
      ctx.log(`  ${watchers} watchers, change ${k + 1}/${changes}: all in ${res[k].allMs.toFixed(0)} ms (first ${res[k].firstMs.toFixed(0)} ms), server CPU ${res[k].cpuS.toFixed(2)} s`)
    }
    window = { fromUs, toUs: monoUs() }
    const mem = memOf(server.pid)
    const delivered = watchers * size
    const mibps = (rs) => rs.map((r) => delivered / MiB / (r.allMs / 1000))
    const perGiB = (rs) => rs.map((r) => r.cpuS / (delivered / GiB))
    const floorBase = (label, values) => (floor ? { label, value: median(values) } : null)
    const rows = [
      row({ id: 'delivered', label: `${watchers} watchers: MiB/s delivered (${watchers} × ${size / MiB} MiB ÷ change → all have it)`, unit: 'MiB/s', runs: mibps(res), baseline: floorBase(`floor: 1 process → ${watchers} encrypted udx streams → ${watchers} processes`, mibps(floors)), target: { on: 'ratio', op: '>=', value: 0.8, text: '≥ 0.8× floor' } }),
      row({ id: 'all-have-it', label: `${watchers} watchers: change → all have it`, unit: 'ms', runs: res.map((r) => r.allMs), baseline: floorBase('floor: go → all have it', floors.map((r) => r.allMs)) }),
      row({ id: 'first-has-it', label: `${watchers} watchers: change → first has it`, unit: 'ms', runs: res.map((r) => r.firstMs), baseline: floorBase('floor: go → first has it', floors.map((r) => r.firstMs)) }),
      row({ id: 'single', label: '1 watcher: change → it has it', unit: 'ms', runs: single.map((r) => r.allMs) }),
      row({ id: 'server-cpu-per-gib', label: 'server CPU per GiB delivered (utime+stime)', unit: 's', runs: perGiB(res), baseline: floorBase('floor sender CPU per GiB', perGiB(floors)) }),
      row({ id: 'server-cpu', label: 'server CPU per change', unit: 's', runs: res.map((r) => r.cpuS), baseline: { label: '1 watcher', value: median(single.map((r) => r.cpuS)) } }),
      row({ id: 'server-rss', label: 'server RSS after the changes', unit: 'MB', value: mem.rssKiB * 1024 / MB, baseline: { label: `server RSS, ${watchers} watchers connected, idle`, value: rssIdle.rssKiB * 1024 / MB } }),
      row({ id: 'server-hwm', label: 'server peak RSS (VmHWM)', unit: 'MB', value: mem.hwmKiB * 1024 / MB }),
    ]
    result = { params: { watchers, processes: watchers, bytes: size, changes, transport: 'udp' }, rows }
  } finally {
    if (floor) for (const p of [floor.sender, ...floor.receivers]) await stop(p)
    for (const c of children) await stop(c.child)
    await server.stop(sp ? 60_000 : undefined)
  }
  if (sp && wp) result.profiles = [...summariesIn(ctx, sp.dir, `fan-out: serve, ${watchers} watchers`, window), ...summariesIn(ctx, wp.dir, 'fan-out: one watcher process', window)]
  return result
}
