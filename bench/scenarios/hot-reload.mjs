// 4. Hot-reload latency through the real CLI processes: `assetsync serve` and `assetsync watch
// --exec <hook>` on loopback (UDP, default --settle). One edit at a time (folded in from
// bench/latency.mjs); for each, the clock starts just before the write on the server's folder:
//   file mirrored   fs.watch on the mirror folder fires and the file hashes to the new version
//   hook started    the hook's first command (`date +%s%N`) in the first hook run that sees the
//                   new version (the hook hashes the file it sees)
//   floor           fs.watch on the *source* folder fires: the earliest anyone can know
// Every 5th edit is written in two halves 5 ms apart (an editor flushing in pieces); latency
// percentiles are over the single-write edits, torn deliveries over all of them: a hook run that
// sees a hash that is not one of the complete versions written.
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, watch as fsWatch, writeFileSync } from 'node:fs'
import { open, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cliEnv, dateNsToMs, hookStartup, startServe } from '../lib/assetsync.mjs'
import { cpuProfArgs, summariesIn } from '../lib/profile.mjs'
import { BIN, now, sleep, startNode, stop, waitEvent, waitFor } from '../lib/procs.mjs'
import { row } from '../lib/report.mjs'
import { summary } from '../lib/stats.mjs'

export const id = 'hot-reload'
export const title = 'Hot reload: save on the server → mirrored + hook started on the client'

const FILE = 'level.json'
const WARMUP = 5
const sha = (b) => createHash('sha256').update(b).digest('hex')

async function session(ctx, { edits, profile }) {
  const dir = join(ctx.tmp, `s${profile ? '-prof' : ''}`)
  const src = join(dir, 'src')
  const out = join(dir, 'mirror')
  const config = join(dir, 'config')
  const hookLog = join(dir, 'hook.log')
  for (const d of [src, out, config]) mkdirSync(d, { recursive: true })
  const initial = '{"edit":-1}\n'
  writeFileSync(join(src, FILE), initial)
  writeFileSync(join(src, 'other.txt'), 'a second file, so the folder is not trivially small\n')
  writeFileSync(hookLog, '')
  const env = cliEnv(config)
  const sp = profile ? cpuProfArgs(ctx, 'hot-reload serve') : null
  const wp = profile ? cpuProfArgs(ctx, 'hot-reload watch') : null
  const server = await startServe(src, { env, nodeArgs: sp?.nodeArgs ?? [] })
  const hook = `t=$(date +%s%N); h=$(sha256sum "$ASSETSYNC_ROOT/${FILE}" 2>/dev/null | cut -c1-64); printf '%s %s\\n' "$t" "\${h:-missing}" >> '${hookLog}'`
  const watch = startNode(BIN, ['watch', '--server', `127.0.0.1:${server.port}`, '--key', server.key, '--out', out, '--json', '--exec', hook], { env, nodeArgs: wp?.nodeArgs ?? [] })
  const watchers = []
  try {
    await waitEvent(watch, (e) => e.event === 'synced', 30_000, 'watch to sync')
    const versions = new Set([sha(initial)])
    let expected = null
    let visibleAt = 0
    let floorAt = 0
    watchers.push(fsWatch(out, (_t, name) => {
      if (name !== FILE || visibleAt || !expected) return
      const t = now()
      let h = ''
      try { h = sha(readFileSync(join(out, FILE))) } catch { /* not there (yet) */ }
      if (h === expected) visibleAt = t
    }))
    watchers.push(fsWatch(src, (_t, name) => { if (name === FILE && !floorAt && expected) floorAt = now() }))
    const rows = []
    const pauses = []
    let hookLines = []
    for (let i = 0; i < edits + WARMUP; i++) {
      const pad = randomBytes(100 + ((i * 7919) % 16_384)).toString('hex')
      const content = Buffer.from(`{"edit":${i},"pad":"${pad}"}\n`)
      const h = sha(content)
      versions.add(h)
      const split = i % 5 === 4
      visibleAt = 0
      floorAt = 0
      expected = h
      const t0 = now()
      if (split) {
        const fh = await open(join(src, FILE), 'w')
        const half = content.length >> 1
        await fh.write(content, 0, half, 0)
        const firstAt = now()
        await sleep(5)
        const secondAt = now()
        await fh.write(content, half, content.length - half, half)
        await fh.close()
        // The pause a writer really made (a loaded machine stretches sleep(5)): the settle time
        // must exceed it, or the first half is announced.
        if (i >= WARMUP) pauses.push(secondAt - firstAt)
      } else {
        writeFileSync(join(src, FILE), content)
      }
      await waitFor(() => visibleAt, 10_000, `edit ${i} to be mirrored`)
      const line = await waitFor(async () => {
        hookLines = (await readFile(hookLog, 'utf8')).split('\n').filter(Boolean)
        return hookLines.find((l) => l.endsWith(` ${h}`))
      }, 10_000, `edit ${i}: a hook run that sees it`)
      const hookAt = dateNsToMs(line.slice(0, line.indexOf(' ')))
      // Where the milliseconds go: serve's `changes` event (settled, refreshed, pushed) and watch's
      // `applied` event (installed), as they reach this process (a pipe hop, ~0.1 ms).
      const announced = server.p.events.find((e) => e.at >= t0 && e.event === 'changes' && e.changes.some((c) => c.path === FILE))
      const applied = watch.events.find((e) => e.at >= t0 && e.event === 'applied' && e.changes.some((c) => c.path === FILE))
      if (i >= WARMUP) {
        rows.push({
          split, visible: visibleAt - t0, hook: hookAt - t0, floor: floorAt ? floorAt - t0 : NaN,
          announced: announced ? announced.at - t0 : NaN, applied: applied ? applied.at - t0 : NaN,
        })
      }
      await sleep(60 + (i % 7) * 3)
    }
    await sleep(300)
    hookLines = (await readFile(hookLog, 'utf8')).split('\n').filter(Boolean)
    const torn = hookLines.filter((l) => !versions.has(l.slice(l.indexOf(' ') + 1))).length
    const applied = watch.events.filter((e) => e.event === 'applied').length
    return { rows, torn, hookRuns: hookLines.length, applied, versions: versions.size, pauses }
  } finally {
    for (const w of watchers) w.close()
    await stop(watch, profile ? 60_000 : 5000)
    await server.stop(profile ? 60_000 : undefined)
    if (profile) ctx.hotReloadProfiles = [...summariesIn(ctx, sp.dir, 'hot-reload: serve'), ...summariesIn(ctx, wp.dir, 'hot-reload: watch')]
  }
}

export async function run(ctx) {
  const edits = ctx.quick ? 40 : 250
  const startup = await hookStartup(ctx.quick ? 10 : 40)
  const s = await session(ctx, { edits, profile: false })
  const single = s.rows.filter((r) => !r.split)
  const vis = summary(single.map((r) => r.visible))
  const hook = summary(single.map((r) => r.hook))
  const floor = summary(single.map((r) => r.floor))
  const splitHook = summary(s.rows.filter((r) => r.split).map((r) => r.hook))
  const announced = summary(single.map((r) => r.announced).filter((x) => !Number.isNaN(x)))
  const pauses = summary(s.pauses)
  const applied = summary(single.map((r) => r.applied).filter((x) => !Number.isNaN(x)))
  ctx.log(`  stages p50: source fs.watch ${floor.p50.toFixed(1)}, serve pushed ${announced.p50.toFixed(1)}, watch applied ${applied.p50.toFixed(1)}, mirror fs.watch ${vis.p50.toFixed(1)}, hook ${hook.p50.toFixed(1)} ms`)
  ctx.log(`  ${single.length} single-write edits: mirrored p50 ${vis.p50.toFixed(1)} / p99 ${vis.p99.toFixed(1)} ms, hook p50 ${hook.p50.toFixed(1)} / p99 ${hook.p99.toFixed(1)} ms; torn ${s.torn} of ${s.hookRuns} hook runs; split-write pause p50 ${pauses.p50.toFixed(1)} / max ${pauses.max.toFixed(1)} ms`)
  const floorBase = (p) => ({ label: `fs.watch on the source folder (floor) ${p}`, value: floor[p] })
  const rows = [
    row({ id: 'mirrored-p50', label: 'save → file mirrored, p50', unit: 'ms', n: vis.n, value: vis.p50, baseline: floorBase('p50'), target: { on: 'value', op: '<=', value: 20, text: '≤ 20 ms' } }),
    row({ id: 'mirrored-p99', label: 'save → file mirrored, p99', unit: 'ms', n: vis.n, value: vis.p99, baseline: floorBase('p99'), target: { on: 'value', op: '<=', value: 100, text: '≤ 100 ms' } }),
    row({ id: 'hook-p50', label: 'save → hook started, p50', unit: 'ms', n: hook.n, value: hook.p50, baseline: floorBase('p50'), target: { on: 'value', op: '<=', value: 30, text: '≤ 30 ms' } }),
    row({ id: 'hook-p99', label: 'save → hook started, p99', unit: 'ms', n: hook.n, value: hook.p99, baseline: floorBase('p99'), target: { on: 'value', op: '<=', value: 60, text: '≤ 60 ms' } }),
    row({ id: 'torn', label: 'torn deliveries (hook saw a partial file)', unit: 'count', n: s.hookRuns, value: s.torn, target: { on: 'value', op: '==', value: 0, text: '= 0' } }),
    row({ id: 'hook-spawn', label: 'hook process spawn alone (sh + date), p50', unit: 'ms', n: startup.n, value: startup.p50 }),
    row({ id: 'announced-p50', label: 'save → serve pushed the change (its `changes` event), p50', unit: 'ms', n: announced.n, value: announced.p50, note: 'settle + refresh + push' }),
    row({ id: 'applied-p50', label: 'save → watch applied it (its `applied` event), p50', unit: 'ms', n: applied.n, value: applied.p50 }),
    row({ id: 'split-pause-max', label: 'split-write edits: the pause the writer really made, max', unit: 'ms', n: pauses.n, value: pauses.max, note: 'sleep(5) as the machine ran it; announced early only if it outlasts --settle' }),
    row({ id: 'split-hook-p50', label: 'split-write edits: save → hook, p50', unit: 'ms', n: splitHook.n, value: splitHook.p50, note: 'second half written 5 ms after the first' }),
  ]
  const result = {
    params: { edits: s.rows.length, singleWriteEdits: single.length, warmup: WARMUP, transport: 'udp', settle: 'default (SETTLE_MS)', fileBytes: '~0.2–33 KB', pauseMs: '60–78 between edits' },
    rows,
    // The five slowest single-write edits, stage by stage: where a tail comes from.
    slowest: [...single].sort((a, b) => b.hook - a.hook).slice(0, 5).map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'number' ? Number(v.toFixed(1)) : v]))),
    detail: { mirrored: vis, hook, floor, announced, applied, splitHook, splitPause: pauses, hookSpawn: startup, hookRuns: s.hookRuns, appliedBatches: s.applied, versionsWritten: s.versions },
  }
  if (ctx.profile) {
    ctx.log('profiling hot reload (node --cpu-prof on serve and watch)')
    await session(ctx, { edits: ctx.quick ? 20 : 100, profile: true })
    result.profiles = ctx.hotReloadProfiles
  }
  return result
}
