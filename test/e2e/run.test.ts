/**
 * `assetsync run` as a user runs it: the built CLI against a real `assetsync serve` (each its own
 * process, UDP on loopback, real folders). The --json events, `arg` from the words after `--`,
 * os.exit codes, a script error's traceback and exit 7, the usual exit codes for a missing
 * script, a wrong token, a usage error and an unreachable server, hot reload of a saved file (and
 * a broken save kept out), Ctrl-C, offline runs from a local copy, and a protocol-2 server.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  PROJECT_ROOT, Sandbox, type ServerHandle, type SpawnedCli, closedPort, ensureBuilt, lines, parseEvents,
} from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { writeTree } from '../helpers/trees.js'
import { completeEvents } from '../helpers/watch.js'

const OLD_CLI = join(PROJECT_ROOT, 'test', 'fixtures', 'release-v2', 'cli.mjs')

let sb: Sandbox
let src: string
let server: ServerHandle

const GAME = `local m = require('m', { reload = true })
local last
function update()
  if m.version ~= last then
    last = m.version
    print('version ' .. m.version)
  end
end
`

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('run')
  src = await sb.mkdir('src')
  await writeTree(src, {
    'main.lua': `local util = require 'lib.util'
print(util.greet(...), arg[0], #arg, arg[-1])
local h = load_asset('data/blob.bin')
print(h.size)
os.exit(tonumber(arg[2]) or 0)`,
    'lib/util.lua': "return { greet = function(who) return 'hello ' .. tostring(who) end }",
    'data/blob.bin': Buffer.alloc(70_000, 7),
    'boom.lua': 'local function f()\n  error("boom")\nend\nf()',
    'game.lua': GAME,
    'm.lua': "return { version = 'v1' }",
  })
  server = await sb.serve(src)
}, 60_000)

afterAll(async () => {
  await server?.stop()
  await sb?.cleanup()
})

const client = (s: ServerHandle = server): string[] => ['--server', s.addr, '--key', s.key]

describe('assetsync run', () => {
  it('runs a script from the server: --json events, arg from the words after --, the script output on stderr, os.exit', async () => {
    const out = sb.path('out')
    const r = await sb.run(['run', 'main.lua', ...client(), '--out', out, '--json', '--', 'world', '3'])
    expect(r.code).toBe(3)
    const events = parseEvents(r.stdout)
    expect(events.map((e) => `${e.event} ${e.path} ${e.action}`)).toEqual([
      'required main.lua downloaded', 'required lib/util.lua downloaded',
    ])
    for (const e of events) expect(typeof e.ms).toBe('number')
    expect(lines(r.stderr)).toEqual(['hello world\tmain.lua\t2\tassetsync', '70000'])
    expect((await readFile(join(out, 'data', 'blob.bin'))).length).toBe(70_000)

    // Again: up to date; without --json the script's output is stdout.
    const again = await sb.run(['run', 'main.lua', ...client(), '--out', out, '--', 'again'])
    expect(again.code).toBe(0)
    expect(again.stdout.toString()).toBe('hello again\tmain.lua\t1\tassetsync\n70000\n')
    expect(again.stderr).toBe('')
    const json = await sb.run(['run', 'main.lua', ...client(), '--out', out, '--json'])
    expect(parseEvents(json.stdout).map((e) => e.action)).toEqual(['up-to-date', 'up-to-date'])
  })

  it('a script error prints its traceback, then the one-line error; exit 7', async () => {
    const r = await sb.run(['run', 'boom.lua', ...client(), '--out', sb.path('out')])
    expect(r.code).toBe(7)
    const err = lines(r.stderr)
    expect(err[0]).toBe('stack traceback:')
    expect(err.some((l) => /boom\.lua:2: in (local|upvalue) 'f'/.test(l))).toBe(true)
    expect(err.at(-1)).toBe('assetsync: script error: boom.lua:2: boom')
  })

  it('exits with the usual codes: a missing script 5, a wrong token 4, a bad flag 2, no server 3', async () => {
    const missing = await sb.run(['run', 'nope.lua', ...client(), '--out', sb.path('out')])
    expect([missing.code, lines(missing.stderr)]).toEqual([5, [expect.stringMatching(/^assetsync: not found on .*: nope\.lua$/)]])
    const secured = await sb.serve(src, ['--token', 'sesame'])
    try {
      const denied = await sb.run(['run', 'main.lua', ...client(secured), '--token', 'wrong', '--out', sb.path('out')])
      expect([denied.code, lines(denied.stderr)]).toEqual([4, ['assetsync: access token rejected by the server']])
    } finally {
      await secured.stop()
    }
    const usage = await sb.run(['run', 'main.lua', ...client(), '--tick', '0'])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/--tick/)
    const port = await closedPort('udp')
    const down = await sb.run(['run', 'main.lua', '--server', `127.0.0.1:${port}`, '--out', sb.path('out'), '--timeout', '1'])
    expect(down.code).toBe(3)
    expect(lines(down.stderr).at(-1)).toMatch(/^assetsync: /)
  })

  it('without the server, a script already in --out runs from the local copy, with a warning', async () => {
    const out = sb.path('out')
    const first = await sb.run(['run', 'main.lua', ...client(), '--out', out, '--', 'x'])
    expect(first.code).toBe(0)
    const port = await closedPort('udp')
    const r = await sb.run(['run', 'main.lua', '--server', `127.0.0.1:${port}`, '--key', server.key, '--out', out, '--timeout', '1', '--json', '--', 'offline'])
    expect(r.code).toBe(0)
    const events = parseEvents(r.stdout)
    expect(events.filter((e) => e.event === 'required').map((e) => e.action)).toEqual(['local', 'local'])
    expect(events.filter((e) => e.event === 'warning').map((e) => e.path)).toEqual(['main.lua', 'lib/util.lua', 'data/blob.bin'])
    expect(r.stderr).toMatch(/hello offline/)
  })

  it('hot reloads a saved module, keeps the old one on a broken save, and stops cleanly on Ctrl-C', async () => {
    const dir = await sb.mkdir('live')
    await writeTree(dir, { 'game.lua': GAME, 'm.lua': "return { version = 'v1' }" })
    const live = await sb.serve(dir)
    let run: SpawnedCli | null = null
    try {
      run = sb.spawn(['run', 'game.lua', ...client(live), '--out', sb.path('out'), '--json', '--tick', '100'])
      const cli = run
      const events = (): ReturnType<typeof completeEvents> => completeEvents(cli.stdoutSoFar())
      await waitFor(() => cli.stderrSoFar().includes('version v1'), 20_000, 'the game to start')
      await writeFile(join(dir, 'm.lua'), "return { version = 'v2' }")
      await waitFor(() => cli.stderrSoFar().includes('version v2'), 20_000, 'version v2 to run')
      expect(events().filter((e) => e.event === 'reloaded')).toEqual([{ event: 'reloaded', paths: ['m.lua'], ms: expect.any(Number) }])

      await writeFile(join(dir, 'm.lua'), "return { version = 'v3' ")
      await waitFor(() => events().some((e) => e.event === 'reload-error'), 20_000, 'a reload-error event')
      expect(events().find((e) => e.event === 'reload-error')).toMatchObject({ path: 'm.lua', message: expect.stringMatching(/^m\.lua:1: /) })
      await writeFile(join(dir, 'm.lua'), "return { version = 'v4' }")
      await waitFor(() => cli.stderrSoFar().includes('version v4'), 20_000, 'version v4 to run')
      expect(cli.stderrSoFar()).not.toMatch(/version v3/)
      // Every reload and reload error was reported to the server (feature `report`), which prints it.
      await waitFor(() => live.events().filter((e) => e.event === 'reload').length === 3, 10_000, 'three reload reports on the server')
      expect(live.events().filter((e) => e.event === 'reload').map((e) => [e.ok, e.paths, e.error === null ? null : String(e.error).slice(0, 7)])).toEqual([
        [true, ['m.lua'], null], [false, ['m.lua'], 'm.lua:1'], [true, ['m.lua'], null],
      ])

      cli.proc.kill('SIGINT')
      const r = await cli.result
      expect(r.code).toBe(0)
      // The server saw the subscription go (the clean stop releases it) and the client leave.
      await waitFor(() => live.events().some((e) => e.event === 'client' && e.action === 'disconnected'), 10_000, 'the disconnect on the server')
    } finally {
      await live.stop()
    }
  })

  it('runs against a protocol-2 server (the vendored release): no priority, same results', async () => {
    const old = await sb.serve(src, [], { bin: OLD_CLI })
    try {
      const r = await sb.run(['run', 'main.lua', ...client(old), '--out', sb.path('out'), '--json', '--', 'v2'])
      expect(r.code).toBe(0)
      expect(parseEvents(r.stdout).map((e) => `${e.path} ${e.action}`)).toEqual(['main.lua downloaded', 'lib/util.lua downloaded'])
      expect(lines(r.stderr)).toEqual(['hello v2\tmain.lua\t1\tassetsync', '70000'])
    } finally {
      await old.stop()
    }
  })
})
