// HookRunner (src/core/client/hooks.ts): one run per batch, never two at once, merging what arrives
// while a hook runs; failures and timeouts reported, never fatal. Real shell commands.
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, readdir, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type Change, type HookResult, HookRunner, mergeChanges } from '../../src/core/client/hooks.js'
import { waitFor } from '../helpers/common.js'
import { processGone } from '../helpers/watch.js'

let dir: string
const runners: HookRunner[] = []

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'assetsync-hooks-'))
})

afterEach(async () => {
  // Let every run finish (the gates below are opened; a hung one is killed by its timeout).
  await writeFile(join(dir, 'release'), '').catch(() => {})
  await Promise.all(runners.splice(0).map((r) => r.idle()))
  await rm(dir, { recursive: true, force: true })
})

function runner(command: string, timeoutMs?: number): { hooks: HookRunner; done: HookResult[]; started: Change[][] } {
  const hooks = new HookRunner({ command, root: dir, ...(timeoutMs ? { timeoutMs } : {}) })
  runners.push(hooks)
  const done: HookResult[] = []
  const started: Change[][] = []
  hooks.on('start', (c: Change[]) => started.push(c))
  hooks.on('done', (r: HookResult) => done.push(r))
  return { hooks, done, started }
}

/**
 * A hook that records each run (its number, ASSETSYNC_PATHS, stdin) under runs/, flags any
 * overlap with another run, and waits for the file "release" before finishing.
 */
const GATED = [
  'mkdir busy 2>/dev/null || echo overlap >> overlap',
  'n=$(ls runs 2>/dev/null | wc -l)',
  'mkdir -p runs',
  'cat > "runs/.$n"',
  'printf "%s" "$ASSETSYNC_PATHS" > "runs/.$n.paths"',
  'mv "runs/.$n" "runs/$n.json"',
  'while [ ! -e release ]; do sleep 0.01; done',
  'rmdir busy',
].join('; ')

describe('HookRunner', () => {
  it('gives the hook ASSETSYNC_ROOT, ASSETSYNC_EVENT, ASSETSYNC_PATHS (newline-separated), the batch as JSON on stdin, and the root as cwd', async () => {
    const { hooks, done } = runner([
      'printf "%s" "$ASSETSYNC_ROOT" > root.out',
      'printf "%s" "$ASSETSYNC_EVENT" > event.out',
      'printf "%s" "$ASSETSYNC_PATHS" > paths.out',
      'cat > stdin.out',
      'pwd -P > cwd.out',
    ].join('; '))
    const changes: Change[] = [
      { path: 'textures/hero.png', action: 'change' },
      { path: 'levels/old level.json', action: 'delete' },
      { path: 'scripts/main.lua', action: 'change' },
    ]
    hooks.enqueue(changes)
    await hooks.idle()
    expect(done).toHaveLength(1)
    expect(done[0]).toMatchObject({ exitCode: 0, signal: null, timedOut: false, changes })
    const read = (f: string): Promise<string> => readFile(join(dir, f), 'utf8')
    expect(await read('root.out')).toBe(dir)
    expect(await read('event.out')).toBe('applied')
    expect((await read('paths.out')).split('\n')).toEqual(changes.map((c) => c.path))
    expect(JSON.parse(await read('stdin.out'))).toEqual({ event: 'applied', root: dir, changes })
    expect((await read('cwd.out')).trim()).toBe(await realpath(dir))
  })

  it('an empty batch runs nothing', async () => {
    const { hooks, done } = runner('touch ran')
    hooks.enqueue([])
    await hooks.idle()
    expect(done).toHaveLength(0)
    expect(existsSync(join(dir, 'ran'))).toBe(false)
  })

  it('runs one hook at a time and merges the batches that arrive while one runs into the next run', async () => {
    const { hooks, done, started } = runner(GATED)
    hooks.enqueue([{ path: 'a', action: 'change' }])
    // The first hook process is running (and blocked on the gate).
    await waitFor(() => existsSync(join(dir, 'runs', '0.json')), 5000, 'the first hook run to start')
    hooks.enqueue([{ path: 'b', action: 'change' }])
    hooks.enqueue([{ path: 'a', action: 'delete' }, { path: 'c', action: 'change' }])
    hooks.enqueue([{ path: 'b', action: 'change' }])
    expect(started).toHaveLength(1) // nothing else started while the first runs
    await writeFile(join(dir, 'release'), '')
    await hooks.idle()
    expect(existsSync(join(dir, 'overlap'))).toBe(false)
    expect(done.map((r) => r.exitCode)).toEqual([0, 0])
    const merged = [{ path: 'b', action: 'change' }, { path: 'a', action: 'delete' }, { path: 'c', action: 'change' }]
    expect(started).toEqual([[{ path: 'a', action: 'change' }], merged])
    expect((await readdir(join(dir, 'runs'))).filter((f) => f.endsWith('.json')).sort()).toEqual(['0.json', '1.json'])
    expect(JSON.parse(await readFile(join(dir, 'runs', '1.json'), 'utf8')).changes).toEqual(merged)
    expect(await readFile(join(dir, 'runs', '.1.paths'), 'utf8')).toBe('b\na\nc')
  })

  it('never overlaps runs under a stream of batches, and every change reaches some run', async () => {
    const { hooks, done, started } = runner(GATED.replace('while [ ! -e release ]; do sleep 0.01; done', 'sleep 0.02'))
    const sent: string[] = []
    for (let i = 0; i < 30; i++) {
      sent.push(`f${i}`)
      hooks.enqueue([{ path: `f${i}`, action: 'change' }])
      await new Promise((r) => setTimeout(r, 3))
    }
    await hooks.idle()
    expect(existsSync(join(dir, 'overlap'))).toBe(false)
    expect(done.length).toBe(started.length)
    expect(done.length).toBeLessThan(30) // some batches were merged
    expect(started.flat().map((c) => c.path).sort()).toEqual(sent.sort())
  })

  it('mergeChanges keeps the last action per path, in order of first appearance', () => {
    expect(mergeChanges(
      [{ path: 'a', action: 'change' }, { path: 'b', action: 'change' }],
      [{ path: 'c', action: 'delete' }, { path: 'a', action: 'delete' }],
    )).toEqual([{ path: 'a', action: 'delete' }, { path: 'b', action: 'change' }, { path: 'c', action: 'delete' }])
  })

  it('reports a failing hook with its exit code and keeps running later batches', async () => {
    const { hooks, done } = runner('echo run >> runs.log; exit 3')
    hooks.enqueue([{ path: 'a', action: 'change' }])
    await hooks.idle()
    hooks.enqueue([{ path: 'b', action: 'change' }])
    await hooks.idle()
    expect(done.map((r) => ({ exitCode: r.exitCode, timedOut: r.timedOut, paths: r.changes.map((c) => c.path) })))
      .toEqual([{ exitCode: 3, timedOut: false, paths: ['a'] }, { exitCode: 3, timedOut: false, paths: ['b'] }])
    expect(await readFile(join(dir, 'runs.log'), 'utf8')).toBe('run\nrun\n')
  })

  it('kills a hanging hook (and what it started) after timeoutMs and reports it as timed out', async () => {
    const { hooks, done } = runner('sleep 30 & echo $! > child.pid; wait', 400)
    const t0 = Date.now()
    hooks.enqueue([{ path: 'a', action: 'change' }])
    await hooks.idle()
    const ms = Date.now() - t0
    expect(done).toHaveLength(1)
    expect(done[0]).toMatchObject({ timedOut: true, exitCode: null, signal: 'SIGKILL' })
    expect(ms).toBeGreaterThanOrEqual(350)
    expect(ms).toBeLessThan(10_000)
    // The hook's own child is gone too (the whole process group was killed).
    const pid = Number(await readFile(join(dir, 'child.pid'), 'utf8'))
    expect(pid).toBeGreaterThan(0)
    await waitFor(() => processGone(pid), 3000, `the hook's child ${pid} to be gone`)
    // The runner still works afterwards.
    hooks.enqueue([{ path: 'b', action: 'change' }])
    await hooks.idle()
    expect(done).toHaveLength(2)
    expect(done[1]?.timedOut).toBe(true) // same command: it hangs again and is killed again
  })

  it('a command that does not exist is reported (shell exit 127), not thrown', async () => {
    const { hooks, done } = runner('assetsync-no-such-command-x1 2>/dev/null')
    hooks.enqueue([{ path: 'a', action: 'change' }])
    await hooks.idle()
    expect(done[0]).toMatchObject({ exitCode: 127, timedOut: false })
  })
})
