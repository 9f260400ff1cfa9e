/**
 * HookRunner's timeout on an injected clock (src/core/client/hooks.ts): a hanging hook is killed
 * exactly when the ManualClock reaches the timeout, and a hook that ends by itself leaves no timer
 * behind. The test never sleeps: real processes, but the clock moves only when told.
 */
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type HookResult, HookRunner } from '../../src/core/client/hooks.js'
import { ManualClock } from '../../src/protocol/clock.js'

/** A ManualClock that counts its one-shot timers still pending. */
class CountingClock extends ManualClock {
  pending = 0
  override after(ms: number, fn: () => void): () => void {
    this.pending++
    let live = true
    const end = (): boolean => {
      if (!live) return false
      live = false
      this.pending--
      return true
    }
    const cancel = super.after(ms, () => { if (end()) fn() })
    return () => { end(); cancel() }
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

let dir: string
const runners: HookRunner[] = []
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'assetsync-hook-clock-')) })
afterEach(async () => {
  for (const r of runners.splice(0)) r.close()
  await rm(dir, { recursive: true, force: true })
})

describe.each([{ warm: false }, { warm: true }])('HookRunner timeout on a ManualClock (warm: $warm)', ({ warm }) => {
  it('a hook still running at the timeout is killed then, not a tick earlier', async () => {
    const clock = new CountingClock()
    const hooks = new HookRunner({ command: 'sleep 30', root: dir, timeoutMs: 5000, clock, warm })
    runners.push(hooks)
    let result: HookResult | null = null
    hooks.on('done', (r) => { result = r })
    const done = once(hooks, 'done')
    hooks.enqueue([{ path: 'a.lua', action: 'change' }])
    expect(clock.pending).toBe(1) // the timeout is armed as the hook starts
    clock.advance(4999)
    await turn()
    expect(result).toBeNull()
    expect(clock.pending).toBe(1)
    clock.advance(1)
    const [r] = (await done) as [HookResult]
    expect(r.timedOut).toBe(true)
    expect(r.signal).toBe('SIGKILL')
    // Killed long before `sleep 30` could end by itself: the manual clock, not real time, decided.
    expect(r.ms).toBeLessThan(20_000)
    expect(clock.pending).toBe(0)
  })

  it('a hook that ends by itself cancels its timer: nothing fires later', async () => {
    const clock = new CountingClock()
    const hooks = new HookRunner({ command: 'true', root: dir, timeoutMs: 5000, clock, warm })
    runners.push(hooks)
    const done = once(hooks, 'done')
    hooks.enqueue([{ path: 'a.lua', action: 'change' }])
    const [r] = (await done) as [HookResult]
    expect(r).toMatchObject({ exitCode: 0, timedOut: false })
    expect(clock.pending).toBe(0)
    clock.advance(60_000)
    expect(clock.pending).toBe(0)
  })
})
