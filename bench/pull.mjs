#!/usr/bin/env node
// Pull throughput and memory of the BUILT CLI on loopback, run as a user would:
//   1. a cold pull of a >= 256 MiB tree (a few big files + ~2000 small ones) over UDP and TCP,
//      then the second (no-op) pull of the same tree;
//   2. the peak RSS of client and server while pulling one 2 GiB file (client: /usr/bin/time -v
//      if present; server and fallback: /proc/<pid>/status VmRSS sampled every 20 ms + VmHWM).
// Usage: node bench/pull.mjs [--small 2000] [--big 4] [--big-mib 56] [--huge-mib 2048]
//                            [--transports udp,tcp] [--huge-transports udp,tcp] [--skip-huge] [--keep]
// Everything lives in one temp folder (ASSETSYNC_CONFIG_DIR included), removed at the end.
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(ROOT, 'bin', 'assetsync.js')
const MiB = 1024 * 1024

const args = process.argv.slice(2)
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : def
}
const flag = (name) => args.includes(`--${name}`)
const SMALL = Number(opt('small', 2000))
const BIG = Number(opt('big', 4))
const BIG_MIB = Number(opt('big-mib', 56))
const HUGE_MIB = Number(opt('huge-mib', 2048))
const TRANSPORTS = opt('transports', 'udp,tcp').split(',')
const HUGE_TRANSPORTS = opt('huge-transports', 'udp,tcp').split(',')

if (!existsSync(join(ROOT, 'dist', 'cli.js'))) {
  console.log('building dist/ ...')
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' })
}

const work = await mkdtemp(join(tmpdir(), 'assetsync-bench-pull-'))
const env = { ...process.env, ASSETSYNC_CONFIG_DIR: join(work, 'config') }
delete env.ASSETSYNC_TOKEN
const children = new Set()

async function writeRandom(file, size) {
  await mkdir(dirname(file), { recursive: true })
  const fh = await open(file, 'w')
  try {
    for (let off = 0; off < size; off += 8 * MiB) {
      const n = Math.min(8 * MiB, size - off)
      await fh.write(randomBytes(n), 0, n, off)
    }
  } finally {
    await fh.close()
  }
}

/** Reads a field (kB) of /proc/<pid>/status, or null. */
async function procStatus(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(await readFile(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : null
  } catch {
    return null
  }
}

/** Samples VmRSS of `pid` every 20 ms until stop(); returns the max seen and the last VmHWM. */
function sampleRss(pid) {
  let max = 0
  let hwm = 0
  let stopped = false
  const tick = async () => {
    while (!stopped) {
      const rss = await procStatus(pid, 'VmRSS')
      const h = await procStatus(pid, 'VmHWM')
      if (rss === null) break
      if (rss > max) max = rss
      if (h !== null) hwm = h
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  const loop = tick()
  return { stop: async () => { stopped = true; await loop; return { maxRss: max, hwm } } }
}

function run(cmd, argv, { onSpawn } = {}) {
  const t0 = performance.now()
  const p = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(p)
  onSpawn?.(p)
  const out = []
  const err = []
  p.stdout.on('data', (b) => out.push(b))
  p.stderr.on('data', (b) => err.push(b))
  return new Promise((resolve, reject) => {
    p.once('error', reject)
    p.once('close', (code, signal) => {
      children.delete(p)
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - t0 })
    })
  })
}

async function serve(dir, transport) {
  const t0 = performance.now()
  const p = spawn(process.execPath, [BIN, 'serve', dir, '--host', '127.0.0.1', '--port', '0', '--json', '--transport', transport], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(p)
  let buf = ''
  let errText = ''
  p.stderr.on('data', (b) => { errText += b })
  const listening = await new Promise((resolve, reject) => {
    p.stdout.on('data', (b) => {
      buf += b
      for (const line of buf.split('\n').slice(0, -1)) {
        try {
          const e = JSON.parse(line)
          if (e.event === 'listening') resolve(e)
        } catch { /* not yet a whole line */ }
      }
    })
    p.once('close', (code) => reject(new Error(`serve exited ${code}: ${errText}`)))
  })
  p.stdout.resume()
  return {
    proc: p,
    addr: `127.0.0.1:${listening.port}`,
    readyMs: performance.now() - t0,
    stop: () => new Promise((r) => {
      if (p.exitCode !== null) return r()
      p.once('close', () => { children.delete(p); r() })
      p.kill('SIGTERM')
    }),
  }
}

function summaryOf(stdout) {
  const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l))
  const s = lines.find((e) => e.event === 'summary')
  if (!s) throw new Error(`no summary in: ${stdout.slice(-300)}`)
  return s
}

const mibps = (bytes, ms) => (bytes / MiB / (ms / 1000)).toFixed(1)
const results = { machine: { cpus: cpus().length, node: process.version }, tree: {}, pulls: [], huge: [] }

async function pull(addr, transport, out, label) {
  const r = await run(process.execPath, [BIN, 'pull', '--server', addr, '--transport', transport, '--out', out, '--json'])
  if (r.code !== 0) throw new Error(`${label}: pull exited ${r.code}: ${r.stderr}`)
  const s = summaryOf(r.stdout)
  return { label, transport, wallMs: Math.round(r.ms), ...s }
}

try {
  // --- 1. the tree -------------------------------------------------------------------------
  const src = join(work, 'tree')
  console.log(`writing ${BIG} x ${BIG_MIB} MiB + ${SMALL} small files ...`)
  let treeBytes = 0
  for (let i = 0; i < BIG; i++) {
    await writeRandom(join(src, 'big', `pack-${i}.bin`), BIG_MIB * MiB)
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
    const server = await serve(src, transport)
    const out = join(work, `out-${transport}`)
    const cold = await pull(server.addr, transport, out, 'cold')
    const noop = await pull(server.addr, transport, out, 'no-op')
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
  if (!flag('skip-huge')) {
    const hsrc = join(work, 'huge')
    console.log(`writing a ${HUGE_MIB} MiB file ...`)
    await writeRandom(join(hsrc, 'huge.bin'), HUGE_MIB * MiB)
    const haveTime = existsSync('/usr/bin/time')
    for (const transport of HUGE_TRANSPORTS) {
      const server = await serve(hsrc, transport)
      const serverHwmAtReady = await procStatus(server.proc.pid, 'VmHWM')
      const serverSampler = sampleRss(server.proc.pid)
      const out = join(work, `hout-${transport}`)
      const pullArgs = [BIN, 'pull', '--server', server.addr, '--transport', transport, '--out', out, '--json']
      let clientSampler = null
      const r = haveTime
        ? await run('/usr/bin/time', ['-v', process.execPath, ...pullArgs])
        : await run(process.execPath, pullArgs, { onSpawn: (p) => { clientSampler = sampleRss(p.pid) } })
      const srv = await serverSampler.stop()
      const cli = clientSampler ? await clientSampler.stop() : null
      await server.stop()
      if (r.code !== 0) throw new Error(`huge pull exited ${r.code}: ${r.stderr.slice(-500)}`)
      const s = summaryOf(r.stdout)
      const timeRss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)
      const clientPeak = timeRss ? Number(timeRss[1]) * 1024 : cli?.hwm ?? cli?.maxRss ?? 0
      const h = {
        transport,
        bytes: s.bytesReceived,
        wallMs: Math.round(r.ms),
        mibPerSec: Number(mibps(s.bytesReceived, r.ms)),
        clientPeakRssMiB: +(clientPeak / MiB).toFixed(1),
        clientMeasuredBy: timeRss ? '/usr/bin/time -v' : '/proc VmHWM',
        serverReadyMs: Math.round(server.readyMs),
        serverHwmAtReadyMiB: +((serverHwmAtReady ?? 0) / MiB).toFixed(1),
        serverMaxRssDuringPullMiB: +(srv.maxRss / MiB).toFixed(1),
        serverHwmAfterPullMiB: +(srv.hwm / MiB).toFixed(1),
      }
      results.huge.push(h)
      console.log(`${transport} ${HUGE_MIB} MiB file: ${(h.wallMs / 1000).toFixed(1)} s = ${h.mibPerSec} MiB/s; client peak RSS ${h.clientPeakRssMiB} MiB (${h.clientMeasuredBy}); ` +
        `server RSS max ${h.serverMaxRssDuringPullMiB} MiB during the pull, VmHWM ${h.serverHwmAfterPullMiB} MiB (${h.serverHwmAtReadyMiB} MiB after its scan, ready in ${(h.serverReadyMs / 1000).toFixed(1)} s)`)
      await rm(out, { recursive: true, force: true })
    }
  }
  console.log(JSON.stringify(results))
} finally {
  for (const p of children) p.kill('SIGKILL')
  if (!flag('keep')) await rm(work, { recursive: true, force: true })
  else console.log(`kept ${work}`)
}
