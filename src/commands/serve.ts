/**
 * `assetsync serve [dir]`: index a folder and serve it until SIGINT/SIGTERM; with --http, also
 * /metrics, /status and the live page (docs/observability.md). Prints devices' reload reports.
 */
import { Command, Option } from 'commander'
import { AssetSyncError } from '../errors.js'
import { DEFAULT_PORT, SETTLE_MS } from '../limits.js'
import type { HttpStatusServer } from '../core/server/http-status.js'
import type { SkippedEvent } from '../core/server/server-events.js'
import type { TransportName } from '../protocol/transport.js'
import { parseDuration, tokenOption, transportOption, untilSignal } from './common.js'
import { Output, type OutputStreams } from './output.js'
import { type ScaleFlags, scaleOptions, serveRole, startScaleServer } from './scale-serve.js'
import { visible } from './status-format.js'

interface ServeFlags extends ScaleFlags {
  host: string
  port: string
  transport: TransportName
  token?: string
  ignore?: string[]
  settle?: string
  http?: string
  json?: boolean
}

/** Up to five paths of a report for a human line, made safe to print. */
function someVisible(paths: readonly string[]): string {
  if (paths.length === 0) return '(no files)'
  return paths.slice(0, 5).map(visible).join(', ') + (paths.length > 5 ? `, … (${paths.length} files)` : '')
}

function parsePort(v: string): number {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new AssetSyncError('ERR_USAGE', `--port must be 0-65535, got "${v}"`)
  return n
}

export function serveCommand(io: OutputStreams): Command {
  const cmd = new Command('serve')
    .description('serve a folder to assetsync clients (pull, get, watch) until Ctrl-C')
    .argument('[dir]', 'folder to serve', '.')
    .option('--host <addr>', 'address to listen on', '0.0.0.0')
    .option('--port <n>', 'port to listen on; 0 picks a free port', String(DEFAULT_PORT))
    .addOption(transportOption())
    .addOption(tokenOption('require clients to present this access token (or env ASSETSYNC_TOKEN)'))
    .option('--ignore <glob...>', 'more paths to ignore, on top of .git/**, node_modules/** and editor temp files')
    .addOption(new Option('--settle <ms>', `quiet time in ms before a changed file is announced (write-stable; default ${SETTLE_MS})`))
    .option('--http <[host:]port>', 'also serve /metrics, /status and a live status page over HTTP (host 127.0.0.1 unless given; any other host needs the token)')
    .option('--json', 'NDJSON events on stdout')
  for (const o of scaleOptions()) cmd.addOption(o)
  return cmd
    .action(async (dir: string, flags: ServeFlags, self: Command) => {
      const out = new Output(!!flags.json, io)
      const settleMs = parseDuration('--settle', flags.settle, 'ms', 0)
      const role = serveRole(flags, self.args.length > 0)
      // Loaded on use, so `--help` and the other commands start fast.
      const web = flags.http === undefined ? null : await import('../core/server/http-status.js')
      const httpAt = web && flags.http !== undefined ? web.parseHttpAddress(flags.http) : null
      if (web && httpAt && !web.isLoopback(httpAt.host) && !flags.token) {
        // Checked before anything listens: the page would show paths and devices to the network.
        throw new AssetSyncError('ERR_USAGE', `--http on ${httpAt.host}, which is not a loopback address, needs a token (--token or ASSETSYNC_TOKEN): every HTTP request must then carry it`)
      }
      const base = {
        host: flags.host,
        port: parsePort(flags.port),
        transport: flags.transport,
        token: flags.token ?? null,
        ignore: flags.ignore ?? [],
        settleMs,
      }
      const { AssetServer } = await import('../core/server/server.js')
      const scale = role === 'folder' ? null : await startScaleServer(role, dir, flags, base, out)
      const server = scale?.server ?? await AssetServer.start({ root: dir, ...base })
      let http: HttpStatusServer | null = null
      if (web && httpAt) {
        try {
          http = await web.HttpStatusServer.listen({ ...httpAt, token: flags.token ?? null, provider: server.status, metrics: server.metrics })
        } catch (err) {
          await (scale ? scale.close() : server.close())
          throw err
        }
      }
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
        out.event({ event: 'rejected', remote: e.remote, code: e.code, reason: e.reason, message: e.message })
        out.line(`client ${e.remote} rejected: ${e.message}`)
      })
      server.on('auth-failures', (e) => {
        out.event({ event: 'auth-failures', remote: e.remote, count: e.count, delayMs: e.delayMs })
        if (!out.json) {
          out.note(e.remote === '*'
            ? `assetsync: warning: ${e.count} wrong access tokens from many addresses; token checks are rationed (next in ${Math.ceil(e.delayMs / 1000)} s)`
            : `assetsync: warning: ${e.count} wrong access tokens in a row from ${e.remote}; its next attempt waits ${Math.ceil(e.delayMs / 1000)} s`)
        }
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
      server.on('report', (e) => {
        out.event({ event: 'reload', remote: e.remote, paths: e.paths, ok: e.ok, error: e.error, ms: e.ms })
        if (e.ok) {
          out.line(`${e.remote} reloaded ${someVisible(e.paths)} in ${e.ms} ms`)
          return
        }
        const first = visible((e.error ?? 'reload failed').split('\n')[0] ?? '')
        const where = e.file ? `${visible(e.file)}${e.line !== null ? `:${e.line}` : ''}` : ''
        // A Lua message starts with its own file:line; say it once.
        out.line(`${e.remote} failed to reload ${someVisible(e.paths)}: ${where && !first.includes(where) ? `${where}: ` : ''}${first}`)
      })
      // A path that cannot travel is said once, never left out in silence (issue 11).
      const skipped = (e: SkippedEvent): void => {
        out.event({ event: 'skipped', path: e.path, reason: e.reason, folder: e.folder })
        out.line(`skipped ${e.folder ? 'folder ' : ''}${e.path}: ${e.reason}`)
      }
      server.on('skipped', skipped)
      server.on('internal', (e) => {
        const cause = e.cause instanceof Error ? (e.cause.stack ?? e.cause.message) : String(e.cause)
        out.event({ event: 'internal-error', remote: e.remote, message: e.message, cause })
        out.line(`internal error (client ${e.remote}): ${e.message}`)
      })
      server.on('reindexed', (e) => {
        out.event({ event: 'reindexed', files: e.files, hashed: e.hashed, ms: Math.round(e.ms) })
        out.line(`the served folder was replaced: ${e.files} files indexed again (${e.hashed} hashed) in ${Math.round(e.ms)} ms`)
      })
      const fatal = new Promise<AssetSyncError>((resolve) => server.once('fatal', (e) => resolve(e.error)))
      const indexing = server.indexing
      let stopping = false
      out.event({
        event: 'listening', transport: server.transport, host, port, key, files: server.scan.files,
        ...(indexing ? { indexing: true } : {}), ...(http ? { http: http.url } : {}), ...scale?.listening,
      })
      out.line(scale?.ready(server.transport, host, port) ?? `assetsync serving ${dir} on ${server.transport}://${host}:${port}`)
      if (indexing) out.line(`  indexing in the background (${server.scan.files} files so far); requests are answered meanwhile`)
      else out.line(`  ${server.scan.files} files indexed (${server.scan.hashed} hashed) in ${Math.round(server.scan.ms)} ms`)
      out.line(`  server key ${key}`)
      if (http) out.line(`  status page ${http.url}/${http.requiresToken ? ' (token required: open it once with ?token=<token>)' : ''}`)
      if (indexing) {
        // A large folder: listening came first (issue 15); the index's summary follows when done.
        server.indexed.then((e) => {
          if (stopping) return // stopped before it was complete: no summary of half an index
          out.event({ event: 'indexed', files: e.files, hashed: e.hashed, ms: Math.round(e.ms) })
          out.line(`  ${e.files} files indexed (${e.hashed} hashed) in ${Math.round(e.ms)} ms`)
          for (const k of e.skipped ?? []) skipped(k)
        }, () => { /* a failed index ends serve through 'fatal' */ })
      } else for (const e of server.scan.skipped ?? []) skipped(e)
      const end = await Promise.race([untilSignal(), fatal])
      stopping = true
      await http?.close()
      await (scale ? scale.close() : server.close())
      if (typeof end !== 'string') {
        // The folder is gone for good: stop with its one-line error (exit 5, as a missing folder at start).
        out.event({ event: 'stopped', reason: end.message })
        throw end
      }
      out.event({ event: 'stopped', signal: end })
    })
}
