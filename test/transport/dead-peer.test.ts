/**
 * Dead-peer detection with real processes (docs/protocol.md §6). A peer is SIGKILLed (no FIN, no
 * goodbye) and the side that survives must close its Connection with ERR_CONNECTION_LOST within
 * 5 s: over UDP the port probe sees ICMP port-unreachable (raw udx never notices), over TCP the
 * kernel closes. A killed server restarted on its port answers the stale stream with RESET. A peer
 * that vanishes without a trace (a path that drops everything: no ICMP, no RESET) is noticed after
 * the idle timeout. The peer is test/fixtures/peer.mjs running the built code in dist/.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetSyncError } from '../../src/errors.js'
import { SUSPECT_MS, TIMER_TICK_MS } from '../../src/limits.js'
import type { Connection } from '../../src/protocol/connection.js'
import { dial } from '../../src/protocol/endpoint.js'
import { startLossyProxy } from '../helpers/lossy-proxy.js'
import { Cleanup, LOOPBACK, nextEvent, withTimeout } from '../helpers/common.js'
import { listen } from '../helpers/endpoints.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const fixture = join(here, '..', 'fixtures', 'peer.mjs')
const DETECT_WITHIN_MS = 5000
/** A short idle timeout where a test waits for it (the default is 15 s). */
const SHORT_IDLE_MS = 3000

beforeAll(() => {
  // The fixture runs the built code; build once if nobody has.
  if (!existsSync(join(root, 'dist', 'protocol', 'endpoint.js'))) {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' })
  }
}, 120_000)

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

interface Peer {
  child: ChildProcess
  /** Resolves with the next JSON line whose event is `event`. */
  next(event: string, ms: number): Promise<Record<string, unknown>>
}

function startPeer(args: string[]): Peer {
  const child = spawn(process.execPath, [fixture, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  cleanup.add(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr?.on('data', (b: Buffer) => { stderr += b.toString() })
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<() => void> = []
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      return
    }
    for (const w of waiters.splice(0)) w()
  })
  const next = (event: string, ms: number): Promise<Record<string, unknown>> => withTimeout(new Promise((resolve, reject) => {
    const check = (): void => {
      const i = lines.findIndex((l) => l.event === event)
      if (i >= 0) {
        resolve(lines.splice(i, 1)[0] as Record<string, unknown>)
        return
      }
      if (child.exitCode !== null) {
        reject(new Error(`peer exited with ${child.exitCode} before '${event}': ${stderr}`))
        return
      }
      waiters.push(check)
    }
    check()
  }), ms, `peer event '${event}' (stderr: ${stderr || 'empty'})`)
  return { child, next }
}

/** Kills `child` with SIGKILL and returns how long `conn` took to close, and with what. */
async function killAndTime(child: ChildProcess, conn: Connection): Promise<{ ms: number; err: unknown }> {
  expect(conn.closed).toBe(false)
  const closed = nextEvent(conn, 'close', DETECT_WITHIN_MS + 3000)
  const t0 = performance.now()
  expect(child.kill('SIGKILL')).toBe(true)
  const [err] = await closed
  return { ms: performance.now() - t0, err }
}

describe.each(['udp', 'tcp'] as const)('dead peer over %s', (transport) => {
  it(`the server notices a SIGKILLed client within ${DETECT_WITHIN_MS} ms`, async () => {
    const server = await listen(transport)
    cleanup.add(() => server.close())
    const accepted = nextEvent(server, 'connection', 10_000)
    const peer = startPeer(['dial', transport, String(server.address().port)])
    await peer.next('connected', 10_000)
    const [conn] = (await accepted) as [Connection]

    const { ms, err } = await killAndTime(peer.child, conn)
    console.log(`${transport}: server noticed the killed client after ${ms.toFixed(0)} ms (${(err as Error).message})`)
    expect(err).toBeInstanceOf(AssetSyncError)
    expect((err as AssetSyncError).code).toBe('ERR_CONNECTION_LOST')
    expect(ms).toBeLessThan(DETECT_WITHIN_MS)
    expect(server.connections.size).toBe(0)
  })

  it(`the client notices a SIGKILLed server within ${DETECT_WITHIN_MS} ms (and a live idle one is kept)`, async () => {
    const peer = startPeer(['serve', transport])
    const { port } = await peer.next('listening', 10_000)
    const conn = await dial({ transport, host: LOOPBACK, port: Number(port), connectTimeoutMs: 5000 })
    cleanup.add(() => conn.destroy())
    await peer.next('connection', 5000)

    if (transport === 'udp') {
      // Control: an idle connection to a live server outlives the suspect time (keepalives flow,
      // no probe finds its port closed), so the close below is the kill's doing.
      let early: unknown = null
      conn.once('close', (e) => { early = e ?? 'closed' })
      await new Promise((resolve) => setTimeout(resolve, SUSPECT_MS + 2000))
      expect(early).toBeNull()
    }

    const { ms, err } = await killAndTime(peer.child, conn)
    console.log(`${transport}: client noticed the killed server after ${ms.toFixed(0)} ms (${(err as Error).message})`)
    expect((err as AssetSyncError).code).toBe('ERR_CONNECTION_LOST')
    expect(ms).toBeLessThan(DETECT_WITHIN_MS)
    await expect(conn.request((id) => ({ type: 'request', id, path: 'x', haveHash: null }), () => true).done)
      .rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' })
  })
})

describe('liveness over udp without ICMP (the path goes through a proxy)', () => {
  it('a killed server restarted on its port answers the stale stream with RESET: the client knows at its next keepalive', async () => {
    const first = startPeer(['serve', 'udp'])
    const port = Number((await first.next('listening', 10_000)).port)
    // Through the proxy, the port probe reaches the (live) proxy, so only RESET can tell.
    const proxy = await startLossyProxy({ target: { host: LOOPBACK, port } })
    cleanup.add(() => proxy.close())
    const conn = await dial({ transport: 'udp', host: proxy.host, port: proxy.port, connectTimeoutMs: 5000 })
    cleanup.add(() => conn.destroy())
    await first.next('connection', 5000)
    const closed = nextEvent(conn, 'close', 20_000)
    first.child.kill('SIGKILL')
    const second = startPeer(['serve', 'udp', String(port)])
    await second.next('listening', 10_000)
    const t0 = performance.now()
    const [err] = await closed
    const ms = performance.now() - t0
    console.log(`udp: client noticed the restarted server ${ms.toFixed(0)} ms after it listened again (${(err as Error).message})`)
    expect((err as AssetSyncError).code).toBe('ERR_CONNECTION_LOST')
    expect((err as Error).message).toMatch(/no longer knows this connection/)
    expect(ms).toBeLessThan(DETECT_WITHIN_MS)
  })

  it('a peer that vanishes (every datagram dropped) is noticed by both ends after their idle timeout, not before', async () => {
    const server = await listen('udp', { idleTimeoutMs: SHORT_IDLE_MS })
    cleanup.add(() => server.close())
    const proxy = await startLossyProxy({ target: { host: LOOPBACK, port: server.address().port } })
    cleanup.add(() => proxy.close())
    const accepted = nextEvent(server, 'connection', 10_000)
    const conn = await dial({ transport: 'udp', host: proxy.host, port: proxy.port, connectTimeoutMs: 5000, idleTimeoutMs: SHORT_IDLE_MS })
    cleanup.add(() => conn.destroy())
    const [serverConn] = (await accepted) as [Connection]
    const timed = (c: Connection): Promise<{ ms: number; err: unknown }> =>
      nextEvent(c, 'close', SHORT_IDLE_MS + 5000).then(([err]) => ({ ms: performance.now() - t0, err }))
    const t0 = performance.now()
    proxy.set({ loss: 1 }) // the cable is pulled: no ICMP, no RESET, nothing
    const [client, srv] = await Promise.all([timed(conn), timed(serverConn)])
    console.log(`udp: a vanished peer was noticed after ${client.ms.toFixed(0)} ms (client) and ${srv.ms.toFixed(0)} ms (server), idle timeout ${SHORT_IDLE_MS} ms`)
    for (const side of [client, srv]) {
      expect((side.err as AssetSyncError).code).toBe('ERR_CONNECTION_LOST')
      expect((side.err as Error).message).toMatch(/nothing heard for 3 s/)
      // Silence starts at the last thing heard, at most a keepalive before the cut.
      expect(side.ms).toBeGreaterThanOrEqual(SHORT_IDLE_MS - 1000 - TIMER_TICK_MS)
      expect(side.ms).toBeLessThan(SHORT_IDLE_MS + 1000)
    }
  })
})
