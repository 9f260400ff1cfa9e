/** `assetsync get`: fetch one file on demand, to stdout or atomically to -o <file>. */
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Command } from 'commander'
import { removeLiveTemps } from '../core/fs/atomic-write.js'
import { assertWirePath } from '../core/fs/paths.js'
import { writeError } from '../errors.js'
import { type ClientFlags, abortOnSignal, clientOptions, toClientOptions } from './common.js'
import type { OutputStreams } from './output.js'

interface GetFlags extends ClientFlags {
  output?: string
}

export function getCommand(io: OutputStreams): Command {
  const cmd = new Command('get')
    .description('fetch one file; its bytes go to stdout unless -o is given (verified before anything is written)')
    .argument('<path>', 'path of the file on the server, e.g. scripts/main.lua')
    .option('-o, --output <file>', 'write to this file (atomically: temp file, hash check, rename)')
  for (const o of clientOptions()) cmd.addOption(o)
  return cmd.action(async (path: string, flags: GetFlags) => {
    assertWirePath(path)
    const { AssetClient } = await import('../core/client/client.js')
    const ac = new AbortController()
    const stopSignals = abortOnSignal(ac)
    let client
    try {
      client = await AssetClient.connect(toClientOptions(flags))
    } catch (err) {
      stopSignals()
      throw ac.signal.aborted ? ac.signal.reason : err
    }
    const stop = (): void => client.close()
    ac.signal.addEventListener('abort', stop, { once: true })
    try {
      ac.signal.throwIfAborted()
      if (flags.output) {
        await client.download(path, resolve(flags.output))
        return
      }
      // stdout cannot be taken back, so verify into a private temp file first, then copy.
      const dir = await mkdtemp(join(tmpdir(), 'assetsync-get-'))
      try {
        const file = join(dir, 'file')
        await client.download(path, file)
        try {
          await pipeline(createReadStream(file), io.stdout, { end: false })
        } catch (err) {
          throw writeError('stdout', err)
        }
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    } catch (err) {
      if (!ac.signal.aborted) throw err
      removeLiveTemps() // stopped by a signal: the transfer has ended; its temp file goes now
      throw ac.signal.reason
    } finally {
      ac.signal.removeEventListener('abort', stop)
      stopSignals()
      client.close()
    }
  })
}
