// Loopback throughput of one stream, four ways, in one process (sender and receiver share the
// event loop, as a serve + pull on one machine would not; compare the rows with each other):
//   assetsync/udp  ServerEndpoint + dial over udx, Noise (secret-stream), CHUNK frames, backpressure
//   assetsync/tcp  the same over node:net
//   raw udx        two udx-native streams on loopback, no handshake, no encryption
//   raw tcp        plain node:net
// Extra rows (`--investigate`) isolate where the encrypted udx stream loses time.
//
// Usage: npm run build && node bench/transport.mjs [--mib 256] [--investigate]
// Prints a table, then one JSON line (last line of stdout) with every figure in MiB/s.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createConnection, createServer } from 'node:net'
import { parseArgs } from 'node:util'
import SecretStream from '@hyperswarm/secret-stream'
import UDX from 'udx-native'
import { CHUNK_SIZE } from '../dist/limits.js'
import { ServerEndpoint, dial } from '../dist/protocol/endpoint.js'
import { MiB } from './lib/stats.mjs'

const { values: args } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    reps: { type: 'string', default: '1' },
    investigate: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log('usage: npm run build && node bench/transport.mjs [--mib 256] [--reps 1] [--investigate]')
  process.exit(0)
}
const TOTAL = Number(args.mib) * MiB
const HOST = '127.0.0.1'
const block = randomBytes(CHUNK_SIZE)

/** Writes TOTAL bytes to a Duplex in `size`-byte writes, honouring write() === false. */
async function pump(stream, size = CHUNK_SIZE) {
  const buf = size === CHUNK_SIZE ? block : randomBytes(size)
  for (let sent = 0; sent < TOTAL; sent += size) {
    if (!stream.write(sent + size <= TOTAL ? buf : buf.subarray(0, TOTAL - sent))) await once(stream, 'drain')
  }
}

/** Resolves when `stream` has delivered TOTAL bytes. */
function sink(stream) {
  return new Promise((resolve, reject) => {
    let got = 0
    stream.on('error', reject)
    stream.on('data', (b) => {
      got += b.length
      if (got >= TOTAL) resolve(got)
    })
  })
}

/** Runs fn; MiB/s plus `cpu`: process CPU time / wall time (1.0 = one core busy throughout). */
async function timed(fn) {
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  const extra = await fn()
  const c = process.cpuUsage(c0)
  const ms = performance.now() - t0
  return { mibps: TOTAL / MiB / (ms / 1000), seconds: ms / 1000, cpu: Number(((c.user + c.system) / 1000 / ms).toFixed(2)), ...(extra ?? {}) }
}

// --- assetsync over udp / tcp ------------------------------------------------------------
async function assetsync(transport) {
  const server = await ServerEndpoint.listen({ transport, host: HOST, port: 0, keyPair: SecretStream.keyPair(), token: null })
  server.on('connection', (conn) => {
    conn.on('message', async (msg) => {
      if (msg.type !== 'request') return
      try {
        for (let off = 0; off < TOTAL; off += CHUNK_SIZE) {
          const final = off + CHUNK_SIZE >= TOTAL
          await conn.sendChunk({ type: 'chunk', id: msg.id, offset: off, final, data: block })
        }
      } catch { /* closed */ }
    })
  })
  const conn = await dial({ transport, host: HOST, port: server.address().port })
  try {
    return await timed(async () => {
      let got = 0
      await conn.request((id) => ({ type: 'request', id, path: 'bench', haveHash: null }), (r) => {
        if (r.type !== 'chunk') throw new Error(`unexpected ${r.type}`)
        got += r.data.byteLength
        return r.final
      }).done
      if (got !== TOTAL) throw new Error(`got ${got} of ${TOTAL}`)
    })
  } finally {
    conn.destroy()
    await server.close()
  }
}

// --- raw udx ---------------------------------------------------------------------------------
async function udxPair({ recvBuffer = 0 } = {}) {
  const udx = new UDX()
  const a = udx.createSocket()
  const b = udx.createSocket()
  a.bind(0, HOST)
  b.bind(0, HOST)
  if (recvBuffer) for (const s of [a, b]) { s.setRecvBufferSize(recvBuffer); s.setSendBufferSize(recvBuffer) }
  const sa = udx.createStream(1)
  const sb = udx.createStream(2)
  sa.connect(a, 2, b.address().port, HOST)
  sb.connect(b, 1, a.address().port, HOST)
  const close = async () => {
    sa.destroy()
    sb.destroy()
    await Promise.all([a.close(), b.close()])
  }
  const rxEvents = { n: 0 }
  sb.on('data', () => rxEvents.n++)
  return { sa, sb, close, stats: () => ({ mtu: sa.mtu, retransmits: sa.retransmits, packetsTx: sa.packetsTransmitted, rxDataEvents: rxEvents.n }) }
}

async function rawUdx(opts = {}) {
  const { sa, sb, close, stats } = await udxPair(opts)
  try {
    const r = await timed(async () => { await Promise.all([pump(sa, opts.writeSize), sink(sb)]) })
    return { ...r, ...stats() }
  } finally {
    await close()
  }
}

/** secret-stream over raw udx, no Connection/codec: isolates the encryption layer's cost. */
async function noiseOverUdx(writeSize = CHUNK_SIZE) {
  // Same 4 MiB socket buffers as assetsync's sockets, so only the Connection layer differs.
  const { sa, sb, close, stats } = await udxPair({ recvBuffer: 4 * MiB })
  const ea = new SecretStream(true, sa)
  const eb = new SecretStream(false, sb)
  try {
    await Promise.all([ea.opened, eb.opened])
    const r = await timed(async () => { await Promise.all([pump(ea, writeSize), sink(eb)]) })
    return { ...r, ...stats() }
  } finally {
    ea.destroy()
    eb.destroy()
    await close()
  }
}

// --- raw tcp -------------------------------------------------------------------------------
async function rawTcp(noise = false) {
  let accepted
  const server = createServer((s) => { s.setNoDelay(true); accepted(s) })
  const gotSocket = new Promise((resolve) => { accepted = resolve })
  await new Promise((resolve) => server.listen(0, HOST, resolve))
  const c = createConnection({ host: HOST, port: server.address().port })
  c.setNoDelay(true)
  await once(c, 'connect')
  const s = await gotSocket
  let tx = c
  let rx = s
  if (noise) {
    tx = new SecretStream(true, c)
    rx = new SecretStream(false, s)
    await Promise.all([tx.opened, rx.opened])
  }
  try {
    return await timed(async () => { await Promise.all([pump(tx), sink(rx)]) })
  } finally {
    tx.destroy()
    rx.destroy()
    c.destroy()
    s.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
}

const rows = [
  ['assetsync/udp (Noise + frames over udx)', () => assetsync('udp')],
  ['assetsync/tcp (Noise + frames over TCP)', () => assetsync('tcp')],
  ['raw udx-native (no handshake, no crypto)', () => rawUdx()],
  ['raw node:net TCP', () => rawTcp()],
]
if (args.investigate) {
  rows.push(
    ['raw udx, 4 MiB socket buffers', () => rawUdx({ recvBuffer: 4 * MiB })],
    ['raw udx, 4 MiB buffers, 1 KiB writes', () => rawUdx({ recvBuffer: 4 * MiB, writeSize: 1024 })],
    ['raw udx, 4 MiB buffers, 1 MiB writes', () => rawUdx({ recvBuffer: 4 * MiB, writeSize: MiB })],
    ['secret-stream over raw udx (4 MiB buffers)', () => noiseOverUdx()],
    ['  ... 16 KiB writes', () => noiseOverUdx(16 * 1024)],
    ['  ... 1 MiB writes', () => noiseOverUdx(MiB - 64)],
    ['secret-stream over node:net TCP', () => rawTcp(true)],
  )
}

const REPS = Math.max(1, Number(args.reps))
const results = {}
console.log(`one stream on loopback, ${TOTAL / MiB} MiB, ${CHUNK_SIZE / 1024} KiB writes unless noted, median of ${REPS}, node ${process.version}`)
console.log(`${'path'.padEnd(46)} ${'MiB/s'.padStart(8)} ${'min'.padStart(7)} ${'max'.padStart(7)}  notes`)
for (const [name, run] of rows) {
  const runs = []
  for (let i = 0; i < REPS; i++) runs.push(await run())
  runs.sort((x, y) => x.mibps - y.mibps)
  const r = runs[Math.floor(runs.length / 2)]
  const lo = runs[0].mibps
  const hi = runs[runs.length - 1].mibps
  results[name] = { ...r, min: lo, max: hi }
  const notes = Object.entries(r).filter(([k]) => k !== 'mibps' && k !== 'seconds').map(([k, v]) => `${k}=${v}`).join(' ')
  console.log(`${name.padEnd(46)} ${r.mibps.toFixed(1).padStart(8)} ${lo.toFixed(1).padStart(7)} ${hi.toFixed(1).padStart(7)}  ${notes}`)
}
console.log(JSON.stringify({ bench: 'transport', mib: TOTAL / MiB, reps: REPS, node: process.version, results }))
