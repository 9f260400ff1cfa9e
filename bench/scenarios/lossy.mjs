// 3. Lossy link. assetsync pull/udp (and the raw encrypted udx stream) through the userspace UDP
// proxy at 2 % loss + 20 ms delay each way (40 ms RTT); rsync, and assetsync pull/tcp, through a
// TCP proxy that delays every chunk by 20 ms each way. Loss models differ on purpose — without
// netem, loss cannot be injected into a kernel TCP connection:
//   UDP rows: i.i.d. 2 % datagram loss per direction + 20 ms one-way delay (seeded per run)
//   TCP rows: 20 ms one-way delay, no loss; each proxy leg is a lossless loopback TCP connection
import { pull } from '../lib/assetsync.mjs'
import { profilePair } from '../lib/profile.mjs'
import { row } from '../lib/report.mjs'
import { rsyncPull, startRsyncDaemon } from '../lib/rsync.mjs'
import { freshOut, serveUdpTcp, treeSetup } from '../lib/scenario.mjs'
import { MiB, median } from '../lib/stats.mjs'
import { startProxy, startStreamSender, streamReceive } from '../lib/streams.mjs'
import { mixedTree } from '../lib/tree.mjs'

export const id = 'lossy'
export const title = 'Cold pull over a lossy, delayed link'

const LOSS = 0.02
const DELAY_MS = 20

export async function run(ctx) {
  const size = ctx.quick ? 8 * MiB : 64 * MiB
  const rounds = ctx.runs ?? (ctx.quick ? 1 : 3)
  const { src, env, tree } = await treeSetup(ctx, (dir) => mixedTree(dir, size, 3))
  ctx.log(`  ${tree.files} files, ${(tree.bytes / MiB).toFixed(0)} MiB; loss ${LOSS * 100} %, delay ${DELAY_MS} ms each way`)
  const stops = []
  const fresh = freshOut(ctx)
  /** Runs fn(proxyPort) through a fresh proxy (its own seed per run); returns {ms, counters}. */
  const viaProxy = async (kind, targetPort, seed, fn) => {
    const args = kind === 'udp'
      ? ['--target-port', String(targetPort), '--loss', String(LOSS), '--delay', String(DELAY_MS), '--seed', String(seed)]
      : ['--target-port', String(targetPort), '--delay', String(DELAY_MS)]
    const proxy = await startProxy(kind, args)
    let ms
    try {
      ms = await fn(proxy.port)
    } catch (err) {
      await proxy.stop()
      throw err
    }
    return { ms, counters: await proxy.stop() }
  }
  try {
    const { udp, tcp } = await serveUdpTcp(src, env, stops)
    const enc = await startStreamSender({ transport: 'udp', encrypt: true, bytes: tree.bytes })
    stops.push(enc.stop)
    let rsyncd = null
    if (ctx.rsync.ok) {
      rsyncd = await startRsyncDaemon(src, ctx.tmp)
      stops.push(rsyncd.stop)
    }
    const res = { udp: [], encUdx: [], tcp: [], rsync: [] }
    const pullVia = (server, transport) => (port) => fresh(async (out) => {
      const r = await pull({ port, key: server.key, transport, out, env })
      if (r.summary.bytesReceived !== tree.bytes) throw new Error(`lossy pull/${transport} received ${r.summary.bytesReceived} of ${tree.bytes}`)
      return r.wallMs
    })
    for (let i = 0; i < rounds; i++) {
      const seed = 1000 + i
      res.udp.push(await viaProxy('udp', udp.port, seed, pullVia(udp, 'udp')))
      res.encUdx.push(await viaProxy('udp', enc.port, seed, async (port) => (await streamReceive({ transport: 'udp', encrypt: true, bytes: tree.bytes, port })).wallMs))
      res.tcp.push(await viaProxy('tcp', tcp.port, seed, pullVia(tcp, 'tcp')))
      if (rsyncd) res.rsync.push(await viaProxy('tcp', rsyncd.port, seed, (port) => fresh(async (out) => (await rsyncPull(`rsync://127.0.0.1:${port}/mod/`, out)).wallMs)))
      const f = (r) => (r ? `${(r.ms / 1000).toFixed(2)} s` : '–')
      ctx.log(`  round ${i + 1}/${rounds}: pull/udp ${f(res.udp[i])} (dropped ${res.udp[i].counters?.dropped} of ${res.udp[i].counters?.received} datagrams), enc udx ${f(res.encUdx[i])}, pull/tcp ${f(res.tcp[i])}, rsync ${f(res.rsync[i])}`)
    }
    const mibps = (k) => res[k].map((r) => tree.bytes / MiB / (r.ms / 1000))
    const rsyncBase = { label: rsyncd ? 'rsync via 20 ms TCP delay proxy (no loss)' : `rsync (skipped: ${ctx.rsync.reason})`, value: rsyncd ? median(mibps('rsync')) : NaN }
    const dropped = (k) => res[k].reduce((a, r) => a + (r.counters?.dropped ?? 0), 0) / Math.max(1, res[k].reduce((a, r) => a + (r.counters?.received ?? 0), 0))
    const rows = [
      row({ id: 'udp-vs-rsync', label: 'pull/udp, 2 % loss + 20 ms', unit: 'MiB/s', runs: mibps('udp'), baseline: rsyncBase, extra: { droppedFraction: dropped('udp') } }),
      row({ id: 'udp-vs-enc-udx', label: 'pull/udp vs raw enc. udx, same link', unit: 'MiB/s', runs: mibps('udp'), baseline: { label: 'raw encrypted udx stream, 2 % loss + 20 ms', value: median(mibps('encUdx')) }, target: { on: 'ratio', op: '>=', value: 0.9, text: '≥ 0.9× raw enc. udx' } }),
      row({ id: 'tcp-vs-rsync', label: 'pull/tcp, 20 ms, no loss', unit: 'MiB/s', runs: mibps('tcp'), baseline: rsyncBase }),
      row({ id: 'enc-udx', label: 'raw encrypted udx, 2 % loss + 20 ms', unit: 'MiB/s', runs: mibps('encUdx'), extra: { droppedFraction: dropped('encUdx') } }),
      ...(rsyncd ? [row({ id: 'rsync', label: 'rsync, 20 ms, no loss', unit: 'MiB/s', runs: mibps('rsync') })] : []),
    ]
    const result = {
      params: { treeBytes: tree.bytes, files: tree.files, rounds, udp: `i.i.d. ${LOSS * 100} % loss each direction + ${DELAY_MS} ms one-way delay (userspace proxy)`, tcp: `${DELAY_MS} ms one-way delay per chunk, no loss (userspace TCP proxy, 16 MiB in flight per direction max)` },
      rows,
    }
    if (ctx.profile) {
      result.profiles = await profilePair(ctx, {
        name: 'lossy pull/udp', src, env, transport: 'udp',
        client: (server, nodeArgs) => viaProxy('udp', server.port, 1000, (port) => fresh((out) => pull({ port, key: server.key, transport: 'udp', out, env, nodeArgs }))),
      })
    }
    return result
  } finally {
    for (const s of stops.reverse()) await s()
  }
}
