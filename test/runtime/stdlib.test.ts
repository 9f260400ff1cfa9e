/**
 * io and os on the real file system (wasmoon's own io only sees emscripten's MEMFS), print /
 * io.write / io.stderr routed to the host's streams, load_asset of a binary, and the game loop.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/protocol/clock.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import { waitFor } from '../helpers/common.js'
import { type Sandbox, runLua, sandbox, start } from '../helpers/lua.js'

let sb: Sandbox
beforeEach(async () => { sb = await sandbox() })
afterEach(async () => { await sb.cleanup() })

describe('io and os on the real file system', () => {
  it('reads and writes files relative to the host folder, as the stock interpreter', async () => {
    await writeFile(join(sb.out, 'data.txt'), 'first line\nsecond\n  0x1F  3.5e2 -7 abc\nlast')
    await mkdir(join(sb.out, 'out'))
    await sb.serve({
      'main.lua': `local f = assert(io.open('data.txt'))
print(io.type(f), f:read('l'), f:read('L'), f:read('n', 'n', 'n', 'n'))
print(f:read('a'), f:read('a'), f:read('l'), f:read(0))
print(f:seek('set', 6), f:read(4), f:seek('cur'), f:seek('end'))
f:close()
print(io.type(f), tostring(f), pcall(f.read, f))
local w = assert(io.open('out/../written.bin', 'wb'))
print(pcall(io.open, 'x', 'rw'))
w:write('a', 1, ' ', 2.0, ' ', 2.5, '\\0\\255'):write('!')
w:close()
local a = assert(io.open('written.bin', 'a+'))
a:write('+'); a:seek('set'); print(#a:read('a')); a:close()
local n = 0
for l in io.lines('data.txt') do n = n + 1 end
for a, b in io.lines('data.txt', 1, 'l') do print(a, b) break end
print(n, pcall(io.lines, 'missing.txt'))
print(io.open('missing.txt'))
print(os.rename('written.bin', 'moved.bin'), os.remove('moved.bin'), os.remove('moved.bin'))
print(io.stdout:close())
local t = io.tmpfile(); t:write('tmp'); t:seek('set'); print(t:read('a')); t:close()
local name = os.tmpname(); print(io.open(name) ~= nil, os.remove(name))
print(os.getenv('ASSETSYNC_TEST_VAR'), os.getenv('NOPE_NOT_SET'), type(os.clock()), type(os.time()), os.date('!%Y', 0))
print(pcall(io.popen, 'ls'))
print(os.execute('exit 3'))
io.write('io.write ', 1, '\\n')
io.stderr:write('to stderr\\n')
local d = assert(loadfile('chunk.lua')); print(d(), dofile('chunk.lua'), loadfile('missing.lua'))
`,
      'chunk.lua': '#!/usr/bin/env lua\nreturn select("#", ...) + 40',
    })
    await writeFile(join(sb.out, 'chunk.lua'), '#!/usr/bin/env lua\nreturn 2 + 40')
    const r = await runLua(sb, 'main.lua', { env: { ASSETSYNC_TEST_VAR: 'yes' } })
    expect(r.error).toBeNull()
    // Checked line by line against the stock lua5.4 interpreter on the same files; the one
    // difference is io.popen, which stock lua has and this host does not.
    expect(r.stdout.split('\n')).toEqual([
      'file\tfirst line\tsecond',
      '\t31\t350.0\t-7\tnil',
      'abc',
      'last\t\tnil\tnil',
      '6\tline\t10\t43',
      'closed file\tfile (closed)\tfalse\tattempt to use a closed file',
      "false\tbad argument #2 to 'io.open' (invalid mode)",
      '12',
      'f\tirst line',
      "4\tfalse\tcannot open file 'missing.txt' (No such file or directory)",
      'nil\tmissing.txt: No such file or directory\t2',
      'true\ttrue\tnil\tmoved.bin: No such file or directory\t2',
      'nil\tcannot close standard file',
      'tmp',
      'true\ttrue',
      'yes\tnil\tnumber\tnumber\t1970',
      "false\t'popen' not supported",
      'nil\texit\t3',
      'io.write 1',
      '42\t42\tnil\tcannot open missing.lua: No such file or directory',
      '',
    ])
    expect(r.stderr).toBe('to stderr\n')
    expect(await readFile(join(sb.out, 'data.txt'), 'utf8')).toContain('first line')
  })

  it('writes binary bytes exactly', async () => {
    await sb.serve({ 'main.lua': `local s = {} for i = 0, 255 do s[#s + 1] = string.char(i) end
local f = io.open('all.bin', 'wb'); f:write(table.concat(s)); f:close()
local g = io.open('all.bin', 'rb'); local back = g:read('a'); g:close()
print(#back, back == table.concat(s))` })
    const r = await runLua(sb, 'main.lua')
    expect(r.stdout).toBe('256\ttrue\n')
    const bytes = await readFile(join(sb.out, 'all.bin'))
    expect([...bytes]).toEqual(Array.from({ length: 256 }, (_, i) => i))
  })
})

describe('load_asset', () => {
  it('fetches a binary and returns { id, path, hash, size }; the file reads back byte for byte', async () => {
    const blob = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 256))
    await sb.serve({
      'tex/stone.bin': blob,
      'main.lua': `local h = load_asset('tex/stone.bin')
local f = io.open(h.path, 'rb'); local data = f:read('a'); f:close()
print(h.id, h.path, h.size, h.hash, #data)
load_asset_async('tex/stone.bin', function(h2) print('async', h2 == h, h2.size) end)
load_asset_async('tex/none.bin', function(h3, err) print('async', h3, err) end)`,
    })
    const r = await runLua(sb, 'main.lua')
    expect(r.error).toBeNull()
    const hash = hashBytes(blob).toString('hex')
    const lines = r.stdout.split('\n')
    expect(lines[0]).toBe(`tex/stone.bin\ttex/stone.bin\t70000\t${hash}\t70000`)
    expect(lines.slice(1, 3).sort()).toEqual(["async\tnil\tasset 'tex/none.bin' not found", 'async\ttrue\t70000'])
    const local = await readFile(join(sb.out, 'tex', 'stone.bin'))
    expect(createHash('sha256').update(local).digest('hex')).toBe(createHash('sha256').update(blob).digest('hex'))
  })
})

describe('the game loop', () => {
  it('calls update(dt) at the tick rate until stopped', async () => {
    await sb.serve({ 'main.lua': 'total, calls = 0, 0\nfunction update(dt) calls = calls + 1; total = total + dt; print(calls, string.format("%.3f", dt)) end' })
    const clock = new ManualClock()
    const run = start(sb, sb.provider(), 'main.lua', { clock, tick: 20 })
    await waitFor(() => run.host.looping, 5000, 'the loop to start')
    for (let i = 1; i <= 3; i++) {
      clock.advance(50)
      // the update has run to its end (a tick is skipped while the previous update still runs)
      await waitFor(() => run.stdout.text.split('\n').length === i + 1, 5000, `update ${i}`)
    }
    expect(run.host.updates).toBe(3)
    run.host.stop()
    const r = await run.result
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('1\t0.050\n2\t0.050\n3\t0.050\n')
  })

  it('--once calls update once, waits for pending callbacks, then exits 0', async () => {
    await sb.serve({ 'main.lua': 'function update(dt) print("update", dt); require_async("m", function(m) print("cb", m) end) end', 'm.lua': 'return 5' })
    const r = await runLua(sb, 'main.lua', { once: true, tick: 4 })
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('update\t0.25\ncb\t5\n')
  })

  it('without update: exits once the main chunk and every callback are done', async () => {
    await sb.serve({ 'main.lua': 'require_async("m", function(m) print("cb", m) end)\nprint("main")', 'm.lua': 'return 1' })
    const r = await runLua(sb, 'main.lua')
    expect(r).toMatchObject({ code: 0, stdout: 'main\ncb\t1\n' })
  })

  it('an error inside update is a script error (exit 7)', async () => {
    await sb.serve({ 'main.lua': 'function update(dt)\n  error("tick failed")\nend' })
    const r = await runLua(sb, 'main.lua', { once: true })
    expect(r.error).toMatchObject({ code: 'ERR_SCRIPT', luaMessage: 'main.lua:2: tick failed' })
  })
})
