// How long each side takes to notice a peer that is gone (issue 14, docs/protocol.md §6.1), with
// real processes on loopback (test/fixtures/peer.mjs running the built code):
//   killed    the peer is SIGKILLed: its UDP port closes and the port probe draws ICMP unreachable
//   vanished  every datagram is dropped (the lossy proxy at loss 1): no ICMP, no RESET; the idle
//             timeout or udx's own retransmission limit decides
//   stalled   the peer is SIGSTOPped for 2, 5 and 10 s, then SIGCONTed: it must never be noticed
//             as gone (kept = the connection is still open HOLD_MS after SIGCONT, on both sides);
//             for a stalled server (its side is not observed), a request sent during the stall
//             is answered after SIGCONT
// Timing goals live here, not in the tests; the tests bound them loosely.
//
// Usage: npm run build && node bench/liveness.mjs [--reps 5] [--vanished-reps 2] [--stalls 2,5,10] [--idle-timeout <ms>]
// Prints one line per measurement, then one JSON line (last line of stdout) with every figure.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import SecretStream from '@hyperswarm/secret-stream'
import { ServerEndpoint, dial } from '../dist/protocol/endpoint.js'
import { startLossyProxy } from './lib/lossy-proxy.mjs'
import { REPO } from './lib/procs.mjs'

const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    'vanished-reps': { type: 'string', default: '2' },
    stalls: { type: 'string', default: '2,5,10' },
    'idle-timeout': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log('usage: npm run build && node bench/liveness.mjs [--reps 5] [--vanished-reps 2] [--stalls 2,5,10] [--idle-timeout <ms>]')
  process.exit(0)
}
const timing = args['idle-timeout'] ? { idleTimeoutMs: Number(args['idle-timeout']) } : {}
const FIXTURE = `${REPO}/test/fixtures/peer.mjs`

function peer(argv) {
  const child = spawn(process.execPath, [FIXTURE, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] })
  const queue = []
  const waiters = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    const m = JSON.parse(line)
    const i = waiters.findIndex((w) => w.event === m.event)
    if (i >= 0) waiters.splice(i, 1)[0].resolve(m)
    else queue.push(m)
  })
  const next = (event) => new Promise((resolve) => {
    const i = queue.findIndex((m) => m.event === event)
    if (i >= 0) resolve(queue.splice(i, 1)[0])
    else waiters.push({ event, resolve })
  })
  return { child, next }
}

/** Resolves with [ms from now until `conn` closes, why]. */
const closing = (conn) => new Promise((resolve) => {
  const t0 = performance.now()
  conn.once('close', (err) => resolve([performance.now() - t0, err?.message ?? 'closed']))
})
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const results = []
const record = (what, ms, why) => {
  results.push({ what, ms: Math.round(ms) })
  console.log(`${what}: ${Math.round(ms)} ms (${why})`)
}
const stalls = []
/** How long a thawed peer is watched for a late drop. */
const HOLD_MS = 3000

for (let rep = 0; rep < Number(args.reps); rep++) {
  // Kill at varying points of the keepalive cycle.
  const wait = 500 + ((rep * 190) % 1000)
  {
    const p = peer(['serve', 'udp'])
    const { port } = await p.next('listening')
    const conn = await dial({ transport: 'udp', host: '127.0.0.1', port, connectTimeoutMs: 5000, ...timing })
    await p.next('connection')
    await sleep(wait)
    const closed = closing(conn)
    p.child.kill('SIGKILL')
    record('udp: client notices a killed server', ...(await closed))
  }
  {
    const server = await ServerEndpoint.listen({ transport: 'udp', host: '127.0.0.1', port: 0, keyPair: SecretStream.keyPair(), token: null, ...timing })
    const accepted = new Promise((resolve) => server.once('connection', resolve))
    const p = peer(['dial', 'udp', String(server.address().port)])
    await p.next('connected')
    const conn = await accepted
    await sleep(wait)
    const closed = closing(conn)
    p.child.kill('SIGKILL')
    record('udp: server notices a killed client', ...(await closed))
    await server.close()
  }
}
for (let rep = 0; rep < Number(args['vanished-reps']); rep++) {
  const server = await ServerEndpoint.listen({ transport: 'udp', host: '127.0.0.1', port: 0, keyPair: SecretStream.keyPair(), token: null, ...timing })
  const proxy = await startLossyProxy({ target: { host: '127.0.0.1', port: server.address().port } })
  const accepted = new Promise((resolve) => server.once('connection', resolve))
  const conn = await dial({ transport: 'udp', host: proxy.host, port: proxy.port, connectTimeoutMs: 5000, ...timing })
  const serverConn = await accepted
  await sleep(700)
  const both = [closing(conn), closing(serverConn)]
  proxy.set({ loss: 1 })
  const [[a, whyA], [b, whyB]] = await Promise.all(both)
  record('udp: client notices a vanished server', a, whyA)
  record('udp: server notices a vanished client', b, whyB)
  await proxy.close()
  await server.close()
}

// Stalls: all lengths at once, a stopped server (its client here) and a stopped client (its server here).
const STALLS_S = args.stalls.split(',').filter(Boolean).map(Number)
async function stalledServer(s) {
  const p = peer(['serve', 'udp', '0', ...(timing.idleTimeoutMs ? [String(timing.idleTimeoutMs)] : [])])
  const { port } = await p.next('listening')
  const conn = await dial({ transport: 'udp', host: '127.0.0.1', port, connectTimeoutMs: 5000, ...timing })
  await p.next('connection')
  let dropped = null
  conn.once('close', (err) => { dropped = err?.message ?? 'closed' })
  p.child.kill('SIGSTOP')
  const t0 = performance.now()
  // Sent to the frozen server; the fixture answers every request with not-found.
  const answer = new Promise((resolve) => {
    const r = conn.request((id) => ({ type: 'request', id, path: 'x', haveHash: null }), () => true)
    r.done.then(() => resolve(['answered', performance.now()]), (err) => resolve([`failed: ${err.message}`, performance.now()]))
  })
  await sleep(s * 1000 - (performance.now() - t0))
  p.child.kill('SIGCONT')
  const thawed = performance.now()
  const [outcome, at] = await answer
  await sleep(HOLD_MS)
  const r = { what: `udp: server stalled ${s} s`, kept: dropped === null, dropped, request: outcome, answeredMs: Math.round(at - thawed) }
  p.child.kill('SIGKILL')
  conn.destroy()
  return r
}
async function stalledClient(s) {
  const server = await ServerEndpoint.listen({ transport: 'udp', host: '127.0.0.1', port: 0, keyPair: SecretStream.keyPair(), token: null, ...timing })
  const accepted = new Promise((resolve) => server.once('connection', resolve))
  const p = peer(['dial', 'udp', String(server.address().port), ...(timing.idleTimeoutMs ? [String(timing.idleTimeoutMs)] : [])])
  await p.next('connected')
  const conn = await accepted
  let dropped = null
  conn.once('close', (err) => { dropped = err?.message ?? 'closed' })
  let clientSaw = null
  p.next('close').then((m) => { clientSaw = m.code ?? 'closed' })
  p.child.kill('SIGSTOP')
  await sleep(s * 1000)
  p.child.kill('SIGCONT')
  await sleep(HOLD_MS)
  const r = { what: `udp: client stalled ${s} s`, kept: dropped === null && clientSaw === null, dropped: dropped ?? clientSaw }
  p.child.kill('SIGKILL')
  await server.close()
  return r
}
for (const r of await Promise.all([...STALLS_S.map(stalledServer), ...STALLS_S.map(stalledClient)])) {
  stalls.push(r)
  const req = r.request ? `; a request sent during the stall: ${r.request} ${r.answeredMs} ms after SIGCONT` : ''
  console.log(`${r.what}: ${r.kept ? `kept (no disconnect seen ${HOLD_MS / 1000} s after SIGCONT${r.request ? '' : ', on either side'})` : `DROPPED (${r.dropped})`}${req}`)
}
console.log(JSON.stringify({ idleTimeoutMs: timing.idleTimeoutMs ?? 'default', results, stalls }))
process.exit(0)
