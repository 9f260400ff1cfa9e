/**
 * Reload reports end to end through the built CLI: a `watch --exec` hook that fails reaches
 * `serve --json` as a `reload` event with ok:false (its stderr and file:line included), shows in
 * `assetsync status` and the metrics, and recovers after a good save; serve prints it for people
 * too. Against the protocol-2 release (test/fixtures/release-v2): an old server is never sent a
 * REPORT (it would drop the connection), an old client is sent nothing it does not know while
 * new clients report and ask for status, and `assetsync status` says the old server cannot answer.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EXIT } from '../../src/errors.js'
import { parseStatusJson } from '../../src/protocol/status-json.js'
import { PROJECT_ROOT, Sandbox, type ServerHandle, ensureBuilt, lines } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { writeTree } from '../helpers/trees.js'
import { sample, scrape } from '../helpers/http.js'
import { type Event, type WatchHandle, startWatch } from '../helpers/watch.js'

const OLD_CLI = join(PROJECT_ROOT, 'test', 'fixtures', 'release-v2', 'cli.mjs')
const WAIT_MS = 20_000
const GOOD = 'return { hp = 10 }\n'
const BAD = 'return { hp = BAD }\n'
/**
 * The device's "reload": a check that fails, as a Lua loader would, while the script holds BAD,
 * printing a Lua-style message with file:line to stderr.
 */
const HOOK = `if grep -q BAD scripts/main.lua; then echo "scripts/main.lua:1: unexpected symbol near 'BAD'" >&2; exit 3; fi`

let sb: Sandbox
beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('report-e2e')
}, 60_000)
afterAll(async () => { await sb?.cleanup() })

async function project(): Promise<string> {
  const dir = await sb.mkdir('src')
  await writeTree(dir, { 'scripts/main.lua': GOOD, 'levels/one.json': '{}\n' })
  return dir
}

const reloads = (s: ServerHandle, from = 0): Event[] => s.events().slice(from).filter((e) => e.event === 'reload')

async function nextReload(s: ServerHandle, from: number, what: string): Promise<Event> {
  return waitFor(() => reloads(s, from)[0], WAIT_MS, what, { detail: () => JSON.stringify(s.events().slice(from)) + s.stderr() })
}

describe('a watch --exec hook reports each run to serve', () => {
  let src: string
  let s: ServerHandle
  let w: WatchHandle
  let base: string

  beforeAll(async () => {
    src = await project()
    s = await sb.serve(src, ['--http', '127.0.0.1:0'])
    base = String(s.listening.http)
    w = await startWatch(sb, s.addr, { out: sb.path('out'), exec: HOOK, args: ['--key', s.key] })
  }, 60_000)
  afterAll(async () => {
    w?.cli.proc.kill('SIGTERM')
    await w?.exited
    await s?.stop()
  })

  it('a failing hook reaches serve --json as a reload event with ok:false, its error and file:line', async () => {
    const from = s.events().length
    await writeFile(join(src, 'scripts', 'main.lua'), BAD)
    const ev = await nextReload(s, from, 'a reload event for the bad save')
    // The contract's exact shape (design.md): no more, no fewer fields.
    expect(Object.keys(ev).sort()).toEqual(['error', 'event', 'ms', 'ok', 'paths', 'remote'])
    expect(ev).toMatchObject({ event: 'reload', ok: false, paths: ['scripts/main.lua'] })
    expect(ev.error).toMatch(/^hook exited 3\nscripts\/main\.lua:1: unexpected symbol near 'BAD'$/)
    expect(Number.isInteger(ev.ms) && (ev.ms as number) >= 0).toBe(true)
    const connected = s.events().find((e) => e.event === 'client' && e.action === 'connected')
    expect(ev.remote).toBe(connected?.remote)
    // The watch itself still says so on its side, and keeps going.
    await w.waitEvent((e) => e.event === 'hook' && e.exitCode === 3, WAIT_MS, 'the hook event')

    const st = await sb.run(['status', '--server', s.addr, '--key', s.key, '--json'])
    expect(st.code).toBe(0)
    const device = parseStatusJson(st.stdout.toString()).clients.find((c) => c.remote === ev.remote)
    expect(device?.lastReport).toMatchObject({
      ok: false, paths: ['scripts/main.lua'], error: { file: 'scripts/main.lua', line: 1, message: ev.error },
    })
    const table = await sb.run(['status', '--server', s.addr, '--key', s.key])
    expect(table.stdout.toString()).toMatch(/ FAILED: scripts\/main\.lua:1: hook exited 3$/m)
  })

  it('a good save recovers: ok:true, no error; the metrics count both', async () => {
    const from = s.events().length
    await writeFile(join(src, 'scripts', 'main.lua'), GOOD)
    const ev = await nextReload(s, from, 'a reload event for the good save')
    expect(ev).toMatchObject({ event: 'reload', ok: true, error: null, paths: ['scripts/main.lua'] })
    const m = await scrape(base)
    expect([sample(m, 'assetsync_reload_reports_total{result="error"}'), sample(m, 'assetsync_reload_reports_total{result="ok"}')]).toEqual([1, 1])
    expect(w.events().filter((e) => e.event === 'disconnected')).toEqual([])
  })
})

it('serve prints reports for people: "<remote> reloaded <paths> in N ms", or the failure with file:line', async () => {
  const src = await project()
  const human = sb.spawn(['serve', src, '--host', '127.0.0.1', '--port', '0'], { timeoutMs: 120_000 })
  try {
    const port = await waitFor(() => /on udp:\/\/127\.0\.0\.1:(\d+)/.exec(human.stdoutSoFar())?.[1], WAIT_MS, 'the human ready line')
    const w = await startWatch(sb, `127.0.0.1:${port}`, { out: sb.path('out'), exec: HOOK })
    try {
      await writeFile(join(src, 'scripts', 'main.lua'), BAD)
      const failed = await waitFor(() => human.stdoutSoFar().split('\n').find((l) => l.includes('failed to reload')), WAIT_MS, 'the failure line',
        { detail: () => human.stdoutSoFar() })
      expect(failed).toMatch(/^127\.0\.0\.1:\d+ failed to reload scripts\/main\.lua: scripts\/main\.lua:1: hook exited 3$/)
      await w.waitEvent((e) => e.event === 'hook', WAIT_MS, 'the first hook run')
      await writeFile(join(src, 'scripts', 'main.lua'), GOOD)
      const ok = await waitFor(() => human.stdoutSoFar().split('\n').find((l) => / reloaded /.test(l)), WAIT_MS, 'the reloaded line',
        { detail: () => human.stdoutSoFar() })
      expect(ok).toMatch(/^127\.0\.0\.1:\d+ reloaded scripts\/main\.lua in \d+ ms$/)
    } finally {
      w.cli.proc.kill('SIGTERM')
      await w.exited
    }
  } finally {
    human.proc.kill('SIGTERM')
    await human.result
  }
}, 60_000)

describe('with the protocol-2 release', () => {
  it('an old server is never sent REPORT: the new watch keeps its one connection across failing hook runs', async () => {
    const src = await project()
    const old = await sb.serve(src, [], { bin: OLD_CLI })
    try {
      const w = await startWatch(sb, old.addr, { out: sb.path('out'), exec: HOOK, args: ['--key', old.key] })
      try {
        for (const [i, content] of [BAD, GOOD, BAD].entries()) {
          await writeFile(join(src, 'scripts', 'main.lua'), content)
          const runs = (): number => w.events().filter((e) => e.event === 'hook').length
          await waitFor(() => runs() > i, WAIT_MS, `hook run ${i + 1}`, { detail: () => w.stderr() })
        }
        expect(w.events().filter((e) => e.event === 'hook').map((e) => e.exitCode)).toEqual([3, 0, 3])
        // A REPORT would have cost the connection: the old server refuses unknown frames.
        expect(w.events().filter((e) => e.event === 'disconnected' || e.event === 'reconnecting')).toEqual([])
        expect(old.events().filter((e) => e.event === 'client').map((e) => e.action)).toEqual(['connected'])
        expect(old.events().filter((e) => e.event === 'rejected')).toEqual([])
      } finally {
        w.cli.proc.kill('SIGTERM')
        await w.exited
      }
      const status = await sb.run(['status', '--server', old.addr, '--key', old.key])
      expect(status.code).toBe(EXIT.CONNECTION)
      expect(lines(status.stderr)).toEqual([expect.stringMatching(/^assetsync: 127\.0\.0\.1:\d+ does not answer status queries \(it speaks protocol 2\): upgrade the server/)])
    } finally {
      await old.stop()
    }
  }, 90_000)

  it('an old client is sent nothing it does not know while new clients report and ask for status', async () => {
    const src = await project()
    const s = await sb.serve(src)
    try {
      const oldWatch = await startWatch(sb, s.addr, { out: sb.path('old'), args: ['--key', s.key], bin: OLD_CLI })
      const newWatch = await startWatch(sb, s.addr, { out: sb.path('new'), exec: HOOK, args: ['--key', s.key] })
      try {
        for (const content of [BAD, GOOD]) {
          const from = s.events().length
          const applied = oldWatch.events().length
          await writeFile(join(src, 'scripts', 'main.lua'), content)
          await nextReload(s, from, 'the new watcher\'s report')
          await oldWatch.waitEvent((e) => e.event === 'applied', WAIT_MS, 'the old watcher to apply the change', applied)
          const st = await sb.run(['status', '--server', s.addr, '--key', s.key, '--json'])
          expect(parseStatusJson(st.stdout.toString()).clients.length).toBeGreaterThanOrEqual(2)
        }
        expect(oldWatch.stderr()).toBe('')
        expect(oldWatch.events().filter((e) => e.event !== 'synced' && e.event !== 'applied')).toEqual([])
        expect(s.events().filter((e) => e.event === 'client' && e.action === 'disconnected').map((e) => e.reason)
          .filter((r) => !/closed by the peer/.test(String(r)))).toEqual([])
      } finally {
        for (const w of [oldWatch, newWatch]) w.cli.proc.kill('SIGTERM')
        await Promise.all([oldWatch.exited, newWatch.exited])
      }
    } finally {
      await s.stop()
    }
  }, 90_000)
})
