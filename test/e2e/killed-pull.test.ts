/**
 * A pull killed with SIGKILL in the middle of a big file (design "Safety": writes go to a temp
 * file, are verified, then renamed) leaves no partial file at any final path — at most
 * `.assetsync-*.tmp` files — and the next pull completes and removes the leftovers.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { ensureBuilt, parseEvents, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { diffTrees, filesUnder, isTemp, sameBytes, writeRandomFile, writeTree } from '../helpers/trees.js'

const BIG = 200 * 1024 * 1024
/** Kill once the temp file of the big transfer holds this much (well before the end). */
const KILL_AT = 2 * 1024 * 1024

let sb: Sandbox
let src: string
let server: ServerHandle

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('kill')
  src = await sb.mkdir('src')
  await writeTree(src, { 'a.txt': 'a\n', 'levels/b.json': '{"b":1}\n', 'zz/last.lua': 'return 1\n' })
  await writeRandomFile(join(src, 'big', 'huge.pak'), BIG)
  server = await sb.serve(src, [], { readyMs: 60_000 })
}, 120_000)

afterAll(async () => {
  await sb?.cleanup()
})


test('SIGKILL mid-transfer leaves no partial file at a final path; the next pull completes and cleans up', async () => {
  const out = sb.path('out')
  const pull = sb.spawn(['pull', '--server', server.addr, '--out', out, '--json'])
  // Wait until some file under big/ (the temp file, or a partial final file if writes were not
  // atomic) holds some bytes, then kill at once.
  const seen = await waitFor(async () => {
    if (pull.proc.exitCode !== null) throw new Error(`pull ended before it could be killed: ${pull.stderrSoFar()}`)
    const files = await filesUnder(out)
    for (const [rel, size] of files) if (rel.startsWith('big/') && size >= KILL_AT) return { rel, size }
    return null
  }, 60_000, `a file of >= ${KILL_AT} bytes under big/`, 2)
  pull.proc.kill('SIGKILL')
  const killed = await pull.result
  expect(killed.signal).toBe('SIGKILL')
  expect(seen.size).toBeLessThan(BIG)

  const left = await filesUnder(out)
  expect(left.has('big/huge.pak'), 'the big file must not exist at its final path').toBe(false)
  expect([...left.keys()].some(isTemp), 'the temp file is still there (we killed mid-transfer)').toBe(true)
  for (const [rel] of left) {
    if (isTemp(rel)) continue
    // Anything at a final path is complete and correct.
    expect(await sameBytes(join(out, ...rel.split('/')), join(src, ...rel.split('/'))), rel).toBe(true)
  }
  // A temp name is never a name the server serves.
  for (const rel of left.keys()) if (isTemp(rel)) expect(rel).not.toBe('big/huge.pak')

  const again = await sb.run(['pull', '--server', server.addr, '--out', out, '--json'], { timeoutMs: 120_000 })
  expect(again.stderr).toBe('')
  expect(again.code).toBe(0)
  const summary = parseEvents(again.stdout).find((e) => e.event === 'summary')
  expect(summary?.files).toBe(4)
  // Identical trees: the big file is complete and no temp file is left anywhere.
  expect(await diffTrees(src, out)).toEqual([])
}, 120_000)
