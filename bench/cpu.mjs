#!/usr/bin/env node
// CPU seconds per GiB on each side of a cold pull, for one or more builds, rounds interleaved
// (A, B, A, B, ...) so load drift hits every build alike. On a shared machine wall-clock
// throughput is noise; CPU time per byte is what a change moves. Each build serves the same
// generated tree with its own `assetsync serve` (CPU from /proc/<pid>/stat over the pull) and
// pulls it with its own CLI (CPU from process.cpuUsage() at exit, all threads, via the
// report-mem preload). Optionally the raw encrypted udx stream (stream-peer.mjs) of the same
// bytes, for the floor.
//
//   node bench/cpu.mjs --builds base=/work/base,now=. --tree mixed --mib 256 --rounds 3 --transport udp --stream
import { mkdirSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { cliEnv, memPreload, readMemReport, startServe } from './lib/assetsync.mjs'
import { cpuSecondsOf, installExitHandlers, loadavg, makeTempDir, removeTempDir, runToEnd, stop } from './lib/procs.mjs'
import { freshOut } from './lib/scenario.mjs'
import { GiB, MiB, median } from './lib/stats.mjs'
import { startStreamSender, streamReceive } from './lib/streams.mjs'
import { bigFile, mixedTree } from './lib/tree.mjs'
import { monoUs } from './lib/profile.mjs'
import { render, summarize } from './lib/cpuprofile.mjs'

const { values: a } = parseArgs({
  options: {
    builds: { type: 'string', default: 'now=.' },
    tree: { type: 'string', default: 'mixed' },
    mib: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
    transport: { type: 'string', default: 'udp' },
    stream: { type: 'boolean', default: false },
    'serve-args': { type: 'string', default: '' },
    'pull-args': { type: 'string', default: '' },
    prof: { type: 'string' },
    part: { type: 'string' },
  },
})
installExitHandlers()
const builds = a.builds.split(',').map((s) => { const [name, dir] = s.split('='); return { name, dir: resolve(dir) } })
const tmp = makeTempDir('assetsync-cpu-')
const bytes = Number(a.mib) * MiB
const log = (s) => console.log(s)
/** --prof <dir>: node --cpu-prof for every serve and pull, profiles in <dir>/<build>-{serve,pull}. */
const prof = (b, what) => (a.prof ? ['--cpu-prof', `--cpu-prof-dir=${join(resolve(a.prof), `${b}-${what}`)}`, '--cpu-prof-interval=500'] : [])
try {
  const src = join(tmp, 'tree')
  if (a.tree === 'large') mkdirSync(src, { recursive: true })
  const tree = a.tree === 'large' ? await bigFile(join(src, 'large.bin'), bytes) : await mixedTree(src, bytes)
  log(`tree ${a.tree}: ${tree.files} files, ${(tree.bytes / MiB).toFixed(0)} MiB; load ${loadavg().join(' ')}`)
  const env = cliEnv(join(tmp, 'config'))
  /** --part large|textures|scripts: pull only that folder of the mixed tree. */
  const want = a.part ? tree.parts[a.part] : tree.bytes
  const partArgs = a.part ? [`${a.part}/**`] : []
  if (a.part) log(`pulling ${a.part}/** only: ${(want / MiB).toFixed(1)} MiB`)
  const servers = []
  for (const b of builds) {
    const s = await startServe(src, { bin: join(b.dir, 'bin', 'assetsync.js'), transport: a.transport, env, args: a['serve-args'].split(' ').filter(Boolean), nodeArgs: prof(b.name, 'serve') })
    servers.push({ ...b, p: s.p, port: s.port, key: s.key })
  }
  let sender = null
  if (a.stream) sender = await startStreamSender({ transport: a.transport, encrypt: true, bytes: tree.bytes })
  const fresh = freshOut({ tmp })
  const memFile = join(tmp, 'mem.json')
  const pre = memPreload(memFile)
  const fromUs = monoUs()
  const res = Object.fromEntries([...builds.map((b) => b.name), ...(sender ? ['stream'] : [])].map((k) => [k, []]))
  for (let i = 0; i < Number(a.rounds); i++) {
    for (const s of servers) {
      const r = await fresh(async (out) => {
        const cpu0 = cpuSecondsOf(s.p.pid)
        const args = ['pull', '--server', `127.0.0.1:${s.port}`, '--transport', a.transport, '--key', s.key, '--out', out, '--json', ...a['pull-args'].split(' ').filter(Boolean), ...partArgs]
        const run = await runToEnd(process.execPath, [...pre.nodeArgs, ...prof(s.name, 'pull'), join(s.dir, 'bin', 'assetsync.js'), ...args], { env: { ...env, ...pre.env }, keepText: false })
        if (run.code !== 0) throw new Error(`${s.name} pull failed: ${run.p.stderrText.slice(-400)}`)
        await new Promise((r) => setTimeout(r, 100))
        const serverCpuS = cpuSecondsOf(s.p.pid) - cpu0
        const sum = run.p.events.find((e) => e.event === 'summary')
        if (sum?.bytesReceived !== want) throw new Error(`${s.name}: received ${sum?.bytesReceived} of ${want}`)
        const m = readMemReport(memFile)
        return { ms: run.wallMs, serverCpuS, clientCpuS: m?.cpuS ?? NaN, threads: m?.threads, load: loadavg()[0] }
      })
      res[s.name].push(r)
      log(`round ${i + 1} ${s.name.padEnd(6)} ${(r.ms / 1000).toFixed(2)} s ${(want / MiB / (r.ms / 1000)).toFixed(1)} MiB/s  CPU/GiB server ${(r.serverCpuS / (want / GiB)).toFixed(2)} client ${(r.clientCpuS / (want / GiB)).toFixed(2)}  load ${r.load}  client threads ${JSON.stringify(r.threads)}`)
    }
    if (sender) {
      const cpu0 = cpuSecondsOf(sender.pid)
      const r0 = await streamReceive({ transport: a.transport, encrypt: true, bytes: tree.bytes, port: sender.port })
      await new Promise((r) => setTimeout(r, 100))
      const r = { ms: r0.wallMs, serverCpuS: cpuSecondsOf(sender.pid) - cpu0, clientCpuS: r0.cpuS, load: loadavg()[0] }
      res.stream.push(r)
      log(`round ${i + 1} stream ${(r.ms / 1000).toFixed(2)} s ${(tree.bytes / MiB / (r.ms / 1000)).toFixed(1)} MiB/s  CPU/GiB sender ${(r.serverCpuS / (tree.bytes / GiB)).toFixed(2)} receiver ${(r.clientCpuS / (tree.bytes / GiB)).toFixed(2)}  load ${r.load}`)
    }
  }
  log('\nmedians (CPU-s per GiB; MiB/s):')
  for (const [k, rs] of Object.entries(res)) {
    const g = (k === 'stream' ? tree.bytes : want) / GiB
    log(`${k.padEnd(8)} server ${median(rs.map((r) => r.serverCpuS / g)).toFixed(2)}  client ${median(rs.map((r) => r.clientCpuS / g)).toFixed(2)}  ${median(rs.map((r) => (g * GiB) / MiB / (r.ms / 1000))).toFixed(1)} MiB/s`)
  }
  const window = { fromUs, toUs: monoUs() }
  for (const s of servers) await stop(s.p, a.prof ? 60_000 : 3000)
  if (a.prof) {
    for (const b of builds) {
      for (const what of ['serve', 'pull']) {
        const dir = join(resolve(a.prof), `${b.name}-${what}`)
        const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
        for (const f of files.slice(0, what === 'pull' ? 1 : 9)) log(render(`${b.name} ${what} ${f}${what === 'serve' ? ' (pulls only)' : ''}`, summarize(join(dir, f), 25, what === 'serve' ? window : null)))
      }
    }
  }
  if (sender) await sender.stop()
} finally {
  removeTempDir(tmp)
}
