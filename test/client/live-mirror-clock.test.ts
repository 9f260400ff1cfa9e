/**
 * LiveMirror's reconnect backoff on an injected clock (src/core/client/live-mirror.ts): after a
 * lost connection, each attempt starts exactly when the ManualClock reaches its delay, the delays
 * grow as documented, a resync follows the attempt that reaches the server again, and stop()
 * ends a pending wait at once. A real AssetServer over TCP (a refused connect fails at once, so no
 * test step waits on a real timeout); the test never sleeps.
 */
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { LiveMirror, type ReconnectingEvent, type SyncedEvent, reconnectDelay } from '../../src/core/client/live-mirror.js'
import { RECONNECT_BASE_MS, RECONNECT_MAX_MS } from '../../src/limits.js'
import { ManualClock } from '../../src/protocol/clock.js'
import { Cleanup, tempDir, withTimeout } from '../helpers/common.js'
import { startLocalServer } from '../helpers/raw-peers.js'
import { writeTree } from '../helpers/trees.js'

const cleanup = new Cleanup()
afterEach(async () => {
  vi.restoreAllMocks()
  await cleanup.run()
})

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('reconnectDelay', () => {
  it('full jitter below a cap that doubles from RECONNECT_BASE_MS up to RECONNECT_MAX_MS', () => {
    const caps = Array.from({ length: 9 }, (_, i) => reconnectDelay(i + 1, () => 1))
    expect(caps).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000, 5000, 5000])
    expect(caps[0]).toBe(RECONNECT_BASE_MS)
    expect(Math.max(...caps)).toBe(RECONNECT_MAX_MS)
    expect(reconnectDelay(3, () => 0)).toBe(0)
    expect(reconnectDelay(3, () => 0.5)).toBe(500)
    expect(reconnectDelay(1000, () => 0.5)).toBe(RECONNECT_MAX_MS / 2) // no overflow for long outages
  })
})

describe('LiveMirror reconnect backoff on a ManualClock', () => {
  it('waits each delay on the clock, grows it, and resyncs once the server is back', async () => {
    const { dir, remove } = await tempDir('live-clock')
    cleanup.add(remove)
    const src = join(dir, 'src')
    const out = join(dir, 'out')
    const config = join(dir, 'config')
    await writeTree(src, { 'a.txt': 'a1\n' })
    let s = await startLocalServer(src, config, { transport: 'tcp', watch: true })
    cleanup.add(() => s.server.close())
    const clock = new ManualClock()
    const live = new LiveMirror({
      client: { server: s.addr, key: s.key, transport: 'tcp', connectTimeoutMs: 5000 }, out, configDir: config, clock, random: () => 0.5,
    })
    cleanup.add(() => live.stop())
    const synced: SyncedEvent[] = []
    const reconnecting: ReconnectingEvent[] = []
    live.on('synced', (e) => synced.push(e))
    live.on('reconnecting', (e) => reconnecting.push(e))
    await live.start()
    expect(synced).toEqual([expect.objectContaining({ initial: true })])
    const connect = vi.spyOn(AssetClient, 'connect')

    const lost = once(live, 'disconnected')
    await s.server.close()
    await withTimeout(lost, 10_000, 'the mirror to notice the closed server')
    await turn()
    expect(reconnecting).toEqual([expect.objectContaining({ attempt: 1, delayMs: 125 })])

    // Not a tick early: no connect until the clock reaches the delay.
    clock.advance(124)
    await turn()
    expect(connect).toHaveBeenCalledTimes(0)
    const second = once(live, 'reconnecting')
    clock.advance(1)
    await turn()
    expect(connect).toHaveBeenCalledTimes(1)
    await withTimeout(second, 10_000, 'the refused attempt')
    expect(reconnecting.at(-1)).toEqual(expect.objectContaining({ attempt: 2, delayMs: 250, reason: expect.stringMatching(/ECONNREFUSED/) }))

    // The server comes back on the same port, with a file added meanwhile.
    await writeFile(join(src, 'b.txt'), 'b1\n')
    s = await startLocalServer(src, config, { transport: 'tcp', watch: true, port: s.port })
    cleanup.add(() => s.server.close())
    clock.advance(249)
    await turn()
    expect(connect).toHaveBeenCalledTimes(1)
    const resynced = once(live, 'synced')
    clock.advance(1)
    const [e] = (await withTimeout(resynced, 10_000, 'the resync')) as [SyncedEvent]
    expect(e.initial).toBe(false)
    expect(e.summary.downloaded).toBe(1)
    expect(connect).toHaveBeenCalledTimes(2)
    expect(await readFile(join(out, 'b.txt'), 'utf8')).toBe('b1\n')
    expect(reconnecting).toHaveLength(2)
  })

  it('stop() during a backoff returns at once, without the clock moving and without connecting', async () => {
    const { dir, remove } = await tempDir('live-clock-stop')
    cleanup.add(remove)
    const src = join(dir, 'src')
    const config = join(dir, 'config')
    await writeTree(src, { 'a.txt': 'a1\n' })
    const s = await startLocalServer(src, config, { transport: 'tcp', watch: true })
    const clock = new ManualClock()
    const live = new LiveMirror({
      client: { server: s.addr, key: s.key, transport: 'tcp', connectTimeoutMs: 5000 }, out: join(dir, 'out'), configDir: config, clock,
    })
    await live.start()
    const connect = vi.spyOn(AssetClient, 'connect')
    const waiting = once(live, 'reconnecting')
    await s.server.close()
    await withTimeout(waiting, 10_000, 'the first reconnect wait')
    await withTimeout(live.stop(), 5000, 'stop() during the backoff')
    await withTimeout(live.done, 1000, 'done after stop()')
    expect(connect).toHaveBeenCalledTimes(0)
    expect(clock.now()).toBe(0)
  })
})
