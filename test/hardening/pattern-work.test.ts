/**
 * Issue 12, case 1, on the server: glob matching for clients is bounded per request, per
 * connection and per server, measured by the matcher's own work counter (PatternSet.steps), never
 * by the clock. A server with 20,000 indexed paths; attackers send costly MANIFEST and SUBSCRIBE
 * patterns while a bystander pulls and watches. Before, one MANIFEST of `**\/` + `*?` × 11 + `#`
 * held the event loop for seconds (picomatch backtracking), and a set that misses the new
 * matcher's DFA cache on every path (W2 below) costs ~240 steps a character: 580 M steps, ~25 s,
 * in one go against these paths.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { Mirror } from '../../src/core/client/mirror.js'
import { pullResuming } from '../../src/core/client/pull.js'
import { PatternSet } from '../../src/core/fs/patterns.js'
import { MemoryFeed } from '../../src/core/server/memory-feed.js'
import { MemorySource } from '../../src/core/server/memory-source.js'
import { AssetServer } from '../../src/core/server/server.js'
import { MANIFEST_PAGE_MATCH_STEPS, MATCH_SLICE_STEPS, MATCH_STEPS_PER_CHAR } from '../../src/limits.js'
import type { ServerMessage, UpdateEntry } from '../../src/protocol/messages.js'
import { Cleanup, LOOPBACK, tempDir, waitFor } from '../helpers/common.js'
import { type RawSecureClient, rawSecureClient } from '../helpers/raw-peers.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())
const suite = new Cleanup()
afterAll(() => suite.run())

/** Random text over a..p (what W2's letters are drawn from), deterministic. */
function text(n: number, seed: number): string {
  let x = seed
  let out = ''
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    out += 'abcdefghijklmnop'[(x >>> 16) & 15]
  }
  return out
}

const DEEP = 20_000
const deepPath = (i: number): string => `deep/${text(40, i * 3)}/${text(40, i * 3 + 1)}/${text(40, i * 3 + 2)}`
const ATTACK_1 = '**/' + '*?'.repeat(11) + '#'
/** 64 patterns that keep missing the DFA cache on paths over a..p (width ~2000, ~240 steps a character). */
const W2 = Array.from({ length: 64 }, (_, j) => {
  const c = (k: number): string => String.fromCharCode(97 + (k % 16))
  return `**/*${c(j)}*${c(j * 7)}*${c(j * 3)}*?*?*?*?*#`
})

let server: AssetServer
let feed: MemoryFeed
let source: MemorySource
let port: number
let key: string
let work: string
const disconnected: string[] = []

beforeAll(async () => {
  const t = await tempDir('pattern-work')
  suite.add(t.remove)
  work = t.dir
  const files: Record<string, string> = {}
  for (let i = 0; i < 50; i++) files[`small/file-${String(i).padStart(2, '0')}.txt`] = `small ${i}\n`
  for (let i = 0; i < DEEP; i++) files[deepPath(i)] = `${i}`
  source = new MemorySource(files)
  feed = new MemoryFeed()
  server = await AssetServer.start({ source, feed, host: LOOPBACK, port: 0, configDir: join(work, 'config'), transport: 'udp' })
  suite.add(() => server.close())
  port = server.address().port
  key = server.publicKey.toString('hex')
  server.on('disconnected', (e) => disconnected.push(`${e.remote}: ${e.reason}`))
}, 60_000)

async function attacker(): Promise<RawSecureClient> {
  const c = await rawSecureClient('udp', port)
  cleanup.add(() => c.destroy())
  return c
}

async function client(): Promise<AssetClient> {
  const c = await AssetClient.connect({ server: `${LOOPBACK}:${port}`, key, configDir: join(work, 'client-config'), connectTimeoutMs: 5000 })
  cleanup.add(() => c.close())
  return c
}

let nextId = 1
/** Sends MANIFEST(patterns) on a raw client and waits for its answer. */
async function manifest(c: RawSecureClient, patterns: string[], after = ''): Promise<ServerMessage> {
  const id = nextId++
  c.write({ type: 'manifest', id, patterns, after })
  return c.next((m) => 'id' in m && m.id === id, 60_000)
}

describe('pattern work on a live server (20,000 paths)', () => {
  it("attack 1 from 4 connections is answered in slices, within the cost rule, while a bystander pulls; nobody is dropped", async () => {
    const before = { ...server.matching.stats }
    const dropsBefore = disconnected.length
    const attackers = await Promise.all([1, 2, 3, 4].map(() => attacker()))
    let answered = 0
    let stop = false
    const attacks = attackers.map(async (a) => {
      while (!stop) {
        const r = await manifest(a, [ATTACK_1])
        expect(r).toMatchObject({ type: 'manifest-reply', done: true, entries: [] }) // no path ends in '#'
        answered++
      }
    })
    // The bystander pulls while the attacks run.
    await waitFor(() => server.matching.stats.slices > before.slices, 10_000, 'the attack to start')
    const out = join(work, 'bystander')
    const retries: unknown[] = []
    const slicesAtPull = server.matching.stats.slices
    const summary = await pullResuming(() => client(), new Mirror({ out, patterns: ['small/**'], configDir: join(work, 'client-config') }), {
      onRetry: (err) => retries.push(err),
    })
    expect(retries).toEqual([])
    const pulledDuring = answered
    const slicesDuringPull = server.matching.stats.slices - slicesAtPull
    stop = true
    await Promise.all(attacks)
    expect(summary.files).toBe(50)
    expect(await readFile(join(out, 'small', 'file-07.txt'), 'utf8')).toBe('small 7\n')

    const st = server.matching.stats
    const longest = Math.max(...[...Array(DEEP).keys()].slice(0, 10).map((i) => deepPath(i).length))
    const width = new PatternSet([ATTACK_1]).width
    console.log(`attack 1 × ${answered} (${pulledDuring} by the end of the pull, ${slicesDuringPull} slices during it): ${st.slices - before.slices} slices, largest ${st.maxSliceSteps} steps;`
      + ` refused ${st.manifestsRefused - before.manifestsRefused}`)
    expect(answered).toBeGreaterThanOrEqual(4)
    expect(slicesDuringPull).toBeGreaterThan(0) // the attacks were being matched while the pull ran
    expect(st.slices - before.slices).toBeGreaterThan(answered) // each scan took several turns
    // No slice did more than a slice's work plus one path at its worst (4 × width × length).
    expect(st.maxSliceSteps).toBeLessThanOrEqual(MATCH_SLICE_STEPS + 4 * width * longest)
    expect(st.manifestsRefused).toBe(before.manifestsRefused)
    // Only the bystander left (it closes when its pull is done), and cleanly.
    expect(disconnected.slice(dropsBefore)).toEqual([expect.stringMatching(/lost: closed by the peer$/)])
    expect(attackers.every((a) => !a.isClosed())).toBe(true)
  })

  it('a set that keeps missing its DFA cache gets ERR_LIMIT after about a slice of work; the connection goes on', async () => {
    const a = await attacker()
    const before = { ...server.matching.stats }
    const r = await manifest(a, W2)
    expect(r).toMatchObject({ type: 'error', code: 'ERR_LIMIT' })
    expect((r as { message: string }).message).toMatch(/^patterns too costly to match against this server's paths \((\d+) steps for (\d+) paths\)/)
    const [, steps, paths] = /\((\d+) steps for (\d+) paths\)/.exec((r as { message: string }).message) as RegExpExecArray
    // Refused as soon as it broke the rule: the allowance for what it examined, plus one path.
    const perPath = 4 * new PatternSet(W2).width * deepPath(0).length
    expect(Number(steps)).toBeLessThanOrEqual(MANIFEST_PAGE_MATCH_STEPS + MATCH_STEPS_PER_CHAR * Number(paths) * (deepPath(0).length + 1) + perPath)
    expect(Number(paths)).toBeLessThan(DEEP / 10) // it never got far
    expect(server.matching.stats.manifestsRefused).toBe(before.manifestsRefused + 1)
    const ok = await manifest(a, ['small/file-0*'])
    expect(ok).toMatchObject({ type: 'manifest-reply', done: true })
    expect((ok as { entries: unknown[] }).entries).toHaveLength(10)
  })

  it('MANIFEST_DIGEST builds its listing as MANIFEST pages are: such a set gets the same ERR_LIMIT; the connection goes on', async () => {
    const c = await client()
    const before = server.matching.stats.manifestsRefused
    await expect(c.manifestDigest(W2, Buffer.alloc(32))).rejects.toMatchObject({
      code: 'ERR_LIMIT', message: expect.stringMatching(/^patterns too costly to match against this server's paths/) as string,
    })
    expect(server.matching.stats.manifestsRefused).toBe(before + 1)
    const small = await c.manifest(['small/file-0*'])
    expect(small).toHaveLength(10)
    expect(await c.manifestDigest(['small/file-0*'], Buffer.alloc(32))).toMatchObject({ unchanged: false })
  })

  it('pages are cut by work, never empty, and together are the whole listing', async () => {
    const c = await client()
    const patterns = ['deep/**/*abc*', '!**/*abcd*'] // sparse: a few hundred of 20,000
    const before = server.matching.stats.pagesCutByWork
    const got = (await c.manifest(patterns)).map((e) => e.path)
    const set = new PatternSet(patterns)
    const want = [...Array(DEEP).keys()].map(deepPath).filter((p) => set.matches(p)).sort()
    expect(got).toEqual(want)
    expect(want.length).toBeGreaterThan(10)
    expect(server.matching.stats.pagesCutByWork).toBeGreaterThan(before)
    console.log(`cut by work: ${want.length} entries, ${server.matching.stats.pagesCutByWork - before} page(s) cut by work`)
  })

  it('subscriptions that keep missing their cache on a batch close that connection; a watcher of small/** gets the batch', async () => {
    const watcher = await client()
    await watcher.subscribe(['small/**'], 1)
    const got: UpdateEntry[] = []
    watcher.on('update', (entries: UpdateEntry[]) => got.push(...entries))
    const a = await attacker()
    const id = nextId++
    a.write({ type: 'subscribe', id, instanceId: 1, subscribe: true, patterns: W2 })
    expect(await a.next((m) => 'id' in m && m.id === id)).toMatchObject({ type: 'subscribe-ack' })
    const before = server.matching.stats.subscribersClosed
    const entries: UpdateEntry[] = [{ kind: 'change', ...source.set('small/file-00.txt', 'changed\n') }]
    for (let i = 0; i < 2000; i++) entries.push({ kind: 'change', ...source.set(deepPath(i), `v2 ${i}`) })
    await feed.push(entries)
    const closing = await a.next((m) => m.type === 'error' && m.id === 0)
    expect(closing).toMatchObject({ code: 'ERR_LIMIT', message: expect.stringContaining('subscriptions too costly to match') as string })
    await a.closed
    expect(server.matching.stats.subscribersClosed).toBe(before + 1)
    await waitFor(() => got.some((e) => e.path === 'small/file-00.txt'), 10_000, "the watcher's update")
    expect(got.map((e) => e.path)).toEqual(['small/file-00.txt'])
    expect(watcher.conn.isOpen).toBe(true)
  })
})
