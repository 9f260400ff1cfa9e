// A plain-JS port of test/helpers/lossy-proxy.ts (loss + fixed delay + jitter + duplicate; the
// bench does not need reorder or filters): a userspace UDP proxy, since kernel netem is not
// available here. Same PRNG (mulberry32), same per-client/per-direction seeding, same 4 MiB
// socket buffers, so a seed gives the same drop pattern as the test helper.
//
//   client ──► proxy (127.0.0.1:port) ──► upstream socket (one per client source) ──► target
//
// As a child process:  node bench/lib/lossy-proxy.mjs --target-port P [--loss 0.02] [--delay 20]
//   prints {"event":"listening","port":N}; on SIGTERM prints {"event":"counters",...} and exits.
import { createSocket } from 'node:dgram'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { mulberry32 } from './tree.mjs'

const SOCKET_BUFFERS = { recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 4 * 1024 * 1024 }

/** Starts the proxy; resolves {host, port, counters, close()}. */
export async function startLossyProxy({ target, loss = 0, delayMs = 0, jitterMs = 0, duplicate = 0, seed = 1, host = '127.0.0.1' }) {
  const counters = { received: 0, forwarded: 0, dropped: 0, duplicated: 0, bytesForwarded: 0, clients: 0 }
  const timers = new Set()
  const clients = new Map()
  let closed = false
  const front = createSocket({ type: 'udp4', ...SOCKET_BUFFERS })
  front.on('error', () => {})

  const later = (ms, fn) => {
    const t = setTimeout(() => { timers.delete(t); fn() }, ms)
    timers.add(t)
  }
  const lane = (laneSeed, send) => {
    const rand = mulberry32(laneSeed)
    const out = (buf) => {
      if (closed) return
      counters.forwarded++
      counters.bytesForwarded += buf.length
      send(buf)
    }
    return (buf) => {
      counters.received++
      // Four draws per datagram in a fixed order, as in the TS helper.
      const rLoss = rand()
      const rDup = rand()
      const rDelay1 = rand()
      const rDelay2 = rand()
      if (rLoss < loss) { counters.dropped++; return }
      const copies = rDup < duplicate ? 2 : 1
      if (copies === 2) counters.duplicated++
      for (let i = 0; i < copies; i++) {
        const d = delayMs + jitterMs * (i === 0 ? rDelay1 : rDelay2)
        if (d <= 0) out(buf)
        else later(d, () => out(buf))
      }
    }
  }
  front.on('message', (buf, rinfo) => {
    if (closed) return
    const key = `${rinfo.address}|${rinfo.port}`
    let c = clients.get(key)
    if (!c) {
      const upstream = createSocket({ type: 'udp4', ...SOCKET_BUFFERS })
      upstream.on('error', () => {})
      const n = counters.clients++
      const s = (seed * 0x9e3779b1 + n * 2) >>> 0
      c = {
        upstream,
        toTarget: lane(s, (b) => upstream.send(b, target.port, target.host)),
        toClient: lane(s + 1, (b) => front.send(b, rinfo.port, rinfo.address)),
      }
      const client = c
      upstream.on('message', (b, from) => {
        if (closed || from.port !== target.port || from.address !== target.host) return
        client.toClient(b)
      })
      clients.set(key, c)
    }
    c.toTarget(buf)
  })
  await new Promise((resolve, reject) => {
    front.once('error', reject)
    front.bind(0, host, () => { front.off('error', reject); resolve() })
  })
  return {
    host,
    port: front.address().port,
    counters,
    async close() {
      if (closed) return
      closed = true
      for (const t of timers) clearTimeout(t)
      const sockets = [front, ...[...clients.values()].map((c) => c.upstream)]
      await Promise.all(sockets.map((s) => new Promise((r) => { try { s.close(() => r()) } catch { r() } })))
    },
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values: a } = parseArgs({
    options: {
      'target-port': { type: 'string' },
      'target-host': { type: 'string', default: '127.0.0.1' },
      loss: { type: 'string', default: '0' },
      delay: { type: 'string', default: '0' },
      seed: { type: 'string', default: '1' },
    },
  })
  const proxy = await startLossyProxy({
    target: { host: a['target-host'], port: Number(a['target-port']) },
    loss: Number(a.loss),
    delayMs: Number(a.delay),
    seed: Number(a.seed),
  })
  const finish = async () => {
    process.stdout.write(`${JSON.stringify({ event: 'counters', ...proxy.counters })}\n`)
    await proxy.close()
    process.exit(0)
  }
  process.on('SIGTERM', finish)
  process.on('SIGINT', finish)
  process.stdout.write(`${JSON.stringify({ event: 'listening', port: proxy.port })}\n`)
}
