/**
 * Load, with the server in its own process (test/fixtures/hardening-server.mjs) so its memory is
 * its own, and the clients in a few worker processes:
 *  1. 1,000 clients connected at once, each fetching a file.
 *  2. 200 watchers (LiveMirror) while 1,000 changes land in the served folder: every watcher must
 *     see every change (no missed update) and end equal to the server's folder.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { MAX_CLIENTS } from '../../src/limits.js'
import { ensureBuilt, Sandbox } from '../helpers/cli.js'
import { Cleanup, MiB, mib, rssOf } from '../helpers/common.js'
import { type Msg, Worker, forkServer } from '../helpers/workers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())
let sb: Sandbox
beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('load')
}, 120_000)
afterAll(async () => { await sb?.cleanup() })

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Samples RSS of `pid` every 100 ms; `stop()` returns the max seen. */
function peakRss(pid: number): { stop: () => number } {
  let max = rssOf(pid)
  const t = setInterval(() => { try { max = Math.max(max, rssOf(pid)) } catch { /* exited */ } }, 100)
  return { stop: () => { clearInterval(t); return max } }
}

async function all<T>(ps: Promise<T>[]): Promise<T[]> { return Promise.all(ps) }

describe('load', () => {
  it('1,000 clients connected at once, each fetching a file', async () => {
    const CLIENTS = Number(process.env.LOAD_CLIENTS ?? 1000)
    const WORKERS = 4
    expect(CLIENTS).toBeLessThanOrEqual(MAX_CLIENTS)
    const src = await sb.mkdir('clients-src')
    const files: string[] = []
    await mkdir(join(src, 'files'), { recursive: true })
    for (let i = 0; i < CLIENTS; i++) {
      const name = `files/${String(i).padStart(4, '0')}.bin`
      await writeFile(join(src, name), randomBytes(16 * 1024))
      files.push(name)
    }
    const s = await forkServer(src, sb.config, 'udp')
    cleanup.add(() => s.worker.kill())
    const rssIdle = rssOf(s.worker.pid)
    const peak = peakRss(s.worker.pid)
    const out = await sb.mkdir('clients-out')
    const per = CLIENTS / WORKERS
    const t0 = performance.now()
    const workers = Array.from({ length: WORKERS }, (_, w) =>
      new Worker('load-clients.mjs', [s.addr, s.key, String(per), String(w * per), out, 'udp'], { ...process.env, ASSETSYNC_CONFIG_DIR: sb.config }))
    for (const w of workers) cleanup.add(() => w.kill())
    const connected = await all(workers.map((w) => w.next('connected', 300_000)))
    const connectMs = performance.now() - t0
    const atPeak = await s.stats()
    const rssConnected = rssOf(s.worker.pid)
    const t1 = performance.now()
    const fetched = await all(workers.map((w) => w.ask({ cmd: 'fetch', files }, 'fetched', 300_000)))
    const fetchMs = performance.now() - t1
    const totalMs = performance.now() - t0
    const rssPeak = peak.stop()
    await all(workers.map((w) => w.ask({ cmd: 'close' }, 'closed')))
    let after = await s.stats()
    for (let i = 0; i < 100 && after.clients > 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
      after = await s.stats()
    }
    const sum = (xs: Msg[], k: string): number => xs.reduce((a, x) => a + Number(x[k]), 0)
    console.log(`load: ${CLIENTS} clients (${WORKERS} processes) connected in ${(connectMs / 1000).toFixed(1)} s`
      + ` (per client ${JSON.stringify(connected.map((c) => c.perClientMs))}), ${atPeak.clients} open at once (peak ${atPeak.peakClients});`
      + ` fetches done ${(fetchMs / 1000).toFixed(2)} s later (per fetch ${JSON.stringify(fetched.map((f) => f.perClientMs))}); total ${(totalMs / 1000).toFixed(1)} s`)
    console.log(`load: server RSS idle ${mib(rssIdle)}, with ${CLIENTS} connections ${mib(rssConnected)}, peak ${mib(rssPeak)}, after all closed ${mib(after.rss)}`
      + ` (${after.clients} clients left); HELLOs rate-limited ${atPeak.udp?.rateLimited}, cookies ${atPeak.udp?.cookiesSent};`
      + ` errors ${JSON.stringify([...connected, ...fetched].map((m) => m.errors))}; connects retried ${JSON.stringify(connected.map((m) => m.retried))}`)
    expect(sum(connected, 'failed')).toBe(0)
    expect(atPeak.clients).toBe(CLIENTS)
    expect(sum(fetched, 'failed')).toBe(0)
    expect(sum(fetched, 'open')).toBe(CLIENTS)
    expect(sum(fetched, 'bytes')).toBe(CLIENTS * 16 * 1024)
    expect(after.clients).toBe(0)
  })

  it('200 watchers while 1,000 changes land: every watcher sees every change and ends equal to the server', async () => {
    const WATCHERS = Number(process.env.LOAD_WATCHERS ?? 200)
    const CHANGES = 1000
    const WORKERS = 4
    const src = await sb.mkdir('watch-src')
    const expected: Record<string, string> = {}
    const put = async (rel: string, data: Buffer): Promise<void> => {
      await writeFile(join(src, ...rel.split('/')), data)
      expected[rel] = sha(data)
    }
    await mkdir(join(src, 'base'), { recursive: true })
    await mkdir(join(src, 'live'), { recursive: true })
    for (let i = 0; i < 50; i++) await put(`base/${i}.txt`, randomBytes(200 + i))
    const s = await forkServer(src, sb.config, 'udp', ['--watch'])
    cleanup.add(() => s.worker.kill())
    const base = await sb.mkdir('watch-out')
    const per = WATCHERS / WORKERS
    const t0 = performance.now()
    const workers = Array.from({ length: WORKERS }, (_, w) =>
      new Worker('load-watchers.mjs', [s.addr, s.key, String(per), String(w * per), base, 'udp'], { ...process.env, ASSETSYNC_CONFIG_DIR: sb.config }))
    for (const w of workers) cleanup.add(() => w.kill())
    await all(workers.map((w) => w.next('synced', 300_000)))
    const syncedMs = performance.now() - t0
    const before = await s.stats()
    expect(before.clients).toBe(WATCHERS)
    const rssBefore = rssOf(s.worker.pid)
    const peak = peakRss(s.worker.pid)

    // 1,000 changes, 10 every 20 ms: 600 new files, 300 of them rewritten, 100 deleted.
    const name = (i: number): string => `live/f${String(i).padStart(3, '0')}.bin`
    const firstChangeAt = Date.now()
    for (let i = 0; i < CHANGES; i++) {
      if (i < 600) await put(name(i), randomBytes(100 + ((i * 37) % 4000)))
      else if (i < 900) await put(name(i - 600), randomBytes(100 + ((i * 53) % 4000)))
      else {
        await rm(join(src, ...name(i - 400).split('/')))
        delete expected[name(i - 400)]
      }
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 20))
    }
    const lastChangeAt = Date.now()
    const converged = await all(workers.map((w) => w.ask({ cmd: 'expect', files: expected, ms: 240_000 }, 'converged', 300_000)))
    const lastApplied = Math.max(...converged.map((c) => Number(c.lastAppliedAt)))
    const rssPeak = peak.stop()
    const verified = await all(workers.map((w) => w.ask({ cmd: 'verify', files: expected }, 'verified', 300_000)))
    const after = await s.stats()
    const total = (k: string): number => verified.reduce((a, v) => a + Number(v[k]), 0)
    const count = (k: string): number => verified.reduce((a, v) => a + Number((v.counts as Record<string, number>)[k]), 0)
    console.log(`watchers: ${WATCHERS} LiveMirrors (${WORKERS} processes) synced in ${(syncedMs / 1000).toFixed(1)} s; ${CHANGES} changes written in`
      + ` ${((lastChangeAt - firstChangeAt) / 1000).toFixed(1)} s; every watcher saw every change ${((lastApplied - firstChangeAt) / 1000).toFixed(1)} s after the first`
      + ` (${((lastApplied - lastChangeAt) / 1000).toFixed(1)} s after the last); batches pushed ${after.counts.batch ?? 0};`
      + ` applied batches ${count('applied')}, changes applied ${count('changes')}`)
    console.log(`watchers: server RSS before ${mib(rssBefore)}, peak ${mib(rssPeak)}, after ${mib(after.rss)};`
      + ` missed ${total('missed')}, wrong ${total('wrong')}, extra ${total('extra')}; disconnects ${count('disconnected')},`
      + ` reconnects ${count('reconnecting')}, batch errors ${count('batchError')}; errors ${JSON.stringify(verified.map((v) => v.errors))}`)
    expect(converged.every((c) => c.ok), JSON.stringify(converged)).toBe(true)
    expect({ missed: total('missed'), wrong: total('wrong'), extra: total('extra') }).toEqual({ missed: 0, wrong: 0, extra: 0 })
    expect(count('disconnected')).toBe(0)
    expect(count('batchError')).toBe(0)
    expect(rssPeak - rssBefore).toBeLessThan(512 * MiB)
    await all(workers.map((w) => w.ask({ cmd: 'close' }, 'closed')))
  })
})
