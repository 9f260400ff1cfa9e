// A tiny TCP proxy that delays every chunk by a fixed time in each direction (no loss: without
// netem, loss cannot be injected into a kernel TCP connection). Each leg is a real loopback TCP
// connection whose own RTT is ~0; the proxy holds at most `capBytes` per direction in flight
// (it pauses the reading side above that), so the end-to-end path behaves like a link with a
// 2×delay RTT and a `capBytes` bottleneck buffer. Counts the bytes it carries.
//
// As a child process: bench/lib/proxy-main.mjs tcp --target-port P [--delay 20].
import { createConnection, createServer } from 'node:net'

export async function startTcpDelayProxy({ target, delayMs = 0, capBytes = 16 * 1024 * 1024, host = '127.0.0.1' }) {
  const counters = { connections: 0, bytesToTarget: 0, bytesToClient: 0 }
  const sockets = new Set()
  const timers = new Set()
  /** Forwards src → dst, each chunk `delayMs` later (same delay for all, so order is kept). */
  const pipe = (src, dst, key) => {
    let pending = 0
    src.on('data', (chunk) => {
      counters[key] += chunk.length
      pending += chunk.length
      if (pending > capBytes) src.pause()
      const t = setTimeout(() => {
        timers.delete(t)
        pending -= chunk.length
        if (!dst.destroyed) dst.write(chunk)
        if (pending <= capBytes / 2 && src.isPaused()) src.resume()
      }, delayMs)
      timers.add(t)
    })
    src.on('end', () => {
      const t = setTimeout(() => { timers.delete(t); if (!dst.destroyed) dst.end() }, delayMs)
      timers.add(t)
    })
  }
  const server = createServer((client) => {
    counters.connections++
    const upstream = createConnection({ host: target.host, port: target.port })
    for (const s of [client, upstream]) {
      s.setNoDelay(true)
      sockets.add(s)
      s.on('error', () => { client.destroy(); upstream.destroy() })
      s.on('close', () => { sockets.delete(s); if (s === client) upstream.destroy(); else client.destroy() })
    }
    pipe(client, upstream, 'bytesToTarget')
    pipe(upstream, client, 'bytesToClient')
  })
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(0, host, resolve) })
  return {
    host,
    port: server.address().port,
    counters,
    async close() {
      for (const t of timers) clearTimeout(t)
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(() => r()))
    },
  }
}
