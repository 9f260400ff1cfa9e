// `node serve-features.mjs <root> <features|default>`: this build's AssetServer (dist/) serving
// <root> on 127.0.0.1:0 (no watcher) and offering only the given protocol features (a u32 bitset;
// 0 = none: plain whole-file transfers, as to a protocol-2 peer; `default`: every implemented
// one). Prints the `listening` event as `serve --json` does; SIGTERM closes it. For timings of a
// feature against the same server without it.
import { AssetServer } from '../../dist/index.js'

const [root, features = '0'] = process.argv.slice(2)
const protocol = features === 'default' ? undefined : { features: Number(features) >>> 0 }
const server = await AssetServer.start({ root, host: '127.0.0.1', port: 0, watch: false, protocol })
const { port } = server.address()
console.log(JSON.stringify({ event: 'listening', transport: 'udp', host: '127.0.0.1', port, key: server.publicKey.toString('hex'), files: server.scan.files }))
process.once('SIGTERM', () => { void server.close().then(() => process.exit(0)) })
