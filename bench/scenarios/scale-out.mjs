// Scale-out (issue 18, docs/scale-out.md): 20 clients pull the same tree (256 MiB; --quick: 8 clients, 16 MiB)
// (a) from one origin, (b) spread over two edges serving from the bucket (cold caches), (b2) the
// same again over the now warm edges, and (c) with --direct through those edges (bytes straight
// from the bucket). Loopback only, so the figures are ratios against (a) measured in the same run,
// and each server process's CPU seconds (utime + stime from /proc): the point of edges and
// --direct is to take the work off the origin.
// The bucket is s3rver (a Node S3 API server, far slower than real object storage) in a process of
// its own; NATS is the Debian nats-server. Skipped (with the reason) if nats-server is missing.
import { randomFillSync } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cliEnv, pull, startServe } from '../lib/assetsync.mjs'
import { BIN, LIB, cpuSecondsOf, start, startNode, stop, waitEvent } from '../lib/procs.mjs'
import { row } from '../lib/report.mjs'
import { MB, MiB } from '../lib/stats.mjs'

export const id = 'scale-out'
export const title = 'Scale-out: 20 clients (--quick: 8) from one origin, two edges, --direct'

const NATS = '/usr/sbin/nats-server'
const BUCKET = 'bench'
const S3_KEYS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' }

async function freePort() {
  const { createServer } = await import('node:net')
  const s = createServer()
  await new Promise((r) => s.listen(0, '127.0.0.1', r))
  const { port } = s.address()
  await new Promise((r) => s.close(r))
  return port
}

/** Runs `n` pulls at once, client i against servers[i % servers.length]; returns wall ms and bytes. */
async function pullAll(ctx, tag, servers, n, extraArgs, env) {
  const t0 = performance.now()
  const runs = await Promise.all(Array.from({ length: n }, (_, i) => {
    const s = servers[i % servers.length]
    return pull({ port: s.port, key: s.key, out: join(ctx.tmp, `${tag}-${i}`), env: cliEnv(join(ctx.tmp, `${tag}-cfg-${i}`), env), extraArgs })
  }))
  const bytes = runs.reduce((a, r) => a + (r.summary?.bytesReceived ?? 0), 0)
  return { ms: performance.now() - t0, bytes, slowest: Math.max(...runs.map((r) => r.wallMs)) }
}

export async function run(ctx) {
  if (!existsSync(NATS)) return { rows: [], skipped: `nats-server not found at ${NATS}` }
  const clients = ctx.quick ? 8 : 20
  const total = ctx.quick ? 16 * MiB : 256 * MiB
  const files = 8
  const src = join(ctx.tmp, 'src')
  mkdirSync(src, { recursive: true })
  for (let i = 0; i < files; i++) writeFileSync(join(src, `pack-${i}.bin`), randomFillSync(Buffer.allocUnsafe(total / files)))

  const s3dir = join(ctx.tmp, 's3')
  mkdirSync(s3dir, { recursive: true })
  const s3 = startNode(join(LIB, 's3-server.mjs'), [s3dir, BUCKET], { env: process.env })
  const natsPort = await freePort()
  const nats = start(NATS, ['-js', '-a', '127.0.0.1', '-p', String(natsPort), '-sd', join(ctx.tmp, 'nats')], { env: process.env })
  const procs = [s3, nats]
  try {
    const s3port = (await waitEvent(s3, (e) => e.event === 'ready', 30_000, 's3rver to listen')).port
    const env = { ...S3_KEYS, AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${s3port}` }
    const feed = `nats://127.0.0.1:${natsPort}`
    await new Promise((r) => setTimeout(r, 300)) // nats-server is ready in ~30 ms
    const origin = await startServe(src, { env: cliEnv(join(ctx.tmp, 'origin-cfg'), env), args: ['--publish', `s3://${BUCKET}/t`, '--feed', feed] })
    procs.push(origin.p)
    const t0 = performance.now()
    const pub = await waitEvent(origin.p, (e) => e.event === 'published', 900_000, 'the origin to publish')
    const publishMs = performance.now() - t0
    ctx.log(`  published ${total / MiB} MiB: ${pub.chunksUploaded} chunks in ${(publishMs / 1000).toFixed(1)} s`)

    // (a) every client from the origin.
    let c0 = { origin: cpuSecondsOf(origin.pid), s3: cpuSecondsOf(s3.pid) }
    const a = await pullAll(ctx, 'origin', [origin], clients, [], {})
    const aCpu = { origin: cpuSecondsOf(origin.pid) - c0.origin, s3: cpuSecondsOf(s3.pid) - c0.s3 }
    ctx.log(`  origin: ${clients} pulls in ${(a.ms / 1000).toFixed(1)} s, origin CPU ${aCpu.origin.toFixed(1)} s`)

    // (b) the same over two edges (cold caches).
    const edges = []
    for (let i = 0; i < 2; i++) {
      const p = startNode(BIN, ['serve', '--origin', `s3://${BUCKET}/t`, '--feed', feed, '--host', '127.0.0.1', '--port', '0', '--json'], { env: cliEnv(join(ctx.tmp, `edge-cfg-${i}`), env) })
      procs.push(p)
      const ev = await waitEvent(p, (e) => e.event === 'listening', 60_000, 'an edge to listen')
      edges.push({ p, pid: p.pid, port: ev.port, key: ev.key })
    }
    const cpu = () => ({ origin: cpuSecondsOf(origin.pid), s3: cpuSecondsOf(s3.pid), edges: edges.map((e) => cpuSecondsOf(e.pid)) })
    c0 = cpu()
    const b = await pullAll(ctx, 'edges', edges, clients, [], {})
    let c1 = cpu()
    const bCpu = { origin: c1.origin - c0.origin, s3: c1.s3 - c0.s3, edges: c1.edges.map((v, i) => v - c0.edges[i]) }
    ctx.log(`  two edges: ${clients} pulls in ${(b.ms / 1000).toFixed(1)} s, edge CPU ${bCpu.edges.map((v) => v.toFixed(1)).join(' + ')} s, bucket CPU ${bCpu.s3.toFixed(1)} s`)

    // (b2) the same again: the edges' caches are warm now (memory, then disk).
    c0 = cpu()
    const w = await pullAll(ctx, 'warm', edges, clients, [], {})
    c1 = cpu()
    const wCpu = { s3: c1.s3 - c0.s3, edges: c1.edges.map((v, i) => v - c0.edges[i]) }
    ctx.log(`  two warm edges: ${clients} pulls in ${(w.ms / 1000).toFixed(1)} s, edge CPU ${wCpu.edges.map((v) => v.toFixed(1)).join(' + ')} s, bucket CPU ${wCpu.s3.toFixed(1)} s`)

    // (c) --direct through the edges: bytes from the bucket.
    c0 = cpu()
    const c = await pullAll(ctx, 'direct', edges, clients, ['--direct'], {})
    c1 = cpu()
    const cCpu = { origin: c1.origin - c0.origin, s3: c1.s3 - c0.s3, edges: c1.edges.map((v, i) => v - c0.edges[i]) }
    ctx.log(`  --direct: ${clients} pulls in ${(c.ms / 1000).toFixed(1)} s, edge CPU ${cCpu.edges.map((v) => v.toFixed(1)).join(' + ')} s, bucket CPU ${cCpu.s3.toFixed(1)} s`)

    const sum = (xs) => xs.reduce((p, v) => p + v, 0)
    const base = { label: `${clients} clients from one origin`, value: a.ms / 1000 }
    const rows = [
      row({ id: 'origin-wall', label: `${clients} × ${total / MiB} MiB from one origin: all done`, unit: 's', value: a.ms / 1000 }),
      row({ id: 'edges-wall', label: `same, over two edges (cold caches)`, unit: 's', value: b.ms / 1000, baseline: base }),
      row({ id: 'warm-wall', label: 'same, over two edges (warm caches)', unit: 's', value: w.ms / 1000, baseline: base }),
      row({ id: 'direct-wall', label: 'same, --direct (bucket → client)', unit: 's', value: c.ms / 1000, baseline: base }),
      row({ id: 'origin-cpu', label: 'origin CPU serving the 20', unit: 's', value: aCpu.origin }),
      row({ id: 'edges-origin-cpu', label: 'origin CPU while two edges serve them', unit: 's', value: bCpu.origin, baseline: { label: 'origin serving all', value: aCpu.origin } }),
      row({ id: 'edges-cpu', label: 'edge CPU, both edges', unit: 's', value: sum(bCpu.edges), baseline: { label: 'origin serving all', value: aCpu.origin } }),
      row({ id: 'warm-edges-cpu', label: 'edge CPU, both edges, warm', unit: 's', value: sum(wCpu.edges), baseline: { label: 'origin serving all', value: aCpu.origin } }),
      row({ id: 'edges-s3-cpu', label: 'bucket (s3rver) CPU, edges', unit: 's', value: bCpu.s3 }),
      row({ id: 'direct-edges-cpu', label: 'edge CPU, both edges, --direct', unit: 's', value: sum(cCpu.edges), baseline: { label: 'origin serving all', value: aCpu.origin } }),
      row({ id: 'direct-s3-cpu', label: 'bucket (s3rver) CPU, --direct', unit: 's', value: cCpu.s3 }),
      row({ id: 'publish', label: `origin: publish ${total / MiB} MiB to the bucket`, unit: 's', value: publishMs / 1000 }),
      row({ id: 'bytes', label: 'payload bytes each mode (all clients)', unit: 'MB', value: a.bytes / MB, extra: { edges: b.bytes / MB, direct: c.bytes / MB } }),
    ]
    return { params: { clients, bytes: total, files, edges: 2, transport: 'udp', bucket: 's3rver (one Node process)' }, rows }
  } finally {
    for (const p of procs.reverse()) await stop(p, 3000)
  }
}
