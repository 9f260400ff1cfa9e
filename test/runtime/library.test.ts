/**
 * A real multi-module library, written by others, runs its own test scripts unchanged with
 * nothing local: Penlight 1.13 (Debian's lua-penlight: 39 modules in pl/ that require each other,
 * pl/init.lua, lazy loading through a metamethod on _G) and the test scripts it ships in
 * lua-penlight-dev's examples/. Every module is fetched through the provider; a second run
 * transfers 0 file bytes. With lua5.4 installed, each script's output must equal the stock
 * interpreter's. luassert + say (lua-luassert: nested folders, three init.lua) load the same way.
 *
 * The Debian packages are installed by .ci/run; without them these tests are skipped, loudly.
 */
import { execFileSync } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Sandbox, runLua, sandbox } from '../helpers/lua.js'
import { LUA, LUASSERT_SCRIPT, NEEDS_LFS, SCRIPTS, copyLibraries, haveLuassert, havePenlight, normal } from '../helpers/penlight.js'

let sb: Sandbox
let devNull: number
beforeAll(async () => {
  sb = await sandbox()
  devNull = openSync('/dev/null', 'r')
  copyLibraries(sb.server)
})
afterAll(async () => {
  closeSync(devNull)
  await sb.cleanup()
})

describe.skipIf(!havePenlight)('Penlight runs its own test scripts over the provider', () => {
  const outputs = new Map<string, string>()

  it('with nothing local: every module downloaded, every script exits 0', async () => {
    expect(readdirSync(sb.out)).toEqual([])
    const provider = sb.provider()
    const modules = new Set<string>()
    for (const script of SCRIPTS) {
      const r = await runLua(sb, `examples/${script}`, { provider, stdinFd: devNull })
      expect({ script, code: r.code, error: r.error, stderr: r.stderr }).toEqual({ script, code: 0, error: null, stderr: '' })
      for (const e of r.events) if (e.event === 'required' && e.path.startsWith('pl/')) modules.add(e.path)
      outputs.set(script, r.stdout)
    }
    expect(modules.size).toBeGreaterThanOrEqual(15)
    expect(modules).toContain('pl/init.lua')
    expect(provider.stats.bytes).toBeGreaterThan(100_000)
    expect(existsSync(join(sb.out, 'pl', 'tablex.lua'))).toBe(true)
  })

  it('every module that needs no C module loads, each fetched over the provider', async () => {
    const names = readdirSync(join(sb.server, 'pl')).map((f) => f.replace(/\.lua$/, '')).filter((m) => m !== 'init' && !NEEDS_LFS.has(m))
    expect(names.length).toBeGreaterThanOrEqual(30)
    await sb.serve({
      'load-all.lua': `local n = 0
for _, m in ipairs({ ${names.map((n) => `'pl.${n}'`).join(', ')} }) do
  local mod = require(m)
  assert(type(mod) == 'table' or type(mod) == 'function', m)
  n = n + 1
end
print(n)`,
    })
    const r = await runLua(sb, 'load-all.lua')
    expect(r.error).toBeNull()
    expect(r.stdout).toBe(`${names.length}\n`)
    const fetched = r.events.flatMap((e) => (e.event === 'required' && e.path.startsWith('pl/') ? [e.path] : []))
    expect(new Set(fetched).size).toBeGreaterThanOrEqual(30)
  })

  it('again: up to date, 0 file bytes transferred, same output', async () => {
    const provider = sb.provider()
    for (const script of SCRIPTS) {
      const r = await runLua(sb, `examples/${script}`, { provider, stdinFd: devNull })
      expect(r.code).toBe(0)
      expect(r.events.filter((e) => e.event === 'required').every((e) => e.event === 'required' && e.action === 'up-to-date')).toBe(true)
      expect(normal(r.stdout)).toBe(normal(outputs.get(script) ?? ''))
    }
    expect(provider.stats.bytes).toBe(0)
    expect(provider.stats.downloaded).toBe(0)
  })

  it.skipIf(!LUA)('prints exactly what the stock lua5.4 interpreter prints', () => {
    const stock = join(sb.dir, 'stock')
    mkdirSync(stock)
    for (const script of SCRIPTS) {
      const want = execFileSync(LUA as string, [join(sb.server, 'examples', script)], {
        cwd: stock,
        env: { PATH: process.env.PATH, LUA_PATH: `${sb.server}/?.lua;${sb.server}/?/init.lua`, LUA_CPATH: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }).toString('utf8')
      expect({ script, out: normal(outputs.get(script) ?? '') }).toEqual({ script, out: normal(want) })
    }
  })
})

describe.skipIf(!haveLuassert)('luassert + say: nested folders and init.lua modules', () => {
  it('loads through package.path and asserts', async () => {
    await sb.serve({
      'spec-run.lua': LUASSERT_SCRIPT,
    })
    const r = await runLua(sb, 'spec-run.lua')
    expect(r.error).toBeNull()
    expect(r.stdout).toBe('false\tExpected objects to be equal\n')
    const paths = r.events.flatMap((e) => (e.event === 'required' ? [e.path] : []))
    expect(paths).toContain('luassert/init.lua')
    expect(paths).toContain('luassert/matchers/init.lua')
    expect(paths).toContain('luassert/formatters/init.lua')
    expect(paths).toContain('say/init.lua')
  })
})
