/**
 * Soak (issue 14, "never lose a device"): a studio day compressed into ~10 minutes (SOAK_MS).
 * A real `assetsync serve` process; 20 real `assetsync watch` processes with a hook each and 2
 * `assetsync run` hosts running a Lua game that hot-reloads a module, 6 watchers and 1 host
 * through the lossy proxy at 2 % loss; a steady stream of edits, creates, renames, deletes and
 * the odd burst (a branch switch), and a new version of the game's module every few seconds; the
 * server killed with SIGKILL and restarted on its port every 2 minutes (SOAK_RESTART_MS) while the
 * edits go on. At the end every mirror must equal the served folder; every watcher's hook must
 * have run exactly once per applied batch (with that batch's paths); every run host must run the
 * last version, having reloaded exactly once per version it saw; nobody may have lost a
 * connection but to the kills; and the RSS of the server, the watchers and the hosts must be flat
 * within ±15 % after the first restart period (warm-up). The counts are printed for
 * docs/benchmarks.md ("Liveness and soak").
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ServerHandle, Sandbox, ensureBuilt } from '../helpers/cli.js'
import { mib, rssOf, waitFor } from '../helpers/common.js'
import { mulberry32, startLossyProxy } from '../helpers/lossy-proxy.js'
import { diffTrees } from '../helpers/trees.js'
import {
  type Event, type WatchHandle, changeSet, completeEvents, expectedHookRuns, readHookRuns, recordingHook, startWatch,
} from '../helpers/watch.js'

const SOAK_MS = Number(process.env.SOAK_MS ?? 600_000)
const RESTART_EVERY_MS = Number(process.env.SOAK_RESTART_MS ?? 120_000)
/**
 * How long a restarted server is left to warm up before its RSS counts (see flatness): the first
 * half of each of its lives, in which 20 watchers and 2 hosts reconnect and resync at once and a
 * fresh heap grows to its working size. Its lives are then compared at the same age (run 2 of
 * 2026-11-29 with 30 s here: 112.8 / 144.6 / 135.5 / 142.7 MiB, a low first life, not growth).
 */
const SERVER_WARMUP_MS = RESTART_EVERY_MS / 2
const WATCHERS = 20
const PROXIED = 6
const RUN_HOSTS = 2
/** A new version of the run hosts' module this often. */
const MODULE_EVERY_MS = 7000
const GAME = `local m = require('m', { reload = true })
local last
function update()
  if m.version ~= last then
    last = m.version
    print('version ' .. m.version)
  end
end
`
const LOSS = 0.02
const SEED = Number(process.env.SOAK_SEED ?? 14)
const EDIT_EVERY_MS = 400
const RSS_EVERY_MS = 5000
/** RSS after warm-up may move this far from its median, either way. */
const RSS_TOLERANCE = 0.15

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)))

let sb: Sandbox
beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('soak')
}, 120_000)
afterAll(async () => { await sb?.cleanup() })

/** The served tree and the edits made to it: create, edit, rename, delete, burst. */
class Editor {
  readonly files = new Set<string>()
  readonly counts = { created: 0, edited: 0, renamed: 0, deleted: 0, bursts: 0 }
  readonly #rand = mulberry32(SEED)
  readonly #root: string
  #next = 0

  constructor(root: string) { this.#root = root }

  #pick(): string {
    const all = [...this.files]
    return all[Math.floor(this.#rand() * all.length)] as string
  }

  #bytes(): Buffer {
    const size = this.#rand() < 0.05 ? 256 * 1024 + Math.floor(this.#rand() * 768 * 1024) : 64 + Math.floor(this.#rand() * 16 * 1024)
    const b = Buffer.alloc(size)
    for (let i = 0; i < size; i += 4) b.writeUInt32LE(Math.floor(this.#rand() * 2 ** 32), Math.min(i, size - 4))
    return b
  }

  async #write(rel: string): Promise<void> {
    const full = join(this.#root, ...rel.split('/'))
    await mkdir(join(full, '..'), { recursive: true })
    await writeFile(full, this.#bytes())
    this.files.add(rel)
  }

  async create(): Promise<void> {
    const rel = `d${Math.floor(this.#rand() * 8)}/f${this.#next++}.bin`
    await this.#write(rel)
    this.counts.created++
  }

  /** One step of the steady stream. */
  async step(): Promise<void> {
    const r = this.#rand()
    if (this.files.size < 60 || (r < 0.2 && this.files.size < 250)) return this.create()
    if (r < 0.6) {
      await this.#write(this.#pick())
      this.counts.edited++
    } else if (r < 0.78) {
      const from = this.#pick()
      const to = `d${Math.floor(this.#rand() * 8)}/f${this.#next++}.bin`
      await mkdir(join(this.#root, to.split('/')[0] as string), { recursive: true })
      await rename(join(this.#root, ...from.split('/')), join(this.#root, ...to.split('/')))
      this.files.delete(from)
      this.files.add(to)
      this.counts.renamed++
    } else if (r < 0.97) {
      const rel = this.#pick()
      await rm(join(this.#root, ...rel.split('/')))
      this.files.delete(rel)
      this.counts.deleted++
    } else {
      // A branch switch: 40 files rewritten or created at once (the tree stays near 250 files, so
      // that RSS compares like with like).
      for (let i = 0; i < 40; i++) {
        if ((this.#rand() < 0.5 || this.files.size >= 250) && this.files.size > 0) await this.#write(this.#pick())
        else await this.create()
      }
      this.counts.bursts++
    }
  }
}

/** Median of a non-empty list. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}

/** The per-window medians of a sample series after the warm-up window, and how far they stray from their median. */
/**
 * The median RSS of each restart period after the first, and the worst distance of one from
 * their median. `skipMs`: samples this early in a period are left out too — for the server, which
 * is a new process from each restart on, the warm-up of that process (its heap grows back to its
 * working size as clients resync), so that incarnations are compared at the same age.
 */
function flatness(samples: { t: number; v: number }[], skipMs = 0): { windows: number[]; worst: number } {
  const byWindow = new Map<number, number[]>()
  for (const { t, v } of samples) {
    const w = Math.floor(t / RESTART_EVERY_MS)
    if (w === 0 || t > SOAK_MS || t % RESTART_EVERY_MS < skipMs) continue // warm-up, and the final convergence
    byWindow.set(w, [...(byWindow.get(w) ?? []), v])
  }
  const windows = [...byWindow.values()].map(median)
  const m = median(windows)
  return { windows, worst: Math.max(...windows.map((x) => Math.abs(x - m) / m)) }
}

const kinds = (w: WatchHandle, k: string): Event[] => w.events().filter((e) => e.event === k)

describe('soak', () => {
  it(`${WATCHERS} watchers (${PROXIED} at ${LOSS * 100} % loss), steady edits, the server killed every ${RESTART_EVERY_MS / 1000} s`, async () => {
    const src = await sb.mkdir('src')
    const editor = new Editor(src)
    for (let i = 0; i < 120; i++) await editor.create()
    let version = 1
    await writeFile(join(src, 'game.lua'), GAME)
    const moduleText = (n: number): string => `print('loaded v${n}')\nreturn { version = 'v${n}' }\n`
    await writeFile(join(src, 'm.lua'), moduleText(version))
    const lifetime = SOAK_MS + 600_000
    let server: ServerHandle = await sb.serve(src, [], { timeoutMs: lifetime })
    const port = server.port
    const proxy = await startLossyProxy({ target: { host: server.host, port }, loss: LOSS, seed: SEED })
    const watchers: { w: WatchHandle; log: string; proxied: boolean }[] = []
    for (let i = 0; i < WATCHERS; i += 5) {
      watchers.push(...await Promise.all(Array.from({ length: Math.min(5, WATCHERS - i) }, async (_, j) => {
        const proxied = i + j < PROXIED
        const log = sb.path(`hook-${i + j}.log`)
        const addr = proxied ? `${proxy.host}:${proxy.port}` : server.addr
        const w = await startWatch(sb, addr, {
          out: sb.path(`out-${i + j}`), exec: recordingHook(log), args: ['--key', server.key], readyMs: 120_000, timeoutMs: lifetime,
        })
        return { w, log, proxied }
      })))
    }
    const hosts = await Promise.all(Array.from({ length: RUN_HOSTS }, async (_, i) => {
      const addr = i === 0 ? `${proxy.host}:${proxy.port}` : server.addr
      const cli = sb.spawn(['run', 'game.lua', '--server', addr, '--key', server.key, '--out', sb.path(`run-${i}`), '--json', '--tick', '20'],
        { timeoutMs: lifetime })
      await waitFor(() => cli.stderrSoFar().includes('version v1'), 120_000, `run host ${i} to start the game`,
        { detail: () => cli.stderrSoFar().slice(-1000) })
      return { cli, proxied: i === 0, events: (): Event[] => completeEvents(cli.stdoutSoFar()) }
    }))

    const t0 = performance.now()
    const now = (): number => performance.now() - t0
    type Series = { t: number; v: number }[]
    const rss: { server: Series; watchers: Series[]; hosts: Series[] } = { server: [], watchers: watchers.map(() => []), hosts: hosts.map(() => []) }
    const sampler = setInterval(() => {
      const t = now()
      try { rss.server.push({ t, v: rssOf(server.proc.pid as number) }) } catch { /* restarting */ }
      watchers.forEach(({ w }, i) => { try { rss.watchers[i]?.push({ t, v: rssOf(w.cli.proc.pid as number) }) } catch { /* gone */ } })
      hosts.forEach(({ cli }, i) => { try { rss.hosts[i]?.push({ t, v: rssOf(cli.proc.pid as number) }) } catch { /* gone */ } })
    }, RSS_EVERY_MS)
    let restarts = 0
    let editing = true
    const edits = (async () => {
      while (editing) {
        await editor.step()
        await sleep(EDIT_EVERY_MS)
      }
    })()
    const versions = (async () => {
      while (editing) {
        await sleep(MODULE_EVERY_MS)
        await writeFile(join(src, 'm.lua'), moduleText(++version))
      }
    })()
    try {
      while (now() + RESTART_EVERY_MS <= SOAK_MS + 1000) {
        await sleep((restarts + 1) * RESTART_EVERY_MS - now())
        server.proc.kill('SIGKILL')
        await server.exited
        await sleep(1000) // edits go on while it is down
        server = await sb.serve(src, ['--port', String(port)], { timeoutMs: lifetime, readyMs: 60_000 })
        restarts++
      }
      await sleep(SOAK_MS - now())
    } finally {
      editing = false
      await Promise.all([edits, versions])
    }

    // The end: every mirror converges on the served folder, every batch had its one hook run.
    const diffs = new Map<string, string[]>()
    await waitFor(async () => {
      for (const { w } of watchers) {
        // A watcher still applying renames its temp files under the walk: that is "not yet".
        try { diffs.set(w.out, await diffTrees(src, w.out)) } catch (err) { diffs.set(w.out, [`(walk: ${(err as Error).message})`]) }
      }
      return [...diffs.values()].every((d) => d.length === 0)
    }, 180_000, 'every mirror to equal the served folder', { everyMs: 1000, detail: () => diverged() })
    /** Which mirrors differ where, and what the watchers' events say about those paths. */
    function diverged(): string {
      const bad = watchers.filter(({ w }) => (diffs.get(w.out) ?? []).length > 0)
      return `${bad.length} of ${WATCHERS} mirrors differ: ` + bad.map(({ w, proxied }) => {
        const d = diffs.get(w.out) ?? []
        const first = d[0] ?? ''
        const path = first.startsWith('only in ') ? first.slice(first.lastIndexOf(': ') + 2) : first.split(':')[0] as string
        const mentions = w.events().filter((e) => JSON.stringify(e).includes(path)).map((e) => JSON.stringify(e).slice(0, 300))
        return `${w.out}${proxied ? ' (proxied)' : ''}: ${d.slice(0, 3).join(', ')}; events naming ${path}: ${mentions.join(',')}`
      }).join(' | ')
    }
    for (const { w, log } of watchers) {
      const due = (): number => expectedHookRuns(w.events()).length
      await waitFor(() => kinds(w, 'hook').length >= due() && readHookRuns(log).length >= due(),
        60_000, `every batch of ${w.out} to have run its hook`, {
          everyMs: 200,
          detail: () => `applied ${kinds(w, 'applied').length}, runs due ${due()}, hook events ${kinds(w, 'hook').length}, hook runs ${readHookRuns(log).length};`
            + ` last events ${JSON.stringify(w.events().slice(-4)).slice(0, 1500)}; stderr ${w.stderr().slice(-1500)}`,
        })
    }
    // Every host has loaded the last version, each version it saw once (the module prints
    // "loaded vN" whenever its chunk runs: the load, and each reload).
    const lines = (cli: (typeof hosts)[number]['cli'], re: RegExp): string[] => cli.stderrSoFar().split('\n').filter((l) => re.test(l))
    const seen = (cli: (typeof hosts)[number]['cli']): string[] => lines(cli, /^loaded v\d+$/)
    for (const [i, { cli }] of hosts.entries()) {
      await waitFor(() => seen(cli).at(-1) === `loaded v${version}`, 120_000, `run host ${i} to load v${version}`,
        { detail: () => `${seen(cli).slice(-3).join(', ')}; ${cli.stderrSoFar().slice(-1000)}` })
    }
    clearInterval(sampler)
    const soakMs = now()
    const hostReport = hosts.map(({ cli, proxied, events }) => ({
      proxied, versions: seen(cli).length, reloaded: events().filter((e) => e.event === 'reloaded').length,
      // What the game's update() last printed: the game loop saw the module's new tables.
      gameSaw: lines(cli, /^version v\d+$/).at(-1) ?? null,
      errors: events().filter((e) => e.event === 'reload-error').length, disconnected: events().filter((e) => e.event === 'disconnected').length,
      unique: new Set(seen(cli)).size === seen(cli).length,
    }))

    const total = (k: string, only?: (x: (typeof watchers)[number]) => boolean): number =>
      watchers.filter((x) => !only || only(x)).reduce((a, { w }) => a + kinds(w, k).length, 0)
    // Every applied batch went to exactly one hook run (batches applied while a run was going on
    // are merged into the next one, as HookRunner does), none twice, none lost.
    const exactlyOnce = watchers.map(({ w, log }) => {
      const due = expectedHookRuns(w.events()).map(changeSet)
      const ran = readHookRuns(log).map((r) => changeSet([r.stdin.changes]))
      return { batches: kinds(w, 'applied').length, runs: ran.length, same: JSON.stringify(due) === JSON.stringify(ran) }
    })
    const serverFlat = flatness(rss.server, SERVER_WARMUP_MS)
    const watcherFlat = rss.watchers.map(flatness)
    const worstWatcher = Math.max(...watcherFlat.map((f) => f.worst))
    const hostFlat = rss.hosts.map(flatness)
    const worstHost = Math.max(...hostFlat.map((f) => f.worst))
    const report = {
      minutes: +(soakMs / 60_000).toFixed(1), restarts, edits: editor.counts, filesAtEnd: editor.files.size,
      applied: total('applied'), hookRuns: exactlyOnce.reduce((a, x) => a + x.runs, 0), hookEvents: total('hook'),
      resynced: total('resynced'), disconnected: total('disconnected'), reconnecting: total('reconnecting'), errors: total('error'),
      disconnectedDirect: total('disconnected', (x) => !x.proxied), disconnectedProxied: total('disconnected', (x) => x.proxied),
      proxy: { ...proxy.counters },
      serverRssMiB: serverFlat.windows.map((v) => +(v / 2 ** 20).toFixed(1)), serverRssWorst: +(serverFlat.worst * 100).toFixed(1),
      watcherRssMiB: watcherFlat.map((f) => f.windows.map((v) => +(v / 2 ** 20).toFixed(1))), watcherRssWorst: +(worstWatcher * 100).toFixed(1),
      moduleVersions: version, hosts: hostReport,
      hostRssMiB: hostFlat.map((f) => f.windows.map((v) => +(v / 2 ** 20).toFixed(1))), hostRssWorst: +(worstHost * 100).toFixed(1),
    }
    console.log(`soak: ${JSON.stringify(report)}`)
    console.log(`soak: ${report.minutes} min, ${restarts} server kills, edits ${JSON.stringify(editor.counts)}; ${report.applied} batches applied, `
      + `${report.hookRuns} hook runs (${report.resynced} resyncs); disconnects ${report.disconnectedDirect} direct + ${report.disconnectedProxied} `
      + `proxied, ${report.errors} batch errors; proxy dropped ${proxy.counters.dropped} of ${proxy.counters.received} datagrams; `
      + `RSS server ${report.serverRssMiB.join('/')} MiB (worst ${report.serverRssWorst} %), watchers worst ${report.watcherRssWorst} % `
      + `(e.g. ${mib(median(rss.watchers[0]?.map((s) => s.v) ?? [0]))}); run hosts: ${version} module versions, `
      + hostReport.map((h) => `${h.reloaded} reloads for ${h.versions} versions seen, ${h.disconnected} disconnects, game loop last saw ${h.gameSaw}${h.proxied ? ' (proxied)' : ''}`).join('; ')
      + `, RSS worst ${report.hostRssWorst} %`)
    await proxy.close()

    expect(restarts).toBeGreaterThanOrEqual(Math.max(1, Math.floor(SOAK_MS / RESTART_EVERY_MS) - 1))
    expect(exactlyOnce.filter((x) => !x.same)).toEqual([])
    expect(report.hookEvents).toBe(report.hookRuns)
    // Every kill costs every watcher one connection and one resync, and nothing else does: loss,
    // load and the restarts' bursts never drop a device.
    expect(watchers.map(({ w }) => kinds(w, 'disconnected').length)).toEqual(watchers.map(() => restarts))
    expect(watchers.map(({ w }) => kinds(w, 'resynced').length)).toEqual(watchers.map(() => restarts))
    expect(watchers.every(({ w }) => w.cli.proc.exitCode === null)).toBe(true)
    // A run host reloads once per version it sees (the first version is the load, not a reload),
    // never twice for one; it may skip a version saved while it was away (one reload for both).
    for (const h of hostReport) {
      expect(h).toMatchObject({ unique: true, errors: 0, reloaded: h.versions - 1, disconnected: restarts })
      expect(h.versions).toBeGreaterThan(version / 2)
    }
    expect(hosts.every(({ cli }) => cli.proc.exitCode === null)).toBe(true)
    expect(worstHost).toBeLessThanOrEqual(RSS_TOLERANCE)
    expect(serverFlat.worst).toBeLessThanOrEqual(RSS_TOLERANCE)
    expect(worstWatcher).toBeLessThanOrEqual(RSS_TOLERANCE)
  }, SOAK_MS + 480_000)
})
