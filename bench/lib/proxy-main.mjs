// The bench's proxies as child processes (streams.mjs startProxy spawns this):
//   node bench/lib/proxy-main.mjs udp --target-port P [--target-host H] [--loss 0.02] [--delay 20] [--seed 1]
//       lossy-proxy.mjs: i.i.d. loss and a fixed one-way delay in each direction
//   node bench/lib/proxy-main.mjs tcp --target-port P [--target-host H] [--delay 20]
//       tcp-delay-proxy.mjs: every chunk delayed, no loss
// Prints {"event":"listening","port":N}; on SIGTERM or SIGINT prints {"event":"counters",...},
// closes the proxy and exits.
import { parseArgs } from 'node:util'
import { startLossyProxy } from './lossy-proxy.mjs'
import { startTcpDelayProxy } from './tcp-delay-proxy.mjs'

const { positionals: [kind], values: a } = parseArgs({
  allowPositionals: true,
  options: {
    'target-port': { type: 'string' },
    'target-host': { type: 'string', default: '127.0.0.1' },
    delay: { type: 'string', default: '0' },
    loss: { type: 'string', default: '0' },
    seed: { type: 'string', default: '1' },
  },
})
const target = { host: a['target-host'], port: Number(a['target-port']) }
let proxy
if (kind === 'udp') proxy = await startLossyProxy({ target, loss: Number(a.loss), delayMs: Number(a.delay), seed: Number(a.seed) })
else if (kind === 'tcp') proxy = await startTcpDelayProxy({ target, delayMs: Number(a.delay) })
else {
  console.error('usage: node bench/lib/proxy-main.mjs udp|tcp --target-port P [--target-host H] [--delay ms] [--loss p --seed n (udp)]')
  process.exit(2)
}
const emit = (ev) => process.stdout.write(`${JSON.stringify(ev)}\n`)
const finish = async () => {
  emit({ event: 'counters', ...proxy.counters })
  await proxy.close()
  process.exit(0)
}
process.on('SIGTERM', finish)
process.on('SIGINT', finish)
emit({ event: 'listening', port: proxy.port })
