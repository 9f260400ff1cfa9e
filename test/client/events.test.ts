/**
 * Typed events of AssetClient, LiveMirror and HookRunner: each emitter's events map fixes the
 * names and payloads, so a listener that uses a renamed field or an unknown event does not compile
 * (`tsc --noEmit` checks this file: every `@ts-expect-error` below must stay an error), and the
 * payloads emitted at run time have the declared shape.
 */
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, expectTypeOf, it } from 'vitest'
import type {
  AppliedStats,
  AssetClient, AssetClientEvents, AssetSyncError, Change, HookResult, HookRunnerEvents, LiveMirrorEvents, ReconnectingEvent, SyncedEvent,
  UpdateEntry,
} from '../../src/index.js'
import { HookRunner, LiveMirror } from '../../src/index.js'

describe('event maps', () => {
  it('declare every payload', () => {
    expectTypeOf<AssetClientEvents['update']>().toEqualTypeOf<[entries: UpdateEntry[]]>()
    expectTypeOf<AssetClientEvents['close']>().toEqualTypeOf<[err: AssetSyncError | null]>()
    expectTypeOf<LiveMirrorEvents['synced']>().toEqualTypeOf<[e: SyncedEvent]>()
    expectTypeOf<LiveMirrorEvents['applied']>().toEqualTypeOf<[changes: Change[], stats: AppliedStats]>()
    expectTypeOf<LiveMirrorEvents['reconnecting']>().toEqualTypeOf<[e: ReconnectingEvent]>()
    expectTypeOf<LiveMirrorEvents['fatal']>().toEqualTypeOf<[err: AssetSyncError]>()
    expectTypeOf<HookRunnerEvents['done']>().toEqualTypeOf<[result: HookResult]>()
    expectTypeOf<keyof LiveMirrorEvents>().toEqualTypeOf<'synced' | 'applied' | 'disconnected' | 'reconnecting' | 'batch-error' | 'fatal' | 'warning'>()
  })

  it('make a renamed field, an unknown event or a wrong emit a compile error', () => {
    // Never called: these exist for the type checker.
    const checks = (live: LiveMirror, client: AssetClient, hooks: HookRunner): void => {
      live.on('synced', ({ summary, initial }) => { expectTypeOf(summary.files).toBeNumber(); expectTypeOf(initial).toBeBoolean() })
      // @ts-expect-error 'initialSync' is not a field of SyncedEvent
      live.on('synced', ({ initialSync }) => initialSync)
      // @ts-expect-error no such event
      live.on('synched', () => {})
      // @ts-expect-error the payload of 'applied' is Change[], not a string
      live.emit('applied', 'a.txt')
      // @ts-expect-error 'exit' is not a field of HookResult
      hooks.on('done', (r) => r.exit)
      client.on('update', (entries) => { expectTypeOf(entries).toEqualTypeOf<UpdateEntry[]>() })
      // @ts-expect-error a close error is an AssetSyncError or null, never a string
      client.on('close', (err: string) => err)
    }
    expect(typeof checks).toBe('function')
  })
})

describe('payloads at run time', () => {
  it('HookRunner emits start with the batch and done with a HookResult', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'assetsync-events-'))
    try {
      const hooks = new HookRunner({ command: 'true', root: dir, warm: false })
      const started = once(hooks, 'start')
      const done = once(hooks, 'done')
      const batch: Change[] = [{ path: 'a.lua', action: 'change' }]
      hooks.enqueue(batch)
      expect(await started).toEqual([batch])
      const [r] = (await done) as [HookResult]
      expect(r).toMatchObject({ exitCode: 0, signal: null, timedOut: false, changes: batch })
      hooks.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('LiveMirror is an emitter of its map (listeners typed, unknown names refused by tsc)', () => {
    const live = new LiveMirror({ client: { server: '127.0.0.1:1' }, out: join(tmpdir(), 'never-created') })
    const seen: ReconnectingEvent[] = []
    live.on('reconnecting', (e) => seen.push(e))
    live.emit('reconnecting', { attempt: 1, delayMs: 10 })
    expect(seen).toEqual([{ attempt: 1, delayMs: 10 }])
  })
})
