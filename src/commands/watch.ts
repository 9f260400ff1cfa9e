/**
 * `assetsync watch`: mirror, subscribe, apply pushed changes atomically, run a hook per batch and
 * report each run to the server (feature `report`: `serve` prints it, its status shows it).
 */
import { Command, Option } from 'commander'
import { AssetSyncError } from '../errors.js'
import { HOOK_ENV_PATHS_MAX_BYTES, HOOK_TIMEOUT_MS } from '../limits.js'
import { removeLiveTemps } from '../core/fs/atomic-write.js'
import { type ClientFlags, abortOnSignal, checkPatterns, clientOptions, parseDuration, toClientOptions } from './common.js'
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
    .option('--exec <command>', 'shell command to run after each applied batch (see "Hooks" below)')
    .addOption(new Option('--hook-timeout <seconds>', `kill a hook that runs longer than this (default ${HOOK_TIMEOUT_MS / 1000})`))
    .option('--json', 'NDJSON events on stdout: synced, applied, hook, disconnected, reconnecting, resynced, error')
  for (const o of clientOptions()) cmd.addOption(o)
  cmd.addHelpText('after', `
Hooks (--exec): one run per applied batch, never two at once, with the mirror folder as cwd.
  stdin                      the batch as JSON: {"event":"applied","root":..,"changes":[{"path":..,"action":"change"|"delete"}]},
                             always every path
  ASSETSYNC_ROOT             the mirror folder          ASSETSYNC_EVENT    "applied"
  ASSETSYNC_PATH_COUNT       how many paths the batch has
  ASSETSYNC_PATHS            the paths, newline-separated, when they fit in ${HOOK_ENV_PATHS_MAX_BYTES} bytes; else empty, and
  ASSETSYNC_PATHS_TRUNCATED  is 1 (read stdin then: an environment that big cannot start a program)`)
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
    live.on('applied', (changes, stats) => {
      // The hook first: its process start is the long pole of save → reload; printing can wait.
      hooks?.enqueue(changes)
      out.event({ event: 'applied', changes, ...stats })
      for (const c of changes) out.line(`${c.action === 'delete' ? 'deleted' : 'updated'} ${c.path}`)
    })
    live.on('disconnected', (err) => {
      out.event({ event: 'disconnected', reason: err?.message ?? 'closed' })
      out.note(`assetsync: ${err?.message ?? 'connection closed'}; reconnecting`)
    })
    live.on('reconnecting', (r) => out.event({ event: 'reconnecting', ...r }))
    live.on('batch-error', (err) => {
      out.event({ event: 'error', message: err.message, code: err instanceof AssetSyncError ? err.code : 'ERR_INTERNAL' })
      out.note(`assetsync: could not apply a change: ${err.message}`)
    })
    live.on('warning', (w) => {
      out.event({ event: 'warning', ...w })
      out.note(`assetsync: warning: ${w.message}`)
    })
    live.on('fatal', (err) => { fatal = err })
    // SIGINT / SIGTERM stop a watch (exit 0), in the initial sync too; a second one ends it at once.
    const ac = new AbortController()
    const stopSignals = abortOnSignal(ac)
    const signalled = new Promise<void>((resolve) => ac.signal.addEventListener('abort', () => resolve(), { once: true }))
    ac.signal.addEventListener('abort', () => { void live.stop() }, { once: true })
    try {
      await live.start()
      await Promise.race([signalled, live.done])
    } catch (err) {
      if (!ac.signal.aborted) throw err // a sync cut short by the stop is not a failure
    } finally {
      await live.stop()
      removeLiveTemps()
      await hooks?.idle()
      hooks?.close()
      stopSignals()
    }
    if (fatal) throw fatal
  })
}
