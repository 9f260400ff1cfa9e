// Raw stream baselines (stream-peer.mjs) and proxies as child processes.
import { join } from 'node:path'
import { LIB, runToEnd, startNode, stop, waitEvent } from './procs.mjs'

const PEER = join(LIB, 'stream-peer.mjs')

/** A long-lived sender of `bytes` per connection: {port, stop}. */
export async function startStreamSender({ transport, encrypt, bytes }) {
  const p = startNode(PEER, ['send', '--transport', transport, ...(encrypt ? ['--encrypt'] : []), '--bytes', String(bytes)])
  const ev = await waitEvent(p, (e) => e.event === 'listening', 20_000, 'stream sender')
  return { port: ev.port, pid: p.pid, stop: () => stop(p) }
}

/** One receiver process, timed spawn → exit: {wallMs, innerMs, cpuS (receiver's own CPU)}. */
export async function streamReceive({ transport, encrypt, bytes, port, timeoutMs = 600_000 }) {
  const r = await runToEnd(process.execPath, [PEER, 'recv', '--transport', transport, ...(encrypt ? ['--encrypt'] : []), '--port', String(port), '--bytes', String(bytes)], { timeoutMs })
  const done = r.p.events.find((e) => e.event === 'done')
  if (r.code !== 0 || !done) throw new Error(`stream receiver (${transport}${encrypt ? ', encrypted' : ''}) failed: ${r.p.stderrText.trim().slice(-400)}`)
  return { wallMs: r.wallMs, innerMs: done.ms, cpuS: done.cpuS }
}

/** Starts the lossy UDP proxy (kind 'udp') or the TCP delay proxy ('tcp') as a child (proxy-main.mjs); {port, stop() → counters}. */
export async function startProxy(kind, args) {
  const p = startNode(join(LIB, 'proxy-main.mjs'), [kind, ...args])
  const ev = await waitEvent(p, (e) => e.event === 'listening', 20_000, `${kind} proxy`)
  return {
    port: ev.port,
    pid: p.pid,
    async stop() {
      await stop(p)
      const c = p.events.find((e) => e.event === 'counters') ?? null
      if (c) { delete c.at; delete c.event }
      return c
    },
  }
}
