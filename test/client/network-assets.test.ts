/**
 * NetworkAssets, the library API, against a real AssetServer (127.0.0.1, port 0, real UDP, real
 * files): one request for concurrent fetches (counted by the server's source), hash checks,
 * `read`, subscriptions the server hears about only on the first and last instance, `change`
 * after the file is on disk, changes made while disconnected, the offline rules, fatal errors,
 * and the priority feature's ordering, counted in the server's reads (turns), not timed.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { AssetChangeEvent, AssetWarning } from '../../src/core/client/network-assets.js'
import { NetworkAssets } from '../../src/core/client/network-assets.js'
import { PathSubscriptions, exactPattern } from '../../src/core/client/path-subscriptions.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import { patternMatcher } from '../../src/core/fs/ignore.js'
import { type ReconnectingEvent, reconnectDelay } from '../../src/core/client/live-mirror.js'
import { exitCodeOf } from '../../src/errors.js'
import { ManualClock } from '../../src/protocol/clock.js'
import type { SubscriptionsEvent } from '../../src/core/server/server-events.js'
import { closedPort } from '../helpers/cli.js'
import { MiB, waitFor } from '../helpers/common.js'
import { type NetSandbox, type ServerLog, netSandbox } from '../helpers/lua-net.js'

let sb: NetSandbox
beforeEach(async () => { sb = await netSandbox('assets') })
afterEach(async () => { await sb.cleanup() })

const hexOf = (b: Uint8Array): string => hashBytes(b).toString('hex')

describe('fetch and read', () => {
  it('concurrent fetches of one path share one request; a local copy is checked by hash', async () => {
    const big = randomBytes(2 * MiB + 5)
    await sb.serve({ 'big.bin': big, 'a.txt': 'alpha' })
    const srv = await sb.start()
    const assets = await sb.open(srv)
    const all = await Promise.all(Array.from({ length: 10 }, (_, i) => assets.fetch('big.bin', { priority: i % 2 ? 'blocking' : 'background' })))
    expect(srv.log.opened.get('big.bin')).toBe(1)
    for (const r of all) expect(r).toEqual({ path: 'big.bin', localPath: join(await assets.root(), 'big.bin'), hash: hexOf(big), size: big.length, action: 'downloaded', bytes: big.length })
    expect((await readFile(join(sb.out, 'big.bin'))).equals(big)).toBe(true)

    const again = await Promise.all([assets.fetch('big.bin'), assets.fetch('big.bin'), assets.fetch('a.txt')])
    expect(again.map((r) => r.action)).toEqual(['up-to-date', 'up-to-date', 'downloaded'])
    expect(srv.log.opened.get('big.bin')).toBe(2)
    await expect(assets.fetch('missing.txt')).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' })
    expect(await assets.fetch('a.txt', { network: false })).toMatchObject({ action: 'local', hash: hexOf(Buffer.from('alpha')) })
    await expect(assets.fetch('big2.bin', { network: false })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' })
    expect(srv.log.opened.has('big2.bin')).toBe(false)
  })

  it('read returns verified bytes without writing a file; a current local copy is read locally', async () => {
    await sb.serve({ 'cfg.json': '{"v":1}', 'here.txt': 'here' })
    const srv = await sb.start()
    const assets = await sb.open(srv)
    expect((await assets.read('cfg.json')).toString()).toBe('{"v":1}')
    await expect(readFile(join(sb.out, 'cfg.json'))).rejects.toMatchObject({ code: 'ENOENT' })
    await assets.fetch('here.txt')
    const readsBefore = srv.log.events.filter((e) => e.kind === 'read').length
    expect((await assets.read('here.txt')).toString()).toBe('here')
    expect(srv.log.events.filter((e) => e.kind === 'read').length).toBe(readsBefore) // up-to-date: no bytes
    await expect(assets.read('cfg.json', { maxBytes: 3 })).rejects.toMatchObject({ code: 'ERR_LIMIT' })
  })
})

describe('subscriptions and changes', () => {
  it('tells the server only on the first instance and the last; `change` comes after the file is on disk', async () => {
    await sb.serve({ 'lvl.txt': 'one' })
    const srv = await sb.start()
    const subs: SubscriptionsEvent[] = []
    srv.server.on('subscriptions', (e) => subs.push(e))
    const assets = await sb.open(srv)
    const seen: { e: AssetChangeEvent; onDisk: string }[] = []
    assets.on('change', (e) => seen.push({ e, onDisk: readFileSync(e.localPath, 'utf8') }))
    await assets.fetch('lvl.txt', { reload: true, instance: 'i1' })
    await assets.fetch('lvl.txt', { reload: true, instance: 'i2' })
    await assets.fetch('lvl.txt', { reload: true, instance: 'i2' })
    expect(subs.map((s) => s.action)).toEqual(['subscribe'])
    expect(assets.subscriptions()).toEqual([{ path: 'lvl.txt', instances: ['i1', 'i2'] }])

    await writeFile(join(sb.server, 'lvl.txt'), 'two')
    await waitFor(() => seen.length === 1, 10_000, 'a change event')
    expect(seen[0]).toEqual({ e: { path: 'lvl.txt', localPath: join(await assets.root(), 'lvl.txt'), hash: hexOf(Buffer.from('two')), size: 3, instances: ['i1', 'i2'] }, onDisk: 'two' })

    await assets.release('i1')
    expect(subs.map((s) => s.action)).toEqual(['subscribe'])
    await assets.release('i2')
    await waitFor(() => subs.length === 2, 5000, 'the unsubscribe')
    expect(subs.map((s) => s.action)).toEqual(['subscribe', 'unsubscribe'])
    // Nobody follows it now: a change brings no event.
    await writeFile(join(sb.server, 'lvl.txt'), 'three')
    await srv.server.idle()
    await new Promise((r) => setTimeout(r, 100))
    expect(seen).toHaveLength(1)
  })

  it('after a reconnect it resubscribes and emits `change` for what changed meanwhile', async () => {
    await sb.serve({ 'a.lua': 'return 1', 'b.lua': 'return 2' })
    const srv = await sb.start()
    const assets = await sb.open(srv, { random: () => 0 })
    const changes: AssetChangeEvent[] = []
    assets.on('change', (e) => changes.push(e))
    await assets.fetch('a.lua', { reload: true })
    await assets.fetch('b.lua', { reload: true })
    const lost = new Promise((r) => assets.once('disconnected', r))
    await srv.close()
    await lost
    await writeFile(join(sb.server, 'a.lua'), 'return 10')
    const srv2 = await sb.start({ port: srv.port })
    const subs: SubscriptionsEvent[] = []
    srv2.server.on('subscriptions', (e) => subs.push(e))
    await waitFor(() => changes.length === 1, 15_000, 'the change made while away')
    expect(changes[0]).toMatchObject({ path: 'a.lua', hash: hexOf(Buffer.from('return 10')) })
    expect(subs.map((s) => [s.action, s.patterns])).toEqual([['subscribe', 2]])
    // And it follows them again: a change now arrives as usual.
    await writeFile(join(sb.server, 'b.lua'), 'return 20')
    await waitFor(() => changes.length === 2, 10_000, 'a change after the reconnect')
    expect(changes[1]).toMatchObject({ path: 'b.lua', hash: hexOf(Buffer.from('return 20')) })
  })

  it('past the cap it follows everything with one `**` subscription and filters', async () => {
    const files: Record<string, string> = {}
    for (let i = 0; i < 6; i++) files[`f${i}.txt`] = `v${i}`
    await sb.serve(files)
    const srv = await sb.start()
    const held: number[] = []
    srv.server.on('subscriptions', (e) => held.push(e.patterns))
    const assets = await sb.open(srv)
    const client = assets.client
    if (!client) throw new Error('not connected')
    const pushed: string[] = []
    client.on('update', (entries) => { for (const e of entries) pushed.push(e.path) })
    const subs = new PathSubscriptions(3)
    for (let i = 0; i < 3; i++) await subs.add(`f${i}.txt`, 'x', client)
    expect([subs.wide, held.at(-1)]).toEqual([false, 3])
    await subs.add('f3.txt', 'x', client)
    // `**` first (no change missed), then the three exact patterns dropped: one pattern held.
    expect([subs.wide, held.at(-1)]).toEqual([true, 1])
    expect(subs.has('f3.txt') && !subs.has('f5.txt')).toBe(true)
    await writeFile(join(sb.server, 'f5.txt'), 'changed')
    await waitFor(() => pushed.includes('f5.txt'), 10_000, 'a change to a path nobody follows, pushed under **')
    await subs.release('x', client)
    expect([subs.wide, held.at(-1)]).toEqual([false, 0])
  })

  it('exact patterns match their path and nothing else', () => {
    const paths = ['a.lua', 'x[1].lua', '{a,b}.lua', '!neg.lua', 'a(b)|c.lua', '+@x^$#,y.lua', 'a*b?.lua', 'ü/日本.lua', 'a b.lua', 'ab.lua', 'x1.lua', 'a.lua.bak']
    for (const p of paths) {
      const m = patternMatcher([exactPattern(p)])
      expect(paths.filter((q) => m(q)), p).toEqual([p])
    }
  })
})

describe('offline and fatal', () => {
  it('serves a local copy with a warning while the server is down; a missing file fails with a connection error', async () => {
    await sb.serve({ 'here.txt': 'here' })
    const srv = await sb.start()
    const assets = await sb.open(srv, { offlineWaitMs: 300 })
    const warnings: AssetWarning[] = []
    assets.on('warning', (w) => warnings.push(w))
    await assets.fetch('here.txt')
    const lost = new Promise((r) => assets.once('disconnected', r))
    await srv.close()
    await lost
    expect(await assets.fetch('here.txt')).toMatchObject({ action: 'local', hash: hexOf(Buffer.from('here')) })
    expect((await assets.read('here.txt')).toString()).toBe('here')
    expect(warnings).toHaveLength(2)
    expect(warnings[0]).toMatchObject({ path: 'here.txt', message: expect.stringMatching(/unreachable.*local copy of here\.txt/) })
    const err = await assets.fetch('other.txt').catch((e: unknown) => e)
    expect(exitCodeOf(err)).toBe(3)
  })

  it('opens offline when the server cannot be reached: local copies served, missing ones fail with exit code 3', async () => {
    const port = await closedPort('udp')
    await writeFile(join(sb.out, 'cached.lua'), 'return 1')
    const assets = await NetworkAssets.open({ server: `127.0.0.1:${port}`, dir: sb.out, configDir: join(sb.config, 'client'), connectTimeoutMs: 300, offlineWaitMs: 300 })
    try {
      expect(assets.connected).toBe(false)
      expect(await assets.fetch('cached.lua')).toMatchObject({ action: 'local', size: 8 })
      const err = await assets.fetch('missing.lua').catch((e: unknown) => e)
      expect(exitCodeOf(err)).toBe(3)
    } finally {
      await assets.close()
    }
  })

  it('fails fast on a wrong key or token (exit 4)', async () => {
    const srv = await sb.start({ token: 'sesame' })
    const wrongKey = 'ab'.repeat(32)
    await expect(sb.open(srv, { token: 'sesame', key: wrongKey })).rejects.toMatchObject({ code: 'ERR_KEY_MISMATCH' })
    await expect(sb.open(srv, { token: 'nope' })).rejects.toMatchObject({ code: 'ERR_AUTH' })
    const ok = await sb.open(srv, { token: 'sesame' })
    expect(ok.connected).toBe(true)
  })
})

describe('reconnecting', () => {
  it('waits out LiveMirror\'s jittered backoff on the injected clock', async () => {
    await sb.serve({ 'a.txt': 'a' })
    const srv = await sb.start()
    const clock = new ManualClock()
    const assets = await sb.open(srv, { clock, random: () => 0.5 })
    const attempts: ReconnectingEvent[] = []
    assets.on('reconnecting', (e) => attempts.push(e))
    let connected = false
    assets.on('connected', () => { connected = true })
    await srv.close()
    await waitFor(() => attempts.length === 1, 10_000, 'the first reconnecting event')
    expect(attempts[0]).toMatchObject({ attempt: 1, delayMs: reconnectDelay(1, () => 0.5) })
    await sb.start({ port: srv.port })
    await new Promise((r) => setTimeout(r, 300))
    expect(connected).toBe(false) // the clock has not moved: no attempt yet
    clock.advance(reconnectDelay(1, () => 0.5))
    await waitFor(() => connected, 10_000, 'the reconnect once the delay passed')
    expect(await assets.fetch('a.txt')).toMatchObject({ action: 'downloaded' })
  })
})

describe('a fatal error after open', () => {
  it('another server key on the reconnect stops it: `fatal`, and every fetch fails with exit code 4', async () => {
    await sb.serve({ 'a.txt': 'a' })
    const srv = await sb.start()
    const assets = await sb.open(srv, { random: () => 0 })
    await assets.fetch('a.txt')
    const fatal = new Promise<unknown>((resolve) => assets.once('fatal', resolve))
    await srv.close()
    await sb.start({ port: srv.port, configDir: join(sb.config, 'impostor') }) // same address, another identity
    expect(await fatal).toMatchObject({ code: 'ERR_KEY_MISMATCH' })
    const err = await assets.fetch('a.txt').catch((e: unknown) => e)
    expect([exitCodeOf(err), (err as { code?: string }).code]).toEqual([4, 'ERR_KEY_MISMATCH'])
  })
})

/** Reads (turns) of `other` paths after `from` in the log and before the first read of `path` that follows it. */
function turnsBefore(log: ServerLog, from: number, path: string, other: (p: string) => boolean): number {
  let n = 0
  for (const e of log.events.slice(from)) {
    if (e.kind === 'read' && e.path === path) return n
    if (e.kind === 'read' && other(e.path)) n++
  }
  throw new Error(`no read of ${path} after event ${from}`)
}

describe('priority (feature `priority`): counted in server turns', () => {
  const BULK = 8
  const bulk = (p: string): boolean => p.startsWith('bulk/')

  async function setup(features?: number): Promise<{ srv: Awaited<ReturnType<NetSandbox['start']>>; assets: NetworkAssets }> {
    const files: Record<string, Buffer | string> = { 'small.lua': `return "${'s'.repeat(10 * 1024)}"` }
    for (let i = 0; i < BULK; i++) files[`bulk/${i}.bin`] = randomBytes(6 * MiB)
    await sb.serve(files)
    const srv = await sb.start()
    const assets = await sb.open(srv, features === undefined ? {} : { protocol: { features } })
    return { srv, assets }
  }

  /** Starts every bulk transfer and waits until each has had a turn: all are queued on the server. */
  async function startBulk(srv: { log: ServerLog }, assets: NetworkAssets): Promise<Promise<unknown>[]> {
    const all = Array.from({ length: BULK }, (_, i) => assets.fetch(`bulk/${i}.bin`, { priority: 'background' }))
    await waitFor(() => new Set(srv.log.events.filter((e) => e.kind === 'read' && bulk(e.path)).map((e) => e.path)).size === BULK, 20_000, 'every bulk transfer to take a turn')
    return all
  }

  it('a blocking fetch waits for at most the turn in progress, however many background transfers are queued', async () => {
    const { srv, assets } = await setup()
    expect(assets.client?.conn.has('priority')).toBe(true)
    const all = await startBulk(srv, assets)
    await assets.fetch('small.lua')
    const opened = srv.log.events.findIndex((e) => e.kind === 'open' && e.path === 'small.lua')
    expect(turnsBefore(srv.log, opened, 'small.lua', bulk)).toBeLessThanOrEqual(2)
    await Promise.all(all)
  })

  it('without the feature (a peer that does not offer it) the order is plain round robin', async () => {
    const { srv, assets } = await setup(0)
    expect(assets.client?.conn.has('priority')).toBe(false)
    const all = await startBulk(srv, assets)
    await assets.fetch('small.lua')
    const opened = srv.log.events.findIndex((e) => e.kind === 'open' && e.path === 'small.lua')
    expect(turnsBefore(srv.log, opened, 'small.lua', bulk)).toBeGreaterThanOrEqual(BULK - 3)
    await Promise.all(all)
  })

  it('a blocking fetch of a path already downloading in the background raises that transfer (REPRIORITIZE)', async () => {
    const { srv, assets } = await setup()
    const all = await startBulk(srv, assets)
    const mark = srv.log.events.length
    srv.log.events.push({ kind: 'mark', path: 'raise bulk/0.bin' })
    await assets.fetch('bulk/0.bin') // joins the background fetch, and raises it on the server
    const lastOwn = srv.log.events.map((e) => e.kind === 'read' && e.path === 'bulk/0.bin').lastIndexOf(true)
    const others = srv.log.events.slice(mark, lastOwn).filter((e) => e.kind === 'read' && bulk(e.path) && e.path !== 'bulk/0.bin').length
    const own = srv.log.events.slice(mark, lastOwn).filter((e) => e.kind === 'read' && e.path === 'bulk/0.bin').length
    // Round robin would interleave every other transfer's turn with each of its own.
    expect(others).toBeLessThanOrEqual(3)
    expect(own).toBeGreaterThanOrEqual(3)
    await Promise.all(all)
  })
})

describe('the local folder', () => {
  it('a folder replaced by a symlink to elsewhere (after it was used) is refused, nothing written outside', async () => {
    await sb.serve({ 'd/a.txt': 'a', 'd/b.txt': 'b' })
    const srv = await sb.start()
    const assets = await sb.open(srv)
    await assets.fetch('d/a.txt')
    const outside = join(sb.dir, 'outside')
    await mkdir(outside)
    await rm(join(sb.out, 'd'), { recursive: true })
    await symlink(outside, join(sb.out, 'd'))
    await expect(assets.fetch('d/b.txt')).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
    await expect(assets.fetch('d/a.txt')).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
    expect(await readdir(outside)).toEqual([])
  })

  it('a file removed locally is downloaded again on the next fetch', async () => {
    await sb.serve({ 'x.txt': 'x' })
    const srv = await sb.start()
    const assets = await sb.open(srv)
    await assets.fetch('x.txt')
    await rm(join(sb.out, 'x.txt'))
    expect(await assets.fetch('x.txt')).toMatchObject({ action: 'downloaded' })
  })
})
