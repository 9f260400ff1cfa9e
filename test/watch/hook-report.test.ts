// What a hook run tells the reload report `watch` sends (src/core/client/hooks.ts): the hook's
// stderr is passed on to ours and its end kept (stderr), and hookFailure says how the run failed,
// then that end. A background process that keeps the hook's stderr open does not hold the run
// up for more than HOOK_STDERR_GRACE_MS. Real processes, warm (parked launcher) and cold.
import { mkdtemp, realpath, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type HookResult, HookRunner, hookFailure } from '../../src/core/client/hooks.js'
import { HOOK_STDERR_GRACE_MS, REPORT_MAX_ERROR_BYTES } from '../../src/limits.js'

let dir: string
const runners: HookRunner[] = []

beforeEach(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), 'assetsync-hook-report-')))
})

afterEach(async () => {
  await Promise.all(runners.splice(0).map(async (r) => { await r.idle(); r.close() }))
  await rm(dir, { recursive: true, force: true })
})

async function runOnce(command: string, warm: boolean): Promise<{ result: HookResult; passedOn: string; wallMs: number }> {
  const sink = new PassThrough()
  let passedOn = ''
  sink.on('data', (b: Buffer) => { passedOn += b.toString('utf8') })
  const hooks = new HookRunner({ command, root: dir, warm, stderr: sink })
  runners.push(hooks)
  const done: HookResult[] = []
  hooks.on('done', (r) => done.push(r))
  const t0 = performance.now()
  hooks.enqueue([{ path: 'scripts/main.lua', action: 'change' }])
  await hooks.idle()
  expect(done).toHaveLength(1)
  return { result: done[0] as HookResult, passedOn, wallMs: performance.now() - t0 }
}

describe.each([true, false])('warm %s', (warm) => {
  it('passes the hook\'s stderr on and keeps it for the report', async () => {
    const { result, passedOn } = await runOnce('echo "checking" >&2; echo "scripts/main.lua:3: unexpected symbol" >&2; exit 2', warm)
    expect(result.exitCode).toBe(2)
    expect(passedOn).toBe('checking\nscripts/main.lua:3: unexpected symbol\n')
    expect(result.stderr).toBe(passedOn)
    expect(hookFailure(result, 60_000)).toBe('hook exited 2\nchecking\nscripts/main.lua:3: unexpected symbol')
  })

  it(`keeps only the last ${REPORT_MAX_ERROR_BYTES} bytes of a long stderr, whole characters`, async () => {
    const { result, passedOn } = await runOnce(`i=0; while [ $i -lt 4000 ]; do printf 'é%04d\\n' $i >&2; i=$((i+1)); done; echo "the end" >&2; exit 1`, warm)
    expect(passedOn.length).toBeGreaterThan(REPORT_MAX_ERROR_BYTES)
    const kept = result.stderr as string
    expect(Buffer.byteLength(kept)).toBeLessThanOrEqual(REPORT_MAX_ERROR_BYTES)
    expect(Buffer.byteLength(kept)).toBeGreaterThan(REPORT_MAX_ERROR_BYTES - 8)
    expect(kept.endsWith('é3999\nthe end\n')).toBe(true)
    expect(kept).not.toContain('\uFFFD')
    expect(passedOn.endsWith(kept)).toBe(true)
  })

  it('a successful run has no failure, whatever it printed', async () => {
    const { result } = await runOnce('echo "warning: slow disk" >&2', warm)
    expect([result.exitCode, hookFailure(result, 60_000)]).toEqual([0, null])
  })

  it(`a background process holding the hook's stderr does not hold the run up (at most ~${HOOK_STDERR_GRACE_MS} ms)`, async () => {
    // The sleeper inherits stderr and outlives the hook by far; 'close' would wait for it.
    const { result, wallMs } = await runOnce('sleep 4 & echo "started the game" >&2; exit 1', warm)
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toBe('started the game\n')
    expect(wallMs).toBeLessThan(3000)
  })
})

describe('hookFailure', () => {
  const base: HookResult = { exitCode: 0, signal: null, timedOut: false, ms: 5, changes: [] }
  it('names how the run failed', () => {
    expect(hookFailure({ ...base, exitCode: null, signal: 'SIGKILL', timedOut: true }, 2500)).toBe('hook killed after 2.5 s')
    expect(hookFailure({ ...base, exitCode: 127, error: 'spawn nope ENOENT' }, 1000)).toBe('hook could not start: spawn nope ENOENT')
    expect(hookFailure({ ...base, exitCode: null, signal: 'SIGTERM' }, 1000)).toBe('hook exited SIGTERM')
    expect(hookFailure({ ...base, exitCode: 1, stderr: '  \n' }, 1000)).toBe('hook exited 1')
  })
})
