/**
 * The real Lua libraries the runtime tests run (Debian packages, installed by .ci/run): Penlight
 * 1.13 with the example scripts it ships, luassert + say, and the stock interpreter to compare
 * with. Without the packages the tests skip, loudly (the warnings are printed here, once).
 */
import { cpSync, existsSync } from 'node:fs'
import { join } from 'node:path'

export const PL = '/usr/share/lua/5.4/pl'
export const EXAMPLES = '/usr/share/doc/lua-penlight-dev/examples'
export const LUASSERT = '/usr/share/lua/5.4/luassert'
export const SAY = '/usr/share/lua/5.4/say'
export const LUA = ['/usr/bin/lua5.4', '/usr/bin/lua'].find((p) => existsSync(p))

/** The examples that need no C module (the others require LuaFileSystem through pl.path). */
export const SCRIPTS = [
  'seesubst.lua', 'sipscan.lua', 'symbols.lua', 'test-cmp.lua', 'test-listcallbacks.lua', 'test-pretty.lua',
  'testconfig.lua', 'testinputfields.lua', 'testinputfields2.lua', 'testxml.lua',
]

export const havePenlight = existsSync(join(PL, 'init.lua')) && existsSync(join(EXAMPLES, 'test-pretty.lua'))
export const haveLuassert = existsSync(join(LUASSERT, 'init.lua')) && existsSync(join(SAY, 'init.lua'))
if (!havePenlight) console.warn('SKIPPED: Penlight tests need the Debian packages lua-penlight and lua-penlight-dev (installed by .ci/run)')
if (!haveLuassert) console.warn('SKIPPED: luassert test needs the Debian package lua-luassert (installed by .ci/run)')
if (havePenlight && !LUA) console.warn('SKIPPED: comparison with the stock interpreter needs the Debian package lua5.4')

/** Modules that load without LuaFileSystem (pl.path and the modules built on it need it). */
export const NEEDS_LFS = new Set(['app', 'dir', 'file', 'path', 'test'])

/**
 * Table addresses differ from run to run, and so does pairs() order (Lua seeds its string hashes
 * per state: stock lua5.4 prints testconfig.lua's tables in a different order on each run), so
 * outputs are compared as sorted lines with addresses blanked.
 */
export const normal = (s: string): string => s.replace(/0x[0-9a-f]+/g, '0x?').split('\n').sort().join('\n')

/** Copies the installed libraries (and Penlight's examples) into `root` as a server would serve them. */
export function copyLibraries(root: string): void {
  if (havePenlight) {
    cpSync(PL, join(root, 'pl'), { recursive: true, dereference: true })
    cpSync(EXAMPLES, join(root, 'examples'), { recursive: true, dereference: true })
  }
  if (haveLuassert) {
    cpSync(LUASSERT, join(root, 'luassert'), { recursive: true, dereference: true })
    cpSync(SAY, join(root, 'say'), { recursive: true, dereference: true })
  }
}

/** A script that loads luassert (nested init.lua modules) and asserts. */
export const LUASSERT_SCRIPT = `
local assert = require 'luassert'
local spy = require 'luassert.spy'
assert.are.same({ 1, { 2 } }, { 1, { 2 } })
local s = spy.new(function(x) return x * 2 end)
s(3)
assert.spy(s).was.called_with(3)
local ok, err = pcall(assert.are.equal, 1, 2)
print(ok, (tostring(err):match('Expected objects to be equal')))
`
