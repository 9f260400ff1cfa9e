/**
 * The assetsync command line. The ONE place errors become messages and exit codes: every
 * failure is one line on stderr prefixed "assetsync: " and an exit code from errors.ts.
 */
import { Command, CommanderError } from 'commander'
import { withProjectConfig } from './commands/config.js'
import { getCommand } from './commands/get.js'
import { type OutputStreams, processStreams } from './commands/output.js'
import { pullCommand } from './commands/pull.js'
import { runCommand } from './commands/run.js'
import { serveCommand } from './commands/serve.js'
import { watchCommand } from './commands/watch.js'
import { statusCommand } from './commands/status.js'
import { AssetSyncError, EXIT, type ExitCode, ExitRequest, exitCodeOf } from './errors.js'
import { VERSION } from './version.js'

export { VERSION }

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim()
}

export function buildProgram(io: OutputStreams = processStreams): Command {
  const program = new Command('assetsync')
    .description('Serve a folder of assets over encrypted, reliable UDP and keep other machines\' copies in sync.')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `
Examples:
  assetsync serve ./assets                              serve a folder on udp port 7420
  assetsync pull --server 192.168.1.20:7420 --out ./a   mirror it once (CI prefetch)
  assetsync get --server 192.168.1.20:7420 main.lua     print one file
  assetsync watch --server 192.168.1.20:7420 --out ./a --exec "kill -HUP \\$(cat game.pid)"
  assetsync run main.lua --server 192.168.1.20:7420 --out ./a -- level1   a Lua game, hot reloaded
  assetsync status --server 192.168.1.20:7420           devices, subscriptions, last reloads

Exit codes: 0 ok, 1 unexpected, 2 usage, 3 cannot connect / timed out / connection lost,
4 authentication or server-key mismatch, 5 remote path not found or refused,
6 integrity or local write failure, 7 script error (run; os.exit(n) in a script exits n),
130 interrupted (SIGINT) and 143 terminated (SIGTERM): pull and get remove their temp files
first; serve, watch and run stop on those signals and exit 0. With --json, a failure is also the
last event on stdout: {"event":"error","code":"ERR_…","message":"…","exitCode":N,"fatal":true}.`)
  for (const cmd of [serveCommand(io), pullCommand(io), getCommand(io), watchCommand(io), runCommand(io), statusCommand(io)]) program.addCommand(cmd)
  withProjectConfig(program) // --config and assetsync.json, for every command added above
  const configure = (c: Command): void => {
    c.exitOverride()
    c.configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(`assetsync: ${oneLine(s.replace(/^error: /, ''))}\n`),
    })
    c.showHelpAfterError(false)
    for (const sub of c.commands) configure(sub)
  }
  configure(program)
  return program
}

/** True if the command line asks for --json (before a `--`): for errors raised before options are parsed. */
function asksJson(argv: string[]): boolean {
  const args = argv.slice(2)
  const end = args.indexOf('--')
  return (end < 0 ? args : args.slice(0, end)).includes('--json')
}

/**
 * Runs the CLI on `argv` (process.argv shape) and returns the exit code (one of EXIT, or the
 * code a `run` script passed to os.exit); never calls process.exit. Every failure is one line on
 * stderr; with --json it is also the last event on stdout:
 * {"event":"error","code":"ERR_…","message":…,"exitCode":N,"fatal":true}.
 */
export async function run(argv: string[], io: OutputStreams = processStreams): Promise<ExitCode | number> {
  const program = buildProgram(io)
  let json = asksJson(argv)
  // The command's own --json (a flag or the project file's "json" key), once its options are parsed.
  program.hook('preAction', (_program, action) => { json = action.opts().json === true })
  const errorEvent = (code: string, message: string, exitCode: ExitCode): void => {
    if (json) io.stdout.write(`${JSON.stringify({ event: 'error', code, message, exitCode, fatal: true })}\n`)
  }
  try {
    await program.parseAsync(argv)
    return EXIT.OK
  } catch (err) {
    if (err instanceof ExitRequest) return err.exitCode
    if (err instanceof CommanderError) {
      // --help and --version end through here with exit code 0.
      if (err.exitCode === 0) return EXIT.OK
      errorEvent('ERR_USAGE', oneLine(err.message.replace(/^error: /, '')), EXIT.USAGE)
      return EXIT.USAGE
    }
    const code = exitCodeOf(err)
    const msg = err instanceof AssetSyncError ? err.message : `unexpected error: ${(err as Error)?.stack ?? err}`
    io.stderr.write(`assetsync: ${code === EXIT.UNEXPECTED ? msg : oneLine(msg)}\n`)
    errorEvent(err instanceof AssetSyncError ? err.code : 'ERR_INTERNAL',
      oneLine(err instanceof AssetSyncError ? err.message : `unexpected error: ${(err as Error)?.message ?? String(err)}`), code)
    return code
  }
}
