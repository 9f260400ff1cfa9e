/**
 * Hot reload: a pushed change re-runs the module, keeps its table identity, re-runs the modules
 * that depend on it in dependency order; a broken save keeps the old version and is reported; the
 * next good save reloads. Assets subscribed with reload = true update their handle in place.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/protocol/clock.js'
import type { RuntimeEvent } from '../../src/runtime/host.js'
import { waitFor } from '../helpers/common.js'
import { type Running, type Sandbox, sandbox, start } from '../helpers/lua.js'

let sb: Sandbox
beforeEach(async () => { sb = await sandbox() })
afterEach(async () => { await sb.cleanup() })

const ofType = <K extends RuntimeEvent['event']>(events: RuntimeEvent[], k: K): Extract<RuntimeEvent, { event: K }>[] =>
  events.filter((e): e is Extract<RuntimeEvent, { event: K }> => e.event === k)

/** A script that stays alive (update loop on a manual clock); each tick prints one probe line. */
const MAIN = `
local m = require('m', { reload = true })
local user = require 'user'
local holder = m
local instance = setmetatable({}, m.Class)
function update()
  print(table.concat({ holder.version(), tostring(holder == package.loaded.m), instance:kind(),
    user.describe(), tostring(holder.counter()), tostring(user == package.loaded.user), USER_LOADS }, ' '))
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
local helper = require 'helper'
USER_LOADS = (USER_LOADS or 0) + 1
return { describe = function() return 'user(' .. m.version() .. helper .. ')' end }`

/** Advances the manual clock by one tick and waits for the probe line it prints. */
async function tick(run: Running, clock: ManualClock): Promise<string> {
  const before = run.host.updates
  clock.advance(100)
  await waitFor(() => run.host.updates > before && run.stdout.text.split('\n').length - 1 >= run.host.updates, 5000, 'an update tick')
  const lines = run.stdout.text.trim().split('\n')
  return lines[lines.length - 1] as string
}

async function startGame(provider = sb.provider()): Promise<{ run: Running; clock: ManualClock; provider: ReturnType<Sandbox['provider']> }> {
  const clock = new ManualClock()
  const run = start(sb, provider, 'main.lua', { clock, tick: 10 })
  await waitFor(() => run.host.graph.size === 3 && run.host.looping, 5000, 'modules loaded, loop running')
  return { run, clock, provider }
}

describe('hot reload', () => {
  it('keeps table identity, runs __reload(old), reloads the dependents in dependency order', async () => {
    await sb.serve({ 'main.lua': MAIN, 'm.lua': M1, 'user.lua': USER, 'helper.lua': 'return "+h"' })
    const { run, clock, provider } = await startGame()
    expect(await tick(run, clock)).toBe('v1 true kind1 user(v1+h) 1 true 1')
    expect(await tick(run, clock)).toBe('v1 true kind1 user(v1+h) 2 true 1')

    await sb.serve({ 'm.lua': M2 })
    await provider.publish('m.lua')
    await waitFor(() => ofType(run.events, 'reloaded').length === 1, 5000, 'reloaded event')
    expect(ofType(run.events, 'reloaded')[0]?.paths).toEqual(['m.lua', 'user.lua'])
    // Same tables everywhere, new functions (also through the class metatable of an old
    // instance), state carried by __reload (2 + 100), and the new functions' own M is the old table.
    expect(await tick(run, clock)).toBe('v2 true kind2 user(v2+h) 103 true 2')
    expect(await tick(run, clock)).toBe('v2 true kind2 user(v2+h) 104 true 2')
    expect(ofType(run.events, 'reload-error')).toEqual([])
    run.host.stop()
    expect((await run.result).error).toBeNull()
  })

  it('a syntax error keeps the old version and is reported with file:line; a later good save reloads', async () => {
    await sb.serve({ 'main.lua': MAIN, 'm.lua': M1, 'user.lua': USER, 'helper.lua': 'return "+h"' })
    const { run, clock, provider } = await startGame()
    expect(await tick(run, clock)).toBe('v1 true kind1 user(v1+h) 1 true 1')

    await sb.serve({ 'm.lua': M2.replace("return 'v2'", "return 'v2' +") })
    await provider.publish('m.lua')
    await waitFor(() => ofType(run.events, 'reload-error').length === 1, 5000, 'reload-error event')
    const err = ofType(run.events, 'reload-error')[0]
    expect(err?.path).toBe('m.lua')
    expect(err?.message).toMatch(/^m\.lua:5: unexpected symbol near 'end'/)
    expect(ofType(run.events, 'reloaded')).toEqual([]) // the dependents were left alone too
    expect(await tick(run, clock)).toBe('v1 true kind1 user(v1+h) 2 true 1')

    await sb.serve({ 'm.lua': M2 })
    await provider.publish('m.lua')
    await waitFor(() => ofType(run.events, 'reloaded').length === 1, 5000, 'reloaded event')
    expect(await tick(run, clock)).toBe('v2 true kind2 user(v2+h) 103 true 2')
    run.host.stop()
    await run.result
  })

  it('a runtime error in the new version keeps the old one and undoes its globals', async () => {
    await sb.serve({ 'main.lua': MAIN, 'm.lua': M1, 'user.lua': USER, 'helper.lua': 'return "+h"' })
    const { run, clock, provider } = await startGame()
    expect(await tick(run, clock)).toBe('v1 true kind1 user(v1+h) 1 true 1')
    await sb.serve({ 'm.lua': `LEAKED = true\nUSER_LOADS = 99\nerror("half way")\n${M2}` })
    await provider.publish('m.lua')
    await waitFor(() => ofType(run.events, 'reload-error').length === 1, 5000, 'reload-error event')
    expect(ofType(run.events, 'reload-error')[0]?.message).toBe('m.lua:3: half way')
    expect(await tick(run, clock)).toBe('v1 true kind1 user(v1+h) 2 true 1')
    run.host.stop()
    await run.result
  })

  it('a module required without reload = true is not reloaded by its own change', async () => {
    await sb.serve({ 'main.lua': MAIN, 'm.lua': M1, 'user.lua': USER, 'helper.lua': 'return "+h"' })
    const { run, provider } = await startGame()
    expect(provider.subscribers('helper.lua')).toEqual([])
    expect(await provider.publish('helper.lua')).toBeNull() // nobody subscribed: nothing pushed
    expect(provider.subscribers('m.lua')).toHaveLength(1)
    run.host.stop()
    await run.result
    expect(provider.subscribers('m.lua')).toEqual([]) // released when the run ended
  })
})

describe('assets with reload = true', () => {
  it('update their handle in place and call handle.on_change(handle)', async () => {
    await sb.serve({
      'main.lua': `local h = load_asset('data/level.txt', { reload = true })
print(h.id, h.path, h.size, #h.hash)
h.on_change = function(self)
  print('changed', self == h, self.size, io.open(self.path):read('a'))
  os.exit(4)
end
function update() end`,
      'data/level.txt': 'one',
    })
    const provider = sb.provider()
    const run = start(sb, provider, 'main.lua', { clock: new ManualClock() })
    await waitFor(() => run.host.looping, 5000, 'the loop to start')
    expect(run.stdout.text).toMatch(/^data\/level\.txt\tdata\/level\.txt\t3\t64\n$/)
    await sb.serve({ 'data/level.txt': 'three' })
    await provider.publish('data/level.txt')
    const r = await run.result
    expect(r.code).toBe(4)
    expect(r.stdout.split('\n')[1]).toBe('changed\ttrue\t5\tthree')
  })
})
