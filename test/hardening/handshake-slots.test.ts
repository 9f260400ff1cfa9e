/**
 * Issue 12, case 3: unauthenticated connections must not keep a client out. Idle sockets (TCP) and
 * idle sessions that echoed their cookie (UDP) from many source addresses flood a server whose
 * authenticated slots are few (maxClients 64, so the flood is far past them); a client with the
 * token still connects within 1 s and gets a file. Before, the idle connections held the
 * MAX_CLIENTS slots until the 10 s handshake timeout and the client got "server full".
 */
import { readFile } from 'node:fs/promises'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { MAX_PREAUTH_CONNECTIONS, MAX_PREAUTH_PER_ADDR } from '../../src/limits.js'
import type { TransportName } from '../../src/protocol/transport.js'
import { idleTcp, idleUdpSource, sources } from '../helpers/attackers.js'
import { waitFor } from '../helpers/common.js'
import { type LocalServer, localServers } from '../helpers/raw-peers.js'

const TOKEN = 'the right token'
const servers = localServers('slots', { token: TOKEN, maxClients: 64 })
const server = servers.start
const cleanup = servers.cleanup

/** A client with the token from 127.0.0.1, given `ms` for its whole handshake; it fetches a file. */
async function legitimate(s: LocalServer, transport: TransportName, ms: number): Promise<void> {
  const c = await AssetClient.connect({ server: s.addr, transport, key: s.key, token: TOKEN, configDir: servers.config(), connectTimeoutMs: ms })
  cleanup.add(() => c.close())
  const out = join(servers.config(), `got-${transport}-${Date.now()}`)
  await c.download('hello.txt', out)
  expect(await readFile(out, 'utf8')).toBe('hello\n')
}

/** Opens `n` idle TCP connections spread over `from`; returns them (destroyed by cleanup). */
async function tcpFlood(port: number, n: number, from: string[]): Promise<Socket[]> {
  const socks: Socket[] = []
  cleanup.add(() => { for (const x of socks) x.destroy() })
  // In batches, so the server's accept queue (backlog 511) never overflows into SYN retries.
  for (let i = 0; i < n; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, n - i) }, (_, j) =>
      idleTcp(from[(i + j) % from.length] as string, port).then((x) => { socks.push(x) })))
  }
  return socks
}

describe('handshake slots', () => {
  it(`tcp: ${MAX_PREAUTH_CONNECTIONS + 476} idle sockets from 16 addresses; a client with the token gets in within 1 s`, async () => {
    const s = await server('tcp')
    const n = MAX_PREAUTH_CONNECTIONS + 476
    await tcpFlood(s.port, n, sources(16))
    await waitFor(() => s.server.guard.pool.admitted >= n, 10_000, 'the server to accept every idle socket')
    const g = s.server.guard
    expect(g.preAuth).toBe(MAX_PREAUTH_CONNECTIONS)
    expect(g.pool.evicted).toBe(n - MAX_PREAUTH_CONNECTIONS)

    const t0 = performance.now()
    await legitimate(s, 'tcp', 1000)
    const ms = performance.now() - t0
    expect(s.server.clients).toBe(1)
    expect(s.server.guard.preAuth).toBeLessThanOrEqual(MAX_PREAUTH_CONNECTIONS)
    console.log(`slots tcp: ${n} idle sockets, ${g.pool.evicted} evicted; the client connected and fetched in ${ms.toFixed(0)} ms`)
  })

  it('tcp: one address holds at most MAX_PREAUTH_PER_ADDR handshakes; its stalest give way to its newest', async () => {
    const s = await server('tcp')
    const n = MAX_PREAUTH_PER_ADDR + 44
    const one = sources(1, 200)[0] as string
    // Under HANDSHAKE_RATE_PER_ADDR (a TCP connect counts 2): at most 250 a second from one address.
    const socks = await tcpFlood(s.port, 200, [one])
    await new Promise((r) => setTimeout(r, 1100))
    socks.push(...await tcpFlood(s.port, n - 200, [one]))
    await waitFor(() => s.server.guard.pool.admitted >= n, 10_000, 'the server to accept every idle socket')
    expect(s.server.guard.preAuth).toBe(MAX_PREAUTH_PER_ADDR)
    expect(s.server.guard.pool.evicted).toBe(n - MAX_PREAUTH_PER_ADDR)
    // The oldest ones were closed: the first sockets are gone, the last are still open.
    await waitFor(() => socks.slice(0, 44).every((x) => x.destroyed || x.readableEnded), 5000, 'the oldest sockets to be closed')
    expect(socks.slice(-10).every((x) => !x.destroyed && !x.readableEnded)).toBe(true)
    await legitimate(s, 'tcp', 1000)
  })

  it(`udp: ${MAX_PREAUTH_CONNECTIONS + 176} idle sessions (cookie echoed) from 40 addresses; a client with the token gets in within 1 s`, async () => {
    const s = await server('udp')
    const from = await Promise.all(sources(40).map((a) => idleUdpSource(a, s.port)))
    cleanup.add(() => Promise.all(from.map((x) => x.close())))
    const per = Math.ceil((MAX_PREAUTH_CONNECTIONS + 176) / from.length)
    const opened = await Promise.all(from.map(async (src) => {
      let ok = 0
      for (let i = 0; i < per; i++) ok += await src.open().then(() => 1, () => 0)
      return ok
    }))
    const n = opened.reduce((a, b) => a + b, 0)
    expect(n).toBe(per * from.length) // none refused as full: handshakes never make the server full
    const g = s.server.guard
    expect(g.preAuth).toBe(MAX_PREAUTH_CONNECTIONS)
    expect(g.pool.evicted).toBe(n - MAX_PREAUTH_CONNECTIONS)

    const t0 = performance.now()
    await legitimate(s, 'udp', 1000)
    const ms = performance.now() - t0
    expect(s.server.clients).toBe(1)
    console.log(`slots udp: ${n} idle sessions, ${g.pool.evicted} evicted; the client connected and fetched in ${ms.toFixed(0)} ms`)
  })

  it('the handshake deadline closes idle connections (PREAUTH_TIMEOUT_MS, here 300 ms) and frees their slots', async () => {
    const s = await server('tcp', { connectTimeoutMs: 300 })
    const rejected: string[] = []
    s.server.on('rejected', (e) => rejected.push(e.reason))
    await tcpFlood(s.port, 20, sources(2))
    await waitFor(() => rejected.length === 20, 5000, 'every idle socket to be rejected')
    expect(new Set(rejected)).toEqual(new Set(['timeout']))
    expect(s.server.guard.preAuth).toBe(0)
  })
})
