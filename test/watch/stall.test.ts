/**
 * Stalls are not deaths (issue 14, docs/protocol.md §6). Real `assetsync watch` and `assetsync
 * serve` processes are frozen with SIGSTOP for 2, 5 and 10 s (a phone loading a level, a starved
 * box) and thawed with SIGCONT. Nobody may treat the frozen peer as gone: no disconnect on either
 * side, a request sent to a frozen server is answered after it thaws, the subscription delivers
 * the change made meanwhile and the next one, and the hook runs exactly once per applied batch.
 * The three stalls of each kind run at once (one thawed after 2 s, one after 5, one after 10).
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { type ServerHandle, Sandbox, ensureBuilt } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { diffTrees, writeTree } from '../helpers/trees.js'
import {
  type Event, type WatchHandle, changeSet, expectedHookRuns, readHookRuns, recordingHook, startWatch,
} from '../helpers/watch.js'

const STALLS_S = [2, 5, 10]
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)))

let sb: Sandbox
beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('stall')
}, 120_000)
afterAll(async () => { await sb?.cleanup() })

const appliedHas = (path: string) => (e: Event): boolean =>
  e.event === 'applied' && (e.changes as { path: string }[]).some((c) => c.path === path)

/** What must hold for a watcher that lived through a stall (its own or its server's). */
async function expectNoReconnect(w: WatchHandle, server: ServerHandle, log: string): Promise<void> {
  const dueNow = (): number => expectedHookRuns(w.events()).length
  // The last batch's hook may still be running: wait until every batch has had its run.
  await waitFor(() => (w.events().filter((e) => e.event === 'hook').length >= dueNow() && readHookRuns(log).length >= dueNow()) || null,
    20_000, 'a hook run for every applied batch')
  const kinds = w.events().map((e) => e.event)
  expect(kinds.filter((k) => ['disconnected', 'reconnecting', 'resynced', 'error'].includes(k)), w.stderr()).toEqual([])
  expect(server.events().filter((e) => e.event === 'client' && e.action === 'disconnected')).toEqual([])
  // Every applied batch reached exactly one hook run (none twice, none lost).
  const due = expectedHookRuns(w.events()).map(changeSet)
  expect(due.length).toBeGreaterThanOrEqual(2) // during.txt and after.txt at least
  expect(readHookRuns(log).map((r) => changeSet([r.stdin.changes]))).toEqual(due)
  expect(w.events().filter((e) => e.event === 'hook')).toHaveLength(due.length)
}

describe('stalled peers are kept (SIGSTOP for 2, 5 and 10 s, then SIGCONT)', () => {
  it('watch processes: the change made while they were frozen arrives after SIGCONT, on the same connection', async () => {
    const src = await sb.mkdir('src')
    await writeTree(src, { 'a.txt': 'a0\n' })
    const server = await sb.serve(src)
    const watchers = await Promise.all(STALLS_S.map(async (s) => {
      const log = sb.path(`hook-watch-${s}s.log`)
      const w = await startWatch(sb, server.addr, { out: sb.path(`out-${s}s`), exec: recordingHook(log), args: ['--key', server.key] })
      return { s, w, log }
    }))
    for (const { w } of watchers) expect(w.cli.proc.kill('SIGSTOP')).toBe(true)
    const t0 = performance.now()
    // Pushed to every frozen watcher: data in flight toward a stopped process the whole time.
    await writeFile(join(src, 'during.txt'), 'written while the watchers were frozen\n')
    const took = await Promise.all(watchers.map(async ({ s, w }) => {
      await sleep(s * 1000 - (performance.now() - t0))
      w.cli.proc.kill('SIGCONT')
      const thawed = performance.now()
      await w.waitEvent(appliedHas('during.txt'), 20_000, `the ${s} s watcher to apply during.txt`)
      return performance.now() - thawed
    }))
    await writeFile(join(src, 'after.txt'), 'written after the thaw\n')
    for (const { s, w } of watchers) await w.waitEvent(appliedHas('after.txt'), 20_000, `the ${s} s watcher to apply after.txt`)
    console.log(`stalled watchers (${STALLS_S.join(', ')} s): change applied ${took.map((ms) => ms.toFixed(0)).join(', ')} ms after SIGCONT, no reconnect`)
    for (const { w, log } of watchers) {
      await expectNoReconnect(w, server, log)
      expect(await diffTrees(src, w.out)).toEqual([])
    }
  })

  it('serve processes: a request sent while the server was frozen is answered, and its watcher misses nothing', async () => {
    const runs = await Promise.all(STALLS_S.map(async (s) => {
      const src = await sb.mkdir(`src-${s}s`)
      await writeTree(src, { 'a.txt': `a for ${s}\n` })
      const server = await sb.serve(src)
      const log = sb.path(`hook-serve-${s}s.log`)
      const w = await startWatch(sb, server.addr, { out: sb.path(`out-serve-${s}s`), exec: recordingHook(log), args: ['--key', server.key] })
      const client = await AssetClient.connect({ server: server.addr, key: server.key, configDir: sb.config })
      return { s, src, server, w, log, client }
    }))
    try {
      for (const { server } of runs) expect(server.proc.kill('SIGSTOP')).toBe(true)
      const t0 = performance.now()
      const took = await Promise.all(runs.map(async ({ s, src, server, w, client }) => {
        const pending = client.read('a.txt') // in flight to a frozen server
        await writeFile(join(src, 'during.txt'), 'written while the server was frozen\n')
        await sleep(s * 1000 - (performance.now() - t0))
        server.proc.kill('SIGCONT')
        const thawed = performance.now()
        expect((await pending).toString()).toBe(`a for ${s}\n`)
        const answered = performance.now() - thawed
        await w.waitEvent(appliedHas('during.txt'), 20_000, `the watcher of the ${s} s server to apply during.txt`)
        return [answered, performance.now() - thawed]
      }))
      for (const { src } of runs) await writeFile(join(src, 'after.txt'), 'written after the thaw\n')
      for (const { s, w } of runs) await w.waitEvent(appliedHas('after.txt'), 20_000, `the watcher of the ${s} s server to apply after.txt`)
      console.log(`stalled servers (${STALLS_S.join(', ')} s): pending request answered ${took.map(([a]) => (a as number).toFixed(0)).join(', ')} ms`
        + ` and the change applied ${took.map(([, b]) => (b as number).toFixed(0)).join(', ')} ms after SIGCONT, no reconnect`)
      for (const { src, server, w, log, client } of runs) {
        expect(client.conn.closed).toBe(false)
        await expectNoReconnect(w, server, log)
        expect(await diffTrees(src, w.out)).toEqual([])
      }
    } finally {
      for (const { client, server } of runs) {
        client.close()
        server.proc.kill('SIGCONT')
      }
    }
  })
})

describe('--idle-timeout', () => {
  it('takes seconds, more than 0 and at most 30 (the seed bound), on serve and the client commands', async () => {
    for (const [args, msg] of [
      [['watch', '--server', '127.0.0.1:9', '--idle-timeout', '31'], '--idle-timeout must be at most 30 seconds, got "31"'],
      [['pull', '--server', '127.0.0.1:9', '--idle-timeout', '0'], '--idle-timeout must be a number of seconds > 0, got "0"'],
      [['serve', '.', '--idle-timeout', 'soon'], '--idle-timeout must be a number of seconds > 0, got "soon"'],
    ] as const) {
      const r = await sb.run([...args])
      expect([args.join(' '), r.code, r.stderr]).toEqual([args.join(' '), 2, `assetsync: ${msg}\n`])
    }
  })

  it('is honoured: a watcher with --idle-timeout 2 whose server vanishes (SIGSTOP, no ICMP) reconnects after it', async () => {
    const src = await sb.mkdir('src-idle')
    await writeTree(src, { 'a.txt': 'a\n' })
    const server = await sb.serve(src)
    const w = await startWatch(sb, server.addr, { out: sb.path('out-idle'), args: ['--key', server.key, '--idle-timeout', '2'] })
    try {
      expect(server.proc.kill('SIGSTOP')).toBe(true)
      const t0 = performance.now()
      const e = await w.waitEvent((x) => x.event === 'disconnected', 10_000, 'the watcher to give the frozen server up')
      const ms = performance.now() - t0
      expect(String(e.reason)).toMatch(/nothing heard for 2 s/)
      // Silence began at most a keepalive before the stop; a tick of slack after the timeout.
      expect(ms).toBeGreaterThan(1000)
      expect(ms).toBeLessThan(4000)
    } finally {
      server.proc.kill('SIGCONT')
    }
    await w.waitEvent((x) => x.event === 'resynced', 20_000, 'the watcher to come back once the server thaws')
  })
})
