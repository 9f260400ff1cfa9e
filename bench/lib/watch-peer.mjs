// A child process hosting several LiveMirror instances (each with its own connection and out
// folder), for the fan-out scenario. Prints NDJSON:
//   {"event":"synced","i":k}  once per mirror after its initial sync, then {"event":"ready"}
//   {"event":"applied","i":k,"at":<wall ms>,"path":p,"sha":<sha256 of the mirrored file>}
//
//   node bench/lib/watch-peer.mjs '<json: {server, key, transport, outs: [...], configDir}>'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { LiveMirror } from '../../dist/index.js'

const cfg = JSON.parse(process.argv[2])
const emit = (ev) => process.stdout.write(`${JSON.stringify(ev)}\n`)
const now = () => performance.timeOrigin + performance.now()
const mirrors = []

await Promise.all(cfg.outs.map(async (out, i) => {
  const live = new LiveMirror({ client: { server: cfg.server, key: cfg.key, transport: cfg.transport }, out, configDir: cfg.configDir })
  live.on('applied', (changes) => {
    const at = now()
    for (const c of changes) {
      if (c.action !== 'change') continue
      // Time first, then hash what landed (the hash is checked by the bench, not timed).
      void readFile(join(out, c.path)).then((b) => emit({ event: 'applied', i, at, path: c.path, sha: createHash('sha256').update(b).digest('hex') }))
    }
  })
  live.on('batch-error', (err) => emit({ event: 'error', i, message: String(err?.message ?? err) }))
  await live.start()
  mirrors.push(live)
  emit({ event: 'synced', i })
}))
emit({ event: 'ready' })

const shutdown = async () => {
  await Promise.all(mirrors.map((m) => m.stop().catch(() => {})))
  process.exit(0)
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
