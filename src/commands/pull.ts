/** `assetsync pull`: one-shot mirror (CI prefetch) that hash-skips what is already up to date. */
import { Command } from 'commander'
import { removeLiveTemps } from '../core/fs/atomic-write.js'
import { type ClientFlags, abortOnSignal, checkPatterns, clientOptions, toClientOptions } from './common.js'
import { AssetSyncError } from '../errors.js'
import { Output, type OutputStreams, formatBytes } from './output.js'

interface PullFlags extends ClientFlags {
  out: string
  prune?: boolean
  dryRun?: boolean
  direct?: boolean
  s3Endpoint?: string
}

export function pullCommand(io: OutputStreams): Command {
  const cmd = new Command('pull')
    .description('mirror the server\'s files into --out once; files already up to date are skipped by hash')
    .argument('[patterns...]', 'globs of the files to pull (default "**", everything)')
    .option('-o, --out <dir>', 'local folder to mirror into', '.')
    .option('--prune', 'delete local files (matching the patterns) that the server no longer has')
    .option('--dry-run', 'report what would change, change nothing')
    .option('--json', 'NDJSON events on stdout: one per file, then a summary')
    .option('--direct', "take the manifest from the server and the bytes straight from its S3 origin (presigned URLs it hands out; verified by BLAKE3)")
    .option('--s3-endpoint <url>', 'with --direct: read the bucket at this endpoint with your own AWS credentials instead of presigned URLs')
  for (const o of clientOptions()) cmd.addOption(o)
  return cmd.action(async (patterns: string[], flags: PullFlags) => {
    const out = new Output(!!flags.json, io, { batch: true })
    // Loaded on use, so `--help` and the other commands start fast.
    const [{ AssetClient }, { Mirror }, { pullResuming }] = await Promise.all([
      import('../core/client/client.js'), import('../core/client/mirror.js'), import('../core/client/pull.js'),
    ])
    if (flags.s3Endpoint !== undefined && !flags.direct) throw new AssetSyncError('ERR_USAGE', '--s3-endpoint is for --direct')
    const direct = flags.direct ? new (await import('../core/client/direct-fetch.js')).DirectFetcher({ s3Endpoint: flags.s3Endpoint }) : null
    const mirror = new Mirror({
      out: flags.out, patterns: checkPatterns(patterns), fetcher: direct ? (c, meta, final) => direct.stage(c, meta, final) : null,
    })
    out.spin(`connecting to ${flags.server}`)
    const options = toClientOptions(flags)
    const ac = new AbortController()
    const stopSignals = abortOnSignal(ac)
    try {
      const summary = await pullResuming(() => AssetClient.connect(options), mirror, {
        signal: ac.signal,
        prune: !!flags.prune,
        dryRun: !!flags.dryRun,
        onFile: (ev) => {
          out.event({ event: 'file', ...ev, ...(flags.dryRun ? { dryRun: true } : {}) })
          if (ev.action !== 'up-to-date' && !out.interactive) {
            const action = ev.action === 'mode' ? 'mode changed' : ev.action
            out.line(`${flags.dryRun ? 'would be ' : ''}${action} ${ev.path}${ev.bytes ? ` (${formatBytes(ev.bytes)})` : ''}`)
          }
        },
        onWarning: (w) => {
          out.event({ event: 'warning', ...w })
          out.note(`assetsync: warning: ${w.message}`)
        },
        onProgress: (p) => out.progress(`pulling ${p.done}/${p.total} files, ${formatBytes(p.bytes)}`),
        onRetry: (err) => {
          out.event({ event: 'retry', reason: err.message })
          out.note(`assetsync: ${err.message}; reconnecting to resume`)
        },
      })
      out.event({ event: 'summary', ...summary, ...(flags.dryRun ? { dryRun: true } : {}) })
      const secs = (summary.ms / 1000).toFixed(1)
      out.stopSpin(true, `${flags.dryRun ? 'dry run: ' : ''}${summary.files} files: ${summary.downloaded} ${flags.dryRun ? 'to download' : 'downloaded'}, ${summary.upToDate} up to date${summary.modeChanged ? ` (${summary.modeChanged} mode changed)` : ''}, ${summary.deleted} ${flags.dryRun ? 'to delete' : 'deleted'}${summary.vanished ? `, ${summary.vanished} vanished on the server` : ''}; ${formatBytes(summary.bytesReceived)}${summary.bytesReused ? ` received, ${formatBytes(summary.bytesReused)} reused` : ''} in ${secs} s`)
    } catch (err) {
      out.stopSpin(false, ac.signal.aborted ? 'pull interrupted' : 'pull failed') // closes a live spinner; cli.ts prints the error line
      // Stopped by a signal: transfers in flight have ended; whatever temp file is left goes now.
      if (ac.signal.aborted) removeLiveTemps()
      throw ac.signal.aborted ? ac.signal.reason : err
    } finally {
      stopSignals()
      out.flush()
    }
  })
}
