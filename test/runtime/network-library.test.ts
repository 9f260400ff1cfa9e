/**
 * The real multi-module libraries of library.test.ts, now over the network: a real `assetsync
 * serve` (the built CLI, its own process, UDP on loopback) serves the library folders, and the Lua
 * host runs Penlight's own example scripts with every module fetched through NetworkAssets into an
 * empty folder. A second run (a new NetworkAssets, as a restarted program) transfers 0 file bytes
 * and prints the same; with lua5.4 installed the output equals the stock interpreter's.
 * luassert + say load the same way (nested folders, init.lua modules).
 */
import { execFileSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readdirSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NetworkAssets } from '../../src/core/client/network-assets.js'
import type { AssetProvider } from '../../src/runtime/provider.js'
import { Sandbox, type ServerHandle, ensureBuilt } from '../helpers/cli.js'
import { runNet } from '../helpers/lua-net.js'
import { LUA, LUASSERT_SCRIPT, SCRIPTS, copyLibraries, haveLuassert, havePenlight, normal } from '../helpers/penlight.js'

let sb: Sandbox
let served: string
let out: string
let server: ServerHandle
let devNull: number

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('lua-net-library')
  served = await sb.mkdir('served')
  out = await sb.mkdir('out')
  copyLibraries(served)
  await writeFile(join(served, 'spec-run.lua'), LUASSERT_SCRIPT)
  server = await sb.serve(served)
  devNull = openSync('/dev/null', 'r')
}, 120_000)

afterAll(async () => {
  closeSync(devNull)
  await server?.stop()
  await sb?.cleanup()
})

/** A NetworkAssets into `out`, and a provider over it that adds up what its fetches moved. */
async function counted(): Promise<{ assets: NetworkAssets; provider: AssetProvider; stats: { bytes: number; size: number; downloaded: number; fetches: number } }> {
  const assets = await NetworkAssets.open({ server: server.addr, key: server.key, dir: out, configDir: sb.config, connectTimeoutMs: 10_000 })
  const stats = { bytes: 0, size: 0, downloaded: 0, fetches: 0 }
  const provider: AssetProvider = {
    fetch: async (path, opts) => {
      const r = await assets.fetch(path, opts)
      stats.fetches++
      stats.bytes += r.bytes
      if (r.action === 'downloaded') {
        stats.downloaded++
        stats.size += r.size
      }
      return r
    },
    onChange: (l) => assets.onChange(l),
    release: (i) => assets.release(i),
  }
  return { assets, provider, stats }
}

describe.skipIf(!havePenlight)('Penlight runs its own test scripts with every module from `assetsync serve`', () => {
  const outputs = new Map<string, string>()

  it('with nothing local: every module downloaded over the network, every script exits 0', async () => {
    expect(readdirSync(out)).toEqual([])
    const { assets, provider, stats } = await counted()
    try {
      const modules = new Set<string>()
      for (const script of SCRIPTS) {
        const r = await runNet({ out }, assets, `examples/${script}`, { provider, stdinFd: devNull })
        expect({ script, code: r.code, error: r.error, stderr: r.stderr }).toEqual({ script, code: 0, error: null, stderr: '' })
        for (const e of r.events) if (e.event === 'required' && e.path.startsWith('pl/')) modules.add(e.path)
        outputs.set(script, r.stdout)
      }
      expect(modules.size).toBeGreaterThanOrEqual(15)
      expect(modules).toContain('pl/init.lua')
      expect(stats.downloaded).toBeGreaterThanOrEqual(modules.size)
      // `bytes` is what crossed the wire: Lua source travels zstd-compressed (issue 16).
      expect(stats.size).toBeGreaterThan(100_000)
      expect(stats.bytes).toBeGreaterThan(0)
      expect(stats.bytes).toBeLessThanOrEqual(stats.size)
    } finally {
      await assets.close()
    }
  })

  it('again, as a restarted program: every file up to date, 0 file bytes transferred, same output', async () => {
    const { assets, provider, stats } = await counted()
    try {
      for (const script of SCRIPTS) {
        const r = await runNet({ out }, assets, `examples/${script}`, { provider, stdinFd: devNull })
        expect(r.code).toBe(0)
        const required = r.events.filter((e) => e.event === 'required')
        expect(required.length).toBeGreaterThan(1)
        expect(required.every((e) => e.event === 'required' && e.action === 'up-to-date')).toBe(true)
        expect(normal(r.stdout)).toBe(normal(outputs.get(script) ?? ''))
      }
      expect(stats.fetches).toBeGreaterThan(SCRIPTS.length)
      expect(stats.bytes).toBe(0)
      expect(stats.downloaded).toBe(0)
    } finally {
      await assets.close()
    }
  })

  it.skipIf(!LUA)('prints exactly what the stock lua5.4 interpreter prints', () => {
    const stock = join(sb.dir, 'stock')
    mkdirSync(stock)
    for (const script of SCRIPTS) {
      const want = execFileSync(LUA as string, [join(served, 'examples', script)], {
        cwd: stock,
        env: { PATH: process.env.PATH, LUA_PATH: `${served}/?.lua;${served}/?/init.lua`, LUA_CPATH: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }).toString('utf8')
      expect({ script, out: normal(outputs.get(script) ?? '') }).toEqual({ script, out: normal(want) })
    }
  })
})

describe.skipIf(!haveLuassert)('luassert + say over the network', () => {
  it('loads its nested init.lua modules from the server and asserts', async () => {
    const { assets, provider } = await counted()
    try {
      const r = await runNet({ out }, assets, 'spec-run.lua', { provider })
      expect(r.error).toBeNull()
      expect(r.stdout).toBe('false\tExpected objects to be equal\n')
      const paths = r.events.flatMap((e) => (e.event === 'required' ? [e.path] : []))
      for (const p of ['luassert/init.lua', 'luassert/matchers/init.lua', 'luassert/formatters/init.lua', 'say/init.lua']) expect(paths).toContain(p)
    } finally {
      await assets.close()
    }
  })
})
