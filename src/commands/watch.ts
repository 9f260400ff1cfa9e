/** `assetsync watch`: placeholder until issue 4 lands (mirror + subscribe + hooks). */
import { Command } from 'commander'
import { AssetSyncError } from '../errors.js'
import { clientOptions } from './common.js'
import type { OutputStreams } from './output.js'

export function watchCommand(_io: OutputStreams): Command {
  const cmd = new Command('watch')
    .description('mirror, then apply pushed changes as they happen and run a hook per batch (not implemented yet)')
    .argument('[patterns...]', 'globs of the files to mirror')
  for (const o of clientOptions()) cmd.addOption(o)
  return cmd.action(() => {
    throw new AssetSyncError('ERR_INTERNAL', 'watch is not implemented yet')
  })
}
