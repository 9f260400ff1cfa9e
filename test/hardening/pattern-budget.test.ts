/**
 * Issue 12 against a live server: the glob that froze it for seconds is answered at once, a
 * SUBSCRIBE over the pattern budget gets ERR_LIMIT and changes nothing, and a MANIFEST over the
 * budget costs that request, never the server. (The caps themselves, at their limits:
 * test/patterns/budgets.test.ts.)
 */
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { AssetSyncError } from '../../src/errors.js'
import { MAX_PATTERNS, PATTERN_MAX_EXPANSIONS } from '../../src/limits.js'
import { Cleanup, tempDir } from '../helpers/common.js'
import { type LocalServer, startLocalServer } from '../helpers/raw-peers.js'
import { writeTree } from '../helpers/trees.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())
const suite = new Cleanup()
afterAll(() => suite.run())

let s: LocalServer
let config: string
beforeAll(async () => {
  const t = await tempDir('pattern-budget')
  suite.add(t.remove)
  config = join(t.dir, 'config')
  const root = join(t.dir, 'root')
  const files: Record<string, string> = { 'tex/a.png': 'a', 'tex/c.psd': 'c', '.env': 'e' }
  for (let i = 0; i < 200; i++) files[`deep/${'a'.repeat(40)}/${'b'.repeat(40)}/file-${i}`] = String(i)
  await writeTree(root, files)
  s = await startLocalServer(root, config)
  suite.add(() => s.server.close())
})

async function client(): Promise<AssetClient> {
  const c = await AssetClient.connect({ server: s.addr, transport: 'udp', key: s.key, configDir: config, connectTimeoutMs: 5000 })
  cleanup.add(() => c.conn.destroy())
  return c
}

async function rejection(p: Promise<unknown>): Promise<AssetSyncError> {
  const err = await p.then(() => new Error('expected a rejection'), (e: unknown) => e)
  expect(err).toBeInstanceOf(AssetSyncError)
  return err as AssetSyncError
}

const ATTACK_1 = '**/' + '*?'.repeat(11) + '#'
const ATTACK_2 = Array.from({ length: MAX_PATTERNS }, (_, i) => `${i}${'ab?c[de]{f,g}/'.repeat(80)}`.slice(0, 1024))

describe('pattern budget on a live server', () => {
  it("MANIFEST with '**/' + '*?' × 11 + '#' over 200 deep paths is answered (it matches none of them)", async () => {
    const c = await client()
    expect(await c.manifest([ATTACK_1])).toEqual([])
    expect((await c.manifest(['tex/**', '!**/*.psd'])).map((e) => e.path)).toEqual(['tex/a.png'])
  })

  it('SUBSCRIBE over the budget is ERR_LIMIT, changes nothing, and the connection stays open', async () => {
    const c = await client()
    await c.subscribe(['tex/**'], 1)
    const before = s.server.subscriptions.patternCount
    const err = await rejection(c.subscribe(ATTACK_2, 2))
    expect(err.code).toBe('ERR_LIMIT')
    expect(err.message).toContain(`more than ${PATTERN_MAX_EXPANSIONS} alternatives`)
    expect(s.server.subscriptions.patternCount).toBe(before)
    expect(c.conn.isOpen).toBe(true)
    await c.subscribe(['deep/**'], 2)
    expect((await c.manifest(['.env'])).map((e) => e.path)).toEqual(['.env'])
  })

  it('MANIFEST over the budget is ERR_LIMIT for that request only; the connection stays open and the server serves everyone else', async () => {
    const bystander = await client()
    const c = await client()
    const err = await rejection(c.manifest(ATTACK_2))
    expect(err.code).toBe('ERR_LIMIT')
    expect(c.conn.isOpen).toBe(true)
    expect((await c.manifest(['tex/**'])).map((e) => e.path)).toEqual(['tex/a.png', 'tex/c.psd'])
    expect((await bystander.manifest(['**'])).length).toBe(203)
  })
})
