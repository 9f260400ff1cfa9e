/**
 * Access tokens, server keys, an absent server and shutdown, end to end (CLI contract: exit 4 for
 * authentication or server-key mismatch, 3 for cannot connect / timed out, serve ends cleanly on
 * SIGTERM and SIGINT).
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { AUTH_FAILURES_PER_SEC } from '../../src/limits.js'
import { guess, sources } from '../helpers/attackers.js'
import { type CliResult, closedPort, ensureBuilt, lines, parseEvents, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { diffTrees, writeTree } from '../helpers/trees.js'

let sb: Sandbox
let src: string

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('auth')
  src = await sb.mkdir('src')
  await writeTree(src, { 'main.lua': 'print(1)\n', 'sub/tex.bin': Buffer.alloc(70_000, 7), 'run.sh': { data: '#!/bin/sh\n', mode: 0o755 } })
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

function oneErrorLine(r: CliResult): void {
  expect(lines(r.stderr), r.stderr).toHaveLength(1)
  expect(r.stderr.startsWith('assetsync: '), r.stderr).toBe(true)
  expect(r.stdout.length).toBe(0)
}

describe('access token', () => {
  let server: ServerHandle
  beforeAll(async () => { server = await sb.serve(src, ['--token', 'letmein']) })

  test('wrong token exits 4; no token exits 4; nothing is written', async () => {
    for (const extra of [['--token', 'nope'], [], ['--token', 'letmein2']]) {
      const out = sb.path('out-bad')
      const r = await sb.run(['pull', '--server', server.addr, '--out', out, ...extra])
      expect(r.code, extra.join(' ')).toBe(4)
      oneErrorLine(r)
      expect(existsSync(out)).toBe(false)
    }
    const g = await sb.run(['get', '--server', server.addr, '--token', 'nope', 'main.lua'])
    expect(g.code).toBe(4)
    oneErrorLine(g)
  })

  test('the right token works (--token)', async () => {
    const out = sb.path('out-ok')
    const r = await sb.run(['pull', '--server', server.addr, '--out', out, '--token', 'letmein'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(await diffTrees(src, out)).toEqual([])
  })

  test('ASSETSYNC_TOKEN in the environment works for the client; a wrong one exits 4', async () => {
    const out = sb.path('out-env')
    const r = await sb.run(['pull', '--server', server.addr, '--out', out], { env: { ASSETSYNC_TOKEN: 'letmein' } })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(await diffTrees(src, out)).toEqual([])
    const g = await sb.run(['get', '--server', server.addr, 'main.lua'], { env: { ASSETSYNC_TOKEN: 'letmein' } })
    expect(g.code).toBe(0)
    expect(g.stdout.toString()).toBe('print(1)\n')
    const bad = await sb.run(['get', '--server', server.addr, 'main.lua'], { env: { ASSETSYNC_TOKEN: 'wrong' } })
    expect(bad.code).toBe(4)
  })

  test('ASSETSYNC_TOKEN in the environment sets the server token too', async () => {
    const s = await sb.serve(src, [], { env: { ASSETSYNC_TOKEN: 'from-env' } })
    try {
      expect((await sb.run(['get', '--server', s.addr, 'main.lua'])).code).toBe(4)
      const ok = await sb.run(['get', '--server', s.addr, '--token', 'from-env', 'main.lua'])
      expect(ok.code).toBe(0)
      expect(ok.stdout.toString()).toBe('print(1)\n')
    } finally {
      await s.stop()
    }
  })
})

describe('a burst of wrong tokens (issue 12)', () => {
  test('serve --json: each refusal is a "rejected" event with its reason; many at once raise an "auth-failures" warning', async () => {
    const s = await sb.serve(src, ['--token', 'letmein'])
    try {
      // 12 source addresses guess at once: more than the server-wide bucket (AUTH_FAILURES_PER_SEC).
      const results = await Promise.all(sources(AUTH_FAILURES_PER_SEC + 2, 120).map((from, i) => guess('udp', from, s.port, `guess ${i}`)))
      expect(results.every((r) => r.answer === 'error' && r.code === 'ERR_AUTH')).toBe(true)
      const warning = await waitFor(() => s.events().find((e) => e.event === 'auth-failures'), 10_000, 'an auth-failures event')
      // The bucket ran dry after AUTH_FAILURES_PER_SEC failures (one more if it refilled meanwhile).
      expect(warning).toEqual({ event: 'auth-failures', remote: '*', count: expect.any(Number) as number, delayMs: expect.any(Number) as number })
      expect(warning.count).toBeGreaterThanOrEqual(AUTH_FAILURES_PER_SEC)
      expect(warning.count).toBeLessThanOrEqual(results.length)
      await waitFor(() => s.events().filter((e) => e.event === 'rejected').length === results.length, 10_000, 'a rejected event per guess')
      const rejected = s.events().filter((e) => e.event === 'rejected')
      for (const r of rejected) {
        expect(r).toEqual({ event: 'rejected', remote: expect.stringMatching(/^127\.0\.0\.\d+:\d+$/) as string, code: 'ERR_AUTH', reason: 'token', message: 'access token rejected by the server' })
      }
    } finally {
      await s.stop()
    }
  })
})

describe('server key', () => {
  let server: ServerHandle
  beforeAll(async () => { server = await sb.serve(src) })

  test('--key of another server exits 4; the right --key works', async () => {
    const wrong = 'ab'.repeat(32)
    const r = await sb.run(['get', '--server', server.addr, '--key', wrong, 'main.lua'])
    expect(r.code).toBe(4)
    oneErrorLine(r)
    const ok = await sb.run(['get', '--server', server.addr, '--key', server.key, 'main.lua'])
    expect(ok.code).toBe(0)
    expect(ok.stdout.toString()).toBe('print(1)\n')
  })

  test('a pinned key that changes exits 4 (known-servers under ASSETSYNC_CONFIG_DIR)', async () => {
    expect((await sb.run(['get', '--server', server.addr, 'main.lua'])).code).toBe(0)
    const known = await readFile(join(sb.config, 'known-servers'), 'utf8')
    expect(known).toContain(server.key)
    // A second client config that pinned another key for this address.
    const other = await sb.mkdir('other-config')
    await writeTree(other, { 'known-servers': `udp://${server.addr} ${'cd'.repeat(32)}\n` })
    const r = await sb.run(['get', '--server', server.addr, 'main.lua'], { env: { ASSETSYNC_CONFIG_DIR: other } })
    expect(r.code).toBe(4)
    oneErrorLine(r)
  })
})

describe('no server', () => {
  test('UDP: pull --timeout 2 to a closed port exits 3 within ~2-4 s, one line', async () => {
    const port = await closedPort('udp')
    const out = sb.path('out-closed')
    const r = await sb.run(['pull', '--server', `127.0.0.1:${port}`, '--out', out, '--timeout', '2'], { timeoutMs: 20_000 })
    expect(r.code).toBe(3)
    oneErrorLine(r)
    expect(r.ms).toBeLessThan(4500)
    expect(existsSync(out)).toBe(false)
  })

  test('TCP: a refused connection exits 3 at once, one line', async () => {
    const port = await closedPort('tcp')
    const r = await sb.run(['pull', '--server', `127.0.0.1:${port}`, '--transport', 'tcp', '--out', sb.path('o'), '--timeout', '2'], { timeoutMs: 20_000 })
    expect(r.code).toBe(3)
    oneErrorLine(r)
    expect(r.ms).toBeLessThan(4500)
  })
})

describe('serve shuts down cleanly', () => {
  test.each(['SIGTERM', 'SIGINT'] as const)('on %s: exit 0, after serving a client', async (sig) => {
    const server = await sb.serve(src)
    const g = await sb.run(['get', '--server', server.addr, 'sub/tex.bin'])
    expect(g.code).toBe(0)
    const t0 = performance.now()
    const r = await server.stop(sig)
    expect(r.signal).toBeNull()
    expect(r.code).toBe(0)
    expect(performance.now() - t0).toBeLessThan(5000)
    expect(() => parseEvents(r.stdout)).not.toThrow()
    expect(r.stderr).toBe('')
  })

  test('a served folder that does not exist: exit 5, one line', async () => {
    const r = await sb.run(['serve', join(sb.dir, 'no-such-folder'), '--host', '127.0.0.1', '--port', '0', '--json'], { timeoutMs: 20_000 })
    expect(r.code).toBe(5)
    expect(lines(r.stderr)).toHaveLength(1)
    expect(r.stderr.startsWith('assetsync: ')).toBe(true)
  })
})
