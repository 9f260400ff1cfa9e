// An AssetServer of a BUILT assetsync (any dist/ folder) in its own process, for bench/attacks.mjs,
// so the attackers' CPU is not the server's and its RSS is its own. Fork it:
//   fork('guard-server.mjs', [dist, root, transport, optionsJson], { env: { ASSETSYNC_CONFIG_DIR } })
// IPC: sends {event:'listening', port, key, pid}; answers {cmd:'stats', gc?} with
// {event:'stats', rss, heapUsed, external, arrayBuffers, clients, counts, codes, guard}; exits on {cmd:'close'}.
import { pathToFileURL } from 'node:url'

const [dist, root, transport, json = '{}'] = process.argv.slice(2)
const opts = JSON.parse(json)
const send = (m) => { if (process.connected) process.send(m) }
process.on('uncaughtException', (err) => { send({ event: 'fatal', message: String(err?.stack ?? err) }); process.exit(1) })

const { AssetServer } = await import(pathToFileURL(`${dist}/core/server/server.js`).href)
const server = await AssetServer.start({
  root, transport, host: '127.0.0.1', port: 0, watch: false, configDir: process.env.ASSETSYNC_CONFIG_DIR, ...opts,
})
const counts = {}
const codes = {}
for (const ev of ['connected', 'disconnected', 'rejected', 'auth-failures', 'error']) {
  server.on(ev, (e) => {
    counts[ev] = (counts[ev] ?? 0) + 1
    if (ev === 'rejected') { const k = e.reason ?? e.code; codes[k] = (codes[k] ?? 0) + 1 }
  })
}
process.on('message', (m) => {
  if (m?.cmd === 'stats') {
    if (m.gc) globalThis.gc?.()
    const mem = process.memoryUsage()
    send({
      event: 'stats', rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, arrayBuffers: mem.arrayBuffers,
      clients: server.clients, counts, codes, guard: server.guard ?? null,
      memory: server.memory ? { used: server.memory.used, refused: server.memory.refused } : null,
      matching: server.matching?.stats ?? null,
    })
  } else if (m?.cmd === 'close') {
    void server.close().then(() => process.exit(0))
  }
})
setInterval(() => {}, 1 << 30)
send({ event: 'listening', port: server.address().port, key: server.publicKey.toString('hex'), pid: process.pid })
