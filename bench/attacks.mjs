#!/usr/bin/env node
// Issue 12's connection-level attacks, measured against a built assetsync on loopback (see
// docs/security.md, "Measured"). Point --dist at another build (e.g. main's) for "before" figures:
// the attackers are the same code either way.
//
//   node bench/attacks.mjs                                  every scenario against ./dist
//   node bench/attacks.mjs --only guesses --seconds 10
//   node bench/attacks.mjs --dist /tmp/main/dist --only flood
//
// Scenarios:
//   guesses  wrong-token guesses/s over UDP and TCP, from 1 source address (16 parallel loops) and
//            from 16 addresses (4 loops each); "evaluated" = answered "access token rejected"
//   flood    4,200 idle TCP sockets (16 source addresses) / 4,000 idle UDP sessions (40 addresses),
//            then a client with the token connects: how long it took, or why it failed
//   patterns one costly MANIFEST (issue 12's attack 1 on 5 files of 48-character names; a set that
//            misses the DFA cache on 20,000 paths) while a probe asks for a file every 10 ms: the
//            probe's longest wait is how long the server's loop was held
//   memory   --conns (4096 = MAX_CLIENTS) authenticated connections, then the first --fill of them at
//            the per-connection worst case (subscriptions and cached MANIFEST sets at their largest)
//            until the server's budget refuses: RSS idle per connection, per worst-case connection
import { fork } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'
import { attackerKit, loopbackSources } from './lib/attacker.mjs'
import { LIB, REPO, makeTempDir, removeTempDir, sleep } from './lib/procs.mjs'

const { values: args } = parseArgs({
  options: {
    dist: { type: 'string', default: join(REPO, 'dist') },
    only: { type: 'string', default: 'guesses,flood,memory' },
    seconds: { type: 'string', default: '6' },
    conns: { type: 'string', default: '4096' },
    fill: { type: 'string', default: '4096' },
    transport: { type: 'string', default: 'tcp' },
  },
})
const dist = resolve(args.dist)
const only = new Set(args.only.split(','))
const SECONDS = Number(args.seconds)
const TOKEN = 'correct horse battery staple'
const kit = await attackerKit(dist)
const { dial } = await import(pathToFileURL(`${dist}/protocol/endpoint.js`).href)
const work = makeTempDir('assetsync-attacks-')
const config = join(work, 'config')
const root = join(work, 'root')
mkdirSync(root, { recursive: true })
for (let i = 0; i < 5; i++) writeFileSync(join(root, `file-${i}.txt`), `file ${i}\n`)

/** Forks a server of the build under test; resolves once it listens. */
async function server(transport, opts = {}) {
  const child = fork(join(LIB, 'guard-server.mjs'), [dist, root, transport, JSON.stringify(opts)], {
    env: { ...process.env, ASSETSYNC_CONFIG_DIR: config }, execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const first = await new Promise((res, rej) => {
    child.once('message', res)
    child.once('exit', (code) => rej(new Error(`server exited ${code}`)))
  })
  if (first.event !== 'listening') throw new Error(JSON.stringify(first))
  const stats = (gc = false) => new Promise((res) => {
    const on = (m) => { if (m.event === 'stats') { child.off('message', on); res(m) } }
    child.on('message', on)
    child.send({ cmd: 'stats', gc })
  })
  const close = () => new Promise((res) => { child.once('exit', res); child.send({ cmd: 'close' }); setTimeout(() => child.kill(), 3000) })
  return { port: first.port, key: first.key, pid: first.pid, stats, close }
}

const results = { dist, at: new Date().toISOString() }
const mib = (b) => `${(b / 1048576).toFixed(1)} MiB`

// --- guesses -------------------------------------------------------------------------------------
async function guesses(transport, addresses, loops) {
  const s = await server(transport, { token: TOKEN })
  const tally = {}
  const stopAt = Date.now() + SECONDS * 1000
  const t0 = performance.now()
  await Promise.all(addresses.flatMap((local) => Array.from({ length: loops }, async (_, j) => {
    for (let k = 0; Date.now() < stopAt; k++) {
      const r = await kit.guess(transport, local, '127.0.0.1', s.port, `guess-${local}-${j}-${k}`)
      tally[r] = (tally[r] ?? 0) + 1
      if (r === 'full' || r === 'timeout') await sleep(10)
    }
  })))
  const secs = (performance.now() - t0) / 1000
  const st = await s.stats()
  await s.close()
  const evaluated = tally.rejected ?? 0
  const row = { transport, addresses: addresses.length, loops, seconds: +secs.toFixed(1), evaluatedPerSec: +(evaluated / secs).toFixed(1), tally, server: st.guard?.auth ?? st.codes }
  console.log(`guesses ${transport} from ${addresses.length} address(es) × ${loops} loops: ${row.evaluatedPerSec} evaluated guesses/s over ${row.seconds} s ${JSON.stringify(tally)}`)
  return row
}

if (only.has('guesses')) {
  results.guesses = []
  for (const t of ['udp', 'tcp']) {
    results.guesses.push(await guesses(t, ['127.0.0.1'], 16))
    results.guesses.push(await guesses(t, loopbackSources(16), 4))
  }
}

// --- flood ---------------------------------------------------------------------------------------
async function legitConnects(transport, port, tries = 5) {
  const out = []
  for (let i = 0; i < tries; i++) {
    const t0 = performance.now()
    try {
      const c = await dial({ transport, host: '127.0.0.1', port, token: TOKEN, connectTimeoutMs: 10_000 })
      out.push(Math.round(performance.now() - t0))
      c.destroy()
    } catch (err) {
      out.push(`${err.code} after ${Math.round(performance.now() - t0)} ms`)
    }
    await sleep(500)
  }
  return out
}

async function floodTcp(n = 4200, sources = loopbackSources(16)) {
  const s = await server('tcp', { token: TOKEN })
  const sockets = []
  let refused = 0
  const t0 = performance.now()
  // In batches with pauses, so the server's accept queue (backlog 511) takes them all: past it the
  // kernel silently drops the handshake's last ACK and the "connected" socket never reaches the server.
  for (let b = 0; b < n; b += 200) {
    await Promise.all(Array.from({ length: Math.min(200, n - b) }, async (_, j) => {
      try {
        const sock = await kit.tcpRaw(sources[(b + j) % sources.length], '127.0.0.1', s.port)
        sock.on('error', () => {})
        sock.on('data', () => {})
        sockets.push(sock)
      } catch { refused++ }
    }))
    await sleep(50)
  }
  const openMs = performance.now() - t0
  await sleep(300)
  const alive = () => sockets.filter((x) => !x.destroyed && !x.readableEnded).length
  const legit = await legitConnects('tcp', s.port)
  const st = await s.stats()
  const row = { transport: 'tcp', idle: n, openMs: Math.round(openMs), refusedAtOpen: refused, stillOpen: alive(), legitMs: legit, server: st.codes, rss: st.rss }
  console.log(`flood tcp: ${n} idle sockets opened in ${row.openMs} ms (${refused} failed); a client with the token: ${JSON.stringify(legit)}; idle sockets still open ${row.stillOpen}; server rejected ${JSON.stringify(st.codes)}, RSS ${mib(st.rss)}`)
  for (const x of sockets) x.destroy()
  await s.close()
  return row
}

async function floodUdp(perAddr = 105, sources = loopbackSources(40)) {
  const s = await server('udp', { token: TOKEN })
  const srcs = await Promise.all(sources.map((a) => kit.idleUdpSource(a, '127.0.0.1', s.port)))
  const tally = {}
  const t0 = performance.now()
  await Promise.all(srcs.map(async (src) => {
    for (let i = 0; i < perAddr; i++) {
      try { await src.open(3000); tally.open = (tally.open ?? 0) + 1 } catch (err) { tally[err.message] = (tally[err.message] ?? 0) + 1 }
    }
  }))
  const openMs = performance.now() - t0
  const legit = await legitConnects('udp', s.port)
  const st = await s.stats()
  const row = { transport: 'udp', sessions: tally, openMs: Math.round(openMs), legitMs: legit, server: st.codes, rss: st.rss }
  console.log(`flood udp: idle sessions from ${sources.length} addresses in ${row.openMs} ms ${JSON.stringify(tally)}; a client with the token: ${JSON.stringify(legit)}; server rejected ${JSON.stringify(st.codes)}, RSS ${mib(st.rss)}`)
  for (const x of srcs) await x.close()
  await s.close()
  return row
}

if (only.has('flood')) results.flood = [await floodTcp(), await floodUdp()]
if (only.has('flood-tcp')) results.flood = [await floodTcp()]

// --- patterns ------------------------------------------------------------------------------------
// One costly MANIFEST while a probe client asks for a small file every 10 ms: the longest time the
// probe waited for an answer is how long the server's loop was held.
const ATTACK_1 = '**/' + '*?'.repeat(11) + '#'
/** 64 patterns that keep missing the new matcher's DFA cache on paths over a..p. */
const W2 = Array.from({ length: 64 }, (_, j) => {
  const c = (k) => String.fromCharCode(97 + (k % 16))
  return `**/*${c(j)}*${c(j * 7)}*${c(j * 3)}*?*?*?*?*#`
})
function letters(n, seed) {
  let x = seed
  let out = ''
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) & 0x7fffffff; out += 'abcdefghijklmnop'[(x >>> 16) & 15] }
  return out
}

async function costlyManifest(name, patterns, files) {
  const dir = join(work, `tree-${name}`)
  for (const [i, f] of files.entries()) {
    mkdirSync(join(dir, f, '..'), { recursive: true })
    writeFileSync(join(dir, f), `${i}`)
  }
  writeFileSync(join(dir, 'probe.txt'), 'probe\n')
  const child = fork(join(LIB, 'guard-server.mjs'), [dist, dir, 'tcp', '{}'], { env: { ...process.env, ASSETSYNC_CONFIG_DIR: config }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const first = await new Promise((res) => child.once('message', res))
  const port = first.port
  const probe = await kit.session('tcp', '127.0.0.1', '127.0.0.1', port)
  const attacker = await kit.session('tcp', '127.0.0.3', '127.0.0.1', port)
  let id = 1
  let worst = 0
  let asks = 0
  let stop = false
  const probing = (async () => {
    while (!stop) {
      const t = performance.now()
      const r = await probe.ask({ type: 'request', id: id++, path: 'probe.txt', haveHash: null }, 600_000).catch((e) => ({ type: e.message }))
      worst = Math.max(worst, performance.now() - t)
      if (r.type !== 'response') break
      asks++
      await sleep(10)
    }
  })()
  await sleep(1000)
  const quiet = worst // the probe's longest wait with no attack: this machine's noise
  worst = 0
  const t0 = performance.now()
  const r = await attacker.ask({ type: 'manifest', id: 1_000_000, after: '', patterns }, 600_000).catch((e) => ({ type: e.message }))
  const ms = performance.now() - t0
  await sleep(100)
  stop = true
  await probing
  const answer = r.type === 'error' ? `${r.code}: ${r.message.slice(0, 70)}` : `${r.type} (${r.entries?.length} entries, done ${r.done})`
  const row = { name, paths: files.length, manifestMs: Math.round(ms), answer, probeWorstMs: Math.round(worst), probeQuietMs: Math.round(quiet), probeAnswers: asks }
  console.log(`patterns ${name}: ${files.length} paths; the MANIFEST took ${row.manifestMs} ms -> ${answer}; the probe's longest wait ${row.probeWorstMs} ms`
    + ` (before the attack: ${row.probeQuietMs} ms) over ${asks} requests`)
  probe.destroy()
  attacker.destroy()
  child.kill()
  return row
}

if (only.has('patterns')) {
  results.patterns = [
    // The issue's case: attack 1 on a 5-file tree of 48-character names.
    await costlyManifest('attack-1', [ATTACK_1], Array.from({ length: 5 }, (_, i) => `${String(i)}${'a'.repeat(47)}`)),
    // A set the new matcher accepts but whose DFA cache misses on every path: 20,000 paths.
    await costlyManifest('cache-missing', W2, Array.from({ length: 20_000 }, (_, i) => `deep/${letters(40, i * 3)}/${letters(40, i * 3 + 1)}/${letters(40, i * 3 + 2)}`)),
  ]
}

// --- memory --------------------------------------------------------------------------------------
// Worst case per connection: the subscription set and cached MANIFEST sets at their largest.
// `heavy` is the issue's pattern (picomatch took it; the new matcher refuses it: too many brace
// alternatives); `stateful` fills a set's state cap, `bulky` its text (one long class, ~1 KiB).
const heavy = (tag, i) => `${tag}-${i}/${'ab?c[de]{f,g}/'.repeat(80)}`.slice(0, 1024)
const stateful = (tag, i) => `${tag}${i}/${'x'.repeat(1000)}`
const bulky = (tag, i) => `${tag}-${i}/[${'abcdefghijklmnopqrstuvwxyz'.repeat(40)}]`.slice(0, 1022) + ']'
/** 64 patterns for frame `f` of connection `c` (kind 'heavy' or 'mix': 15 stateful + 49 bulky, then bulky). */
const frame = (kind, tag, f) => Array.from({ length: 64 }, (_, i) =>
  kind === 'heavy' ? heavy(tag, i) : f === 0 && i < 15 ? stateful(tag, i) : bulky(tag, i))

async function memory(transport, conns, fill) {
  const s = await server(transport, {})
  const base = await s.stats(true)
  const sessions = []
  const tally = {}
  const note = (k) => { tally[k] = (tally[k] ?? 0) + 1 }
  let id = 1
  let kind = 'heavy'
  // Phase 1: every connection, authenticated and idle (batches under the handshake-slot pool),
  // each kept alive with a PING a second as a real client's keepalive would.
  const keepalive = setInterval(() => { for (const x of sessions) x.write({ type: 'ping' }) }, 1000)
  const t0 = performance.now()
  for (let c = 0; c < conns; c += 256) {
    await Promise.all(Array.from({ length: Math.min(256, conns - c) }, async (_, j) => {
      const src = loopbackSources(1, 2 + ((c + j) % 64))[0]
      try { sessions.push(await kit.session(transport, src, '127.0.0.1', s.port)) } catch (err) { note(`connect: ${err.message}`) }
    }))
  }
  const idle = await s.stats(true)
  const connectMs = performance.now() - t0
  // Phase 2: the first `fill` connections go to their worst case: 4 SUBSCRIBE frames (256
  // patterns, MAX_SUBSCRIPTIONS_PER_CLIENT) and 17 MANIFEST sets of 64 (main cached up to 17);
  // after the first refusal for the server's budget, the others try one SUBSCRIBE each.
  const t1 = performance.now()
  let serverFull = false
  let worst = 0
  for (const [c, x] of sessions.entries()) {
    const frames = serverFull || c >= fill ? 1 : 4
    for (let f = 0; f < frames; f++) {
      let r = await x.ask({ type: 'subscribe', id: id++, instanceId: 1, subscribe: true, patterns: frame(kind, `c${c}s`, f) }).catch((e) => ({ type: e.message }))
      if (r.type === 'error' && kind === 'heavy' && f === 0 && /alternatives|costly/.test(r.message)) {
        kind = 'mix' // this build refuses the issue's pattern: use the heaviest ones it accepts
        r = await x.ask({ type: 'subscribe', id: id++, instanceId: 1, subscribe: true, patterns: frame(kind, `c${c}s`, f) }).catch((e) => ({ type: e.message }))
      }
      note(`subscribe ${r.type}${r.code ? ` ${r.code} ${r.message.slice(0, 60)}` : ''}`)
      if (r.type === 'error' && /server's memory budget/.test(r.message)) serverFull = true
    }
    if (serverFull || c >= fill) continue
    for (let m = 0; m < 17; m++) {
      const r = await x.ask({ type: 'manifest', id: id++, after: '', patterns: frame(kind, `c${c}m${m}`, 0) }).catch((e) => ({ type: e.message }))
      note(`manifest ${r.type}${r.code ? ` ${r.code} ${r.message.slice(0, 60)}` : ''}`)
      if (r.type === 'error' && /server's memory budget/.test(r.message)) serverFull = true
    }
    worst = c + 1
  }
  const loaded = await s.stats(true)
  clearInterval(keepalive)
  const perIdle = (idle.rss - base.rss) / Math.max(1, sessions.length)
  const perWorst = (loaded.rss - idle.rss) / Math.max(1, worst)
  const row = {
    transport, conns: sessions.length, patterns: kind, worstCase: worst, connectMs: Math.round(connectMs), fillMs: Math.round(performance.now() - t1),
    rssBase: base.rss, rssIdle: idle.rss, rssLoaded: loaded.rss, perIdleConnection: Math.round(perIdle), perWorstConnection: Math.round(perWorst),
    charged: loaded.memory ?? null, tally,
  }
  console.log(`memory ${transport}: ${sessions.length} connections (${(connectMs / 1000).toFixed(1)} s): RSS ${mib(base.rss)} -> ${mib(idle.rss)} idle`
    + ` (${(perIdle / 1024).toFixed(1)} KiB each); ${worst} at the worst case (${kind} patterns) -> ${mib(loaded.rss)}`
    + ` (${mib(perWorst)} each)${loaded.memory ? `; charged ${mib(loaded.memory.used)}` : ''}; ${JSON.stringify(tally)}`)
  for (const x of sessions) x.destroy()
  await s.close()
  return row
}

if (only.has('memory')) results.memory = [await memory(args.transport, Number(args.conns), Number(args.fill))]

const out = join(REPO, 'bench', 'results', 'tmp')
mkdirSync(out, { recursive: true })
writeFileSync(join(out, `attacks-${Date.now()}.json`), JSON.stringify(results, null, 2))
removeTempDir(work)
process.exit(0)
