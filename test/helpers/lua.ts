/**
 * Runtime test support: a "server" folder and a local `--out` folder in a fresh temp dir, a
 * FolderAssets provider between them, and a host run whose stdout/stderr/events are captured.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Writable } from 'node:stream'
import { FolderAssets, type FolderAssetsOptions } from '../../src/runtime/folder-assets.js'
import { LuaHost, type RunOptions, type RuntimeEvent } from '../../src/runtime/host.js'

/** A Writable that keeps everything written to it. */
export class Capture extends Writable {
  readonly chunks: Buffer[] = []
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(Buffer.from(chunk))
    cb()
  }
  get text(): string { return Buffer.concat(this.chunks).toString('utf8') }
}

export interface Sandbox {
  dir: string
  /** The folder that plays the server. */
  server: string
  /** The local asset folder (--out), also the scripts' current folder. */
  out: string
  /** Writes files into the server folder: { "wire/path.lua": "source" }. */
  serve(files: Record<string, string | Uint8Array>): Promise<void>
  provider(opts?: Partial<FolderAssetsOptions>): FolderAssets
  cleanup(): Promise<void>
}

export async function sandbox(): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'assetsync-runtime-'))
  const server = join(dir, 'server')
  const out = join(dir, 'out')
  await mkdir(server, { recursive: true })
  await mkdir(out, { recursive: true })
  return {
    dir, server, out,
    async serve(files) {
      for (const [p, content] of Object.entries(files)) {
        const abs = join(server, ...p.split('/'))
        await mkdir(dirname(abs), { recursive: true })
        await writeFile(abs, content)
      }
    },
    provider: (opts = {}) => new FolderAssets({ source: server, out, ...opts }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}

export interface RunResult {
  code: number | null
  error: unknown
  stdout: string
  stderr: string
  events: RuntimeEvent[]
  host: LuaHost
}

/** Starts a host; `result` settles when run() does. */
export interface Running {
  host: LuaHost
  /** Events so far. */
  events: RuntimeEvent[]
  stdout: Capture
  result: Promise<RunResult>
}

export function start(sb: Sandbox, provider: FolderAssets, script: string, opts: Partial<RunOptions> = {}): Running {
  const stdout = new Capture()
  const stderr = new Capture()
  const events: RuntimeEvent[] = []
  const host = new LuaHost({ script, provider, cwd: sb.out, stdout, stderr, onEvent: (e) => events.push(e), ...opts })
  const settle = (code: number | null, error: unknown): RunResult => ({ code, error, stdout: stdout.text, stderr: stderr.text, events, host })
  const result = host.run().then((code) => settle(code, null), (err: unknown) => settle(null, err))
  return { host, events, stdout, result }
}

/** Runs a script to its end. */
export async function runLua(sb: Sandbox, script: string, opts: Partial<RunOptions> & { provider?: FolderAssets } = {}): Promise<RunResult> {
  return start(sb, opts.provider ?? sb.provider(), script, opts).result
}
