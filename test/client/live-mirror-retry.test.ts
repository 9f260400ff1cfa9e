/**
 * The one retry policy (src/core/client/retry.ts) as LiveMirror lives it, the initial sync
 * included: a connection lost during the first sync is retried, and so is a server that stops
 * answering once it has answered; what no retry can help fails start() at once with its code
 * (no answer at all within the connect timeout, wrong token, server key mismatch). Real servers,
 * real UDP (through the lossy proxy to cut the path) and TCP.
 */
import { createSocket } from 'node:dgram'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { LiveMirror, type ReconnectingEvent } from '../../src/core/client/live-mirror.js'
import { type RetryState, shouldRetry } from '../../src/core/client/retry.js'
import { AssetSyncError } from '../../src/errors.js'
import { startLossyProxy } from '../helpers/lossy-proxy.js'
import { Cleanup, LOOPBACK, tempDir, withTimeout } from '../helpers/common.js'
import { startLocalServer } from '../helpers/raw-peers.js'
import { writeTree } from '../helpers/trees.js'

const cleanup = new Cleanup()
afterEach(async () => {
  vi.restoreAllMocks()
  await cleanup.run()
})

const err = (code: ConstructorParameters<typeof AssetSyncError>[0]): AssetSyncError => new AssetSyncError(code, code)

describe('shouldRetry: the rules', () => {
  const before: RetryState = { answered: false, succeeded: false, elapsedMs: 100, budgetMs: 1000 }
  it('never retries what no retry can help', () => {
    for (const code of ['ERR_AUTH', 'ERR_KEY_MISMATCH', 'ERR_VERSION', 'ERR_USAGE'] as const) {
      for (const s of [before, { ...before, answered: true }, { ...before, answered: true, succeeded: true }]) {
        expect([code, shouldRetry(err(code), s)]).toEqual([code, false])
      }
    }
  })
  it('before any answer, retries transient failures only within the connect budget', () => {
    expect(shouldRetry(err('ERR_CONNECT'), before)).toBe(true)
    expect(shouldRetry(err('ERR_CONNECTION_LOST'), before)).toBe(true)
    expect(shouldRetry(err('ERR_TIMEOUT'), { ...before, elapsedMs: 1000 })).toBe(false)
    expect(shouldRetry(err('ERR_CONNECT'), { ...before, elapsedMs: 5000 })).toBe(false)
  })
  it('once the server answered, retries transient failures without a budget; before the first success, not the rest', () => {
    const answered = { ...before, answered: true, elapsedMs: 60_000 }
    expect(shouldRetry(err('ERR_TIMEOUT'), answered)).toBe(true)
    expect(shouldRetry(err('ERR_CONNECTION_LOST'), answered)).toBe(true)
    expect(shouldRetry(err('ERR_WRITE'), answered)).toBe(false)
    expect(shouldRetry(new Error('a bug'), answered)).toBe(false)
  })
  it('after the first success, retries everything but fatal', () => {
    const steady = { ...before, answered: true, succeeded: true }
    for (const e of [err('ERR_WRITE'), err('ERR_PROTOCOL'), err('ERR_TIMEOUT'), new Error('a bug')]) expect(shouldRetry(e, steady)).toBe(true)
  })
})

/** A served folder, its server (UDP unless told), and a LiveMirror's options for it. */
async function setup(name: string, transport: 'udp' | 'tcp' = 'udp', token: string | null = null): Promise<{
  src: string; out: string; config: string; addr: string; key: string; port: number
}> {
  const { dir, remove } = await tempDir(name)
  cleanup.add(remove)
  const src = join(dir, 'src')
  const config = join(dir, 'config')
  await writeTree(src, { 'a.txt': 'a1\n', 'b/c.txt': 'c1\n' })
  const s = await startLocalServer(src, config, { transport, watch: true, token })
  cleanup.add(() => s.server.close())
  return { src, out: join(dir, 'out'), config, addr: s.addr, key: s.key, port: s.port }
}

describe('LiveMirror.start(): the first sync is retried like any other', () => {
  it('a connection lost during the initial sync is retried: one synced event, the mirror whole', async () => {
    const s = await setup('retry-first-sync')
    const proxy = await startLossyProxy({ target: { host: LOOPBACK, port: s.port } })
    cleanup.add(() => proxy.close())
    // The first connection authenticates, then the path dies before the sync is done.
    const connect = AssetClient.connect.bind(AssetClient)
    let attempts = 0
    vi.spyOn(AssetClient, 'connect').mockImplementation(async (opts) => {
      const c = await connect(opts)
      if (++attempts === 1) proxy.set({ loss: 1 })
      return c
    })
    const live = new LiveMirror({
      client: { server: `${proxy.host}:${proxy.port}`, key: s.key, connectTimeoutMs: 2000, idleTimeoutMs: 1000 },
      out: s.out, configDir: s.config, random: () => 0,
    })
    cleanup.add(() => live.stop())
    const events: string[] = []
    const reconnecting: ReconnectingEvent[] = []
    live.on('disconnected', () => events.push('disconnected'))
    live.on('reconnecting', (e) => { events.push('reconnecting'); reconnecting.push(e); proxy.set({ loss: 0 }) })
    live.on('synced', (e) => events.push(`synced:${e.initial}`))
    await withTimeout(live.start(), 20_000, 'start() after a retry')
    expect(events).toEqual(['disconnected', 'reconnecting', 'synced:true'])
    expect(reconnecting[0]?.reason).toMatch(/lost/)
    expect(attempts).toBe(2)
    expect(await readFile(join(s.out, 'b', 'c.txt'), 'utf8')).toBe('c1\n')
  })

  it('once the server has answered, an attempt that gets no answer at all is retried too (no budget)', async () => {
    const s = await setup('retry-answered')
    const proxy = await startLossyProxy({ target: { host: LOOPBACK, port: s.port } })
    cleanup.add(() => proxy.close())
    const connect = AssetClient.connect.bind(AssetClient)
    let attempts = 0
    const failures: string[] = []
    vi.spyOn(AssetClient, 'connect').mockImplementation(async (opts) => {
      attempts++
      try {
        const c = await connect(opts)
        if (attempts === 1) proxy.set({ loss: 1 }) // answered once, then the path is cut
        return c
      } catch (e) {
        failures.push((e as AssetSyncError).code)
        if (failures.length === 2) proxy.set({ loss: 0 }) // two handshakes got no answer at all
        throw e
      }
    })
    const live = new LiveMirror({
      client: { server: `${proxy.host}:${proxy.port}`, key: s.key, connectTimeoutMs: 500, idleTimeoutMs: 1000 },
      out: s.out, configDir: s.config, random: () => 0,
    })
    cleanup.add(() => live.stop())
    await withTimeout(live.start(), 20_000, 'start() after the path came back')
    expect(failures).toEqual(['ERR_TIMEOUT', 'ERR_TIMEOUT'])
    expect(attempts).toBe(4)
    expect(await readFile(join(s.out, 'a.txt'), 'utf8')).toBe('a1\n')
  })

  it('fails fast when nothing answers within the connect timeout (ERR_TIMEOUT, exit code 3), without retrying', async () => {
    const silent = createSocket('udp4') // a bound port that never answers
    await new Promise<void>((resolve) => silent.bind(0, LOOPBACK, resolve))
    cleanup.add(() => new Promise<void>((resolve) => silent.close(() => resolve())))
    const { dir, remove } = await tempDir('retry-silent')
    cleanup.add(remove)
    const live = new LiveMirror({ client: { server: `${LOOPBACK}:${silent.address().port}`, connectTimeoutMs: 600 }, out: join(dir, 'out'), configDir: dir })
    const reconnecting: ReconnectingEvent[] = []
    live.on('reconnecting', (e) => reconnecting.push(e))
    const t0 = performance.now()
    await expect(live.start()).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })
    expect(performance.now() - t0).toBeLessThan(3000)
    expect(reconnecting).toEqual([])
  })

  it('a refused TCP connect is retried within the connect timeout, then fails with ERR_CONNECT', async () => {
    const s = await setup('retry-refused', 'tcp')
    const { dir, remove } = await tempDir('retry-refused-out')
    cleanup.add(remove)
    const port = await new Promise<number>((resolve) => {
      const probe = createSocket('udp4') // any free number: nothing listens on TCP there
      probe.bind(0, LOOPBACK, () => { const p = probe.address().port; probe.close(() => resolve(p)) })
    })
    const live = new LiveMirror({ client: { server: `${LOOPBACK}:${port}`, key: s.key, transport: 'tcp', connectTimeoutMs: 1500 }, out: join(dir, 'out'), configDir: dir })
    const reconnecting: ReconnectingEvent[] = []
    live.on('reconnecting', (e) => reconnecting.push(e))
    await expect(live.start()).rejects.toMatchObject({ code: 'ERR_CONNECT' })
    expect(reconnecting.length).toBeGreaterThan(0)
    expect(reconnecting[0]?.reason).toMatch(/ECONNREFUSED/)
  })

  it('a wrong token or server key fails at once, without a reconnecting event', async () => {
    const s = await setup('retry-fatal', 'udp', 'right')
    const cases: [Partial<{ key: string; token: string }>, string][] = [
      [{ key: 'ab'.repeat(32), token: 'right' }, 'ERR_KEY_MISMATCH'],
      [{ key: s.key, token: 'wrong' }, 'ERR_AUTH'],
    ]
    for (const [opts, code] of cases) {
      const { dir, remove } = await tempDir('retry-fatal-out')
      cleanup.add(remove)
      const live = new LiveMirror({ client: { server: s.addr, connectTimeoutMs: 5000, ...opts }, out: join(dir, 'out'), configDir: dir })
      const reconnecting: ReconnectingEvent[] = []
      live.on('reconnecting', (e) => reconnecting.push(e))
      await expect(live.start()).rejects.toMatchObject({ code })
      expect(reconnecting).toEqual([])
    }
  })
})

describe('LiveMirror: the batches of a lost connection', () => {
  it('are left to the resync: one that arrives once the connection is gone is not applied on its own', async () => {
    const s = await setup('lost-batches', 'tcp')
    let first: AssetClient | null = null
    const connect = AssetClient.connect.bind(AssetClient)
    vi.spyOn(AssetClient, 'connect').mockImplementation(async (opts) => {
      const c = await connect(opts)
      first ??= c
      return c
    })
    const live = new LiveMirror({ client: { server: s.addr, key: s.key, transport: 'tcp', connectTimeoutMs: 5000 }, out: s.out, configDir: s.config, random: () => 0 })
    cleanup.add(() => live.stop())
    await live.start()
    const applied: string[][] = []
    live.on('applied', (changes) => applied.push(changes.map((c) => `${c.action} ${c.path}`)))
    const resynced = new Promise<void>((resolve) => live.on('synced', (e) => { if (!e.initial) resolve() }))
    const probe = await connect({ server: s.addr, key: s.key, transport: 'tcp', configDir: s.config })
    const [a] = await probe.manifest(['a.txt'])
    probe.close()
    const old = first as unknown as AssetClient
    old.conn.destroy()
    // A rename that needs no network (a.txt's content is here): applied late, it would move a
    // file the server still has and leave one it never had.
    old.emit('update', [{ kind: 'rename', from: 'a.txt', path: 'z.txt', hash: a?.hash as Uint8Array, size: 3, mode: 0o644, mtime: 0 }])
    await withTimeout(resynced, 20_000, 'the resync')
    await live.idle()
    expect(applied).toEqual([])
    expect(await readFile(join(s.out, 'a.txt'), 'utf8')).toBe('a1\n')
    await expect(readFile(join(s.out, 'z.txt'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
