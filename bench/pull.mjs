#!/usr/bin/env node
// Pull throughput and memory of the BUILT CLI on loopback, run as a user would:
//   1. a cold pull of a >= 256 MiB tree (a few big files + ~2000 small ones) over UDP and TCP,
//      then the second (no-op) pull of the same tree;
//   2. the peak RSS of client and server while pulling one 2 GiB file (client: /usr/bin/time -v
//      if present; server and fallback: /proc/<pid>/status VmRSS sampled every 20 ms + VmHWM).
// Usage: node bench/pull.mjs [--small 2000] [--big 4] [--big-mib 56] [--huge-mib 2048]
//                            [--transports udp,tcp] [--huge-transports udp,tcp] [--skip-huge] [--keep]
// Everything lives in one temp folder (ASSETSYNC_CONFIG_DIR included), removed at the end.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { cliEnv, startServe } from './lib/assetsync.mjs'
import { BIN, REPO, installExitHandlers, killAllSync, makeTempDir, memOf, runToEnd, sleep } from './lib/procs.mjs'
import { MiB } from './lib/stats.mjs'
import { bigFile } from './lib/tree.mjs'

const { values: args } = parseArgs({
  options: {
    small: { type: 'string', default: '2000' },
    big: { type: 'string', default: '4' },
    'big-mib': { type: 'string', default: '56' },
    'huge-mib': { type: 'string', default: '2048' },
    transports: { type: 'string', default: 'udp,tcp' },
    'huge-transports': { type: 'string', default: 'udp,tcp' },
    'skip-huge': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log('usage: node bench/pull.mjs [--small 2000] [--big 4] [--big-mib 56] [--huge-mib 2048] [--transports udp,tcp] [--huge-transports udp,tcp] [--skip-huge] [--keep]')
  process.exit(0)
}
const SMALL = Number(args.small)
const BIG = Number(args.big)
const BIG_MIB = Number(args['big-mib'])
const HUGE_MIB = Number(args['huge-mib'])
const TRANSPORTS = args.transports.split(',')
const HUGE_TRANSPORTS = args['huge-transports'].split(',')
/** No real limit on a pull (the old script had none), just a guard against a hang. */
const PULL_TIMEOUT_MS = 3_600_000

if (!existsSync(join(REPO, 'dist', 'cli.js'))) {
  console.log('building dist/ ...')
  execFileSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: REPO, stdio: 'inherit' })
}

installExitHandlers()
// A registered temp dir is removed at exit (and on Ctrl-C) with every child process; --keep keeps it.
const work = args.keep ? await mkdtemp(join(tmpdir(), 'assetsync-bench-pull-')) : makeTempDir('assetsync-bench-pull-')
const env = cliEnv(join(work, 'config'))

/** Samples VmRSS of `pid` every 20 ms until stop(); returns the max seen and the last VmHWM (bytes). */
function sampleRss(pid) {
  let max = 0
  let hwm = 0
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      const m = memOf(pid)
      if (!m || !Number.isFinite(m.rssKiB)) break
      if (m.rssKiB * 1024 > max) max = m.rssKiB * 1024
      if (Number.isFinite(m.hwmKiB)) hwm = m.hwmKiB * 1024
      await sleep(20)
    }
  })()
  return { stop: async () => { stopped = true; await loop; return { maxRss: max, hwm } } }
}

/** The summary event of a finished `pull --json` (without the arrival time procs adds). */
function summaryOf(p) {
  const s = p.events.find((e) => e.event === 'summary')
  if (!s) throw new Error(`no summary in: ${p.text.join('\n').slice(-300)}`)
  const { at: _at, ...summary } = s
  return summary
}

const pullArgs = (addr, transport, out) => [BIN, 'pull', '--server', addr, '--transport', transport, '--out', out, '--json']
const mibps = (bytes, ms) => (bytes / MiB / (ms / 1000)).toFixed(1)
const results = { machine: { cpus: cpus().length, node: process.version }, tree: {}, pulls: [], huge: [] }

async function pull(addr, transport, out, label) {
  const r = await runToEnd(process.execPath, pullArgs(addr, transport, out), { env, timeoutMs: PULL_TIMEOUT_MS })
  if (r.code !== 0) throw new Error(`${label}: pull exited ${r.code}: ${r.p.stderrText}`)
  return { label, transport, wallMs: Math.round(r.wallMs), ...summaryOf(r.p) }
}

try {
  // --- 1. the tree -------------------------------------------------------------------------
  const src = join(work, 'tree')
  console.log(`writing ${BIG} x ${BIG_MIB} MiB + ${SMALL} small files ...`)
  let treeBytes = 0
  await mkdir(join(src, 'big'), { recursive: true })
  for (let i = 0; i < BIG; i++) {
    await bigFile(join(src, 'big', `pack-${i}.bin`), BIG_MIB * MiB)
    treeBytes += BIG_MIB * MiB
  }
  for (let i = 0; i < SMALL; i++) {
    const size = 1024 + Math.floor(Math.random() * 63 * 1024)
    const f = join(src, 'small', String(Math.floor(i / 100)), `asset-${i}.dat`)
    await mkdir(dirname(f), { recursive: true })
    await writeFile(f, randomBytes(size))
    treeBytes += size
  }
  results.tree = { files: BIG + SMALL, bytes: treeBytes, mib: +(treeBytes / MiB).toFixed(1) }
  console.log(`tree: ${results.tree.files} files, ${results.tree.mib} MiB`)

  for (const transport of TRANSPORTS) {
    const server = await startServe(src, { transport, env })
    const addr = `127.0.0.1:${server.port}`
    const out = join(work, `out-${transport}`)
    const cold = await pull(addr, transport, out, 'cold')
    const noop = await pull(addr, transport, out, 'no-op')
    await server.stop()
    await rm(out, { recursive: true, force: true })
    for (const p of [cold, noop]) {
      p.serverReadyMs = Math.round(server.readyMs)
      p.mibPerSecWall = Number(mibps(treeBytes, p.wallMs))
      p.mibPerSecSummary = Number(mibps(treeBytes, Math.max(1, p.ms)))
      results.pulls.push(p)
      console.log(`${transport} ${p.label.padEnd(5)} pull: ${p.files} files, ${(p.bytesReceived / MiB).toFixed(1)} MiB received, ` +
        `wall ${(p.wallMs / 1000).toFixed(2)} s = ${p.mibPerSecWall} MiB/s of tree (in-process ${p.ms} ms = ${p.mibPerSecSummary} MiB/s)`)
    }
  }
  await rm(src, { recursive: true, force: true })

  // --- 2. one 2 GiB file: peak RSS -----------------------------------------------------------
  if (!args['skip-huge']) {
    const hsrc = join(work, 'huge')
    console.log(`writing a ${HUGE_MIB} MiB file ...`)
    await mkdir(hsrc, { recursive: true })
    await bigFile(join(hsrc, 'huge.bin'), HUGE_MIB * MiB)
    const haveTime = existsSync('/usr/bin/time')
    for (const transport of HUGE_TRANSPORTS) {
      const server = await startServe(hsrc, { transport, env })
      const serverHwmAtReady = (memOf(server.pid)?.hwmKiB ?? 0) * 1024
      const serverSampler = sampleRss(server.pid)
      const argv = pullArgs(`127.0.0.1:${server.port}`, transport, join(work, `hout-${transport}`))
      let clientSampler = null
      const r = haveTime
        ? await runToEnd('/usr/bin/time', ['-v', process.execPath, ...argv], { env, timeoutMs: PULL_TIMEOUT_MS })
        : await runToEnd(process.execPath, argv, { env, timeoutMs: PULL_TIMEOUT_MS, onSpawn: (p) => { clientSampler = sampleRss(p.pid) } })
      const srv = await serverSampler.stop()
      const cli = clientSampler ? await clientSampler.stop() : null
      await server.stop()
      if (r.code !== 0) throw new Error(`huge pull exited ${r.code}: ${r.p.stderrText.slice(-500)}`)
      const s = summaryOf(r.p)
      const timeRss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.p.stderrText)
      const clientPeak = timeRss ? Number(timeRss[1]) * 1024 : cli?.hwm ?? cli?.maxRss ?? 0
      const h = {
        transport,
        bytes: s.bytesReceived,
        wallMs: Math.round(r.wallMs),
        mibPerSec: Number(mibps(s.bytesReceived, r.wallMs)),
        clientPeakRssMiB: +(clientPeak / MiB).toFixed(1),
        clientMeasuredBy: timeRss ? '/usr/bin/time -v' : '/proc VmHWM',
        serverReadyMs: Math.round(server.readyMs),
        serverHwmAtReadyMiB: +(serverHwmAtReady / MiB).toFixed(1),
        serverMaxRssDuringPullMiB: +(srv.maxRss / MiB).toFixed(1),
        serverHwmAfterPullMiB: +(srv.hwm / MiB).toFixed(1),
      }
      results.huge.push(h)
      console.log(`${transport} ${HUGE_MIB} MiB file: ${(h.wallMs / 1000).toFixed(1)} s = ${h.mibPerSec} MiB/s; client peak RSS ${h.clientPeakRssMiB} MiB (${h.clientMeasuredBy}); ` +
        `server RSS max ${h.serverMaxRssDuringPullMiB} MiB during the pull, VmHWM ${h.serverHwmAfterPullMiB} MiB (${h.serverHwmAtReadyMiB} MiB after its scan, ready in ${(h.serverReadyMs / 1000).toFixed(1)} s)`)
      await rm(join(work, `hout-${transport}`), { recursive: true, force: true })
    }
  }
  console.log(JSON.stringify(results))
} finally {
  killAllSync() // every child still running, and `work` unless --keep
  if (args.keep) console.log(`kept ${work}`)
}
