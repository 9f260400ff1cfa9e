/**
 * Write-stability end to end (issue 4): a 4 MiB file saved in 16 pieces, with pauses shorter
 * than --settle, is announced once, when complete — no hook run ever sees a half-written file.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { ensureBuilt, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { sha256, waitFor } from '../helpers/common.js'
import { writeTree } from '../helpers/trees.js'
import { readHookRuns, recordingHook, startWatch, waitForSameFiles, type WatchHandle, writeInPieces } from '../helpers/watch.js'

const SETTLE_MS = 250
const PAUSE_MS = 30 // < SETTLE_MS, with a wide margin for a loaded machine
const SIZE = 4 * 1024 * 1024
const PIECES = 16

let sb: Sandbox
let src: string
let server: ServerHandle
let watch: WatchHandle
let hookLog: string

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('watch-stable')
  src = await sb.mkdir('src')
  await writeTree(src, { 'readme.txt': 'hi\n' })
  server = await sb.serve(src, ['--settle', String(SETTLE_MS)])
  hookLog = sb.path('hook.log')
  // The hook records the size and hash of big.bin as it finds it in the mirror.
  const extra = 'stat -c %s big.bin 2>/dev/null || echo missing; sha256sum big.bin 2>/dev/null | cut -c1-64'
  watch = await startWatch(sb, server.addr, { out: await sb.mkdir('mirror'), exec: recordingHook(hookLog, extra) })
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

test('a 4 MiB file written in 16 pieces (pauses < --settle) is only ever seen whole, by the mirror and the hook', async () => {
  const versions = [randomBytes(SIZE), randomBytes(SIZE)]
  const hashes = versions.map((v) => sha256(v).toString('hex'))
  const file = join(src, 'big.bin')
  for (const [i, data] of versions.entries()) {
    // Round 0 creates the file; round 1 truncates it and rewrites it in place, piece by piece.
    await writeInPieces(file, data, PIECES, PAUSE_MS)
    await waitForSameFiles(src, watch.out, 15_000)
    await waitFor(() => readHookRuns(hookLog).some((r) => r.extra[1] === hashes[i]), 10_000,
      `a hook run that sees version ${i}`, { detail: () => JSON.stringify(readHookRuns(hookLog)) })
  }
  const runs = readHookRuns(hookLog)
  expect(runs.length).toBeGreaterThanOrEqual(2)
  for (const r of runs) {
    expect(r.paths).toEqual(['big.bin'])
    expect(r.extra, 'size and hash the hook found').toEqual([String(SIZE), expect.any(String)])
    expect(hashes).toContain(r.extra[1])
  }
  // Each save was announced exactly once, and applied exactly once.
  const announced = server.events().filter((e) => e.event === 'changes' && JSON.stringify(e.changes).includes('"big.bin"'))
  expect(announced).toHaveLength(2)
  const applied = watch.events().filter((e) => e.event === 'applied' && JSON.stringify(e.changes).includes('"big.bin"'))
  expect(applied).toHaveLength(2)
  expect(runs).toHaveLength(2)
})
