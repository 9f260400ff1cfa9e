// 9. `serve` start-up on a large folder (issue 15): N tiny files (16–64 B, 500 per folder), served
// by a fresh `assetsync serve --json`, timed from spawn:
//   listening   the `listening` event: clients can connect (a large folder is then still being
//               indexed in the background: `"indexing":true`)
//   indexed     the index is complete (`indexed` event; the `listening` one when it came first)
//   get         `assetsync get` of the last path in path order, spawned right after `listening`:
//               a request the server answers on demand, before its index reaches that path
// cold = empty hash cache (every file hashed), warm = the hash cache the cold run left. CPU is
// the serve process's utime + stime (/proc) when the event arrived. Baselines from the same run:
// serve on an empty folder → listening (process start, module loading, key, socket: the floor of
// `listening`), and `rsync -r --list-only` of the tree (rsync's own walk: a readdir and lstat per
// file, the floor of a warm index).
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { cliEnv } from '../lib/assetsync.mjs'
import { cpuProfArgs, summariesIn } from '../lib/profile.mjs'
import { BIN, cpuSecondsOf, runToEnd, startNode, stop, waitEvent } from '../lib/procs.mjs'
import { row } from '../lib/report.mjs'
import { median } from '../lib/stats.mjs'
import { smallFilesTree } from '../lib/tree.mjs'

export const id = 'serve-start'
export const title = 'serve start-up on a large folder: listening, indexed, a request meanwhile'

/** One serve start: times (ms from spawn) and CPU seconds at listening and at indexed, and a get meanwhile. */
async function startOnce(ctx, root, env, { get = null, nodeArgs = [] } = {}) {
  const p = startNode(BIN, ['serve', root, '--host', '127.0.0.1', '--port', '0', '--json'], { env, nodeArgs })
  try {
    const l = await waitEvent(p, (e) => e.event === 'listening', 900_000, 'serve to listen')
    const listening = { ms: l.at - p.startedAt, cpu: cpuSecondsOf(p.pid) }
    let got = null
    if (get) {
      const g = await runToEnd(process.execPath, [BIN, 'get', '--server', `127.0.0.1:${l.port}`, '--key', l.key, '--timeout', '60', get], { env, timeoutMs: 120_000 })
      if (g.code !== 0) throw new Error(`get ${get} exited ${g.code}: ${g.p.stderrText.trim().slice(-300)}`)
      got = { wallMs: g.wallMs, duringIndex: !p.events.some((e) => e.event === 'indexed') && l.indexing === true }
    }
    const i = l.indexing ? await waitEvent(p, (e) => e.event === 'indexed', 900_000, 'serve to finish indexing') : l
    const indexed = { ms: i.at - p.startedAt, cpu: l.indexing ? cpuSecondsOf(p.pid) : listening.cpu, files: i.files, hashed: i.hashed }
    return { listening, indexed, got, background: l.indexing === true }
  } finally {
    await stop(p, nodeArgs.length ? 60_000 : 3000)
  }
}

export async function run(ctx) {
  const count = ctx.quick ? 10_000 : 100_000
  const perDir = 500
  const last = `d${String(Math.floor((count - 1) / perDir)).padStart(4, '0')}/f${count - 1}.dat`
  ctx.log(`generating ${count} tiny files`)
  const root = join(ctx.tmp, 'tree')
  await smallFilesTree(root, count, { minBytes: 16, maxBytes: 64, perDir, seed: 9 })
  const empty = join(ctx.tmp, 'empty')
  mkdirSync(empty)
  const config = join(ctx.tmp, 'config')
  const env = cliEnv(config)
  const rounds = ctx.runs ?? 1

  const floor = []
  for (let i = 0; i < 3; i++) floor.push((await startOnce(ctx, empty, env)).listening)
  let rsyncMs = NaN
  if (ctx.rsync.ok) {
    const r = await runToEnd('rsync', ['-r', '--list-only', `${root}/`], { keepText: false, timeoutMs: 600_000 })
    rsyncMs = r.wallMs
  }
  const cold = []
  const warm = []
  for (let i = 0; i < rounds; i++) {
    rmSync(join(config, 'cache'), { recursive: true, force: true })
    cold.push(await startOnce(ctx, root, env, { get: last }))
    warm.push(await startOnce(ctx, root, env, { get: last }))
  }
  const m = (list, f) => median(list.map(f))
  const fmt = (r) => `listening ${(r.listening.ms / 1000).toFixed(2)} s (${r.listening.cpu.toFixed(2)} s CPU), indexed ${(r.indexed.ms / 1000).toFixed(2)} s (${r.indexed.cpu.toFixed(2)} s CPU${r.background ? `, ${r.indexed.hashed} hashed` : ""}), get ${r.got ? `${r.got.wallMs.toFixed(0)} ms${r.got.duringIndex ? ' during the index' : ''}` : '-'}`
  for (const r of cold) ctx.log(`  cold: ${fmt(r)}`)
  for (const r of warm) ctx.log(`  warm: ${fmt(r)}`)
  ctx.log(`  empty folder → listening ${median(floor.map((f) => f.ms)).toFixed(0)} ms (${median(floor.map((f) => f.cpu)).toFixed(2)} s CPU); rsync --list-only ${rsyncMs.toFixed(0)} ms`)
  const floorBase = { label: 'serve, empty folder → listening', value: median(floor.map((f) => f.ms)) / 1000 }
  const rsyncBase = Number.isFinite(rsyncMs) ? { label: 'rsync -r --list-only of the tree', value: rsyncMs / 1000 } : null
  const rows = [
    row({ id: 'cold-listening', label: `serve ${count} files, cold: start → listening`, unit: 's', runs: cold.map((r) => r.listening.ms / 1000), value: m(cold, (r) => r.listening.ms) / 1000, baseline: floorBase, target: { on: 'value', op: '<=', value: 2, text: '≤ 2 s' } }),
    row({ id: 'warm-listening', label: `serve ${count} files, warm: start → listening`, unit: 's', runs: warm.map((r) => r.listening.ms / 1000), value: m(warm, (r) => r.listening.ms) / 1000, baseline: floorBase, target: { on: 'value', op: '<=', value: 2, text: '≤ 2 s' } }),
    row({ id: 'cold-indexed', label: `serve ${count} files, cold: start → index complete (every file hashed)`, unit: 's', runs: cold.map((r) => r.indexed.ms / 1000), value: m(cold, (r) => r.indexed.ms) / 1000 }),
    row({ id: 'warm-indexed', label: `serve ${count} files, warm: start → index complete (hash cache)`, unit: 's', runs: warm.map((r) => r.indexed.ms / 1000), value: m(warm, (r) => r.indexed.ms) / 1000, baseline: rsyncBase }),
    row({ id: 'cold-listening-cpu', label: 'cold: serve CPU at listening', unit: 's', value: m(cold, (r) => r.listening.cpu), baseline: { label: 'serve, empty folder', value: median(floor.map((f) => f.cpu)) } }),
    row({ id: 'warm-listening-cpu', label: 'warm: serve CPU at listening', unit: 's', value: m(warm, (r) => r.listening.cpu), baseline: { label: 'serve, empty folder', value: median(floor.map((f) => f.cpu)) } }),
    row({ id: 'cold-indexed-cpu', label: 'cold: serve CPU at index complete', unit: 's', value: m(cold, (r) => r.indexed.cpu) }),
    row({ id: 'warm-indexed-cpu', label: 'warm: serve CPU at index complete', unit: 's', value: m(warm, (r) => r.indexed.cpu) }),
    row({ id: 'cold-get', label: 'cold: get of the last path, spawned at listening (spawn → exit)', unit: 'ms', value: m(cold, (r) => r.got?.wallMs ?? NaN), note: `answered during the index: ${cold.filter((r) => r.got?.duringIndex).length} of ${cold.length}` }),
  ]
  const result = {
    params: { files: count, fileBytes: '16–64 B', perFolder: perDir, rounds, getPath: last },
    rows,
    detail: { cold, warm, emptyFolder: floor, rsyncListOnlyMs: rsyncMs },
  }
  if (ctx.profile) {
    ctx.log(`profiling a warm serve of ${count} files until its index is complete (node --cpu-prof)`)
    const prof = cpuProfArgs(ctx, 'serve-start warm')
    await startOnce(ctx, root, env, { nodeArgs: prof.nodeArgs })
    result.profiles = summariesIn(ctx, prof.dir, `serve ${count} files, warm, until indexed`)
  }
  return result
}
