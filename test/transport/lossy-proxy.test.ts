/**
 * The lossy proxy itself (test/helpers/lossy-proxy.ts): other tests trust its faults, so check
 * that they happen at the asked rates, that a seed reproduces them, and that the target sees the
 * proxy's address.
 */
import { type Socket, createSocket } from 'node:dgram'
import { afterEach, describe, expect, it } from 'vitest'
import { type LossyProxyCounters, type LossyProxyOptions, startLossyProxy } from '../helpers/lossy-proxy.js'
import { Cleanup, LOOPBACK, waitFor } from '../helpers/common.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

async function udp(): Promise<Socket> {
  const s = createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, LOOPBACK, () => resolve()))
  cleanup.add(() => new Promise<void>((resolve) => s.close(() => resolve())))
  return s
}

/** Sends `n` numbered datagrams client -> proxy -> target; returns the ids in arrival order. */
async function run(n: number, opts: Omit<LossyProxyOptions, 'target'>): Promise<{ ids: number[]; from: Set<string>; counters: LossyProxyCounters; clientPort: number }> {
  const target = await udp()
  const client = await udp()
  const proxy = await startLossyProxy({ ...opts, target: { host: LOOPBACK, port: target.address().port } })
  cleanup.add(() => proxy.close())
  const ids: number[] = []
  const from = new Set<string>()
  target.on('message', (b, rinfo) => {
    ids.push(b.readUInt32BE(0))
    from.add(`${rinfo.address}:${rinfo.port}`)
  })
  // In batches, so no kernel socket buffer overflows (that loss would not be the proxy's doing).
  for (let i = 0; i < n; i++) {
    const b = Buffer.alloc(64)
    b.writeUInt32BE(i, 0)
    client.send(b, proxy.port, proxy.host)
    if (i % 100 === 99) await waitFor(() => proxy.counters.received === i + 1, 5000, 'the proxy to read a batch')
  }
  await waitFor(() => proxy.counters.received === n, 5000, 'the proxy to read every datagram')
  await waitFor(() => ids.length === proxy.counters.forwarded, 5000, 'the target to get every forwarded datagram')
  return { ids, from, counters: { ...proxy.counters }, clientPort: client.address().port }
}

describe('lossy proxy', () => {
  it('forwards everything unchanged when no fault is set, from its own address', async () => {
    const r = await run(500, {})
    expect(r.ids).toEqual(Array.from({ length: 500 }, (_, i) => i))
    expect(r.counters).toMatchObject({ received: 500, forwarded: 500, dropped: 0, duplicated: 0, reordered: 0, clients: 1 })
    expect(r.from.size).toBe(1)
    expect([...r.from][0]).not.toBe(`${LOOPBACK}:${r.clientPort}`)
  })

  it('drops, duplicates and reorders at about the asked rates, reproducibly per seed', async () => {
    const opts = { loss: 0.2, duplicate: 0.1, reorder: 0.1, seed: 42 }
    const a = await run(2000, opts)
    const c = a.counters
    expect(c.dropped / 2000).toBeGreaterThan(0.16)
    expect(c.dropped / 2000).toBeLessThan(0.24)
    expect(c.duplicated).toBeGreaterThan(100)
    expect(c.reordered).toBeGreaterThan(100)
    expect(c.forwarded).toBe(2000 - c.dropped + c.duplicated)
    const unique = new Set(a.ids)
    expect(unique.size).toBe(2000 - c.dropped)
    expect(a.ids.length - unique.size).toBe(c.duplicated)
    expect(a.ids.some((id, i) => i > 0 && id < (a.ids[i - 1] ?? 0))).toBe(true) // out of order

    const b = await run(2000, opts)
    expect([...new Set(b.ids)].sort((x, y) => x - y)).toEqual([...unique].sort((x, y) => x - y))
    expect(b.counters.duplicated).toBe(c.duplicated)
    const other = await run(2000, { ...opts, seed: 43 })
    expect([...new Set(other.ids)].sort((x, y) => x - y)).not.toEqual([...unique].sort((x, y) => x - y))
  })

  it('applies a filter before the random faults, and rejects bad settings', async () => {
    const r = await run(100, { filter: (d) => d.readUInt32BE(0) % 2 === 0 })
    expect(r.ids).toEqual(Array.from({ length: 50 }, (_, i) => 2 * i))
    expect(r.counters.filtered).toBe(50)
    await expect(startLossyProxy({ target: { host: LOOPBACK, port: 1 }, loss: 2 })).rejects.toThrow(RangeError)
    await expect(startLossyProxy({ target: { host: 'localhost', port: 1 } })).rejects.toThrow(TypeError)
  })

  it('set({ loss: 1 }) cuts the path from then on (a partition), set({ loss: 0 }) heals it', async () => {
    const target = await udp()
    const client = await udp()
    const proxy = await startLossyProxy({ target: { host: LOOPBACK, port: target.address().port } })
    cleanup.add(() => proxy.close())
    let got = 0
    target.on('message', () => got++)
    const send = (): void => { client.send(Buffer.alloc(8), proxy.port, proxy.host) }
    for (let i = 0; i < 10; i++) send()
    await waitFor(() => got === 10, 5000, 'the first ten datagrams')
    proxy.set({ loss: 1 })
    for (let i = 0; i < 10; i++) send()
    await waitFor(() => proxy.counters.received === 20, 5000, 'the proxy to read the next ten')
    expect(proxy.counters.dropped).toBe(10)
    proxy.set({ loss: 0 })
    send()
    await waitFor(() => got === 11, 5000, 'a datagram after healing')
    expect(proxy.counters.forwarded).toBe(11)
  })
})
