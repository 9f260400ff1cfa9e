// Child processes for the bench: spawn (each in its own process group), collect NDJSON/stdout,
// stop, and kill every one of them when the bench exits or is interrupted. Also /proc readers
// (RSS, peak RSS, CPU ticks) and temp-dir bookkeeping, so nothing outlives the run.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO = fileURLToPath(new URL('../..', import.meta.url))
export const BIN = join(REPO, 'bin', 'assetsync.js')
export const LIB = fileURLToPath(new URL('.', import.meta.url))

/** Wall clock in ms with sub-ms resolution, comparable across processes on one machine. */
export const now = () => performance.timeOrigin + performance.now()
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const live = new Set()
const tempDirs = new Set()

/** A temp dir (outside the repo) removed at exit even if the bench is interrupted. */
export function makeTempDir(prefix = 'assetsync-bench-') {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

export function removeTempDir(dir) {
  rmSync(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}

/**
 * Spawns a process in its own process group (so its children, e.g. rsync's per-connection forks
 * or a watch hook's shell, are killed with it). Collects stdout lines (JSON ones parsed, with
 * their arrival time) and stderr; `exited` resolves with {code, signal, at}.
 */
export function start(cmd, args, { env = process.env, cwd, stdin = 'ignore', keepText = true } = {}) {
  const startedAt = now()
  const proc = spawn(cmd, args, { env, cwd, stdio: [stdin, 'pipe', 'pipe'], detached: true })
  const p = { proc, pid: proc.pid, startedAt, events: [], text: [], stderrText: '', listeners: new Set() }
  live.add(p)
  let buf = ''
  proc.stdout.setEncoding('utf8')
  proc.stdout.on('data', (chunk) => {
    const at = now()
    buf += chunk
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      if (!line.trim()) continue
      let ev = null
      if (line.startsWith('{')) {
        try { ev = { at, ...JSON.parse(line) } } catch { /* not JSON after all */ }
      }
      if (ev) {
        p.events.push(ev)
        for (const fn of p.listeners) fn(ev)
      } else if (keepText) p.text.push(line)
    }
  })
  proc.stderr.setEncoding('utf8')
  proc.stderr.on('data', (s) => { if (p.stderrText.length < 20_000) p.stderrText += s })
  p.exited = new Promise((resolve) => {
    proc.once('error', (err) => { p.stderrText += String(err); resolve({ code: -1, signal: null, at: now() }) })
    proc.once('close', (code, signal) => { live.delete(p); resolve({ code, signal, at: now() }) })
  })
  p.alive = () => proc.exitCode === null && proc.signalCode === null
  return p
}

/** Spawns `node [nodeArgs] script args`. */
export function startNode(script, args, opts = {}) {
  return start(process.execPath, [...(opts.nodeArgs ?? []), script, ...args], opts)
}

/** Resolves with the first event (past or future) of `p` that satisfies `pred`. */
export function waitEvent(p, pred, ms, what) {
  const found = p.events.find(pred)
  if (found) return Promise.resolve(found)
  return new Promise((resolve, reject) => {
    const done = (fn, v) => { clearTimeout(t); p.listeners.delete(on); fn(v) }
    const on = (ev) => { if (pred(ev)) done(resolve, ev) }
    const t = setTimeout(() => done(reject, new Error(`timed out after ${ms} ms waiting for ${what}; stderr: ${p.stderrText.slice(-600)}`)), ms)
    p.listeners.add(on)
    void p.exited.then(({ code, signal }) => done(reject, new Error(`process exited (${code ?? signal}) while waiting for ${what}; stderr: ${p.stderrText.slice(-600)}`)))
  })
}

export { waitFor } from './wait.mjs'

function signalGroup(p, sig) {
  try { process.kill(-p.pid, sig) } catch {
    try { p.proc.kill(sig) } catch { /* gone */ }
  }
}

/** SIGTERM (whole group), SIGKILL after `graceMs`; resolves when it has exited. */
export async function stop(p, graceMs = 5000) {
  if (!p) return null
  if (p.alive()) signalGroup(p, 'SIGTERM')
  const t = setTimeout(() => signalGroup(p, 'SIGKILL'), graceMs)
  const r = await p.exited
  clearTimeout(t)
  // The group may hold children that outlived the leader (hook shells, rsync forks).
  signalGroup(p, 'SIGKILL')
  return r
}

/** Runs a process to completion with a time limit; returns {code, wallMs, p}. `opts.onSpawn(p)` sees it first. */
export async function runToEnd(cmd, args, opts = {}) {
  const p = start(cmd, args, opts)
  opts.onSpawn?.(p)
  const limit = opts.timeoutMs ?? 600_000
  const t = setTimeout(() => { p.timedOut = true; signalGroup(p, 'SIGKILL') }, limit)
  const r = await p.exited
  clearTimeout(t)
  if (p.timedOut) throw new Error(`${cmd} ${args.join(' ').slice(0, 200)} timed out after ${limit} ms`)
  return { code: r.code, wallMs: r.at - p.startedAt, p }
}

/** Synchronous last resort: kill every live child group and remove temp dirs. */
export function killAllSync() {
  for (const p of live) signalGroup(p, 'SIGKILL')
  live.clear()
  for (const d of tempDirs) {
    try { rmSync(d, { recursive: true, force: true }) } catch { /* best effort */ }
  }
  tempDirs.clear()
}

let handlersInstalled = false
/** Kills children and removes temp dirs on exit, SIGINT, SIGTERM, SIGHUP and crashes. */
export function installExitHandlers() {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', killAllSync)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      console.error(`\nbench: ${sig}, stopping ${live.size} child process(es) and cleaning up`)
      killAllSync()
      process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 })[sig])
    })
  }
}

// --- /proc ---------------------------------------------------------------------------------

/** {rssKiB, hwmKiB} from /proc/<pid>/status, or null if the process is gone. */
export function memOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kib = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s) ?? [])[1] ?? NaN)
    return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') }
  } catch {
    return null
  }
}

/** utime + stime of a process in seconds (from /proc/<pid>/stat; CLK_TCK = 100 on Linux). */
export function cpuSecondsOf(pid, clkTck = 100) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    // Fields after "(comm)": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    return (Number(f[11]) + Number(f[12])) / clkTck
  } catch {
    return NaN
  }
}

/**
 * utime + stime of a process and of its reaped children (cutime + cstime), in seconds: the CPU of
 * a forking daemon (rsync serves each connection in a child) once the child has exited.
 */
export function cpuWithChildrenOf(pid, clkTck = 100) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / clkTck
  } catch {
    return NaN
  }
}

/** The 1/5/15-minute load averages. */
export function loadavg() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number)
}
