/**
 * Issue 11, case 10: `--out` deleted under `watch`. Before, the first hook ran in the deleted
 * folder (the process parked ahead of time still had it as its cwd), and files that did not
 * change again never came back. Now the next batch finds the folder gone, makes it again and
 * resyncs everything before the hook runs, in the new folder.
 */
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { Sandbox, type ServerHandle, ensureBuilt } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { writeTree } from '../helpers/trees.js'
import { type WatchHandle, readHookRuns, recordingHook, startWatch, waitForSameFiles } from '../helpers/watch.js'

const CONVERGE_MS = 15_000

let sb: Sandbox
let src: string
let server: ServerHandle
let watch: WatchHandle
let hookLog: string

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('out-deleted')
  src = await sb.mkdir('src')
  await writeTree(src, { 'a.txt': 'a\n', 'b.txt': 'b\n', 'deep/c.txt': 'c\n' })
  server = await sb.serve(src)
  hookLog = sb.path('hook.log')
  // The hook lists what it finds in its cwd (the mirror root).
  watch = await startWatch(sb, server.addr, { out: sb.path('mirror'), exec: recordingHook(hookLog, 'find . -type f | sort') })
  await waitForSameFiles(src, watch.out, CONVERGE_MS)
  // A first batch, so a hook process is parked ahead of time in the folder about to be deleted.
  await writeFile(join(src, 'a.txt'), 'a, edited\n')
  await waitFor(() => readHookRuns(hookLog).length >= 1, CONVERGE_MS, 'the first hook run')
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

describe('issue 11 case 10: --out deleted under watch', () => {
  test('the next change recreates it and resyncs every file before the hook, which runs in the new folder', async () => {
    const from = readHookRuns(hookLog).length
    await rm(watch.out, { recursive: true })
    await writeFile(join(src, 'a.txt'), 'a, edited again\n')
    // Files that did not change come back too.
    await waitForSameFiles(src, watch.out, CONVERGE_MS)
    expect(await readFile(join(watch.out, 'b.txt'), 'utf8')).toBe('b\n')
    const run = await waitFor(() => readHookRuns(hookLog)[from], CONVERGE_MS, 'a hook run after the deletion')
    // Its cwd was the recreated folder, already complete.
    expect(run.extra).toEqual(['./a.txt', './b.txt', './deep/c.txt'])
    expect(watch.events().filter((e) => e.event === 'resynced')).toHaveLength(1)
    expect(watch.events().filter((e) => e.event === 'error')).toEqual([])
  })
})
