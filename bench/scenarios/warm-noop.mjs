// 2. Warm no-op pull: the mirror already holds all N small files and nothing changed. assetsync
// pull (UDP and TCP) against rsync from a daemon on the same tree: wall time (process spawn →
// exit), file bytes sent, and bytes on the wire. The timed pulls print human output (like
// `rsync -a`, quiet for unchanged files); separate --json runs give the sync-phase time, and one
// run through a counting UDP proxy gives assetsync's wire bytes (rsync's come from --stats).
import { join } from 'node:path'
import { pull } from '../lib/assetsync.mjs'
import { profilePair } from '../lib/profile.mjs'
import { row } from '../lib/report.mjs'
import { rsyncPull, startRsyncDaemon } from '../lib/rsync.mjs'
import { serveUdpTcp, treeSetup } from '../lib/scenario.mjs'
import { median } from '../lib/stats.mjs'
import { startProxy } from '../lib/streams.mjs'
import { smallFilesTree } from '../lib/tree.mjs'

export const id = 'warm-noop'
export const title = 'Warm no-op pull (nothing changed)'

export async function run(ctx) {
  const count = ctx.quick ? 2000 : 20_000
  const rounds = ctx.runs ?? (ctx.quick ? 3 : 5)
  ctx.log(`generating ${count} small files`)
  const { src, env, tree } = await treeSetup(ctx, (dir) => smallFilesTree(dir, count))
  const stops = []
  try {
    const { udp, tcp } = await serveUdpTcp(src, env, stops)
    const destA = join(ctx.tmp, 'dest-assetsync')
    const destR = join(ctx.tmp, 'dest-rsync')
    ctx.log('initial (cold) syncs')
    const first = await pull({ port: udp.port, key: udp.key, transport: 'udp', out: destA, env })
    if (first.summary.downloaded !== count) throw new Error(`initial pull downloaded ${first.summary.downloaded} of ${count}`)
    ctx.log(`  assetsync pull/udp cold: ${(first.wallMs / 1000).toFixed(2)} s for ${count} files`)
    let rsyncd = null
    if (ctx.rsync.ok) {
      rsyncd = await startRsyncDaemon(src, ctx.tmp)
      stops.push(rsyncd.stop)
      const r = await rsyncPull(rsyncd.url, destR)
      ctx.log(`  rsync cold: ${(r.wallMs / 1000).toFixed(2)} s`)
    }
    const res = { udp: [], tcp: [], udpJson: [], rsync: [] }
    const rsyncStats = []
    for (let i = 0; i < rounds; i++) {
      const a = await pull({ port: udp.port, key: udp.key, transport: 'udp', out: destA, env, json: false })
      if (a.summary.downloaded !== 0) throw new Error(`no-op pull downloaded ${a.summary.downloaded} files`)
      res.udp.push(a.wallMs)
      const t = await pull({ port: tcp.port, key: tcp.key, transport: 'tcp', out: destA, env, json: false })
      res.tcp.push(t.wallMs)
      const j = await pull({ port: udp.port, key: udp.key, transport: 'udp', out: destA, env })
      if (j.summary.bytesReceived !== 0) throw new Error(`no-op pull received ${j.summary.bytesReceived} bytes`)
      res.udpJson.push({ wall: j.wallMs, sync: j.summary.ms, bytes: j.summary.bytesReceived })
      if (rsyncd) {
        const r = await rsyncPull(rsyncd.url, destR)
        res.rsync.push(r.wallMs)
        rsyncStats.push(r.stats)
      }
      ctx.log(`  round ${i + 1}/${rounds}: udp ${a.wallMs.toFixed(0)} ms, tcp ${t.wallMs.toFixed(0)} ms, udp --json ${j.wallMs.toFixed(0)} ms (sync ${j.summary.ms} ms)${rsyncd ? `, rsync ${res.rsync.at(-1).toFixed(0)} ms` : ''}`)
    }
    // Wire bytes: one more no-op pull through a counting (lossless, undelayed) UDP proxy.
    const proxy = await startProxy('udp', ['--target-port', String(udp.port)])
    let counters
    try {
      await pull({ port: proxy.port, key: udp.key, transport: 'udp', out: destA, env, json: false })
    } finally {
      counters = await proxy.stop()
    }
    const rs = rsyncStats.at(-1)
    const rsyncBase = (label, value) => ({ label: rsyncd ? label : `rsync (skipped: ${ctx.rsync.reason})`, value: rsyncd ? value : NaN })
    const rows = [
      row({ id: 'udp-wall', label: 'no-op pull/udp, wall time', unit: 'ms', runs: res.udp, baseline: rsyncBase(`rsync daemon ${ctx.rsync.version} no-op`, median(res.rsync)), target: { on: 'ratio', op: '<=', value: 1.0, text: '≤ 1.0× rsync' } }),
      row({ id: 'tcp-wall', label: 'no-op pull/tcp, wall time', unit: 'ms', runs: res.tcp, baseline: rsyncBase('rsync no-op', median(res.rsync)) }),
      row({ id: 'udp-sync-phase', label: 'no-op pull/udp --json, sync phase only', unit: 'ms', runs: res.udpJson.map((r) => r.sync), baseline: rsyncBase('rsync no-op (wall)', median(res.rsync)),
        note: 'summary.ms: connect excluded, manifest + local checks; the --json run also prints one line per file', extra: { wallMsMedian: median(res.udpJson.map((r) => r.wall)) } }),
      row({ id: 'rsync-wall', label: `rsync daemon no-op, wall time`, unit: 'ms', runs: res.rsync }),
      row({ id: 'file-bytes', label: 'file bytes sent (no-op)', unit: 'B', value: res.udpJson.at(-1).bytes, baseline: rsyncBase('rsync "Total transferred file size"', rs?.transferredFileBytes), target: { on: 'value', op: '==', value: 0, text: '= 0' } }),
      row({ id: 'wire-bytes', label: 'wire bytes, both directions (udp)', unit: 'KiB', value: counters ? counters.bytesForwarded / 1024 : NaN, baseline: rsyncBase('rsync bytes sent + received', rs ? (rs.bytesSent + rs.bytesReceived) / 1024 : NaN),
        target: { on: 'value', op: '<=', value: 2, text: '≤ 2 KiB' },
        note: 'assetsync: UDP payload bytes through a counting proxy (handshake, udx headers, Noise, frames); rsync: --stats' }),
    ]
    const result = { params: { files: tree.files, bytes: tree.bytes, rounds, coldPullUdpMs: first.wallMs }, rows }
    if (ctx.profile) {
      result.profiles = await profilePair(ctx, {
        name: 'no-op pull/udp', src, env, transport: 'udp',
        client: (server, nodeArgs) => pull({ port: server.port, key: server.key, transport: 'udp', out: destA, env, json: false, nodeArgs }),
      })
    }
    return result
  } finally {
    for (const s of stops.reverse()) await s()
  }
}
