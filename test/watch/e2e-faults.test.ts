/**
 * Faults around `watch` end to end (issue 4): a server killed with SIGKILL and restarted on the
 * same port (the watcher resyncs, deletes included), a watcher killed with SIGKILL (the server
 * drops its subscriptions after the idle timeout), a failing hook (reported, not fatal), and a
 * file fetched by another client while its change is still settling (still pushed).
 */
import { readFile, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { ensureBuilt, Sandbox } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { writeTree } from '../helpers/trees.js'
import { readHookRuns, recordingHook, startWatch, waitForSameFiles } from '../helpers/watch.js'
import { IDLE_TIMEOUT_MS } from '../../src/limits.js'

let sb: Sandbox

beforeEach(async () => {
  ensureBuilt()
  sb = await Sandbox.create('watch-faults')
})

afterEach(async () => {
  await sb?.cleanup()
})

const TREE = { 'a.txt': 'alpha\n', 'gone.txt': 'deleted while the server is down\n', 'sub/b.txt': 'beta\n' }

test('kill -9 the server, change files (a delete too), restart it on the same port: the watcher resyncs and converges', async () => {
  const src = await sb.mkdir('src')
  await writeTree(src, TREE)
  const server = await sb.serve(src)
  const hookLog = sb.path('hook.log')
  const watch = await startWatch(sb, server.addr, { out: await sb.mkdir('mirror'), exec: recordingHook(hookLog) })
  await waitForSameFiles(src, watch.out, 10_000)
  const from = watch.events().length

  server.proc.kill('SIGKILL')
  expect((await server.exited).signal).toBe('SIGKILL')
  await writeFile(join(src, 'a.txt'), 'alpha, changed while the server was down\n')
  await unlink(join(src, 'gone.txt'))
  await writeFile(join(src, 'sub', 'c.txt'), 'new while down\n')

  const again = await sb.serve(src, ['--port', String(server.port)])
  expect(again.port).toBe(server.port)
  expect(again.key).toBe(server.key)
  await watch.waitEvent((e) => e.event === 'disconnected', IDLE_TIMEOUT_MS + 5000, 'the watcher to notice the server is gone', from)
  await watch.waitEvent((e) => e.event === 'resynced', 15_000, 'the watcher to resync', from)
  await waitForSameFiles(src, watch.out, 10_000)
  const resynced = watch.events().slice(from).find((e) => e.event === 'resynced')
  expect(resynced).toMatchObject({ downloaded: 2, deleted: 1 })
  // The resync is an applied batch like any other: the hook saw it.
  const runs = await waitFor(() => {
    const rs = readHookRuns(hookLog)
    return rs.some((r) => r.stdin.changes.some((c) => c.path === 'gone.txt' && c.action === 'delete')) ? rs : null
  }, 10_000, 'a hook run with the delete of gone.txt')
  expect(runs.flatMap((r) => r.stdin.changes).map((c) => `${c.action} ${c.path}`).sort())
    .toEqual(['change a.txt', 'change sub/c.txt', 'delete gone.txt'])
  expect(watch.cli.proc.exitCode).toBeNull()

  // And it is live again: a change after the restart is pushed.
  await writeFile(join(src, 'sub', 'b.txt'), 'beta, after the restart\n')
  await waitForSameFiles(src, watch.out, 10_000)
})

test('kill -9 a watcher: the server drops its subscriptions within ~6 s', async () => {
  const src = await sb.mkdir('src')
  await writeTree(src, TREE)
  const server = await sb.serve(src)
  const watch = await startWatch(sb, server.addr, { out: await sb.mkdir('mirror'), patterns: ['**/*.txt', 'sub/**'] })
  const sub = await waitFor(() => server.events().find((e) => e.event === 'subscriptions' && e.action === 'subscribe'), 5000, 'the subscribe event')
  expect(sub.patterns).toBe(2)
  watch.cli.proc.kill('SIGKILL')
  await watch.exited
  const dropped = await waitFor(() => server.events().find((e) => e.event === 'subscriptions' && e.action === 'dropped'),
    6000, '{"event":"subscriptions","action":"dropped"}', { detail: () => JSON.stringify(server.events()) })
  expect(dropped).toMatchObject({ patterns: 2, released: 2 })
  // The server still serves: a new watcher syncs.
  const next = await startWatch(sb, server.addr, { out: await sb.mkdir('mirror') })
  await waitForSameFiles(src, next.out, 10_000)
})

test('a failing hook (exit 3) is reported as {"event":"hook","exitCode":3}, and later changes still apply', async () => {
  const src = await sb.mkdir('src')
  await writeTree(src, TREE)
  const server = await sb.serve(src)
  const hookLog = sb.path('hook.log')
  const watch = await startWatch(sb, server.addr, { out: await sb.mkdir('mirror'), exec: recordingHook(hookLog, '', 3) })
  await writeFile(join(src, 'a.txt'), 'first change\n')
  const first = await watch.waitEvent((e) => e.event === 'hook', 10_000, 'the first hook event')
  expect(first).toMatchObject({ event: 'hook', exitCode: 3, timedOut: false })
  // stderr is another pipe than the --json events: the note may arrive a moment after the event.
  await waitFor(() => watch.stderr().includes('hook exited 3'), 5000, '"hook exited 3" on stderr', { detail: () => watch.stderr() })
  await writeFile(join(src, 'sub', 'b.txt'), 'second change\n')
  await waitForSameFiles(src, watch.out, 10_000)
  await waitFor(() => watch.events().filter((e) => e.event === 'hook').length >= 2, 10_000, 'the second hook event')
  expect(watch.events().filter((e) => e.event === 'hook').map((e) => e.exitCode)).toEqual([3, 3])
  expect(readHookRuns(hookLog).map((r) => r.paths)).toEqual([['a.txt'], ['sub/b.txt']])
  expect(watch.cli.proc.exitCode).toBeNull()
})

test('a file another client fetches while its change is still settling is still pushed to watchers', async () => {
  // The fetch refreshes the server's index before the watcher announces the change; the push
  // must compare with what subscribers were told, not with the index.
  const src = await sb.mkdir('src')
  await writeTree(src, TREE)
  const server = await sb.serve(src, ['--settle', '1500'])
  const watch = await startWatch(sb, server.addr, { out: await sb.mkdir('mirror') })
  await writeFile(join(src, 'a.txt'), 'changed, then fetched at once\n')
  const got = sb.path('got.txt')
  const r = await sb.run(['get', '--server', server.addr, 'a.txt', '-o', got])
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  expect(await readFile(got, 'utf8')).toBe('changed, then fetched at once\n')
  await waitForSameFiles(src, watch.out, 8000)
  expect(watch.appliedPaths()).toEqual(['a.txt'])
})
