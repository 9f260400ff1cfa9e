/**
 * The server's own Metrics and StatusTracker, kept up to date by a real AssetServer (MemorySource,
 * MemoryFeed, real UDP on port 0) as real AssetClients connect, request, subscribe, report and ask
 * for status: the numbers the --http surface and STATUS replies show. Also a server that turned
 * the features off, and the lag of a batch.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { MemoryFeed } from '../../src/core/server/memory-feed.js'
import { MemorySource } from '../../src/core/server/memory-source.js'
import type { ReloadReportEvent } from '../../src/core/server/server-events.js'
import { AssetServer, batchLag } from '../../src/core/server/server.js'
import { WATCHER_LAG_MAX_MS } from '../../src/limits.js'
import { HASH_BYTES, type UpdateEntry } from '../../src/protocol/messages.js'
import { LOOPBACK, waitFor } from '../helpers/common.js'
import { parseMetrics, sample } from '../helpers/http.js'

let work: string
let source: MemorySource
let feed: MemoryFeed
let server: AssetServer
const open: AssetClient[] = []

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'assetsync-wiring-'))
  source = new MemorySource({ 'scripts/main.lua': 'print(1)\n', 'levels/one.json': '{}\n' })
  feed = new MemoryFeed()
  server = await AssetServer.start({ source, feed, configDir: join(work, 'server'), host: LOOPBACK, port: 0, processMetrics: false })
})

afterAll(async () => {
  for (const c of open) c.close()
  await server.close()
  await rm(work, { recursive: true, force: true })
})

async function connect(to: AssetServer = server, extra: { token?: string } = {}): Promise<AssetClient> {
  const c = await AssetClient.connect({
    server: `${LOOPBACK}:${to.address().port}`, key: to.publicKey.toString('hex'), configDir: join(work, 'client'), connectTimeoutMs: 5000, ...extra,
  })
  open.push(c)
  return c
}

const metrics = async (): Promise<Map<string, number>> => parseMetrics(await server.metrics.text())
const meta = (mtime: number): { hash: Uint8Array; size: number; mode: number; mtime: number } =>
  ({ hash: new Uint8Array(HASH_BYTES), size: 1, mode: 0o644, mtime })

describe('a server keeps its metrics and status as clients come and go', () => {
  it('counts connections, requests by status, transfers and bytes; lists the client with its subscriptions', async () => {
    const before = await metrics()
    const c = await connect()
    expect(await c.read('scripts/main.lua')).toEqual(Buffer.from('print(1)\n'))
    await expect(c.read('nope.lua')).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' })
    await c.subscribe(['scripts/**', 'levels/*'], 7)
    await c.subscribe(['scripts/**'], 3)
    const m = await metrics()
    const delta = (k: string): number => sample(m, k) - sample(before, k)
    expect(delta('assetsync_connections_total{transport="udp"}')).toBe(1)
    expect(delta('assetsync_connections_open{transport="udp"}')).toBe(1)
    expect(delta('assetsync_requests_total{status="file"}')).toBe(1)
    expect(delta('assetsync_requests_total{status="not-found"}')).toBe(1)
    expect(delta('assetsync_transfer_duration_seconds_count')).toBe(1)
    expect(sample(m, 'assetsync_subscriptions')).toBe(3)
    expect(delta('assetsync_sent_bytes_total')).toBe(c.conn.bytesReceived) // live counters, read at scrape time
    const mine = server.status.snapshot().clients.at(-1) // the newest connection: this one
    expect(mine?.subscriptions).toEqual([{ pattern: 'scripts/**', instances: [3, 7] }, { pattern: 'levels/*', instances: [7] }])
    c.close()
    await waitFor(async () => sample(await metrics(), 'assetsync_connections_open{transport="udp"}') === sample(before, 'assetsync_connections_open{transport="udp"}'),
      5000, 'the close to reach the server')
    const after = await metrics()
    expect(sample(after, 'assetsync_subscriptions')).toBe(0)
    expect(server.status.snapshot().clients.some((x) => x.remote === mine?.remote)).toBe(false)
    // Bytes of the closed connection stay in the totals.
    expect(sample(after, 'assetsync_sent_bytes_total')).toBeGreaterThanOrEqual(sample(m, 'assetsync_sent_bytes_total'))
  })

  it('records a pushed batch with its recipients and its lag; counts it', async () => {
    const c = await connect()
    await c.subscribe(['scripts/**'], 1)
    const got = new Promise<UpdateEntry[]>((resolve) => c.once('update', resolve))
    const before = await metrics()
    const savedAt = Date.now() - 30
    await feed.push([{ kind: 'change', path: 'scripts/main.lua', ...meta(savedAt) }, { kind: 'delete', path: 'levels/old.json' }])
    await got
    const b = server.status.snapshot().batches[0]
    const me = server.status.snapshot().clients.find((x) => x.subscriptions.length === 1)
    expect(b).toMatchObject({ changeCount: 2, recipientCount: 1, recipients: [me?.remote] })
    expect(b?.lagMs).toBeGreaterThanOrEqual(30)
    const m = await metrics()
    expect(sample(m, 'assetsync_change_batches_total') - sample(before, 'assetsync_change_batches_total')).toBe(1)
    expect(sample(m, 'assetsync_changes_total') - sample(before, 'assetsync_changes_total')).toBe(2)
    expect(sample(m, 'assetsync_watcher_lag_seconds_count') - sample(before, 'assetsync_watcher_lag_seconds_count')).toBe(1)
  })

  it('takes a client report: status, metrics and a typed report event with the file:line', async () => {
    const c = await connect()
    const seen: ReloadReportEvent[] = []
    server.on('report', (e) => seen.push(e))
    const error = 'scripts/main.lua:12: attempt to call a nil value (global \'update_hud\')\nstack traceback: ...'
    expect(c.report({ paths: ['scripts/main.lua'], ok: false, error, ms: 4 })).toBe(true)
    expect(c.report({ paths: ['levels/one.json'], ok: true, ms: 2.6 })).toBe(true)
    await waitFor(() => seen.length === 2, 5000, 'two report events')
    expect(seen[0]).toEqual({ remote: expect.any(String), paths: ['scripts/main.lua'], ok: false, error, file: 'scripts/main.lua', line: 12, ms: 4 })
    expect(seen[1]).toMatchObject({ ok: true, error: null, file: null, line: null, ms: 3 })
    const mine = server.status.snapshot().clients.find((x) => x.remote === seen[0]?.remote)
    expect(mine?.lastReport).toMatchObject({ ok: true, paths: ['levels/one.json'], ms: 3, error: null })
    const m = await metrics()
    expect([sample(m, 'assetsync_reload_reports_total{result="error"}'), sample(m, 'assetsync_reload_reports_total{result="ok"}')]).toEqual([1, 1])
  })

  it('answers STATUS with its StatusJson, the asking client included', async () => {
    const c = await connect()
    const st = await c.status()
    expect(st).toMatchObject({ key: server.publicKey.toString('hex'), files: 2, transport: 'udp', address: `udp://${LOOPBACK}:${server.address().port}` })
    expect(st.clients.length).toBe(server.status.snapshot().clients.length)
    expect(st.batches[0]?.changeCount).toBe(2)
  })

  it('counts a refused handshake (wrong token) by its code', async () => {
    const guarded = await AssetServer.start({ source: new MemorySource({}), configDir: join(work, 'guarded'), host: LOOPBACK, port: 0, token: 'right', processMetrics: false })
    try {
      await expect(connect(guarded, { token: 'wrong' })).rejects.toMatchObject({ code: 'ERR_AUTH' })
      await waitFor(async () => sample(parseMetrics(await guarded.metrics.text()), 'assetsync_handshakes_refused_total{reason="ERR_AUTH"}') === 1,
        5000, 'the refusal to be counted', { detail: async () => guarded.metrics.text() })
    } finally {
      await guarded.close()
    }
  })
})

describe('a server that turned the features off', () => {
  it('a client does not report to it (report() is false) and status() is ERR_VERSION, saying why', async () => {
    const quiet = await AssetServer.start({ source: new MemorySource({}), configDir: join(work, 'quiet'), host: LOOPBACK, port: 0, protocol: { features: 0 }, processMetrics: false })
    try {
      const c = await connect(quiet)
      expect(c.report({ paths: ['a.lua'], ok: true, ms: 1 })).toBe(false)
      await expect(c.status()).rejects.toMatchObject({
        code: 'ERR_VERSION', message: expect.stringMatching(/does not answer status queries \(it speaks protocol 3 without the status feature\)/),
      })
      expect(c.conn.isOpen).toBe(true)
    } finally {
      await quiet.close()
    }
  })
})

describe('batchLag', () => {
  it('is now minus the newest mtime; unknown for deletes only, or for an mtime older than WATCHER_LAG_MAX_MS', () => {
    const now = 1_700_000_000_000
    expect(batchLag([{ kind: 'change', path: 'a', ...meta(now - 40) }, { kind: 'rename', path: 'b', from: 'c', ...meta(now - 25) }], now)).toBe(25)
    expect(batchLag([{ kind: 'delete', path: 'a' }], now)).toBeNull()
    expect(batchLag([{ kind: 'change', path: 'a', ...meta(now - WATCHER_LAG_MAX_MS - 1) }], now)).toBeNull()
    expect(batchLag([{ kind: 'change', path: 'a', ...meta(now + 500) }], now)).toBe(0) // a clock ahead of ours
  })
})
