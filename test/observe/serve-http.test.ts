/**
 * `serve --http` and `assetsync status`, end to end through the built CLI: a real server on a free
 * UDP port, real `pull` and `watch` processes, the real HTTP listener. The metrics move as a pull
 * runs; /status lists a connected watcher and its subscriptions and drops it after kill -9 within
 * the idle timeout; `assetsync status` prints it as a table and as JSON; off loopback the listener
 * needs the token (and without one serve will not start).
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EXIT } from '../../src/errors.js'
import { IDLE_TIMEOUT_MS, TIMER_TICK_MS } from '../../src/limits.js'
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js'
import { parseStatusJson } from '../../src/protocol/status-json.js'
import { Sandbox, type ServerHandle, ensureBuilt, lines, parseEvents } from '../helpers/cli.js'
import { LOOPBACK, waitFor } from '../helpers/common.js'
import { writeTree } from '../helpers/trees.js'
import { fetchStatus, httpGet, nonLoopbackAddress, sample, scrape } from '../helpers/http.js'
import { startWatch } from '../helpers/watch.js'

const TOKEN = 'observe-e2e token'
/** /status is polled this often while waiting for a killed device to go. */
const POLL_MS = 50
/**
 * How long the server may take to drop a device killed with -9: its idle timeout, checked every
 * tick (docs/protocol.md §6: under 5 s), plus one poll of /status and one tick of slack for a
 * loaded machine's timers.
 */
const DROP_WITHIN_MS = IDLE_TIMEOUT_MS + 2 * TIMER_TICK_MS + POLL_MS

let sb: Sandbox
let src: string
let s: ServerHandle
let base: string

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('serve-http')
  src = await sb.mkdir('src')
  await writeTree(src, {
    'scripts/main.lua': 'require("ai.enemy")\n',
    'scripts/ai/enemy.lua': 'return {}\n',
    'levels/one.json': '{"level":1}\n',
    'textures/big.bin': randomBytes(300_000),
  })
  s = await sb.serve(src, ['--http', `${LOOPBACK}:0`])
  base = String(s.listening.http)
}, 60_000)

afterAll(async () => {
  await s?.stop()
  await sb?.cleanup()
})

describe('serve --http', () => {
  it('puts the URL in the listening event and serves the status of this server', async () => {
    expect(s.listening.http).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(Number(new URL(base).port)).not.toBe(s.port)
    const st = await fetchStatus(base)
    expect(st).toMatchObject({ key: s.key, protocol: PROTOCOL_VERSION, transport: 'udp', address: `udp://${LOOPBACK}:${s.port}`, files: 4 })
  })

  it('prints the URL in the human ready output', async () => {
    const human = sb.spawn(['serve', src, '--host', LOOPBACK, '--port', '0', '--http', '0'])
    try {
      const url = await waitFor(() => /^ {2}status page (http:\/\/127\.0\.0\.1:\d+)\/$/m.exec(human.stdoutSoFar())?.[1], 20_000,
        'the human ready output to name the status page', { detail: () => human.stdoutSoFar() + human.stderrSoFar() })
      expect((await httpGet(`${url}/status`)).status).toBe(200)
    } finally {
      human.proc.kill('SIGTERM')
      expect((await human.result).code).toBe(0)
    }
  })

  it('the metrics move as a pull runs: connections, requests, bytes, transfer times', async () => {
    const before = await scrape(base)
    const r = await sb.run(['pull', '--server', s.addr, '--key', s.key, '--out', sb.path('pull'), '--json'])
    expect([r.code, r.stderr]).toEqual([0, ''])
    const summary = parseEvents(r.stdout).at(-1) as { event: string; downloaded: number; bytesReceived: number }
    expect(summary).toMatchObject({ event: 'summary', downloaded: 4 })
    const open = 'assetsync_connections_open{transport="udp"}'
    // The pull has closed its end; the server's gauge follows when it sees the close.
    const after = await waitFor(async () => {
      const m = await scrape(base)
      return sample(m, open) === sample(before, open) ? m : null
    }, 10_000, 'the pull connection to close on the server')
    const delta = (key: string): number => sample(after, key) - sample(before, key)
    expect(delta('assetsync_connections_total{transport="udp"}')).toBe(1)
    expect(delta('assetsync_requests_total{status="file"}')).toBe(4)
    expect(delta('assetsync_transfer_duration_seconds_count')).toBe(4)
    expect(delta('assetsync_transfer_duration_seconds_sum')).toBeGreaterThan(0)
    // Frames carry the payload and more (headers, manifest, AUTH_OK).
    expect(delta('assetsync_sent_bytes_total')).toBeGreaterThan(summary.bytesReceived)
    expect(summary.bytesReceived).toBeGreaterThanOrEqual(300_000)
    expect(delta('assetsync_received_bytes_total')).toBeGreaterThan(0)

    const missing = await sb.run(['get', '--server', s.addr, '--key', s.key, 'no/such.lua'])
    expect(missing.code).toBe(EXIT.NOT_FOUND)
    const later = await scrape(base)
    expect(sample(later, 'assetsync_requests_total{status="not-found"}') - sample(after, 'assetsync_requests_total{status="not-found"}')).toBe(1)
  })

  it('/status lists a connected watcher with its subscriptions, and drops it soon after kill -9', async () => {
    const w = await startWatch(sb, s.addr, { out: sb.path('watch'), patterns: ['scripts/**'], args: ['--key', s.key] })
    const device = await waitFor(async () => (await fetchStatus(base)).clients.find((c) => c.subscriptions.some((x) => x.pattern === 'scripts/**')),
      10_000, 'the watcher and its subscription in /status')
    expect(device).toMatchObject({ transport: 'udp', lastReport: null })
    expect(device.subscriptions).toEqual([{ pattern: 'scripts/**', instances: [expect.any(Number)] }])
    expect(device.bytes.sent).toBeGreaterThan(0)
    expect(sample(await scrape(base), 'assetsync_subscriptions')).toBe(1)

    const killedAt = Date.now()
    w.cli.proc.kill('SIGKILL')
    // Waits longer than the bound, so a slow drop fails on the figure below, not on a timeout.
    await waitFor(async () => !(await fetchStatus(base)).clients.some((c) => c.remote === device.remote), DROP_WITHIN_MS + 10_000,
      `${device.remote} to leave /status`, POLL_MS)
    const tookMs = Date.now() - killedAt
    expect(tookMs).toBeLessThanOrEqual(DROP_WITHIN_MS)
    expect(sample(await scrape(base), 'assetsync_subscriptions')).toBe(0)
    expect(s.events().some((e) => e.event === 'client' && e.action === 'disconnected' && e.remote === device.remote)).toBe(true)
  }, 60_000)
})

describe('assetsync status', () => {
  it('prints the devices table and, with --json, the StatusJson, with a watcher connected', async () => {
    const w = await startWatch(sb, s.addr, { out: sb.path('watch'), patterns: ['scripts/**', 'levels/*.json'], args: ['--key', s.key] })
    try {
      const device = await waitFor(async () => (await fetchStatus(base)).clients.find((c) => c.subscriptions.length === 2),
        10_000, 'the watcher with both subscriptions')

      const table = await sb.run(['status', '--server', s.addr, '--key', s.key])
      expect([table.code, table.stderr]).toEqual([0, ''])
      const text = table.stdout.toString()
      expect(text).toMatch(new RegExp(`^assetsync \\S+ serving udp://127\\.0\\.0\\.1:${s.port}, up .*, 4 files$`, 'm'))
      expect(text).toContain(`server key ${s.key}`)
      expect(text).toMatch(/^DEVICE +VIA +CONNECTED +SENT +RECEIVED +SUBSCRIPTIONS +LAST RELOAD$/m)
      const row = text.split('\n').find((l) => l.startsWith(device.remote))
      expect(row).toMatch(/ udp .* scripts\/\*\*, levels\/\*\.json +-$/)

      const json = await sb.run(['status', '--server', s.addr, '--key', s.key, '--json'])
      expect([json.code, json.stderr]).toEqual([0, ''])
      expect(lines(json.stdout.toString())).toHaveLength(1)
      const st = parseStatusJson(json.stdout.toString())
      expect(st).toMatchObject({ key: s.key, protocol: PROTOCOL_VERSION, files: 4 })
      const listed = st.clients.find((c) => c.remote === device.remote)
      expect(listed?.subscriptions.map((x) => x.pattern).sort()).toEqual(['levels/*.json', 'scripts/**'])
    } finally {
      w.cli.proc.kill('SIGTERM')
      await w.exited
    }
  })

  it('is authorised like any client: the token, and the pinned key', async () => {
    const guarded = await sb.serve(src, ['--token', TOKEN])
    try {
      const without = await sb.run(['status', '--server', guarded.addr, '--key', guarded.key])
      expect(without.code).toBe(EXIT.AUTH)
      expect(lines(without.stderr)).toEqual([expect.stringMatching(/^assetsync: .*token/)])
      const wrongKey = await sb.run(['status', '--server', guarded.addr, '--key', 'ab'.repeat(32), '--token', TOKEN])
      expect(wrongKey.code).toBe(EXIT.AUTH)
      const ok = await sb.run(['status', '--server', guarded.addr, '--key', guarded.key, '--json'], { env: { ASSETSYNC_TOKEN: TOKEN } })
      expect([ok.code, ok.stderr]).toEqual([0, ''])
      expect(parseStatusJson(ok.stdout.toString()).key).toBe(guarded.key)
    } finally {
      await guarded.stop()
    }
  })
})

describe('serve --http off loopback', () => {
  const addr = nonLoopbackAddress()
  if (!addr) console.warn('SKIPPED serve --http on a non-loopback address: this machine has none to bind')

  it('will not start without a token: exit 2, one line, before anything listens', async () => {
    const r = await sb.run(['serve', src, '--host', LOOPBACK, '--port', '0', '--json', '--http', '0.0.0.0:0'])
    expect(r.code).toBe(EXIT.USAGE)
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^assetsync: --http on 0\.0\.0\.0, which is not a loopback address, needs a token/)])
    // Nothing listened: the only --json event is the fatal error (every fatal error is an event).
    expect(parseEvents(r.stdout)).toEqual([expect.objectContaining({ event: 'error', code: 'ERR_USAGE', exitCode: EXIT.USAGE, fatal: true })])
  })

  it.skipIf(!addr)('asks every request for the token; the bearer token opens /status and /metrics', async () => {
    const guarded = await sb.serve(src, ['--token', TOKEN, '--http', `${addr}:0`])
    try {
      const url = String(guarded.listening.http)
      expect(url).toMatch(new RegExp(`^http://${(addr as string).replaceAll('.', '\\.')}:\\d+$`))
      for (const path of ['/', '/status', '/metrics', '/events']) {
        const r = await httpGet(`${url}${path}`)
        expect([path, r.status]).toEqual([path, 401])
        expect(r.body).not.toContain('assetsync_')
        expect(r.body).not.toContain(guarded.key)
      }
      expect((await httpGet(`${url}/status`, { authorization: 'Bearer nope' })).status).toBe(401)
      const auth = { authorization: `Bearer ${TOKEN}` }
      expect((await fetchStatus(url, auth)).key).toBe(guarded.key)
      expect(sample(await scrape(url, auth), 'assetsync_build_info{version="0.1.0"}')).toBe(1)
    } finally {
      await guarded.stop()
    }
  })
})
