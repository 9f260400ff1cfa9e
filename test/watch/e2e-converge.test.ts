/**
 * Issue 11, cases 3 and 4, with `watch`: a path that changes type (file -> folder, folder -> file,
 * in one batch or across several) and a mode-only change (`chmod +x`) reach the mirror, with no
 * error event and a hook run naming them. Before, watch reported ERR_WRITE ... ENOTDIR and stayed
 * diverged, and a chmod reached neither the mirror nor a later pull.
 */
import { chmod, mkdir, rm, stat, unlink, writeFile } from 'node:fs/promises'
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
  sb = await Sandbox.create('watch-converge')
  src = await sb.mkdir('src')
  await writeTree(src, {
    'foo': 'a file\n',
    'dir/x.txt': 'x\n',
    'dir/sub/y.txt': 'y\n',
    'slow': 'a file, slowly\n',
    'tool.sh': { data: '#!/bin/sh\necho hi\n', mode: 0o644 },
  })
  server = await sb.serve(src)
  hookLog = sb.path('hook.log')
  watch = await startWatch(sb, server.addr, { out: await sb.mkdir('mirror'), exec: recordingHook(hookLog) })
  await waitForSameFiles(src, watch.out, CONVERGE_MS)
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

const errors = (from: number): unknown[] => watch.events().slice(from).filter((e) => e.event === 'error')

/** Waits for a hook run (after run `from`) whose changes include every one of `expected`. */
async function hookSaw(from: number, expected: string[]): Promise<void> {
  await waitFor(() => {
    const seen = new Set(readHookRuns(hookLog).slice(from).flatMap((r) => r.stdin.changes.map((c) => `${c.action} ${c.path}`)))
    return expected.every((c) => seen.has(c))
  }, CONVERGE_MS, `hook runs with ${expected.join(', ')}`, { detail: () => JSON.stringify(readHookRuns(hookLog).slice(from)) })
}

describe('issue 11: watch converges on type and mode changes', () => {
  test('file -> folder and folder -> file at once (a branch switch)', async () => {
    const from = watch.events().length
    const runs = readHookRuns(hookLog).length
    await unlink(join(src, 'foo'))
    await mkdir(join(src, 'foo'))
    await writeFile(join(src, 'foo', 'inner'), 'now a folder\n')
    await rm(join(src, 'dir'), { recursive: true })
    await writeFile(join(src, 'dir'), 'now a file\n')
    await waitForSameFiles(src, watch.out, CONVERGE_MS)
    await hookSaw(runs, ['delete foo', 'change foo/inner', 'delete dir/x.txt', 'delete dir/sub/y.txt', 'change dir'])
    expect(errors(from)).toEqual([])
  })

  test('and back again, across several batches (each step settles before the next)', async () => {
    const from = watch.events().length
    await rm(join(src, 'foo'), { recursive: true })
    await waitFor(async () => (await stat(join(watch.out, 'foo')).catch(() => null)) === null, CONVERGE_MS, 'foo/ gone on the mirror')
    await writeFile(join(src, 'foo'), 'a file again\n')
    await unlink(join(src, 'dir'))
    await new Promise((r) => setTimeout(r, 300))
    await writeTree(src, { 'dir/x.txt': 'x again\n' })
    await waitForSameFiles(src, watch.out, CONVERGE_MS)
    expect(errors(from)).toEqual([])
  })

  test('a file whose folder appears before its old file is deleted (the create arrives first)', async () => {
    const from = watch.events().length
    // Written in place: the watcher may announce slow/inner before it sees slow gone.
    await unlink(join(src, 'slow'))
    await mkdir(join(src, 'slow'))
    for (let i = 0; i < 5; i++) {
      await writeFile(join(src, 'slow', `f${i}`), `piece ${i}\n`)
      await new Promise((r) => setTimeout(r, 40))
    }
    await waitForSameFiles(src, watch.out, CONVERGE_MS)
    expect(errors(from)).toEqual([])
  })

  test('chmod +x reaches the mirror (no download) and the hook', async () => {
    const from = watch.events().length
    const runs = readHookRuns(hookLog).length
    await chmod(join(src, 'tool.sh'), 0o755)
    await waitFor(async () => ((await stat(join(watch.out, 'tool.sh'))).mode & 0o777) === 0o755, CONVERGE_MS, 'tool.sh executable on the mirror')
    await hookSaw(runs, ['change tool.sh'])
    expect(errors(from)).toEqual([])
    // A later pull finds nothing to do.
    const r = await sb.run(['pull', '--server', server.addr, '--out', watch.out, '--json'])
    expect(r.stdout.toString()).toMatch(/"event":"summary".*"downloaded":0.*"modeChanged":0/)
  })
})
