/**
 * `assetsync watch`: mirror, subscribe, apply pushed changes atomically, run a hook per batch and
 * report each run to the server (feature `report`: `serve` prints it, its status shows it).
 */
import { Command, Option } from 'commander'
import { AssetSyncError } from '../errors.js'
import { HOOK_TIMEOUT_MS } from '../limits.js'
import { type ClientFlags, checkPatterns, clientOptions, parseDuration, toClientOptions, untilSignal } from './common.js'
import { Output, type OutputStreams, formatBytes } from './output.js'

interface WatchFlags extends ClientFlags {
  out: string
  exec?: string
  hookTimeout?: string
}

export function watchCommand(io: OutputStreams): Command {
  const cmd = new Command('watch')
    .description('mirror the server\'s files into --out, then apply every change as it is saved, until Ctrl-C; reconnects by itself')
    .argument('[patterns...]', 'globs of the files to mirror (default "**", everything)')
    .option('-o, --out <dir>', 'local folder to mirror into', '.')
    .option('--exec <command>', 'shell command to run after each applied batch; gets ASSETSYNC_ROOT, ASSETSYNC_EVENT, ASSETSYNC_PATHS and the batch as JSON on stdin')
    .addOption(new Option('--hook-timeout <seconds>', `kill a hook that runs longer than this (default ${HOOK_TIMEOUT_MS / 1000})`))
    .option('--json', 'NDJSON events on stdout: synced, applied, hook, disconnected, reconnecting, resynced, error')
  for (const o of clientOptions()) cmd.addOption(o)
  return cmd.action(async (patterns: string[], flags: WatchFlags) => {
    const out = new Output(!!flags.json, io)
    const [{ HookRunner, hookFailure }, { LiveMirror }] = await Promise.all([import('../core/client/hooks.js'), import('../core/client/live-mirror.js')])
    const live = new LiveMirror({ client: toClientOptions(flags), out: flags.out, patterns: checkPatterns(patterns) })
    const root = await live.mirror.root()
    const hookTimeoutMs = parseDuration('--hook-timeout', flags.hookTimeout, 's') ?? HOOK_TIMEOUT_MS
    const hooks = flags.exec
      ? new HookRunner({
        command: flags.exec,
        root: root as string,
        timeoutMs: hookTimeoutMs,
        stdout: flags.json ? 'stderr' : 'inherit',
      })
      : null
    hooks?.on('done', (r) => {
      // The hook is this device's reload: the server shows how it went (a no-op for a server without reports).
      const error = hookFailure(r, hookTimeoutMs)
      live.report({ paths: r.changes.map((c) => c.path), ok: error === null, error, ms: r.ms })
      out.event({ event: 'hook', exitCode: r.exitCode, ...(r.signal ? { signal: r.signal } : {}), timedOut: r.timedOut, ms: r.ms, ...(r.error ? { error: r.error } : {}) })
      if (r.error) out.note(`assetsync: hook could not start: ${r.error}`)
      else if (r.timedOut) out.note(`assetsync: hook killed after ${flags.hookTimeout ?? HOOK_TIMEOUT_MS / 1000} s`)
      else if (r.exitCode !== 0) out.note(`assetsync: hook exited ${r.exitCode ?? r.signal}`)
    })
    let fatal: AssetSyncError | null = null
    live.on('synced', ({ summary, initial }) => {
      out.event({ event: initial ? 'synced' : 'resynced', ...summary })
      out.line(`${initial ? 'synced' : 'resynced'} ${summary.files} files (${summary.downloaded} downloaded, ${summary.deleted} deleted, ${formatBytes(summary.bytesReceived)}) into ${root}; watching ${flags.server}`)
    })
    live.on('applied', (changes) => {
      // The hook first: its process start is the long pole of save → reload; printing can wait.
      hooks?.enqueue(changes)
      out.event({ event: 'applied', changes })
      for (const c of changes) out.line(`${c.action === 'delete' ? 'deleted' : 'updated'} ${c.path}`)
    })
    let noted = false
    live.on('disconnected', (err) => {
      out.event({ event: 'disconnected', reason: err?.message ?? 'closed' })
      out.note(`assetsync: ${err?.message ?? 'connection closed'}; reconnecting`)
      noted = true
    })
    live.on('reconnecting', (r) => {
      out.event({ event: 'reconnecting', ...r })
      // A failed attempt (the first connection included) says why, once per failure.
      if (r.reason && !noted) out.note(`assetsync: ${r.reason}; retrying in ${(r.delayMs / 1000).toFixed(1)} s`)
      noted = false
    })
    live.on('batch-error', (err) => {
      out.event({ event: 'error', message: err.message, code: err instanceof AssetSyncError ? err.code : 'ERR_INTERNAL' })
      out.note(`assetsync: could not apply a change: ${err.message}`)
    })
    live.on('fatal', (err) => { fatal = err })
    await live.start()
    await Promise.race([untilSignal(), live.done])
    await live.stop()
    await hooks?.idle()
    hooks?.close()
    if (fatal) throw fatal
  })
}
