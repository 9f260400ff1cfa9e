// 9. Cold pull of many small files (issue 15): 20,000 files of 1–15 KB (200 per folder) pulled
// into an empty folder, over UDP and TCP, against rsync from a daemon on the same tree. Per-file
// work is the wall here, not bandwidth, so besides wall time (spawn → exit) each side's CPU is
// given per file: the client's from its own process.cpuUsage() at exit (the memory preload), the
// server's from /proc (utime + stime); rsync's client under /usr/bin/time, its daemon with the
// forked child it served the connection in (cutime + cstime). Rounds alternate the variants.
import { join } from 'node:path'
import { memPreload, pull, readMemReport } from '../lib/assetsync.mjs'
import { cpuSecondsOf, cpuWithChildrenOf } from '../lib/procs.mjs'
import { row } from '../lib/report.mjs'
import { rsyncPull, startRsyncDaemon } from '../lib/rsync.mjs'
import { freshOut, serveUdpTcp, treeSetup } from '../lib/scenario.mjs'
import { median } from '../lib/stats.mjs'
import { smallFilesTree } from '../lib/tree.mjs'
import { profilePair } from '../lib/profile.mjs'

export const id = 'cold-small'
export const title = 'Cold pull of 20,000 small files'

export async function run(ctx) {
  const count = ctx.quick ? 2000 : 20_000
  const rounds = ctx.runs ?? (ctx.quick ? 1 : 3)
  ctx.log(`generating ${count} files of 1-15 KB`)
  const { src, env, tree } = await treeSetup(ctx, (dir) => smallFilesTree(dir, count, { minBytes: 1000, maxBytes: 15_000, perDir: 200, seed: 9 }))
  const stops = []
  try {
    const { udp, tcp } = await serveUdpTcp(src, env, stops)
    let rsyncd = null
    if (ctx.rsync.ok) {
      rsyncd = await startRsyncDaemon(src, ctx.tmp)
      stops.push(rsyncd.stop)
    }
    const fresh = freshOut(ctx)
    const memFile = join(ctx.tmp, 'client-mem.json')
    const pre = memPreload(memFile)
    const pullRun = (server, transport) => () => fresh(async (out) => {
      const cpu0 = cpuSecondsOf(server.pid)
      const r = await pull({ port: server.port, key: server.key, transport, out, env: { ...env, ...pre.env }, nodeArgs: pre.nodeArgs })
      const serverCpuS = cpuSecondsOf(server.pid) - cpu0
      if (r.summary.downloaded !== count) throw new Error(`pull/${transport} downloaded ${r.summary.downloaded} of ${count}`)
      return { ms: r.wallMs, innerMs: r.summary.ms, serverCpuS, clientCpuS: readMemReport(memFile)?.cpuS ?? NaN }
    })
    const rsyncRun = () => fresh(async (out) => {
      const cpu0 = cpuWithChildrenOf(rsyncd.pid)
      const r = await rsyncPull(rsyncd.url, out, { cpu: true })
      // The child that served the connection is reaped a moment after the client exits.
      await new Promise((resolve) => setTimeout(resolve, 200))
      return { ms: r.wallMs, clientCpuS: r.cpuS, serverCpuS: cpuWithChildrenOf(rsyncd.pid) - cpu0 }
    })
    const variants = { udp: pullRun(udp, 'udp'), tcp: pullRun(tcp, 'tcp'), ...(rsyncd ? { rsync: rsyncRun } : {}) }
    const res = Object.fromEntries(Object.keys(variants).map((k) => [k, []]))
    for (let i = 0; i < rounds; i++) {
      for (const [k, fn] of Object.entries(variants)) {
        const r = await fn()
        res[k].push(r)
        ctx.log(`  round ${i + 1}/${rounds} ${k.padEnd(5)} ${(r.ms / 1000).toFixed(2)} s  CPU client ${r.clientCpuS.toFixed(2)} s, server ${r.serverCpuS.toFixed(2)} s`)
      }
    }
    const ms = (k) => (res[k] ?? []).map((r) => r.ms)
    const perFile = (k, side) => (res[k] ?? []).map((r) => (r[side] * 1000) / count)
    const rsyncBase = rsyncd ? { label: `rsync daemon ${ctx.rsync.version}`, value: median(ms('rsync')) } : { label: `rsync (skipped: ${ctx.rsync.reason})`, value: NaN }
    const rsyncCpu = (side) => (rsyncd ? { label: `rsync ${side === 'clientCpuS' ? 'client' : 'daemon'}`, value: median(perFile('rsync', side)) } : null)
    const rows = [
      row({ id: 'udp-wall', label: `pull/udp, ${count} small files, wall`, unit: 'ms', runs: ms('udp'), baseline: rsyncBase, target: { on: 'ratio', op: '<=', value: 1.0, text: '≤ 1.0× rsync' },
        extra: { syncPhaseMs: median(res.udp.map((r) => r.innerMs)) } }),
      row({ id: 'tcp-wall', label: `pull/tcp, ${count} small files, wall`, unit: 'ms', runs: ms('tcp'), baseline: rsyncBase }),
      row({ id: 'udp-client-cpu', label: 'pull/udp client CPU per file', unit: 'ms', runs: perFile('udp', 'clientCpuS'), baseline: rsyncCpu('clientCpuS') }),
      row({ id: 'udp-server-cpu', label: 'pull/udp server CPU per file', unit: 'ms', runs: perFile('udp', 'serverCpuS'), baseline: rsyncCpu('serverCpuS') }),
      row({ id: 'tcp-client-cpu', label: 'pull/tcp client CPU per file', unit: 'ms', runs: perFile('tcp', 'clientCpuS'), baseline: rsyncCpu('clientCpuS') }),
      row({ id: 'tcp-server-cpu', label: 'pull/tcp server CPU per file', unit: 'ms', runs: perFile('tcp', 'serverCpuS'), baseline: rsyncCpu('serverCpuS') }),
      ...(rsyncd ? [row({ id: 'rsync-wall', label: `rsync daemon ${ctx.rsync.version}, wall`, unit: 'ms', runs: ms('rsync') })] : []),
    ]
    const result = { params: { files: tree.files, bytes: tree.bytes, rounds, measure: 'client process wall time, spawn to exit; CPU of each process' }, rows }
    if (ctx.profile) {
      result.profiles = await profilePair(ctx, {
        name: 'cold small-file pull/udp', src, env, transport: 'udp',
        client: (server, nodeArgs) => fresh((out) => pull({ port: server.port, key: server.key, transport: 'udp', out, env, nodeArgs })),
      })
    }
    return result
  } finally {
    for (const s of stops.reverse()) await s()
  }
}
