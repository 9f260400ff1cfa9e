/**
 * `assetsync run <script>`: a Lua 5.4 program whose modules and assets come from the server
 * (NetworkAssets into --out, the Lua host in src/runtime), hot reloaded as they are saved, until
 * the script ends, `os.exit(n)` or Ctrl-C. Owns all output: with --json the events go to stdout
 * as NDJSON and the script's own output to stderr; without it stdout is the script's and the
 * notes go to stderr. A script error prints its traceback, then fails with ERR_SCRIPT (exit 7).
 */
import { Command, Option } from 'commander'
import type { ClientReport } from '../core/client/client.js'
import { AssetSyncError, ExitRequest } from '../errors.js'
import { DEFAULT_TICK_HZ, MAX_TICK_HZ } from '../limits.js'
import { removeLiveTemps } from '../core/fs/atomic-write.js'
import { type ClientFlags, clientOptions, toClientOptions, untilSignal } from './common.js'
import { Output, type OutputStreams } from './output.js'

interface RunFlags extends ClientFlags {
  out: string
  luaPath: string
  tick: string
  once?: boolean
}

function parseTick(v: string): number {
  const n = Number(v)
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || n > MAX_TICK_HZ) {
    throw new AssetSyncError('ERR_USAGE', `--tick must be a number of updates per second, above 0 and at most ${MAX_TICK_HZ}, got "${v}"`)
  }
  return n
}

export function runCommand(io: OutputStreams): Command {
  const cmd = new Command('run')
    .description('run a Lua 5.4 script from the server: require, load_asset and their _async forms fetch files into --out, '
      + 'and files required with reload = true are hot reloaded when saved; until the script ends or Ctrl-C')
    .argument('<script>', 'wire path of the main script on the server, e.g. main.lua')
    .argument('[args...]', 'arguments of the script (arg[1..n] and ...); write them after --')
    .option('-o, --out <dir>', 'local folder the files are fetched into; the script\'s current folder', '.')
    .option('--lua-path <templates>', 'package.path: LUA_PATH templates of wire paths', '?.lua;?/init.lua')
    .option('--tick <hz>', 'update(dt) calls per second', String(DEFAULT_TICK_HZ))
    .option('--once', 'call update once, then end when nothing is pending')
    .addOption(new Option('--json', 'NDJSON events on stdout: required, reloaded, reload-error, warning, disconnected, reconnecting; the script\'s output goes to stderr'))
  for (const o of clientOptions()) cmd.addOption(o)
  return cmd.action(async (script: string, args: string[], flags: RunFlags) => {
    const tick = parseTick(flags.tick)
    const out = new Output(!!flags.json, io)
    const [{ NetworkAssets }, { LuaHost, ScriptError }] = await Promise.all([
      import('../core/client/network-assets.js'), import('../runtime/host.js'),
    ])
    const assets = await NetworkAssets.open({ ...toClientOptions(flags), dir: flags.out })
    let fatal: AssetSyncError | null = null
    let stopRun: ((err: AssetSyncError) => void) | null = null
    assets.on('warning', (w) => {
      out.event({ event: 'warning', ...w })
      out.note(`assetsync: ${w.message}`)
    })
    assets.on('disconnected', (err) => {
      if (!err) return
      out.event({ event: 'disconnected', reason: err.message })
      out.note(`assetsync: ${err.message}; reconnecting`)
    })
    assets.on('reconnecting', (r) => out.event({ event: 'reconnecting', ...r }))
    assets.on('connected', (c) => {
      if (!c.reconnect) return
      out.event({ event: 'reconnected', server: c.server })
      out.note(`assetsync: reconnected to ${c.server}`)
    })
    assets.on('fatal', (err) => { fatal = err; stopRun?.(err) })

    // When the last change arrived: a failed reload is reported with the time since.
    let changedAt = performance.now()
    assets.on('change', () => { changedAt = performance.now() })
    /** The device's reload report to the server (feature `report`; a server without it gets nothing). */
    const report = (r: ClientReport): void => { assets.client?.report(r) }
    const host = new LuaHost({
      script,
      provider: assets,
      args,
      luaPath: flags.luaPath,
      tick,
      once: !!flags.once,
      cwd: await assets.root(),
      stdout: flags.json ? io.stderr : io.stdout,
      stderr: io.stderr,
      onEvent: (e) => {
        out.event({ ...e })
        if (e.event === 'reloaded') {
          out.note(`assetsync: reloaded ${e.paths.join(', ')} (${e.ms} ms)`)
          report({ paths: e.paths, ok: true, error: null, ms: e.ms })
        } else if (e.event === 'reload-error') {
          out.note(`assetsync: reload of ${e.path} failed, the old version stays: ${e.message}`)
          report({ paths: [e.path], ok: false, error: e.message, ms: Math.round(performance.now() - changedAt) })
        }
      },
    })
    let code: number
    let signals: ReturnType<typeof untilSignal> | null = null
    try {
      const stopped = new Promise<never>((_resolve, reject) => { stopRun = reject })
      stopped.catch(() => {})
      signals = untilSignal()
      void signals.then(() => host.stop(0))
      code = await Promise.race([host.run(), stopped])
    } catch (err) {
      // The traceback first (as the stock interpreter prints it after the message); cli.ts then
      // prints the one-line summary, "assetsync: script error: main.lua:3: boom".
      if (err instanceof ScriptError && err.traceback) io.stderr.write(`${err.traceback}\n`)
      throw fatal ?? err
    } finally {
      signals?.cancel()
      host.stop(0)
      await assets.close()
      removeLiveTemps() // stopped mid-download (a signal, an error): no temp file stays in --out
    }
    if (code !== 0) throw new ExitRequest(code)
  })
}
