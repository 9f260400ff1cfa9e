// 1. Cold pull of a generated mixed tree (few large files + many small ones) into an empty
// folder, over UDP and over TCP, next to the transports alone moving the same number of bytes
// (raw encrypted udx stream = the protocol-overhead baseline, raw udx, encrypted TCP, plain
// node:net TCP) and rsync from an rsync daemon. Every figure is client process wall time,
// spawn → exit (node startup and handshakes included, as a user sees it); rounds alternate the
// variants so load drift hits them alike.
import { join } from 'node:path'
import { memPreload, pull, readMemReport } from '../lib/assetsync.mjs'
import { cpuSecondsOf } from '../lib/procs.mjs'
import { startRsyncDaemon, rsyncPull } from '../lib/rsync.mjs'
import { row } from '../lib/report.mjs'
import { freshOut, serveUdpTcp, treeSetup } from '../lib/scenario.mjs'
import { GiB, MiB, median } from '../lib/stats.mjs'
import { startStreamSender, streamReceive } from '../lib/streams.mjs'
import { mixedTree } from '../lib/tree.mjs'
import { profilePair } from '../lib/profile.mjs'

export const id = 'cold-pull'
export const title = 'Cold pull of a mixed tree'

export async function run(ctx) {
  const size = ctx.quick ? 64 * MiB : 1 * GiB
  const rounds = ctx.runs ?? (ctx.quick ? 1 : 3)
  ctx.log(`generating a ${size / MiB} MiB mixed tree`)
  const { src, env, tree } = await treeSetup(ctx, (dir) => mixedTree(dir, size))
  ctx.log(`  ${tree.files} files, ${(tree.bytes / MiB).toFixed(0)} MiB`)

  const stops = []
  try {
    const { udp, tcp } = await serveUdpTcp(src, env, stops)
    const senders = {}
    for (const [k, transport, encrypt] of [['encUdx', 'udp', true], ['udx', 'udp', false], ['encTcp', 'tcp', true], ['tcp', 'tcp', false]]) {
      senders[k] = await startStreamSender({ transport, encrypt, bytes: tree.bytes })
      stops.push(senders[k].stop)
    }
    let rsyncd = null
    if (ctx.rsync.ok) {
      rsyncd = await startRsyncDaemon(src, ctx.tmp)
      stops.push(rsyncd.stop)
    }
    const fresh = freshOut(ctx)
    const memFile = join(ctx.tmp, 'client-mem.json')
    const pre = memPreload(memFile)
    const pullRun = (server, transport, patterns = [], bytes = tree.bytes) => () => fresh(async (out) => {
      const cpu0 = cpuSecondsOf(server.pid)
      const r = await pull({ port: server.port, key: server.key, transport, out, env: { ...env, ...pre.env }, nodeArgs: pre.nodeArgs, extraArgs: patterns })
      const serverCpuS = cpuSecondsOf(server.pid) - cpu0
      if (r.summary.bytesReceived !== bytes) throw new Error(`pull/${transport} received ${r.summary.bytesReceived} of ${bytes} bytes`)
      return { ms: r.wallMs, innerMs: r.summary.ms, retries: r.retries, files: r.summary.files, serverCpuS, clientCpuS: readMemReport(memFile)?.cpuS ?? NaN }
    })
    const streamRun = (k, transport, encrypt) => async () => {
      const cpu0 = cpuSecondsOf(senders[k].pid)
      const r = await streamReceive({ transport, encrypt, bytes: tree.bytes, port: senders[k].port })
      return { ms: r.wallMs, innerMs: r.innerMs, serverCpuS: cpuSecondsOf(senders[k].pid) - cpu0, clientCpuS: r.cpuS }
    }
    const variants = {
      udp: pullRun(udp, 'udp'),
      tcp: pullRun(tcp, 'tcp'),
      encUdx: streamRun('encUdx', 'udp', true),
      udx: streamRun('udx', 'udp', false),
      encTcp: streamRun('encTcp', 'tcp', true),
      plainTcp: streamRun('tcp', 'tcp', false),
      ...(rsyncd ? { rsync: () => fresh(async (out) => ({ ms: (await rsyncPull(rsyncd.url, out)).wallMs })) } : {}),
    }
    const res = Object.fromEntries(Object.keys(variants).map((k) => [k, []]))
    for (let i = 0; i < rounds; i++) {
      for (const [k, fn] of Object.entries(variants)) {
        const r = await fn()
        res[k].push(r)
        ctx.log(`  round ${i + 1}/${rounds} ${k.padEnd(8)} ${(r.ms / 1000).toFixed(2)} s  ${(tree.bytes / MiB / (r.ms / 1000)).toFixed(1)} MiB/s`)
      }
    }
    const mibps = (k) => (res[k] ?? []).map((r) => tree.bytes / MiB / (r.ms / 1000))
    const base = (k, label) => ({ label, value: median(mibps(k)) })
    const rsyncBase = { label: rsyncd ? `rsync daemon ${ctx.rsync.version}` : `rsync (skipped: ${ctx.rsync.reason})`, value: rsyncd ? median(mibps('rsync')) : NaN }
    const inner = (k) => median(res[k].map((r) => r.innerMs))
    /** Median CPU seconds per wall second of each side (1.0 = one core busy the whole time). */
    const cpu = (k) => ({
      serverCpuPerWall: median(res[k].map((r) => r.serverCpuS / (r.ms / 1000))),
      clientCpuPerWall: median(res[k].map((r) => r.clientCpuS / (r.ms / 1000))),
    })
    const rows = [
      row({ id: 'udp-vs-enc-udx', label: 'assetsync pull/udp', unit: 'MiB/s', runs: mibps('udp'), baseline: base('encUdx', 'raw encrypted udx stream'), target: { on: 'ratio', op: '>=', value: 0.8, text: '≥ 0.8× raw enc. udx' },
        extra: { secondsMedian: median(res.udp.map((r) => r.ms)) / 1000, syncPhaseMs: inner('udp'), retries: res.udp.reduce((a, r) => a + r.retries, 0), ...cpu('udp'), baselineCpu: cpu('encUdx') } }),
      row({ id: 'udp-vs-rsync', label: 'assetsync pull/udp vs rsync', unit: 'MiB/s', runs: mibps('udp'), baseline: rsyncBase }),
      row({ id: 'tcp-vs-enc-tcp', label: 'assetsync pull/tcp', unit: 'MiB/s', runs: mibps('tcp'), baseline: base('encTcp', 'raw encrypted TCP stream'),
        extra: { secondsMedian: median(res.tcp.map((r) => r.ms)) / 1000, syncPhaseMs: inner('tcp'), ...cpu('tcp'), baselineCpu: cpu('encTcp') } }),
      row({ id: 'tcp-vs-plain-tcp', label: 'assetsync pull/tcp vs plain TCP', unit: 'MiB/s', runs: mibps('tcp'), baseline: base('plainTcp', 'plain node:net TCP stream') }),
      row({ id: 'tcp-vs-rsync', label: 'assetsync pull/tcp vs rsync', unit: 'MiB/s', runs: mibps('tcp'), baseline: rsyncBase, target: { on: 'ratio', op: '>=', value: 1.0, text: '≥ 1.0× rsync' } }),
      row({ id: 'enc-udx', label: 'raw encrypted udx stream (baseline)', unit: 'MiB/s', runs: mibps('encUdx') }),
      row({ id: 'udx', label: 'raw udx stream, no encryption', unit: 'MiB/s', runs: mibps('udx') }),
      row({ id: 'enc-tcp', label: 'raw encrypted TCP stream', unit: 'MiB/s', runs: mibps('encTcp') }),
      row({ id: 'plain-tcp', label: 'plain node:net TCP stream', unit: 'MiB/s', runs: mibps('plainTcp') }),
      ...(rsyncd ? [row({ id: 'rsync', label: `rsync daemon ${ctx.rsync.version}`, unit: 'MiB/s', runs: mibps('rsync') })] : []),
    ]
    const result = {
      params: { treeBytes: tree.bytes, files: tree.files, rounds, measure: 'client process wall time, spawn to exit' },
      rows,
      udpBytesPerSecond: tree.bytes / (median(res.udp.map((r) => r.ms)) / 1000),
    }
    if (ctx.profile) {
      // Diagnostics: the same pull split by file size, with each side's CPU use.
      const parts = [['large files only', ['large/**']], ['medium files only', ['textures/**']], ['small files only', ['scripts/**']]]
      result.diagnostics = []
      for (const [label, patterns] of parts) {
        const bytes = tree.parts[patterns[0].split('/')[0]]
        const r = await pullRun(udp, 'udp', patterns, bytes)()
        const d = { label: `pull/udp, ${label}`, files: r.files, mib: bytes / MiB, seconds: r.ms / 1000, mibps: bytes / MiB / (r.ms / 1000), filesPerS: r.files / (r.ms / 1000), serverCpuPerWall: r.serverCpuS / (r.ms / 1000), clientCpuPerWall: r.clientCpuS / (r.ms / 1000) }
        ctx.log(`  diagnostic ${d.label}: ${d.files} files, ${d.mib.toFixed(0)} MiB in ${d.seconds.toFixed(2)} s = ${d.mibps.toFixed(1)} MiB/s, ${d.filesPerS.toFixed(0)} files/s; CPU/wall server ${d.serverCpuPerWall.toFixed(2)}, client ${d.clientCpuPerWall.toFixed(2)}`)
        result.diagnostics.push(d)
      }
      result.profiles = await profilePair(ctx, {
        name: 'cold pull/udp',
        src,
        env,
        transport: 'udp',
        client: (server, nodeArgs) => fresh((out) => pull({ port: server.port, key: server.key, transport: 'udp', out, env, nodeArgs })),
      })
    }
    return result
  } finally {
    for (const s of stops.reverse()) await s()
  }
}
