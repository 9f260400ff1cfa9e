/**
 * Issue 12, case 5: what one connection (and all of them) can make the server hold is bounded
 * by CONNECTION_MEMORY_BYTES and SERVER_MEMORY_BYTES, counted by the server's MemoryBudget:
 * compiled pattern sets (charged at what they can grow to), MANIFEST sets kept between pages,
 * in-flight requests with their patterns, and frames queued for a client that does not read.
 * Before, none of it was counted: a subscriber that stopped reading made the server queue UPDATE
 * frames without end, and 256 subscriptions plus 17 cached MANIFEST matchers were allowed per
 * connection. The RSS figures are bench/attacks.mjs (memory) and docs/security.md.
 */
import { join } from 'node:path'
import type { Socket } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { PatternSet } from '../../src/core/fs/patterns.js'
import { MemoryFeed } from '../../src/core/server/memory-feed.js'
import { patternSetBytes } from '../../src/core/server/memory-budget.js'
import { MemorySource } from '../../src/core/server/memory-source.js'
import { AssetServer, type AssetServerOptions } from '../../src/core/server/server.js'
import {
  CONNECTION_MEMORY_BYTES, MANIFEST_CACHED_SETS, MAX_INFLIGHT_PER_CLIENT, MAX_PATTERNS, SERVER_SET_DFA_CELLS,
} from '../../src/limits.js'
import type { ServerMessage, UpdateEntry } from '../../src/protocol/messages.js'
import type { TransportName } from '../../src/protocol/transport.js'
import { Cleanup, KiB, LOOPBACK, MiB, tempDir, waitFor } from '../helpers/common.js'
import { type RawSecureClient, rawSecureClient } from '../helpers/raw-peers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())
const suite = new Cleanup()
afterAll(() => suite.run())

let work: string
beforeAll(async () => {
  const t = await tempDir('memory-budget')
  suite.add(t.remove)
  work = t.dir
})

interface Live { server: AssetServer; feed: MemoryFeed; port: number; key: string }

async function serve(opts: Partial<AssetServerOptions> = {}, transport: TransportName = 'tcp'): Promise<Live> {
  const feed = new MemoryFeed()
  const source = new MemorySource({ 'a.txt': 'a\n', 'tex/b.png': 'b' })
  const server = await AssetServer.start({ source, feed, host: LOOPBACK, port: 0, configDir: join(work, 'config'), transport, ...opts })
  cleanup.add(() => server.close())
  return { server, feed, port: server.address().port, key: server.publicKey.toString('hex') }
}

/** A raw client that keeps its connection alive (PING every 500 ms, as a real client's keepalive). */
async function attacker(s: Live, transport: TransportName = 'tcp'): Promise<RawSecureClient> {
  const c = await rawSecureClient(transport, s.port)
  const ping = setInterval(() => c.write({ type: 'ping' }), 500)
  cleanup.add(() => { clearInterval(ping); c.destroy() })
  return c
}

let nextId = 1
function ask(c: RawSecureClient, msg: Record<string, unknown> & { type: string }): Promise<ServerMessage> {
  const id = nextId++
  c.write({ ...msg, id } as never)
  return c.next((m) => 'id' in m && m.id === id, 30_000)
}

/** 1 KiB patterns of one long class each: ~1 state, 1 KiB of text (the budget counts both). */
const bulky = (tag: string, n = MAX_PATTERNS): string[] =>
  Array.from({ length: n }, (_, i) => `${tag}-${i}/[${'abcdefghijklmnopqrstuvwxyz'.repeat(40)}]`.slice(0, 1022) + ']')
/** Patterns at the state cap: 16 literals of ~1 KiB (PATTERN_SET_MAX_STATES). */
const stateful = (tag: string): string[] => Array.from({ length: 16 }, (_, i) => `${tag}${i}/${'x'.repeat(1000)}`)

describe('per connection (CONNECTION_MEMORY_BYTES)', () => {
  it('a connection\'s subscription set and cached MANIFEST sets stay within the budget; past it: ERR_LIMIT, caches dropped first', async () => {
    // Scaled down so that the sets reach it: room for two SUBSCRIBE frames of bulky patterns.
    const subs = [0, 1, 2, 3].map((k) => bulky(`s${k}`))
    const charge = (k: number): number => patternSetBytes(new PatternSet(subs.slice(0, k).flat(), 'select', { maxCells: SERVER_SET_DFA_CELLS }))
    const budget = charge(2) + 200 * KiB
    const s = await serve({ memory: { perConnection: budget } })
    const a = await attacker(s)
    const used = (): number => s.server.memory.used
    // Small MANIFEST sets first: kept for the next pages, at most MANIFEST_CACHED_SETS of them.
    for (let m = 0; m < MANIFEST_CACHED_SETS + 2; m++) {
      expect(await ask(a, { type: 'manifest', after: '', patterns: [`m${m}/**`, '*.txt'] })).toMatchObject({ type: 'manifest-reply' })
      expect(used()).toBeLessThanOrEqual(budget)
    }
    const cached = used()
    expect(cached).toBeGreaterThan(0)
    // Subscriptions: each SUBSCRIBE grows the connection's one set, charged at what it can grow to.
    const answers: ServerMessage[] = []
    for (const patterns of subs) {
      answers.push(await ask(a, { type: 'subscribe', instanceId: 1, subscribe: true, patterns }))
      expect(used()).toBeLessThanOrEqual(budget)
    }
    expect(answers.map((r) => r.type)).toEqual(['subscribe-ack', 'subscribe-ack', 'error', 'error'])
    for (const r of answers.slice(2)) {
      expect(r).toMatchObject({ code: 'ERR_LIMIT', message: expect.stringMatching(/^these subscriptions would take this connection's server memory past/) as string })
    }
    // The cached MANIFEST sets were dropped to make room: only the subscription set is charged.
    await waitFor(() => used() === charge(2), 2000, 'the charges to settle', { detail: () => `${used()} != ${charge(2)}` })
    expect(a.isClosed()).toBe(false)
    a.destroy()
    await waitFor(() => s.server.memory.used === 0, 5000, 'every charge to be released')
  })

  it(`in-flight requests hold their patterns: past the budget, ERR_LIMIT for the extra ones only (below MAX_INFLIGHT_PER_CLIENT ${MAX_INFLIGHT_PER_CLIENT})`, async () => {
    const s = await serve()
    const a = await attacker(s)
    ;(a.raw as Socket).pause() // reads nothing: the answers queue, the requests wait behind the first
    const ids: number[] = []
    for (let i = 0; i < MAX_INFLIGHT_PER_CLIENT; i++) {
      const id = nextId++
      ids.push(id)
      a.write({ type: 'manifest', id, after: '', patterns: bulky(`q${i}`) })
    }
    let peak = 0
    await waitFor(() => { peak = Math.max(peak, s.server.memory.used); return s.server.memory.refused > 0 }, 10_000, 'a refusal')
    expect(peak).toBeLessThanOrEqual(CONNECTION_MEMORY_BYTES)
    ;(a.raw as Socket).resume()
    const answers = await Promise.all(ids.map((id) => a.next((m) => 'id' in m && m.id === id, 60_000)))
    const limited = answers.filter((r) => r.type === 'error' && r.code === 'ERR_LIMIT' && /another request/.test(r.message))
    console.log(`in flight: ${answers.length - limited.length} of ${answers.length} MANIFESTs of 64 KiB admitted, ${limited.length} refused; peak charge ${(peak / MiB).toFixed(1)} MiB`)
    expect(limited.length).toBeGreaterThan(0)
    expect(answers.length - limited.length).toBeGreaterThan(10)
    expect(a.isClosed()).toBe(false)
  })

  it('a subscriber that stops reading is closed once its queued UPDATE frames pass the budget; a reading one gets every batch', async () => {
    const s = await serve()
    const a = await attacker(s)
    expect(await ask(a, { type: 'subscribe', instanceId: 1, subscribe: true, patterns: ['**'] })).toMatchObject({ type: 'subscribe-ack' })
    ;(a.raw as Socket).pause() // never reads again, but keeps the connection alive (PINGs)
    const watcher = await AssetClient.connect({ server: `${LOOPBACK}:${s.port}`, transport: 'tcp', key: s.key, configDir: join(work, 'cc'), connectTimeoutMs: 5000 })
    cleanup.add(() => watcher.close())
    await watcher.subscribe(['**'], 1)
    let received = 0
    watcher.on('update', (entries: UpdateEntry[]) => { received += entries.length })

    let pushed = 0
    let peak = 0
    for (let b = 0; b < 400 && !a.isClosed(); b++) {
      const entries: UpdateEntry[] = Array.from({ length: 1000 }, (_, i) => ({
        kind: 'change', path: `batch-${b}/${'p'.repeat(100)}-${i}`, hash: Buffer.alloc(32, 7), size: 1, mode: 0o644, mtime: 0,
      }))
      await s.feed.push(entries)
      pushed += entries.length
      peak = Math.max(peak, s.server.memory.used)
      await new Promise((r) => setImmediate(r))
    }
    await a.closed
    const closing = a.frames.find((m) => m.type === 'error' && m.id === 0)
    console.log(`non-reader closed after ${pushed} entries pushed; peak charge ${(peak / MiB).toFixed(1)} MiB; ${closing ? `told: ${(closing as { message: string }).message}` : 'not told (unread)'}`)
    expect(peak).toBeLessThanOrEqual(CONNECTION_MEMORY_BYTES + 2 * MiB) // one batch's frames past the check at most
    await waitFor(() => received === pushed, 30_000, 'the reading watcher to get every entry', { detail: () => `${received} of ${pushed}` })
    expect(watcher.conn.isOpen).toBe(true)
    await waitFor(() => s.server.memory.used < MiB, 5000, "the closed subscriber's charges to go")
  })
})

describe('per server (SERVER_MEMORY_BYTES)', () => {
  it('queued frames past the total close the connection queuing the most; the others go on', async () => {
    const total = 4 * MiB // scaled down: below one connection's own budget
    const s = await serve({ memory: { total } })
    const readers = [await attacker(s), await attacker(s)]
    for (const a of readers) expect(await ask(a, { type: 'subscribe', instanceId: 1, subscribe: true, patterns: ['**'] })).toMatchObject({ type: 'subscribe-ack' })
    const stalled = readers[0] as RawSecureClient
    ;(stalled.raw as Socket).pause()
    let peak = 0
    for (let b = 0; b < 400 && !stalled.isClosed(); b++) {
      await s.feed.push(Array.from({ length: 1000 }, (_, i): UpdateEntry => ({
        kind: 'change', path: `b${b}/${'q'.repeat(100)}-${i}`, hash: Buffer.alloc(32, 3), size: 1, mode: 0o644, mtime: 0,
      })))
      peak = Math.max(peak, s.server.memory.used)
      await new Promise((r) => setImmediate(r))
    }
    await stalled.closed
    expect(s.server.memory.shedConnections).toBe(1)
    expect(peak).toBeLessThanOrEqual(total + 2 * MiB) // one batch's frames past the check at most
    expect((readers[1] as RawSecureClient).isClosed()).toBe(false)
  })

  it('when all connections together reach it, the next costly request gets ERR_LIMIT; a closed connection frees its share', async () => {
    const one = patternSetBytes(new PatternSet(stateful('x'), 'select', { maxCells: SERVER_SET_DFA_CELLS }))
    const total = 2 * one + 300 * KiB // scaled down: room for two connections' sets
    const s = await serve({ memory: { total } })
    const conns = await Promise.all([0, 1, 2, 3, 4].map(() => attacker(s)))
    const answers: ServerMessage[] = []
    for (const [i, c] of conns.entries()) answers.push(await ask(c, { type: 'subscribe', instanceId: 1, subscribe: true, patterns: stateful(`c${i}`) }))
    const ok = answers.filter((r) => r.type === 'subscribe-ack').length
    expect(ok).toBe(2)
    const refusal = answers.find((r) => r.type === 'error')
    expect(refusal).toMatchObject({ code: 'ERR_LIMIT', message: expect.stringMatching(/server's memory budget \(.+ MiB\) is spent/) as string })
    expect(s.server.memory.used).toBeLessThanOrEqual(total)
    // A connection that held a set goes: its share is free again.
    const holder = conns[answers.findIndex((r) => r.type === 'subscribe-ack')] as RawSecureClient
    holder.destroy()
    await waitFor(() => s.server.memory.used < 1.5 * one, 5000, 'its share to be freed', { detail: () => `used ${s.server.memory.used}, one ${one}, clients ${s.server.clients}` })
    const late = conns[answers.findIndex((r) => r.type === 'error')] as RawSecureClient
    expect(await ask(late, { type: 'subscribe', instanceId: 1, subscribe: true, patterns: stateful('late') })).toMatchObject({ type: 'subscribe-ack' })
  })
})

describe('BATCH (feature batch-request) in the budget', () => {
  it('a BATCH is admitted like REQUEST, charged what its items hold: past the connection budget ERR_LIMIT, a small one answered, the charge released', async () => {
    const s = await serve({ memory: { perConnection: 1 * MiB } })
    const c = await AssetClient.connect({ server: `${LOOPBACK}:${s.port}`, transport: 'tcp', key: s.key, configDir: join(work, 'batch-config'), connectTimeoutMs: 5000 })
    cleanup.add(() => c.close())
    expect(c.batches).toBe(true)
    // 1024 paths of ~800 characters: ~1.7 MB held until answered (UTF-16), past a 1 MiB budget.
    const dirs = ['d', 'e', 'f', 'g'].map((l) => l.repeat(200)).join('/')
    const long = Array.from({ length: 1024 }, (_, i) => ({ path: `${dirs}/${i}`, haveHash: null }))
    const refusedBefore = s.server.memory.refused
    const answered: string[] = []
    await expect(c.batch(long, (_, r) => answered.push(r.status))).rejects.toMatchObject({
      code: 'ERR_LIMIT', message: expect.stringMatching(/another request/) as string,
    })
    expect(answered).toEqual([])
    expect(s.server.memory.refused).toBe(refusedBefore + 1)
    const got: string[] = []
    await c.batch([{ path: 'a.txt', haveHash: null }, { path: 'nope.txt', haveHash: null }], (_, r) => got.push(r.status))
    expect(got).toEqual(['file', 'not-found'])
    await waitFor(() => s.server.memory.used === 0, 5000, 'the batch charge to be released', { detail: () => `used ${s.server.memory.used}` })
  })
})
