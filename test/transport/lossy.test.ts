/**
 * A bulk transfer over a bad path: 16 MiB server -> client through the userspace lossy proxy at
 * 10% loss (both directions, handshake datagrams included) with delay, jitter, reordering and
 * duplication. udx must recover everything; the hash proves the bytes are intact.
 */
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { CHUNK_SIZE } from '../../src/limits.js'
import { dial } from '../../src/protocol/endpoint.js'
import type { UdpListener } from '../../src/protocol/udp.js'
import { startLossyProxy } from '../helpers/lossy-proxy.js'
import { Cleanup, LOOPBACK, sha256 } from '../helpers/common.js'
import { fetchBlob, listen, serveBlobs } from '../helpers/endpoints.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const MiB = 1024 * 1024
/** LOSSY_SEED=<n> replays another fault pattern (the run prints the seed it used). */
const SEED = Number(process.env.LOSSY_SEED ?? 0xa55e7)

describe('lossy path (userspace proxy)', () => {
  it('16 MiB crosses 10% loss with reordering and duplication intact', async () => {
    const payload = randomBytes(16 * MiB)
    const server = await listen('udp', { token: 'lossy' })
    cleanup.add(() => server.close())
    serveBlobs(server, (path) => (path === 'big.bin' ? payload : undefined))
    const proxy = await startLossyProxy({
      target: { host: LOOPBACK, port: server.address().port },
      loss: 0.1, delayMs: 2, jitterMs: 1, reorder: 0.05, duplicate: 0.05, seed: SEED,
    })
    cleanup.add(() => proxy.close())

    const t0 = performance.now()
    const conn = await dial({ transport: 'udp', host: proxy.host, port: proxy.port, token: 'lossy', connectTimeoutMs: 10_000 })
    cleanup.add(() => conn.destroy())
    const connectedMs = performance.now() - t0
    const t1 = performance.now()
    const got = await fetchBlob(conn, 'big.bin')
    const seconds = (performance.now() - t1) / 1000

    expect(got.length).toBe(payload.length)
    expect(sha256(got).equals(sha256(payload))).toBe(true)
    // The faults really happened (so "intact" means udx recovered, not that nothing went wrong).
    const c = proxy.counters
    expect(c.clients).toBe(1)
    expect(c.dropped / c.received).toBeGreaterThan(0.08)
    expect(c.dropped / c.received).toBeLessThan(0.12)
    expect(c.duplicated).toBeGreaterThan(0)
    expect(c.reordered).toBeGreaterThan(0)
    // Every byte of the payload crossed the proxy at least once (16 MiB / ~1.2 KB datagrams).
    expect(c.bytesForwarded).toBeGreaterThan(payload.length)
    expect((server.listener as UdpListener).stats.streamsCreated).toBe(1)

    const mbps = payload.length / MiB / seconds
    console.log(`lossy transfer: ${payload.length / MiB} MiB in ${seconds.toFixed(2)} s = ${mbps.toFixed(2)} MiB/s`
      + ` (connect ${connectedMs.toFixed(0)} ms, ${Math.ceil(payload.length / CHUNK_SIZE)} chunk frames);`
      + ` seed ${SEED}; proxy ${JSON.stringify(c)}`)
  })
})
