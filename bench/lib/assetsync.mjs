// Driving the real CLI: `assetsync serve --json` and `assetsync pull` as child processes, and
// what a `watch --exec` hook costs to start.
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, LIB, now, runToEnd, startNode, stop, waitEvent } from './procs.mjs'
import { summary } from './stats.mjs'

/** Environment for spawned assetsync processes: a private config dir (created), no token, no colour. */
export function cliEnv(configDir, extra = {}) {
  mkdirSync(configDir, { recursive: true })
  const env = { ...process.env, ASSETSYNC_CONFIG_DIR: configDir, NO_COLOR: '1', ...extra }
  delete env.ASSETSYNC_TOKEN
  return env
}

/**
 * `assetsync serve <root> --json` on 127.0.0.1:0; resolves once it listens:
 * {p, pid, port, key, files, readyMs, stop()}. `bin`: another build's CLI (default this one's).
 */
export async function startServe(root, { transport = 'udp', env, args = [], nodeArgs = [], timeoutMs = 300_000, untilIndexed = true, bin = BIN } = {}) {
  const p = startNode(bin, ['serve', root, '--host', '127.0.0.1', '--port', '0', '--transport', transport, '--json', ...args], { env, nodeArgs })
  const ev = await waitEvent(p, (e) => e.event === 'listening', timeoutMs, `assetsync serve ${root} to listen`)
  // A large folder is served before its index is complete (issue 15): the rest is hashed in the
  // background. A measurement of transfers waits for it (`untilIndexed`), or it would time the
  // server hashing the tree alongside the transfer (and, with two servers, both of them).
  if (ev.indexing && untilIndexed) await waitEvent(p, (e) => e.event === 'indexed', timeoutMs, `assetsync serve ${root} to finish its index`)
  // `stop(grace)`: SIGTERM, SIGKILL after `grace` ms. The default is short because serve can take
  // ~13 s to exit once UDP clients in other processes have gone (see docs/benchmarks.md); pass a
  // long grace when the process must exit normally (--cpu-prof writes its profile at exit).
  return { p, pid: p.pid, port: ev.port, key: ev.key, files: ev.files, readyMs: ev.at - p.startedAt, stop: (grace = 3000) => stop(p, grace) }
}

/**
 * Memory figures of a child (see report-mem.mjs): the preload writes VmHWM/VmRSS and the maxima
 * of process.memoryUsage() to `file` at exit and on SIGUSR2. Returns {nodeArgs, env} to add.
 */
export function memPreload(file) {
  return { nodeArgs: ['--import', join(LIB, 'report-mem.mjs')], env: { BENCH_MEM_FILE: file } }
}

/** Asks a live process with the preload for its figures (SIGUSR2), then reads them. */
export async function memReport(pid, file) {
  try { process.kill(pid, 'SIGUSR2') } catch { return null }
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 20))
    const m = readMemReport(file)
    if (m) return m
  }
  return null
}

export function readMemReport(file) {
  try {
    const m = JSON.parse(readFileSync(file, 'utf8'))
    rmSync(file, { force: true })
    return m
  } catch {
    return null
  }
}

/**
 * One `assetsync pull` run, timed from spawn to exit. With json, returns the summary event;
 * otherwise parses the human summary line. Throws if it fails.
 */
export async function pull({ host = '127.0.0.1', port, key, transport = 'udp', out, env, json = true, nodeArgs = [], extraArgs = [], timeoutMs = 900_000 }) {
  const args = ['pull', '--server', `${host}:${port}`, '--transport', transport, '--key', key, '--out', out, '--timeout', '60', ...(json ? ['--json'] : []), ...extraArgs]
  const r = await runToEnd(process.execPath, [...nodeArgs, BIN, ...args], { env, timeoutMs, keepText: !json })
  if (r.code !== 0) throw new Error(`assetsync pull exited ${r.code}: ${r.p.stderrText.trim().slice(-500)}`)
  let summary = r.p.events.find((e) => e.event === 'summary') ?? null
  if (!json) {
    const line = r.p.text.at(-1) ?? ''
    const m = /(\d+) files: (\d+) (?:downloaded|to download), (\d+) up to date, (\d+) (?:deleted|to delete); (.+) in ([\d.]+) s/.exec(line)
    if (!m) throw new Error(`unexpected pull output: ${line}`)
    summary = { files: Number(m[1]), downloaded: Number(m[2]), upToDate: Number(m[3]), deleted: Number(m[4]), bytesText: m[5], ms: Number(m[6]) * 1000 }
  }
  const retries = r.p.events.filter((e) => e.event === 'retry').length
  return { wallMs: r.wallMs, summary, retries, pid: r.p.pid }
}

/** Wall-clock ms (comparable with procs.now()) of the output of `date +%s%N`. */
export const dateNsToMs = (text) => Number(BigInt(text.trim()) / 1000n) / 1000

/**
 * What starting a hook costs: spawn(<a hook's first command, `date +%s%N`>, {shell, detached}),
 * the way HookRunner spawns it, → the time it prints; `n` runs, summary() in ms.
 */
export async function hookStartup(n) {
  const ms = []
  for (let i = 0; i < n; i++) {
    const t0 = now()
    const child = spawn('t=$(date +%s%N); printf \'%s\\n\' "$t"', { shell: true, detached: true, stdio: ['pipe', 'pipe', 'inherit'] })
    child.stdin.on('error', () => {}) // EPIPE: the command exits without reading its stdin
    child.stdin.end('{}\n')
    let out = ''
    child.stdout.on('data', (b) => { out += b })
    await new Promise((r) => child.once('close', r))
    ms.push(dateNsToMs(out) - t0)
  }
  return summary(ms)
}
