/**
 * Resume (issue 16): a pull killed with SIGKILL in the middle of a large file leaves what it wrote
 * in the file's staging name (a temp name: nothing at the final path); the next pull offers it to
 * the planner and fetches only the rest. Real CLI server and client processes over UDP.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { isStagingName } from '../../src/core/delta/staging.js'
import { ensureBuilt, parseEvents, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { MiB, waitFor } from '../helpers/common.js'
import { diffTrees, filesUnder, isTemp, writeRandomFile, writeTree } from '../helpers/trees.js'

const BIG = 128 * MiB
/** Kill once the staged part holds this much. */
const KILL_AT = 32 * MiB

let sb: Sandbox
let src: string
let server: ServerHandle

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('delta-resume')
  src = await sb.mkdir('src')
  await writeTree(src, { 'a.txt': 'a\n' })
  await writeRandomFile(join(src, 'big', 'huge.pak'), BIG)
  server = await sb.serve(src, [], { readyMs: 60_000 })
}, 120_000)

afterAll(async () => {
  await sb?.cleanup()
})

async function stagedIn(dir: string): Promise<{ path: string; size: number } | null> {
  const names = await readdir(dir).catch(() => [] as string[])
  for (const n of names) {
    if (!isStagingName(n)) continue
    const st = await stat(join(dir, n)).catch(() => null)
    if (st) return { path: join(dir, n), size: st.size }
  }
  return null
}

test('a pull killed with SIGKILL mid-file resumes: the next pull fetches only the missing part', async () => {
  const out = sb.path('out')
  const pull = sb.spawn(['pull', '--server', server.addr, '--key', server.key, '--out', out, '--json'])
  const seen = await waitFor(async () => {
    if (pull.proc.exitCode !== null) throw new Error(`pull ended before it could be killed: ${pull.stderrSoFar()}`)
    const s = await stagedIn(join(out, 'big'))
    return s && s.size >= KILL_AT ? s : null
  }, 60_000, `a staged part of >= ${KILL_AT} bytes`, 2)
  pull.proc.kill('SIGKILL')
  expect((await pull.result).signal).toBe('SIGKILL')

  const left = await filesUnder(out)
  expect(left.has('big/huge.pak'), 'nothing at the final path').toBe(false)
  const staged = await stagedIn(join(out, 'big'))
  expect(staged, 'the staged part survives the kill').not.toBeNull()
  const kept = (staged as { size: number }).size
  expect(kept).toBeGreaterThanOrEqual(seen.size)
  expect(kept).toBeLessThan(BIG)

  const again = await sb.run(['pull', '--server', server.addr, '--key', server.key, '--out', out, '--json'], { timeoutMs: 120_000 })
  expect(again.stderr).toBe('')
  expect(again.code).toBe(0)
  const summary = parseEvents(again.stdout).find((e) => e.event === 'summary') as Record<string, number> | undefined
  expect(summary?.files).toBe(2)
  // The staged part is reused (all of its chunks but the one cut at the kill), the rest fetched.
  expect(summary?.bytesReused).toBeGreaterThan(kept - 256 * 1024)
  expect(summary?.bytesReceived).toBeLessThan(BIG - kept + 512 * 1024)
  expect(await diffTrees(src, out)).toEqual([])
  const after = await filesUnder(out)
  expect([...after.keys()].filter((p) => isTemp(p) || isStagingName(p.split('/').at(-1) as string))).toEqual([])
}, 180_000)
