/**
 * The Lua host over NetworkAssets and a real AssetServer (127.0.0.1, port 0, real UDP, real
 * files): nested requires, a second run that moves no bytes, require_async order, load_asset of a
 * binary, hostile names, hot reload pushed by the server (identity kept, dependents reloaded, a
 * broken save kept out), and a server restart in the middle of a running game.
 */
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { hashBytes } from '../../src/core/fs/hash.js'
import { ManualClock } from '../../src/protocol/clock.js'
import { waitFor } from '../helpers/common.js'
import { type NetRun, type NetSandbox, netSandbox, ofType, runNet, startNet } from '../helpers/lua-net.js'

let sb: NetSandbox
beforeEach(async () => { sb = await netSandbox() })
afterEach(async () => { await sb.cleanup() })

const reads = (sbLog: { events: { kind: string }[] }): number => sbLog.events.filter((e) => e.kind === 'read').length

describe('require over the network', () => {
  it('nested blocking requires each download once; a second run is up to date, reads no file bytes', async () => {
    await sb.serve({
      'main.lua': `local a = require 'game.a'
print(a.name, a.b.name, a.b.c.name, require('game').init)`,
      'game/init.lua': 'return { init = "yes" }',
      'game/a.lua': 'local b = require "game.b"; return { name = "a", b = b }',
      'game/b.lua': 'local c = require "game.deep.c"; return { name = "b", c = c }',
      'game/deep/c.lua': 'return { name = "c" }',
    })
    const srv = await sb.start()
    const r = await runNet(sb, await sb.open(srv), 'main.lua')
    expect(r.error).toBeNull()
    expect(r.stdout).toBe('a\tb\tc\tyes\n')
    expect(ofType(r.events, 'required').map((e) => `${e.path}:${e.action}`)).toEqual([
      'main.lua:downloaded', 'game/a.lua:downloaded', 'game/b.lua:downloaded', 'game/deep/c.lua:downloaded', 'game/init.lua:downloaded',
    ])
    expect(await readFile(join(sb.out, 'game', 'deep', 'c.lua'), 'utf8')).toBe('return { name = "c" }')
    for (const p of ['main.lua', 'game/a.lua', 'game/b.lua', 'game/deep/c.lua', 'game/init.lua']) expect(srv.log.opened.get(p), p).toBe(1)

    // A new NetworkAssets (another run of the program): every file checked by hash, none sent.
    const readsBefore = reads(srv.log)
    const again = await runNet(sb, await sb.open(srv), 'main.lua')
    expect(again.stdout).toBe('a\tb\tc\tyes\n')
    expect(ofType(again.events, 'required').every((e) => e.action === 'up-to-date')).toBe(true)
    expect(ofType(again.events, 'required')).toHaveLength(5)
    expect(reads(srv.log)).toBe(readsBefore)
    expect(srv.log.opened.get('game/a.lua')).toBe(2)
  })

  it('require_async calls back after it returns, in completion order; a module asked twice is one request', async () => {
    await sb.serve({
      'main.lua': `require_async('big', function(m) print('big', #m) end)
require_async('small', function(m, file) print('small', m, file) end)
require_async('small', function(m) print('small again', m) end)
require_async('nope', function(m, err) print('nope', m, (err:match("^module 'nope' not found"))) end)
print('main done')`,
      // 3 MiB: twelve round-robin turns, so the small module's one turn comes first.
      'big.lua': `return "${'x'.repeat(3 * 1024 * 1024)}"`,
      'small.lua': 'return "s"',
    })
    const srv = await sb.start()
    const r = await runNet(sb, await sb.open(srv), 'main.lua')
    expect(r.error).toBeNull()
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toBe('main done')
    expect(lines.slice(1).sort()).toEqual(['big\t3145728', "nope\tnil\tmodule 'nope' not found", 'small\ts\tsmall.lua', 'small again\ts'])
    expect(lines.indexOf('small\ts\tsmall.lua')).toBeLessThan(lines.indexOf('small again\ts'))
    expect(lines.indexOf('small again\ts')).toBeLessThan(lines.indexOf('big\t3145728'))
    expect(srv.log.opened.get('small.lua')).toBe(1)
  })

  it('load_asset of a binary: the handle names the verified local copy, byte for byte', async () => {
    const bin = randomBytes(300_000)
    await sb.serve({
      'main.lua': `local h = load_asset('tex/a.bin')
local f = assert(io.open(h.path, 'rb'))
local data = f:read('a'); f:close()
print(h.id, h.path, h.size, #data, h.hash)`,
      'tex/a.bin': bin,
    })
    const srv = await sb.start()
    const r = await runNet(sb, await sb.open(srv), 'main.lua')
    expect(r.error).toBeNull()
    expect(r.stdout).toBe(`tex/a.bin\ttex/a.bin\t300000\t300000\t${hashBytes(bin).toString('hex')}\n`)
    expect((await readFile(join(sb.out, 'tex', 'a.bin'))).equals(bin)).toBe(true)
  })

  it('refuses hostile module names and paths before anything reaches the server', async () => {
    await sb.serve({
      'main.lua': `for _, n in ipairs({ '../x', '/etc/passwd', 'a\\0b', 'x/../../y' }) do
  local ok, err = pcall(require, n)
  print(ok, err)
end
print(pcall(load_asset, '../secret.txt'))`,
    })
    const srv = await sb.start()
    const assets = await sb.open(srv)
    const r = await runNet(sb, assets, 'main.lua')
    expect(r.error).toBeNull()
    const lines = r.stdout.trim().split('\n')
    expect(lines).toHaveLength(5)
    for (const l of lines) expect(l).toMatch(/^false\t.*refused/)
    for (const p of ['../x', '/etc/passwd', 'a\0b', '../secret.txt', 'C:/x', 'a//b']) {
      await expect(assets.fetch(p), p).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
      await expect(assets.read(p), p).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
    }
    expect([...srv.log.opened.keys()]).toEqual(['main.lua'])
  })
})

/** A game that stays alive on a manual clock; each tick prints one probe line. */
const MAIN = `
local m = require('m', { reload = true })
local user = require 'user'
local holder = m
local instance = setmetatable({}, m.Class)
function update()
  print(table.concat({ holder.version(), tostring(holder == package.loaded.m), instance:kind(),
    user.describe(), tostring(holder.counter()), USER_LOADS }, ' '))
end
`
const M1 = `local M = { n = 0 }
M.Class = {}
M.Class.__index = M.Class
function M.Class:kind() return 'kind1' end
function M.version() return 'v1' end
function M.counter() M.n = M.n + 1; return M.n end
function M.__reload(old) M.n = old.n + 100 end
return M`
const M2 = M1.replace("'kind1'", "'kind2'").replace("'v1'", "'v2'")
const USER = `local m = require 'm'
USER_LOADS = (USER_LOADS or 0) + 1
return { describe = function() return 'user(' .. m.version() .. ')' end }`

async function tick(run: NetRun, clock: ManualClock): Promise<string> {
  const before = run.host.updates
  clock.advance(100)
  await waitFor(() => run.host.updates > before && run.stdout.text.split('\n').length - 1 >= run.host.updates, 10_000, 'an update tick')
  const lines = run.stdout.text.trim().split('\n')
  return lines[lines.length - 1] as string
}

/** Saves `content` as `path` in the served folder (the server's watcher pushes the change). */
const save = (path: string, content: string): Promise<void> => writeFile(join(sb.server, path), content)

describe('hot reload pushed by the server', () => {
  it('keeps table identity, reloads the dependents; a syntax error keeps the old version; a later save reloads', async () => {
    await sb.serve({ 'main.lua': MAIN, 'm.lua': M1, 'user.lua': USER })
    const srv = await sb.start()
    const assets = await sb.open(srv)
    const clock = new ManualClock()
    const run = startNet(sb, assets, 'main.lua', { clock, tick: 10 })
    await waitFor(() => run.host.graph.size === 2 && run.host.looping, 10_000, 'modules loaded, loop running')
    expect(await tick(run, clock)).toBe('v1 true kind1 user(v1) 1 1')

    await save('m.lua', M2)
    await waitFor(() => ofType(run.events, 'reloaded').length === 1, 10_000, 'reloaded event')
    expect(ofType(run.events, 'reloaded')[0]?.paths).toEqual(['m.lua', 'user.lua'])
    expect(await readFile(join(sb.out, 'm.lua'), 'utf8')).toBe(M2)
    expect(await tick(run, clock)).toBe('v2 true kind2 user(v2) 102 2')

    await save('m.lua', M2.replace("return 'v2'", "return 'v3' +"))
    await waitFor(() => ofType(run.events, 'reload-error').length === 1, 10_000, 'reload-error event')
    expect(ofType(run.events, 'reload-error')[0]).toMatchObject({ path: 'm.lua', message: expect.stringMatching(/^m\.lua:5: unexpected symbol near 'end'/) })
    expect(await tick(run, clock)).toBe('v2 true kind2 user(v2) 103 2')

    await save('m.lua', M2.replace("'v2'", "'v4'"))
    await waitFor(() => ofType(run.events, 'reloaded').length === 2, 10_000, 'second reloaded event')
    expect(await tick(run, clock)).toBe('v4 true kind2 user(v4) 204 3')
    run.host.stop()
    expect((await run.result).error).toBeNull()
    // The run released its subscriptions.
    await waitFor(() => assets.subscriptions().length === 0, 5000, 'subscriptions released')
  })

  it('the server restarts mid-run: the game keeps running, reconnects, and reloads what changed meanwhile', async () => {
    await sb.serve({ 'main.lua': MAIN, 'm.lua': M1, 'user.lua': USER })
    const srv = await sb.start()
    const assets = await sb.open(srv, { random: () => 0 }) // reconnect at once: the test waits on the server
    const clock = new ManualClock()
    const run = startNet(sb, assets, 'main.lua', { clock, tick: 10 })
    await waitFor(() => run.host.graph.size === 2 && run.host.looping, 10_000, 'modules loaded, loop running')
    expect(await tick(run, clock)).toBe('v1 true kind1 user(v1) 1 1')

    const lost = new Promise((resolve) => assets.once('disconnected', resolve))
    await srv.close()
    await lost
    expect(await tick(run, clock)).toBe('v1 true kind1 user(v1) 2 1') // the game goes on offline
    await save('m.lua', M2) // saved while the server is down
    const back = new Promise((resolve) => assets.once('connected', resolve))
    await sb.start({ port: srv.port })
    await back
    await waitFor(() => ofType(run.events, 'reloaded').length === 1, 15_000, 'reloaded after the reconnect')
    expect(await tick(run, clock)).toBe('v2 true kind2 user(v2) 103 2')
    run.host.stop()
    expect((await run.result).error).toBeNull()
  })
})
