/**
 * Helpers for the end-to-end tests: they run the BUILT command line (`node bin/assetsync.js`) as
 * a user would, in real temp folders, with ASSETSYNC_CONFIG_DIR pointing into the sandbox so no
 * test ever touches ~/.config. A Sandbox owns its temp folder and every process it spawned.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LOOPBACK, waitFor } from './common.js'

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const BIN = join(PROJECT_ROOT, 'bin', 'assetsync.js')

// --- build -----------------------------------------------------------------------------------

/**
 * Builds dist/ with tsc if dist/cli.js is missing (call from beforeAll). A lock folder keeps two
 * test workers from running tsc over each other.
 */
export function ensureBuilt(): void {
  const cli = join(PROJECT_ROOT, 'dist', 'cli.js')
  if (existsSync(cli)) return
  const lock = join(tmpdir(), `assetsync-e2e-build-${createHash('sha256').update(PROJECT_ROOT).digest('hex').slice(0, 12)}`)
  const deadline = Date.now() + 180_000
  for (;;) {
    try {
      mkdirSync(lock)
      break
    } catch {
      if (existsSync(cli)) return
      // A lock older than 3 minutes belongs to a crashed build.
      try { if (Date.now() - statSync(lock).mtimeMs > 180_000) rmSync(lock, { recursive: true, force: true }) } catch { /* gone */ }
      if (Date.now() > deadline) throw new Error(`timed out waiting for the build lock ${lock}`)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200) // synchronous sleep: beforeAll waits anyway
    }
  }
  try {
    if (!existsSync(cli)) {
      const tsc = join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
      execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: PROJECT_ROOT, stdio: 'pipe' })
    }
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

// --- polling -------------------------------------------------------------------------------

// --- processes -------------------------------------------------------------------------------

export type Env = Record<string, string | undefined>

export interface CliResult {
  /** Exit code, or null if killed by a signal. */
  code: number | null
  signal: NodeJS.Signals | null
  stdout: Buffer
  stderr: string
  ms: number
}

export interface SpawnedCli {
  proc: ChildProcess
  /** Settles when the process has exited and its output is complete. */
  result: Promise<CliResult>
  stdoutSoFar(): string
  stderrSoFar(): string
}

export interface RunOptions {
  env?: Env
  cwd?: string
  /** SIGKILL after this long (the result then has signal SIGKILL). Default 60 s. */
  timeoutMs?: number
  /** The CLI entry to run instead of bin/assetsync.js (e.g. a vendored earlier release). */
  bin?: string
}

/** Every parsed NDJSON line of `text`; throws (naming the line) if one is not JSON. */
export function parseEvents(text: string | Buffer): Array<{ event: string } & Record<string, unknown>> {
  const out: Array<{ event: string } & Record<string, unknown>> = []
  for (const line of String(text).split('\n')) {
    if (line.trim() === '') continue
    let v: unknown
    try {
      v = JSON.parse(line)
    } catch {
      throw new Error(`stdout line is not JSON: ${JSON.stringify(line.slice(0, 200))}`)
    }
    if (typeof v !== 'object' || v === null || typeof (v as { event?: unknown }).event !== 'string') {
      throw new Error(`stdout line is not an event object: ${line.slice(0, 200)}`)
    }
    out.push(v as { event: string } & Record<string, unknown>)
  }
  return out
}

/** The non-empty lines of a stderr text. */
export function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '')
}

export interface ServerHandle {
  proc: ChildProcess
  host: string
  port: number
  /** "127.0.0.1:<port>" for --server. */
  addr: string
  key: string
  /** The listening event. */
  listening: Record<string, unknown>
  /** NDJSON events printed so far. */
  events(): Array<{ event: string } & Record<string, unknown>>
  stderr(): string
  /** Settles when the server has exited. */
  exited: Promise<CliResult>
  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<CliResult>
}

/**
 * A temp folder for one test file, its own config dir (identity, known servers, hash caches) and
 * every process it spawned; `cleanup()` ends them (by pid) and removes the folder.
 */
export class Sandbox {
  readonly dir: string
  readonly config: string
  readonly #procs = new Set<ChildProcess>()
  #n = 0

  private constructor(dir: string) {
    this.dir = dir
    this.config = join(dir, 'config')
  }

  static async create(name: string): Promise<Sandbox> {
    const dir = await mkdtemp(join(tmpdir(), `assetsync-e2e-${name}-`))
    const sb = new Sandbox(dir)
    await mkdir(sb.config, { recursive: true })
    return sb
  }

  /** A new empty folder inside the sandbox. */
  async mkdir(name: string): Promise<string> {
    const d = join(this.dir, `${name}-${++this.#n}`)
    await mkdir(d, { recursive: true })
    return d
  }

  /** A path inside the sandbox that does not exist yet. */
  path(name: string): string {
    return join(this.dir, `${name}-${++this.#n}`)
  }

  /** The environment of every spawned CLI: the sandbox config dir, no inherited token. */
  env(extra: Env = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, ASSETSYNC_CONFIG_DIR: this.config, NO_COLOR: '1' }
    delete env.ASSETSYNC_TOKEN
    for (const [k, v] of Object.entries(extra)) {
      if (v === undefined) delete env[k]
      else env[k] = v
    }
    return env
  }

  /** Starts `node bin/assetsync.js <args>` and collects its output. */
  spawn(args: string[], opts: RunOptions = {}): SpawnedCli {
    const t0 = performance.now()
    const proc = spawn(process.execPath, [opts.bin ?? BIN, ...args], {
      cwd: opts.cwd ?? this.dir,
      env: this.env(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.#procs.add(proc)
    const out: Buffer[] = []
    const err: Buffer[] = []
    let outText: string | null = null
    proc.stdout?.on('data', (b: Buffer) => { out.push(b); outText = null })
    proc.stderr?.on('data', (b: Buffer) => err.push(b))
    const timer = setTimeout(() => {
      err.push(Buffer.from(`\n[test harness: killed after ${opts.timeoutMs ?? 60_000} ms]\n`))
      proc.kill('SIGKILL')
    }, opts.timeoutMs ?? 60_000)
    const result = new Promise<CliResult>((resolve, reject) => {
      proc.once('error', (e) => { clearTimeout(timer); this.#procs.delete(proc); reject(e) })
      proc.once('close', (code, signal) => {
        clearTimeout(timer)
        this.#procs.delete(proc)
        resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8'), ms: performance.now() - t0 })
      })
    })
    return {
      proc,
      result,
      stdoutSoFar: () => (outText ??= Buffer.concat(out).toString('utf8')),
      stderrSoFar: () => Buffer.concat(err).toString('utf8'),
    }
  }

  /** Runs the CLI to completion. */
  run(args: string[], opts: RunOptions = {}): Promise<CliResult> {
    return this.spawn(args, opts).result
  }

  /**
   * `assetsync serve <dir> --host 127.0.0.1 --port 0 --json <args>`; resolves once it printed
   * {"event":"listening","port":N}.
   */
  async serve(dir: string, args: string[] = [], opts: RunOptions & { readyMs?: number } = {}): Promise<ServerHandle> {
    const s = this.spawn(['serve', dir, '--host', LOOPBACK, '--port', '0', '--json', ...args], { timeoutMs: 600_000, ...opts })
    let exited: CliResult | null = null
    const exitedP = s.result.then((r) => { exited = r; return r })
    const events = (): Array<{ event: string } & Record<string, unknown>> => {
      const text = s.stdoutSoFar()
      // Only complete lines: the last one may still be arriving.
      return parseEvents(text.slice(0, text.lastIndexOf('\n') + 1))
    }
    const listening = await waitFor(() => {
      if (exited) throw new Error(`serve exited (${exited.code ?? exited.signal}) before listening: ${exited.stderr.trim()}`)
      return events().find((e) => e.event === 'listening')
    }, opts.readyMs ?? 20_000, 'serve to print {"event":"listening"}')
    const port = listening.port
    if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0) throw new Error(`listening event without a port: ${JSON.stringify(listening)}`)
    return {
      proc: s.proc,
      host: LOOPBACK,
      port,
      addr: `${LOOPBACK}:${port}`,
      key: String(listening.key),
      listening,
      events,
      stderr: s.stderrSoFar,
      exited: exitedP,
      stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
        if (!exited) s.proc.kill(signal)
        return exitedP
      },
    }
  }

  /** Ends every process still running (SIGKILL, by pid) and removes the sandbox. */
  async cleanup(): Promise<void> {
    const waits: Promise<unknown>[] = []
    for (const p of this.#procs) {
      if (p.exitCode === null && p.signalCode === null) {
        waits.push(new Promise((r) => p.once('close', r)))
        p.kill('SIGKILL')
      }
    }
    await Promise.all(waits)
    this.#procs.clear()
    await rm(this.dir, { recursive: true, force: true, maxRetries: 3 })
  }
}

/** A port nothing listens on (bound, read, released). */
export async function closedPort(transport: 'udp' | 'tcp'): Promise<number> {
  if (transport === 'udp') {
    const { createSocket } = await import('node:dgram')
    const s = createSocket('udp4')
    await new Promise<void>((r) => s.bind(0, LOOPBACK, r))
    const { port } = s.address()
    await new Promise<void>((r) => s.close(() => r()))
    return port
  }
  const { createServer } = await import('node:net')
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, LOOPBACK, r))
  const addr = srv.address()
  await new Promise<void>((r) => srv.close(() => r()))
  if (typeof addr !== 'object' || addr === null) throw new Error('no address')
  return addr.port
}

