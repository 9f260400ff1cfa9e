/**
 * Helpers for the end-to-end tests: they run the BUILT command line (`node bin/assetsync.js`) as
 * a user would, in real temp folders, with ASSETSYNC_CONFIG_DIR pointing into the sandbox so no
 * test ever touches ~/.config. A Sandbox owns its temp folder and every process it spawned.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs'
import { chmod, lstat, mkdir, mkdtemp, open, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const BIN = join(PROJECT_ROOT, 'bin', 'assetsync.js')
export const LOOPBACK = '127.0.0.1'
/** Temp files the client writes before the verified rename (see src/core/fs/atomic-file.ts). */
export const TEMP_NAME = /^\.assetsync-[0-9a-f]+\.tmp$/

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

/**
 * Polls `cond` every `everyMs` (a number, or in `options`; default 10) until it is truthy; rejects
 * naming `what` (and `detail()`) after `ms`.
 */
export async function waitFor<T>(
  cond: () => T | Promise<T>, ms: number, what: string, options: number | { everyMs?: number; detail?: () => unknown } = {},
): Promise<NonNullable<T>> {
  const opts = typeof options === 'number' ? { everyMs: options } : options
  const end = Date.now() + ms
  for (;;) {
    const v = await cond()
    if (v) return v as NonNullable<T>
    if (Date.now() > end) {
      let detail = ''
      if (opts.detail) {
        try {
          detail = `\n${String(await opts.detail())}`
        } catch (err) {
          detail = `\n(detail failed: ${String(err)})`
        }
      }
      throw new Error(`timed out after ${ms} ms waiting for ${what}${detail}`)
    }
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 10))
  }
}

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

// --- trees -----------------------------------------------------------------------------------

/** What writeTree puts at a relative path: content (mode 0644) or a spec. */
export type TreeNode = string | Buffer | { data: string | Buffer; mode?: number } | { symlink: string } | { dir: true }

/** Writes `spec` (relative '/'-separated path → node) under `root`, creating folders. */
export async function writeTree(root: string, spec: Record<string, TreeNode>): Promise<void> {
  for (const [rel, node] of Object.entries(spec)) {
    const full = join(root, ...rel.split('/'))
    await mkdir(dirname(full), { recursive: true })
    if (typeof node === 'string' || Buffer.isBuffer(node)) {
      await writeFile(full, node)
      await chmod(full, 0o644)
    } else if ('symlink' in node) {
      await symlink(node.symlink, full)
    } else if ('dir' in node) {
      await mkdir(full, { recursive: true })
    } else {
      await writeFile(full, node.data)
      await chmod(full, node.mode ?? 0o644)
    }
  }
}

/** Writes `size` random bytes to `file` in 8 MiB pieces (memory stays flat for big files). */
export async function writeRandomFile(file: string, size: number, mode = 0o644): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  const fh = await open(file, 'w', mode)
  try {
    const piece = 8 * 1024 * 1024
    for (let off = 0; off < size; off += piece) {
      const n = Math.min(piece, size - off)
      await fh.write(randomBytes(n), 0, n, off)
    }
  } finally {
    await fh.close()
  }
  await chmod(file, mode)
}

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'other'
  /** mode & 0o7777 (files and folders; 0 for symlinks). */
  mode: number
  size: number
  /** sha256 of a file's content. */
  sha256?: string
  /** A symlink's target. */
  target?: string
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256')
  const fh = await open(file, 'r')
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024)
    for (let pos = 0; ;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
      if (bytesRead === 0) break
      h.update(buf.subarray(0, bytesRead))
      pos += bytesRead
    }
  } finally {
    await fh.close()
  }
  return h.digest('hex')
}

/**
 * Everything under `root` (not following symlinks), as relative '/'-paths in sorted order, with
 * type, mode, size and content hash: a listing to compare before/after ("nothing was written").
 */
export async function snapshotTree(root: string, skip: (rel: string) => boolean = () => false): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {}
  const walk = async (dir: string, prefix: string): Promise<void> => {
    const names = (await readdir(dir)).sort()
    for (const name of names) {
      const rel = prefix ? `${prefix}/${name}` : name
      if (skip(rel)) continue
      const full = join(dir, name)
      const st = await lstat(full)
      if (st.isSymbolicLink()) out[rel] = { type: 'symlink', mode: 0, size: 0, target: await readlink(full) }
      else if (st.isDirectory()) {
        out[rel] = { type: 'dir', mode: st.mode & 0o7777, size: 0 }
        await walk(full, rel)
      } else if (st.isFile()) out[rel] = { type: 'file', mode: st.mode & 0o7777, size: st.size, sha256: await sha256File(full) }
      else out[rel] = { type: 'other', mode: st.mode & 0o7777, size: st.size }
    }
  }
  await walk(root, '')
  return out
}

/** True if the two files hold the same bytes (streamed, 1 MiB at a time). */
export async function sameBytes(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')])
  try {
    const [sa, sb] = await Promise.all([fa.stat(), fb.stat()])
    if (sa.size !== sb.size) return false
    const ba = Buffer.allocUnsafe(1024 * 1024)
    const bb = Buffer.allocUnsafe(1024 * 1024)
    for (let pos = 0; pos < sa.size;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length, pos), fb.read(bb, 0, bb.length, pos)])
      if (ra.bytesRead !== rb.bytesRead || ra.bytesRead === 0) return false
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false
      pos += ra.bytesRead
    }
    return true
  } finally {
    await Promise.all([fa.close(), fb.close()])
  }
}

/**
 * Compares two trees: the same relative paths and types, files byte for byte with the same
 * permission bits (mode & 0o7777), symlinks with the same target. Folder modes are not compared
 * (the protocol carries file modes only). Returns the differences; [] means identical.
 */
export async function diffTrees(a: string, b: string): Promise<string[]> {
  const list = async (root: string): Promise<Map<string, { type: string; mode: number; target?: string }>> => {
    const m = new Map<string, { type: string; mode: number; target?: string }>()
    const walk = async (dir: string, prefix: string): Promise<void> => {
      for (const name of (await readdir(dir)).sort()) {
        const rel = prefix ? `${prefix}/${name}` : name
        const full = join(dir, name)
        const st = await lstat(full)
        if (st.isSymbolicLink()) m.set(rel, { type: 'symlink', mode: 0, target: await readlink(full) })
        else if (st.isDirectory()) {
          m.set(rel, { type: 'dir', mode: 0 })
          await walk(full, rel)
        } else m.set(rel, { type: st.isFile() ? 'file' : 'other', mode: st.mode & 0o7777 })
      }
    }
    await walk(root, '')
    return m
  }
  const [la, lb] = await Promise.all([list(a), list(b)])
  const diffs: string[] = []
  for (const [rel, ea] of la) {
    const eb = lb.get(rel)
    if (!eb) { diffs.push(`only in ${a}: ${rel}`); continue }
    if (ea.type !== eb.type) { diffs.push(`${rel}: ${ea.type} vs ${eb.type}`); continue }
    if (ea.type === 'symlink' && ea.target !== eb.target) diffs.push(`${rel}: symlink to ${ea.target} vs ${eb.target}`)
    if (ea.type === 'file') {
      if (ea.mode !== eb.mode) diffs.push(`${rel}: mode ${ea.mode.toString(8)} vs ${eb.mode.toString(8)}`)
      if (!(await sameBytes(join(a, ...rel.split('/')), join(b, ...rel.split('/'))))) diffs.push(`${rel}: content differs`)
    }
  }
  for (const rel of lb.keys()) if (!la.has(rel)) diffs.push(`only in ${b}: ${rel}`)
  return diffs
}

/** Relative paths of the regular files under `root` (sorted). */
/** Every regular file under `dir`, relative path → size; empty if `dir` does not exist (yet). */
export async function filesUnder(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  const walk = async (d: string, prefix: string): Promise<void> => {
    let ents
    try {
      ents = await readdir(d, { withFileTypes: true })
    } catch {
      return // not created yet, or removed under us
    }
    for (const e of ents) {
      const rel = prefix ? `${prefix}/${e.name}` : e.name
      if (e.isDirectory()) await walk(join(d, e.name), rel)
      else if (e.isFile()) {
        try {
          out.set(rel, (await stat(join(d, e.name))).size)
        } catch { /* renamed meanwhile */ }
      }
    }
  }
  await walk(dir, '')
  return out
}

/** Whether a relative path names one of our temp files. */
export const isTemp = (rel: string): boolean => TEMP_NAME.test(rel.split('/').at(-1) as string)

export async function listFiles(root: string): Promise<string[]> {
  const snap = await snapshotTree(root)
  return Object.entries(snap).filter(([, e]) => e.type === 'file').map(([p]) => p).sort()
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

/**
 * The tree the mirror tests serve: an empty file, a 20-level deep folder chain, names with spaces
 * and non-ASCII (NFC) characters, dot files, an executable, a read-only and a private file, a
 * big random file and `small` small files of random sizes. Returns the relative file paths.
 */
export async function writeAssetTree(root: string, opts: { small?: number; bigBytes?: number } = {}): Promise<string[]> {
  const deep = Array.from({ length: 20 }, (_, i) => `d${String(i + 1).padStart(2, '0')}`).join('/')
  const spec: Record<string, TreeNode> = {
    'empty': '',
    [`${deep}/leaf.txt`]: 'twenty folders down\n',
    [`${deep.split('/').slice(0, 10).join('/')}/mid.cfg`]: 'depth=10\n',
    'ü/日本.lua': 'print("こんにちは")\n',
    'with space/file name with spaces.txt': 'spaces\n',
    'Ünïcödé – ñames/émoji 🎮.json': '{"ok":true}\n',
    '.hidden/.dotfile': 'dot\n',
    'scripts/main.lua': 'require("lib.util")\n',
    'scripts/lib/util.lua': 'return {}\n',
    'bin/run.sh': { data: '#!/bin/sh\necho run\n', mode: 0o755 },
    'config/readonly.ini': { data: '[ro]\n', mode: 0o444 },
    'config/private.key': { data: randomBytes(64), mode: 0o600 },
  }
  const n = opts.small ?? 200
  for (let i = 0; i < n; i++) {
    spec[`many/${String(Math.floor(i / 50))}/f${String(i).padStart(4, '0')}.dat`] = randomBytes(1 + Math.floor(Math.random() * 4096))
  }
  await writeTree(root, spec)
  const big = join(root, 'textures', 'big texture.bin')
  await writeRandomFile(big, opts.bigBytes ?? 5 * 1024 * 1024)
  return [...Object.keys(spec), 'textures/big texture.bin'].sort()
}
