/** `assetsync serve [dir]`: index a folder and serve it until SIGINT/SIGTERM. */
import { Command, Option } from 'commander'
import { AssetSyncError } from '../errors.js'
import { DEFAULT_PORT } from '../limits.js'
import type { TransportName } from '../protocol/transport.js'
import { idleTimeoutOption, parseDuration, parseIdleTimeout, tokenOption, transportOption, untilSignal } from './common.js'
import { Output, type OutputStreams } from './output.js'

interface ServeFlags {
  host: string
  port: string
  transport: TransportName
  token?: string
  ignore?: string[]
  settle?: string
  idleTimeout?: string
  json?: boolean
}

function parsePort(v: string): number {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new AssetSyncError('ERR_USAGE', `--port must be 0-65535, got "${v}"`)
  return n
}

export function serveCommand(io: OutputStreams): Command {
  return new Command('serve')
    .description('serve a folder to assetsync clients (pull, get, watch) until Ctrl-C')
    .argument('[dir]', 'folder to serve', '.')
    .option('--host <addr>', 'address to listen on', '0.0.0.0')
    .option('--port <n>', 'port to listen on; 0 picks a free port', String(DEFAULT_PORT))
    .addOption(transportOption())
    .addOption(tokenOption('require clients to present this access token (or env ASSETSYNC_TOKEN)'))
    .option('--ignore <glob...>', 'more paths to ignore, on top of .git/**, node_modules/** and editor temp files')
    .addOption(new Option('--settle <ms>', 'quiet time before a changed file is announced (write-stable)'))
    .addOption(idleTimeoutOption())
    .option('--json', 'NDJSON events on stdout')
    .action(async (dir: string, flags: ServeFlags) => {
      const out = new Output(!!flags.json, io)
      const settleMs = parseDuration('--settle', flags.settle, 'ms', 0)
      const idleTimeoutMs = parseIdleTimeout(flags.idleTimeout)
      // Loaded on use, so `--help` and the other commands start fast.
      const { AssetServer } = await import('../core/server/server.js')
      const server = await AssetServer.start({
        root: dir,
        host: flags.host,
        port: parsePort(flags.port),
        transport: flags.transport,
        token: flags.token ?? null,
        ignore: flags.ignore ?? [],
        settleMs,
        ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
      })
      const { host, port } = server.address()
      // Payload types come from AssetServerEvents; fields are named one by one (no spread) so a
      // renamed field fails to compile here instead of silently changing the --json contract.
      const key = server.publicKey.toString('hex')
      server.on('connected', (e) => {
        out.event({ event: 'client', action: 'connected', remote: e.remote })
        out.line(`client ${e.remote} connected`)
      })
      server.on('disconnected', (e) => {
        out.event({ event: 'client', action: 'disconnected', remote: e.remote, reason: e.reason })
        out.line(`client ${e.remote} disconnected (${e.reason})`)
      })
      server.on('rejected', (e) => {
        out.event({ event: 'rejected', remote: e.remote, code: e.code, message: e.message })
        out.line(`client ${e.remote} rejected: ${e.message}`)
      })
      server.on('refused', (e) => {
        out.event({ event: 'refused', remote: e.remote, path: e.path, reason: e.reason })
        out.line(`refused ${e.remote}: ${e.reason}`)
      })
      server.on('subscriptions', (e) => {
        out.event({
          event: 'subscriptions', remote: e.remote, action: e.action, instanceId: e.instanceId, patterns: e.patterns, released: e.released,
        })
      })
      server.on('batch', (e) => {
        out.event({ event: 'changes', changes: e.changes, clients: e.clients })
        out.line(`${e.changes.length} change(s) pushed to ${e.clients} client(s): ${e.changes.map((c) => c.path).slice(0, 5).join(', ')}${e.changes.length > 5 ? ', …' : ''}`)
      })
      out.event({ event: 'listening', transport: server.transport, host, port, key, files: server.scan.files })
      out.line(`assetsync serving ${dir} on ${server.transport}://${host}:${port}`)
      out.line(`  ${server.scan.files} files indexed (${server.scan.hashed} hashed) in ${Math.round(server.scan.ms)} ms`)
      out.line(`  server key ${key}`)
      const sig = await untilSignal()
      await server.close()
      out.event({ event: 'stopped', signal: sig })
    })
}
