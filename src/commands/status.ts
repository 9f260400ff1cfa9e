/**
 * `assetsync status --server host:port [--json]`: what a server is doing — its connected devices
 * with their subscriptions and last reloads, and its recent change batches — asked over the
 * protocol (feature `status`), authorised like any client: token, key pinning, transport. The
 * server needs no --http for it. A server without the feature (protocol 2) is exit 3, saying so.
 */
import { Command } from 'commander'
import { type ClientFlags, clientOptions, toClientOptions } from './common.js'
import type { OutputStreams } from './output.js'
import { formatStatus } from './status-format.js'

export function statusCommand(io: OutputStreams): Command {
  const cmd = new Command('status')
    .description("show a server's connected devices, their subscriptions and last reloads, and its recent changes")
    .option('--json', 'print the status document (StatusJson, docs/observability.md) as one line of JSON')
  for (const o of clientOptions()) cmd.addOption(o)
  return cmd.action(async (flags: ClientFlags) => {
    const { AssetClient } = await import('../core/client/client.js')
    const client = await AssetClient.connect(toClientOptions(flags))
    try {
      const status = await client.status()
      io.stdout.write(flags.json ? `${JSON.stringify(status)}\n` : formatStatus(status))
    } finally {
      client.close()
    }
  })
}
