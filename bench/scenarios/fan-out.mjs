// 5. Fan-out: W watchers (LiveMirror instances, spread over a few child processes, one UDP
// connection each) subscribed to one server; one 10 MiB file changes. Measured from just before
// the write on the server's folder until the last watcher has the new file applied (each reports
// its 'applied' time and the hash of what it got). Baseline: the same change to one watcher, same
// server. Server CPU = utime + stime delta from /proc/<pid>/stat over the change; server RSS from
// /proc/<pid>/status.
import { createHash, randomFillSync } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cliEnv, startServe } from '../lib/assetsync.mjs'
import { cpuProfArgs, monoUs, summariesIn } from '../lib/profile.mjs'
import { LIB, cpuSecondsOf, memOf, now, sleep, startNode, stop, waitEvent } from '../lib/procs.mjs'
import { row } from '../lib/report.mjs'
import { MB, MiB, median } from '../lib/stats.mjs'

export const id = 'fan-out'
export const title = 'Fan-out: one change to many watchers'

const FILE = 'bundle.pak'

/** Starts `count` LiveMirrors over `procs` child processes; resolves when all are synced. */
async function startWatchers(ctx, server, count, procs, tag) {
  const children = []
  for (let p = 0; p < procs; p++) {
    const outs = []
    for (let i = p; i < count; i += procs) outs.push(join(ctx.tmp, `${tag}-w${i}`))
    if (outs.length === 0) continue
    const configDir = join(ctx.tmp, `${tag}-cfg${p}`)
    const child = startNode(join(LIB, 'watch-peer.mjs'), [JSON.stringify({ server: `127.0.0.1:${server.port}`, key: server.key, transport: 'udp', outs, configDir })], { env: cliEnv(configDir) })
    children.push({ child, n: outs.length })
  }
  await Promise.all(children.map(({ child }) => waitEvent(child, (e) => e.event === 'ready', 120_000, `${tag} watchers to sync`)))
  return children
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
  const procs = ctx.quick ? 2 : 5
  const size = ctx.quick ? 2 * MiB : 10 * MiB
  const changes = ctx.runs ?? (ctx.quick ? 2 : 3)
  const src = join(ctx.tmp, 'src')
  mkdirSync(src, { recursive: true })
  writeFileSync(join(src, FILE), 'placeholder: the first version is small, so the initial syncs are quick\n')
  writeFileSync(join(src, 'readme.txt'), 'fan-out bench\n')
  const sp = profile ? cpuProfArgs(ctx, 'fan-out serve') : null
  const server = await startServe(src, { env: cliEnv(join(ctx.tmp, 'config')), nodeArgs: sp?.nodeArgs ?? [] })
  const children = []
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
    const many = await startWatchers(ctx, server, watchers, procs, 'many')
    children.push(...many)
    await sleep(500)
    const rssIdle = memOf(server.pid)
    const res = []
    const fromUs = monoUs()
    for (let k = 0; k < changes; k++) {
      res.push(await change(ctx, server, src, many, size, `many-${k}`))
      ctx.log(`  ${watchers} watchers, change ${k + 1}/${changes}: all in ${res[k].allMs.toFixed(0)} ms (first ${res[k].firstMs.toFixed(0)} ms), server CPU ${res[k].cpuS.toFixed(2)} s`)
    }
    window = { fromUs, toUs: monoUs() }
    const mem = memOf(server.pid)
    const rows = [
      row({ id: 'all-have-it', label: `${watchers} watchers: change → all have it`, unit: 'ms', runs: res.map((r) => r.allMs), baseline: { label: '1 watcher, same change', value: median(single.map((r) => r.allMs)) }, target: { on: 'value', op: '<=', value: 3000, text: '≤ 3 s' } }),
      row({ id: 'first-has-it', label: `${watchers} watchers: change → first has it`, unit: 'ms', runs: res.map((r) => r.firstMs) }),
      row({ id: 'server-cpu', label: 'server CPU per change (utime+stime)', unit: 's', runs: res.map((r) => r.cpuS), baseline: { label: '1 watcher', value: median(single.map((r) => r.cpuS)) } }),
      row({ id: 'server-rss', label: 'server RSS after the changes', unit: 'MB', value: mem.rssKiB * 1024 / MB, baseline: { label: `server RSS, ${watchers} watchers connected, idle`, value: rssIdle.rssKiB * 1024 / MB } }),
      row({ id: 'server-hwm', label: 'server peak RSS (VmHWM)', unit: 'MB', value: mem.hwmKiB * 1024 / MB }),
    ]
    result = { params: { watchers, processes: procs, bytes: size, changes, transport: 'udp' }, rows }
  } finally {
    for (const c of children) await stop(c.child)
    await server.stop(sp ? 60_000 : undefined)
  }
  if (sp) result.profiles = summariesIn(ctx, sp.dir, `fan-out: serve, ${watchers} watchers`, window)
  return result
}
