/**
 * require / require_async over a folder-backed provider: nested blocking requires, stock
 * messages, package.path edits, callback order, hostile names, the recursion regression, and
 * waits from inside the script's own coroutines.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createLuaEngine, LuaBridge } from '../../src/runtime/lua-bridge.js'
import { LuaFiles } from '../../src/runtime/lua-fs.js'
import { installPrelude, type HostPort } from '../../src/runtime/prelude.js'
import { ScriptError } from '../../src/runtime/host.js'
import { Capture, runLua, sandbox, type Sandbox } from '../helpers/lua.js'

let sb: Sandbox
beforeEach(async () => { sb = await sandbox() })
afterEach(async () => { await sb.cleanup() })

describe('require', () => {
  it('nested blocking requires resolve through package.path, each module downloaded once', async () => {
    await sb.serve({
      'main.lua': `local a = require 'game.a'
print(a.name, a.b.name, a.b.c.name, select(2, require 'game.a') == nil)
print(require 'game.b' == a.b, require('game') .init)`,
      'game/init.lua': 'return { init = "yes" }',
      'game/a.lua': 'local b = require "game.b"; return { name = "a", b = b }',
      'game/b.lua': 'local c = require "game.deep.c"; return { name = "b", c = c }',
      'game/deep/c.lua': 'return { name = "c", from = ... }',
    })
    const provider = sb.provider()
    const r = await runLua(sb, 'main.lua', { provider })
    expect(r.error).toBeNull()
    expect(r.stdout).toBe('a\tb\tc\ttrue\ntrue\tyes\n')
    const req = r.events.flatMap((e) => (e.event === 'required' ? [`${e.path}:${e.action}`] : []))
    expect(req).toEqual(['main.lua:downloaded', 'game/a.lua:downloaded', 'game/b.lua:downloaded',
      'game/deep/c.lua:downloaded', 'game/init.lua:downloaded'])
    expect(await readFile(join(sb.out, 'game', 'deep', 'c.lua'), 'utf8')).toBe('return { name = "c", from = ... }')
  })

  it('passes the name and the file to the loader and returns both, as stock 5.4', async () => {
    await sb.serve({
      'main.lua': `local m, file = require 'm'; print(m.name, m.file, file)
local w, wfile = require 'lib/w.lua'; print(w, wfile)`,
      'm.lua': 'local name, file = ...; return { name = name, file = file }',
      'lib/w.lua': 'return "wire"',
    })
    const r = await runLua(sb, 'main.lua')
    expect(r.stdout).toBe('m\tm.lua\tm.lua\nwire\tlib/w.lua\n')
  })

  it('a module found nowhere raises stock Lua\'s message, listing what was tried', async () => {
    await sb.serve({
      'main.lua': `package.path = package.path .. ";lib/?.lua;./vendor/?/x.lua"
print(select(2, pcall(require, "no.such")))
print(select(2, pcall(require, "gone/x.lua")))`,
    })
    const r = await runLua(sb, 'main.lua')
    expect(r.stdout).toBe([
      "module 'no.such' not found:",
      "\tno field package.preload['no.such']",
      "\tno file 'no/such.lua'",
      "\tno file 'no/such/init.lua'",
      "\tno file 'lib/no/such.lua'",
      "\tno file './vendor/no/such/x.lua'",
      "module 'gone/x.lua' not found:",
      "\tno field package.preload['gone/x.lua']",
      "\tno file 'gone/x.lua'",
      '',
    ].join('\n'))
  })

  it('follows package.path as the script edits it, and package.preload', async () => {
    await sb.serve({
      'main.lua': `package.path = "vendor/?.lua;" .. package.path
package.preload.pre = function(name, extra) return { name = name, extra = extra } end
local v = require 'util'
local p, extra = require 'pre'
print(v, p.name, p.extra, extra)`,
      'vendor/util.lua': 'return "vendored"',
      'util.lua': 'return "top"',
    })
    const r = await runLua(sb, 'main.lua', { luaPath: '?.lua' })
    expect(r.stdout).toBe('vendored\tpre\t:preload:\t:preload:\n')
  })

  it('network = false answers from the local folder only', async () => {
    await sb.serve({ 'main.lua': `print(pcall(require, 'm', { network = false }))` , 'm.lua': 'return 1' })
    const r1 = await runLua(sb, 'main.lua')
    expect(r1.stdout).toMatch(/^false\tmodule 'm' not found:/) // called by pcall: no position, as stock
    await sb.serve({ 'main.lua': `require 'm'; package.loaded.m = nil; print(require('m', { network = false }))` })
    const r2 = await runLua(sb, 'main.lua')
    expect(r2.stdout).toBe('1\tm.lua\n')
    expect(r2.events.filter((e) => e.event === 'required').map((e) => e.event === 'required' && e.action)).toEqual(['downloaded', 'downloaded', 'local'])
  })

  it('refuses hostile module names (../x, /etc/x, NUL, non-UTF-8) without asking the provider', async () => {
    await sb.serve({
      'main.lua': `for _, n in ipairs({ "../x", "/etc/x", "../x.lua", "/etc/passwd.lua", "a\\0b", "a\\0b.lua", "ok\\255", "a\\\\b.lua" }) do
  local ok, err = pcall(require, n)
  print(ok, err)
end
print(pcall(load_asset, "../secret"))`,
    })
    const provider = sb.provider()
    const r = await runLua(sb, 'main.lua', { provider })
    expect(r.error).toBeNull()
    expect(r.stdout.split('\n').slice(0, -1)).toEqual([
      'false\tmodule \'../x\' refused: ".." in module name',
      "false\tmodule '/etc/x' refused: absolute path",
      'false\tmodule \'../x.lua\' refused: ".." segment in path',
      "false\tmodule '/etc/passwd.lua' refused: absolute path",
      "false\tmodule 'a\\x00b' refused: control character or NUL in path",
      "false\tmodule 'a\\x00b.lua' refused: control character or NUL in path",
      "false\tmodule 'ok\u00ff' refused: not valid UTF-8".replace('\u00ff', '\ufffd'),
      "false\tmodule 'a\\b.lua' refused: backslash in path",
      'false\tasset \'../secret\' refused: ".." segment in path',
    ])
    expect(r.events.filter((e) => e.event === 'required')).toHaveLength(1) // main.lua only
  })

  it('a circular require is an error, not a hang or a stack overflow', async () => {
    await sb.serve({ 'main.lua': 'print(pcall(require, "a"))', 'a.lua': 'require "b"; return 1', 'b.lua': 'require "a"; return 2' })
    const r = await runLua(sb, 'main.lua')
    expect(r.stdout).toBe("false\tb.lua:1: loop or previous error loading module 'a'\n")
  })

  it('waits from inside the script\'s own coroutines (resume and wrap pass the wait up)', async () => {
    await sb.serve({
      'main.lua': `local co = coroutine.create(function(x)
  local m = require 'm1'
  local y = coroutine.yield(x + m)
  local w = coroutine.wrap(function() coroutine.yield(require('m2') * 10); return 'end' end)
  return y, w(), w()
end)
print(coroutine.resume(co, 1))
print(coroutine.resume(co, 'y'))
print(coroutine.status(co), coroutine.isyieldable(), select(2, coroutine.running()))
print(pcall(coroutine.yield, 1))`,
      'm1.lua': 'return 41', 'm2.lua': 'return 7',
    })
    const r = await runLua(sb, 'main.lua')
    expect(r.error).toBeNull()
    expect(r.stdout).toBe('true\t42\ntrue\ty\t70\tend\ndead\tfalse\ttrue\nfalse\tattempt to yield from outside a coroutine\n')
  })

  it('a require that cannot wait (inside a C function) fails clearly and loads nothing half-way', async () => {
    await sb.serve({ 'main.lua': 'local t = {2, 1}\nprint(pcall(table.sort, t, function(a, b) require "m"; return a < b end))', 'm.lua': 'return 1' })
    const r = await runLua(sb, 'main.lua')
    expect(r.stdout).toMatch(/^false\tmain\.lua:2: require 'm': cannot wait for the network here/)
    expect(r.events.filter((e) => e.event === 'required')).toHaveLength(1) // nothing fetched for it
  })

  it('a require inside a metamethod waits (Penlight-style lazy globals)', async () => {
    await sb.serve({
      'main.lua': 'setmetatable(_G, { __index = function(_, k) return require("lazy." .. k) end })\nprint(alpha.v + beta.v)',
      'lazy/alpha.lua': 'return { v = 1 }', 'lazy/beta.lua': 'return { v = 2 }',
    })
    const r = await runLua(sb, 'main.lua')
    expect(r.stdout).toBe('3\n')
  })
})

describe('require_async', () => {
  it('calls back after require_async returns, in completion order, with (nil, err) on failure', async () => {
    await sb.serve({
      'main.lua': `require_async('slow', function(m) print('slow=' .. m) end)
require_async('fast', function(m, file) print('fast=' .. m .. ' ' .. file) end)
require_async('missing', function(m, err) print(tostring(m), (err:match("^module 'missing' not found:"))) end)
require_async('fast', function(m) print('fast again=' .. m) end)
require_async('fast', 'not a function')`,
      'slow.lua': 'return "s"', 'fast.lua': 'return "f"',
    })
    const r0 = await runLua(sb, 'main.lua')
    expect((r0.error as ScriptError).luaMessage).toBe("main.lua:5: bad argument #2 to 'require_async' (function expected, got string)")
    await sb.serve({ 'main.lua': (await readFile(join(sb.server, 'main.lua'), 'utf8')).replace(/\nrequire_async\('fast', 'not a function'\)/, "\nprint('main done')") })
    // The slow module's transfer is held until the fast one has been delivered.
    let releaseSlow!: () => void
    const slowHeld = new Promise<void>((res) => { releaseSlow = res })
    const provider = sb.provider({
      beforeTransfer: async (p) => {
        if (p === 'slow.lua') await slowHeld
        if (p === 'fast.lua') setTimeout(releaseSlow, 50)
      },
    })
    const r = await runLua(sb, 'main.lua', { provider })
    expect(r.error).toBeNull()
    const lines = r.stdout.split('\n').slice(0, -1)
    expect(lines[0]).toBe('main done')
    expect(lines.slice(1).sort()).toEqual(['fast again=f', 'fast=f fast.lua', "nil\tmodule 'missing' not found:", 'slow=s'])
    expect(lines.indexOf('fast=f fast.lua')).toBeLessThan(lines.indexOf('fast again=f'))
    expect(lines.indexOf('fast again=f')).toBeLessThan(lines.indexOf('slow=s'))
    expect(r.events.filter((e) => e.event === 'required' && e.path === 'fast.lua')).toHaveLength(1)
  })

  it('a blocking require is served before queued background fetches', async () => {
    const files: Record<string, string> = { 'tiny.txt': 't' }
    let script = ''
    for (let i = 0; i < 20; i++) {
      files[`bulk/a${i}.lua`] = `return ${i}`
      script += `load_asset_async('bulk/a${i}.lua', function() end)\n`
    }
    files['urgent.lua'] = 'return "urgent"'
    // The blocking load_asset lets the 20 background tasks queue their fetches first.
    files['main.lua'] = `${script}load_asset('tiny.txt')\nprint((require 'urgent'))`
    await sb.serve(files)
    const order: string[] = []
    const provider = sb.provider({ parallel: 2, beforeTransfer: async (p) => { order.push(p); await new Promise((res) => setTimeout(res, 5)) } })
    const r = await runLua(sb, 'main.lua', { provider })
    expect(r.error).toBeNull()
    expect(r.stdout).toBe('urgent\n')
    expect(order).toHaveLength(23)
    // Only background transfers that already held a slot go before it; the rest wait.
    const urgent = order.indexOf('urgent.lua')
    expect(order.slice(urgent + 1).filter((p) => p.startsWith('bulk/')).length).toBeGreaterThanOrEqual(15)
  })
})

describe('the prelude', () => {
  it('installed twice, require still works: the wrapper never wraps itself (seed regression)', async () => {
    const out = new Capture()
    const bridge = new LuaBridge(await createLuaEngine())
    const files = new LuaFiles(sb.out, { stdout: out, stderr: out })
    const port: HostPort = {
      fetch: () => { throw new Error('no network here') }, spawned: () => {}, wake: () => {}, taskError: () => {},
      exit: () => {}, module: () => {}, edge: () => {}, reloadDone: () => {},
    }
    installPrelude(bridge, files, port, {})
    const first = bridge.engine.global.get('require')
    installPrelude(bridge, files, port, {})
    // preload goes through the stock require kept in __stock_require: with a self-wrapped
    // wrapper this recursed until the C stack overflowed.
    bridge.run(`package.preload.x = function() return 'x!' end
assert(require ~= __stock_require)
assert(require('x') == 'x!')
assert(require('string') == string)
local n = 0
for i = 1, 200 do package.loaded.x = nil; n = n + #require('x') end
print(n)`, '=test')
    expect(out.text).toBe('400\n')
    expect(typeof first).toBe('function')
    bridge.close()
  })
})

describe('script errors and exits', () => {
  it('an uncaught error is a ScriptError (exit 7) with file:line and a traceback', async () => {
    await sb.serve({ 'main.lua': 'local m = require "bad"\nm.go()', 'bad.lua': 'local M = {}\nfunction M.go()\n  error("boom")\nend\nreturn M' })
    const r = await runLua(sb, 'main.lua')
    expect(r.error).toBeInstanceOf(ScriptError)
    const e = r.error as ScriptError
    expect(e.code).toBe('ERR_SCRIPT')
    expect(e.luaMessage).toBe('bad.lua:3: boom')
    expect(e.traceback).toMatch(/^stack traceback:\n/)
    expect(e.traceback).toContain("bad.lua:3: in function 'bad.go'")
    expect(e.traceback).toContain('main.lua:2: in main chunk')
    expect(e.traceback).not.toContain('[assetsync]')
  })

  it('a syntax error in the main script is a script error', async () => {
    await sb.serve({ 'main.lua': 'print(1' })
    const r = await runLua(sb, 'main.lua')
    expect((r.error as ScriptError).luaMessage).toMatch(/^main\.lua:1: '\)' expected near <eof>/)
  })

  it('os.exit(n) ends the run with n, from the main chunk or deep inside coroutines and pcall', async () => {
    await sb.serve({
      'a.lua': 'print("a"); os.exit(3); print("never")',
      'b.lua': 'pcall(function() coroutine.wrap(function() os.exit(false) end)() end); print("never")',
      'c.lua': 'os.exit(true)',
      'd.lua': 'require_async("m", function() os.exit(9) end)',
      'm.lua': 'return 1',
    })
    expect((await runLua(sb, 'a.lua'))).toMatchObject({ code: 3, stdout: 'a\n' })
    expect((await runLua(sb, 'b.lua'))).toMatchObject({ code: 1, stdout: '' })
    expect((await runLua(sb, 'c.lua')).code).toBe(0)
    expect((await runLua(sb, 'd.lua')).code).toBe(9)
  })

  it('sets arg as the stock interpreter does', async () => {
    await sb.serve({ 'tools/main.lua': 'print(arg[0], #arg, arg[1], arg[2], ...)' })
    const r = await runLua(sb, 'tools/main.lua', { args: ['x', 'y z'] })
    expect(r.stdout).toBe('tools/main.lua\t2\tx\ty z\tx\ty z\n')
  })

  it('a missing script is ERR_NOT_FOUND (exit 5) before any Lua runs', async () => {
    const r = await runLua(sb, 'nope.lua')
    expect(r.error).toMatchObject({ code: 'ERR_NOT_FOUND' })
  })
})
