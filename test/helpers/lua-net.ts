/**
 * Network runtime test support: a real AssetServer (127.0.0.1, port 0, real UDP) serving a
 * "server" folder in a temp dir, NetworkAssets into an "out" folder, and Lua host runs over it.
 * The server's source is wrapped in place (same object, so the folder watcher still feeds it) to
 * count what it was asked: requests per path, and the order of file reads (round-robin turns).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { NetworkAssets, type NetworkAssetsOptions } from '../../src/core/client/network-assets.js'
import type { SourceReader } from '../../src/core/server/source.js'
import { AssetServer, type AssetServerOptions } from '../../src/core/server/server.js'
import { LuaHost, type RunOptions, type RuntimeEvent } from '../../src/runtime/host.js'
import { LOOPBACK } from './common.js'
import { Capture } from './lua.js'

/** One thing the server's source did, in order: a file opened for a REQUEST, or one read (a turn). */
export type SourceEvent = { kind: 'open' | 'read' | 'mark'; path: string }

/** What the server was asked. */
export interface ServerLog {
  /** REQUESTs per wire path (those that reached the source: every REQUEST of a valid path). */
  opened: Map<string, number>
  /** Opens (once the file is open, just before its transfer is queued) and reads, in order; tests add marks. */
  events: SourceEvent[]
}

export interface NetServer {
  server: AssetServer
  addr: string
  port: number
  key: string
  log: ServerLog
  close(): Promise<void>
}

export interface NetSandbox {
  dir: string
  server: string
  out: string
  config: string
  serve(files: Record<string, string | Uint8Array>): Promise<void>
  /** Starts a server on the server folder (on `port`, default 0: a free one). */
  start(opts?: Partial<AssetServerOptions>): Promise<NetServer>
  open(srv: NetServer, opts?: Partial<NetworkAssetsOptions>): Promise<NetworkAssets>
  cleanup(): Promise<void>
}

/** Wraps `server.source.open` (an own property shadowing the method) to log requests and reads. */
function logSource(server: AssetServer): ServerLog {
  const log: ServerLog = { opened: new Map(), events: [] }
  const source = server.source
  const open = source.open.bind(source)
  source.open = async (path: string): Promise<SourceReader | null> => {
    log.opened.set(path, (log.opened.get(path) ?? 0) + 1)
    const reader = await open(path)
    if (!reader) return null
    log.events.push({ kind: 'open', path })
    const read = reader.read.bind(reader)
    reader.read = (buf, offset, length) => {
      log.events.push({ kind: 'read', path })
      return read(buf, offset, length)
    }
    return reader
  }
  return log
}

export async function netSandbox(name = 'net'): Promise<NetSandbox> {
  const dir = await mkdtemp(join(tmpdir(), `assetsync-runtime-${name}-`))
  const server = join(dir, 'server')
  const out = join(dir, 'out')
  const config = join(dir, 'config')
  for (const d of [server, out, config]) await mkdir(d, { recursive: true })
  const servers = new Set<AssetServer>()
  const opened = new Set<NetworkAssets>()
  return {
    dir, server, out, config,
    async serve(files) {
      for (const [p, content] of Object.entries(files)) {
        const abs = join(server, ...p.split('/'))
        await mkdir(dirname(abs), { recursive: true })
        await writeFile(abs, content)
      }
    },
    async start(opts = {}) {
      const s = await AssetServer.start({ root: server, configDir: join(config, 'server'), host: LOOPBACK, port: 0, transport: 'udp', settleMs: 5, ...opts })
      servers.add(s)
      const { port } = s.address()
      return {
        server: s, port, addr: `${LOOPBACK}:${port}`, key: s.publicKey.toString('hex'), log: logSource(s),
        close: async () => { servers.delete(s); await s.close() },
      }
    },
    async open(srv, opts = {}) {
      const a = await NetworkAssets.open({ server: srv.addr, key: srv.key, dir: out, configDir: join(config, 'client'), connectTimeoutMs: 5000, ...opts })
      opened.add(a)
      return a
    },
    async cleanup() {
      for (const a of opened) await a.close()
      for (const s of servers) await s.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export interface NetRun {
  host: LuaHost
  events: RuntimeEvent[]
  stdout: Capture
  stderr: Capture
  result: Promise<{ code: number | null; error: unknown; stdout: string; stderr: string; events: RuntimeEvent[] }>
}

/** Starts a host over `assets`; scripts' current folder is the out folder. */
export function startNet(sb: Pick<NetSandbox, 'out'>, assets: NetworkAssets, script: string, opts: Partial<RunOptions> = {}): NetRun {
  const stdout = new Capture()
  const stderr = new Capture()
  const events: RuntimeEvent[] = []
  const host = new LuaHost({ script, provider: assets, cwd: sb.out, stdout, stderr, onEvent: (e) => events.push(e), ...opts })
  const settle = (code: number | null, error: unknown) => ({ code, error, stdout: stdout.text, stderr: stderr.text, events })
  const result = host.run().then((code) => settle(code, null), (err: unknown) => settle(null, err))
  return { host, events, stdout, stderr, result }
}

/** Runs a script over `assets` to its end. */
export function runNet(sb: Pick<NetSandbox, 'out'>, assets: NetworkAssets, script: string, opts: Partial<RunOptions> = {}): NetRun['result'] {
  return startNet(sb, assets, script, opts).result
}

export const ofType = <K extends RuntimeEvent['event']>(events: RuntimeEvent[], k: K): Extract<RuntimeEvent, { event: K }>[] =>
  events.filter((e): e is Extract<RuntimeEvent, { event: K }> => e.event === k)
