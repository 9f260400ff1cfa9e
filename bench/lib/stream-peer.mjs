// One bulk stream between two processes, without assetsync's framing, files, hashing or disk:
// the transport ceiling the cold pull is compared with. Uses assetsync's own transport setup
// (UdpListener/connectUdp from dist: same socket buffers, same cookie handshake), optionally with
// the same Noise layer (@hyperswarm/secret-stream), or plain node:net.
//
//   node bench/lib/stream-peer.mjs send --transport udp|tcp [--encrypt] --bytes N
//       listens on 127.0.0.1:0, prints {"event":"listening","port":P}; sends N bytes in 64 KiB
//       writes to every client that connects (honouring backpressure), until killed.
//   node bench/lib/stream-peer.mjs recv --transport udp|tcp [--encrypt] --port P --bytes N
//       connects, reads N bytes, prints {"event":"done","ms":..,"bytes":N}, exits 0.
//   node bench/lib/stream-peer.mjs fan-send --transport udp [--encrypt] --bytes N
//       (the fan-out floor) listens; prints {"event":"connected","n":k} as clients connect; on
//       each line "go" on stdin sends N bytes to every connected client at once, then prints
//       {"event":"sent","k":round}.
//   node bench/lib/stream-peer.mjs fan-recv --transport udp [--encrypt] --port P --bytes N
//       connects, prints {"event":"ready"}, then {"event":"got","k":round,"at":<wall ms>} each
//       time another N bytes have arrived; runs until killed.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createConnection, createServer } from 'node:net'
import { parseArgs } from 'node:util'
import SecretStream from '@hyperswarm/secret-stream'
import { UdpListener, connectUdp } from '../../dist/protocol/udp.js'

const { positionals, values: a } = parseArgs({
  allowPositionals: true,
  options: {
    transport: { type: 'string', default: 'udp' },
    encrypt: { type: 'boolean', default: false },
    bytes: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
  },
})
const TOTAL = Number(a.bytes)
const CHUNK = 64 * 1024
const block = randomBytes(CHUNK)
const emit = (ev) => process.stdout.write(`${JSON.stringify(ev)}\n`)

async function pump(stream) {
  for (let sent = 0; sent < TOTAL && !stream.destroyed; sent += CHUNK) {
    const piece = sent + CHUNK <= TOTAL ? block : block.subarray(0, TOTAL - sent)
    if (!stream.write(piece)) {
      await new Promise((resolve) => {
        const done = () => { stream.off('drain', done); stream.off('close', done); resolve() }
        stream.on('drain', done)
        stream.on('close', done)
      })
    }
  }
}

async function serveOne(raw) {
  raw.on('error', () => {})
  let s = raw
  if (a.encrypt) {
    s = new SecretStream(false, raw)
    s.on('error', () => {})
    if (!(await s.opened)) return
  }
  await pump(s)
}

/** Wall clock in ms, comparable across processes (as procs.mjs `now`). */
const wall = () => performance.timeOrigin + performance.now()

/** Connects (and opens the Noise layer if --encrypt): the stream to read. */
async function dial() {
  let raw
  if (a.transport === 'udp') raw = await connectUdp(a.host, Number(a.port), { timeoutMs: 10_000 })
  else {
    raw = createConnection({ host: a.host, port: Number(a.port) })
    raw.setNoDelay(true)
    await once(raw, 'connect')
  }
  raw.on('error', () => {})
  let s = raw
  if (a.encrypt) {
    s = new SecretStream(true, raw)
    await s.opened
  }
  return s
}

if (positionals[0] === 'fan-send') {
  const streams = new Set()
  const l = UdpListener.listen('127.0.0.1', 0)
  l.on('connection', (raw) => {
    raw.on('error', () => {})
    void (async () => {
      let s = raw
      if (a.encrypt) {
        s = new SecretStream(false, raw)
        s.on('error', () => {})
        if (!(await s.opened)) return
      }
      streams.add(s)
      s.once('close', () => streams.delete(s))
      emit({ event: 'connected', n: streams.size })
    })()
  })
  emit({ event: 'listening', port: l.address().port })
  let k = 0
  let buf = ''
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (d) => {
    buf += d
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i).trim()
      buf = buf.slice(i + 1)
      if (line !== 'go') continue
      const round = ++k
      void Promise.all([...streams].map((s) => pump(s))).then(() => emit({ event: 'sent', k: round }))
    }
  })
  process.on('SIGTERM', () => process.exit(0))
} else if (positionals[0] === 'fan-recv') {
  const s = await dial()
  let got = 0
  let k = 0
  s.on('data', (b) => {
    got += b.length
    while (got >= (k + 1) * TOTAL) emit({ event: 'got', k: ++k, at: wall() })
  })
  s.on('close', () => process.exit(0))
  emit({ event: 'ready' })
  process.on('SIGTERM', () => process.exit(0))
} else if (positionals[0] === 'send') {
  if (a.transport === 'udp') {
    const l = UdpListener.listen('127.0.0.1', 0)
    l.on('connection', (raw) => { void serveOne(raw) })
    emit({ event: 'listening', port: l.address().port })
  } else {
    const server = createServer((sock) => { sock.setNoDelay(true); void serveOne(sock) })
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    emit({ event: 'listening', port: server.address().port })
  }
  process.on('SIGTERM', () => process.exit(0))
} else if (positionals[0] === 'recv') {
  const t0 = performance.now()
  const s = await dial()
  let got = 0
  await new Promise((resolve, reject) => {
    s.on('error', reject)
    s.on('close', () => reject(new Error(`stream closed after ${got} of ${TOTAL} bytes`)))
    s.on('data', (b) => {
      got += b.length
      if (got >= TOTAL) resolve()
    })
  })
  const c = process.cpuUsage()
  emit({ event: 'done', ms: performance.now() - t0, bytes: got, cpuS: (c.user + c.system) / 1e6 })
  process.exit(0)
} else {
  console.error('usage: stream-peer.mjs send|recv ...')
  process.exit(2)
}
