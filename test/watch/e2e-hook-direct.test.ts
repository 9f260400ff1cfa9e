/**
 * `assetsync watch --exec` with a plain command (src/core/client/hook-spawn.ts), end to end with a real
 * server: the hook program is started without a shell — its parent is the watch process itself —
 * from a process parked ahead of time, and still gets ASSETSYNC_ROOT, ASSETSYNC_EVENT,
 * ASSETSYNC_PATHS, its arguments and the batch on stdin, once per batch. Stopping the watcher ends
 * the parked process without running the hook.
 */
import { chmod, readFile, readdir, realpath, writeFile } from 'node:fs/promises'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { ensureBuilt, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { writeTree } from '../helpers/trees.js'
import { processGone, startWatch, waitForSameFiles, type WatchHandle } from '../helpers/watch.js'

let sb: Sandbox
let src: string
let server: ServerHandle
let watch: WatchHandle
let runs: string
let hook: string

/** Pids of live processes whose command line contains `marker`. */
function processesWith(marker: string): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker) && !processGone(Number(name))) out.push(Number(name))
    } catch { /* gone */ }
  }
  return out
}

interface Run { ppid: number; args: string[]; root: string; event: string; paths: string[]; stdin: { event: string; root: string; changes: { path: string; action: string }[] } }

async function readRuns(): Promise<Run[]> {
  const names = (await readdir(runs)).filter((n) => n.endsWith('.done')).sort((a, b) => parseInt(a) - parseInt(b))
  return Promise.all(names.map(async (n) => {
    const [ppid, args, root, event, paths, stdin] = (await readFile(join(runs, n), 'utf8')).split('\u0001')
    return { ppid: Number(ppid), args: (args ?? '').split('\n').filter(Boolean), root: root ?? '', event: event ?? '', paths: (paths ?? '').split('\n'), stdin: JSON.parse(stdin ?? 'null') as Run['stdin'] }
  }))
}

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('watch-hook-direct')
  src = await sb.mkdir('src')
  await writeTree(src, { 'a.txt': 'alpha\n', 'levels/one.json': '{"l":1}\n' })
  server = await sb.serve(src)
  runs = await sb.mkdir('runs')
  hook = join(sb.dir, 'record-hook.sh')
  // One record per run, fields separated by \x01, written to a temp name and renamed (whole records only).
  await writeFile(hook, [
    '#!/bin/sh',
    `d=${JSON.stringify(runs)}`,
    'n=$(ls "$d" | grep -c "\\.done$")',
    'sep=$(printf "\\001")',
    '{ printf "%s%s" "$PPID" "$sep"; for a in "$@"; do printf "%s\\n" "$a"; done; printf "%s%s%s%s%s%s" "$sep" "$ASSETSYNC_ROOT" "$sep" "$ASSETSYNC_EVENT" "$sep" "$ASSETSYNC_PATHS"; printf "%s" "$sep"; cat; } > "$d/$n.part"',
    'mv "$d/$n.part" "$d/$n.done"',
  ].join('\n'))
  await chmod(hook, 0o755)
  watch = await startWatch(sb, server.addr, { out: await sb.mkdir('mirror'), exec: `${hook} --tag=e2e a,b` })
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

test('each batch runs the program without a shell, with the ASSETSYNC_* variables, its arguments and the batch on stdin', async () => {
  const root = await realpath(watch.out)
  await writeFile(join(src, 'a.txt'), 'alpha, edited\n')
  await waitFor(async () => (await readRuns()).length >= 1, 10_000, 'the first hook run')
  await writeFile(join(src, 'levels', 'one.json'), '{"l":2}\n')
  await waitFor(async () => (await readRuns()).length >= 2, 10_000, 'the second hook run')
  await waitForSameFiles(src, watch.out, 10_000)
  const got = await readRuns()
  expect(got).toHaveLength(2)
  const pid = watch.cli.proc.pid
  for (const [i, r] of got.entries()) {
    const path = i === 0 ? 'a.txt' : 'levels/one.json'
    // No `sh -c` in between: the program's parent is the watch process.
    expect(r.ppid, `run ${i}`).toBe(pid)
    expect(r.args).toEqual(['--tag=e2e', 'a,b'])
    expect(r.root).toBe(root)
    expect(r.event).toBe('applied')
    expect(r.paths).toEqual([path])
    expect(r.stdin).toEqual({ event: 'applied', root, changes: [{ path, action: 'change' }] })
  }
  await waitFor(() => watch.events().filter((e) => e.event === 'hook').length >= 2, 5000, 'two hook events')
  expect(watch.events().filter((e) => e.event === 'hook').map((e) => e.exitCode)).toEqual([0, 0])
})

test('stopping the watcher ends the process parked for the next batch, without running the hook', async () => {
  // The watch process has the hook in its own command line (--exec): not counted.
  const parked = (): number[] => processesWith(hook).filter((p) => p !== watch.cli.proc.pid)
  await waitFor(() => parked().length === 1, 5000, 'a parked hook process')
  const before = (await readRuns()).length
  watch.cli.proc.kill('SIGTERM')
  const r = await watch.exited
  expect(r.code).toBe(0)
  await waitFor(() => parked().length === 0, 5000, 'the parked hook process to exit')
  expect((await readRuns()).length).toBe(before)
})
