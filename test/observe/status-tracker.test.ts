/** StatusTracker: the StatusJson a server keeps, and Lua error locations. */
import { describe, expect, it } from 'vitest'
import { STATUS_BATCHES, STATUS_BATCH_PATHS, STATUS_BATCH_RECIPIENTS } from '../../src/limits.js'
import { type ClientProbe, StatusTracker, errorLocation } from '../../src/core/server/status.js'

function tracker(now: { t: number }): StatusTracker {
  return new StatusTracker({
    version: '0.1.0', protocol: 2, key: 'ab'.repeat(32), transport: 'udp', address: 'udp://0.0.0.0:7420',
    files: () => 12, now: () => now.t,
  })
}

function probe(remote: string, subs: ClientProbe['subscriptions'] = () => []): ClientProbe & { sent: number } {
  const p = { remote, transport: 'udp' as const, sent: 0, bytes: () => ({ sent: p.sent, received: 7 }), subscriptions: subs }
  return p
}

describe('errorLocation', () => {
  it.each([
    ['scripts/main.lua:12: attempt to call a nil value (global \'foo\')', 'scripts/main.lua', 12],
    ['[string "scripts/ui/menu.lua"]:7: unexpected symbol near \'}\'', 'scripts/ui/menu.lua', 7],
    ['error loading module \'ui\' from file \'ui.lua\':\n\tui.lua:3: \'=\' expected near \'x\'', 'ui.lua', 3],
    ['C:/game/main.lua:4: boom', 'C:/game/main.lua', 4],
  ])('finds the location in %s', (msg, file, line) => {
    expect(errorLocation(msg)).toEqual({ file, line })
  })

  it('returns null when the message names no file', () => {
    expect(errorLocation('out of memory')).toBeNull()
    expect(errorLocation('main.py:3: not lua')).toBeNull()
  })
})

describe('StatusTracker', () => {
  it('lists connected clients with live bytes and subscriptions, and drops them on disconnect', () => {
    const now = { t: Date.UTC(2025, 0, 1, 12, 0, 0) }
    const t = tracker(now)
    let changes = 0
    const stop = t.onChange(() => { changes++ })
    const subs = [{ pattern: 'scripts/**', instances: [1, 2] }]
    const a = probe('10.0.0.2:5000', () => subs)
    t.clientConnected(a)
    now.t += 1500
    t.clientConnected(probe('10.0.0.3:5001'))
    a.sent = 4096
    subs.push({ pattern: 'levels/*.json', instances: [3] })
    t.changed()
    const s = t.snapshot()
    expect(s).toMatchObject({ version: '0.1.0', protocol: 2, key: 'ab'.repeat(32), transport: 'udp', files: 12, uptimeMs: 1500, startedAt: '2025-01-01T12:00:00.000Z' })
    expect(s.clients).toEqual([
      {
        remote: '10.0.0.2:5000', transport: 'udp', since: '2025-01-01T12:00:00.000Z', bytes: { sent: 4096, received: 7 },
        subscriptions: [{ pattern: 'scripts/**', instances: [1, 2] }, { pattern: 'levels/*.json', instances: [3] }], lastReport: null,
      },
      expect.objectContaining({ remote: '10.0.0.3:5001', since: '2025-01-01T12:00:01.500Z' }),
    ])
    t.clientDisconnected('10.0.0.2:5000')
    expect(t.snapshot().clients.map((c) => c.remote)).toEqual(['10.0.0.3:5001'])
    expect(changes).toBe(4)
    stop()
    t.clientDisconnected('10.0.0.3:5001')
    expect(changes).toBe(4)
    expect(t.snapshot().clients).toEqual([])
  })

  it('keeps each client\'s last reload report, locating errors', () => {
    const now = { t: 0 }
    const t = tracker(now)
    t.clientConnected(probe('h:1'))
    expect(t.clientReport('h:1', { ok: false, paths: ['scripts/main.lua'], ms: 3, error: 'scripts/main.lua:12: attempt to index a nil value' })).toMatchObject({
      ok: false, error: { message: 'scripts/main.lua:12: attempt to index a nil value', file: 'scripts/main.lua', line: 12 },
    })
    expect(t.clientReport('h:1', { ok: false, paths: [], ms: 1, error: { message: 'x', file: 'a.lua', line: 2 } })?.error).toEqual({ message: 'x', file: 'a.lua', line: 2 })
    expect(t.clientReport('h:1', { ok: false, paths: [], ms: 1 })?.error).toEqual({ message: 'reload failed', file: null, line: null })
    t.clientReport('h:1', { ok: true, paths: ['scripts/main.lua'], ms: 4 })
    expect(t.snapshot().clients[0]?.lastReport).toEqual({ at: '1970-01-01T00:00:00.000Z', ok: true, paths: ['scripts/main.lua'], ms: 4, error: null })
    expect(t.clientReport('gone:2', { ok: true, paths: [], ms: 1 })).toBeNull()
  })

  it('keeps the last STATUS_BATCHES batches newest first, each capped', () => {
    const t = tracker({ t: 0 })
    const many = Array.from({ length: STATUS_BATCH_PATHS + 5 }, (_, i) => ({ path: `f${i}`, action: 'change' as const }))
    const who = Array.from({ length: STATUS_BATCH_RECIPIENTS + 3 }, (_, i) => `10.0.${i}.1:1`)
    for (let i = 0; i < STATUS_BATCHES + 10; i++) t.batch({ changes: i === STATUS_BATCHES + 9 ? many : [{ path: `p${i}`, action: 'delete' }], recipients: i === STATUS_BATCHES + 9 ? who : [], lagMs: i === 0 ? null : 21.6 })
    const b = t.snapshot().batches
    expect(b).toHaveLength(STATUS_BATCHES)
    expect(b[0]).toMatchObject({ seq: STATUS_BATCHES + 10, changeCount: STATUS_BATCH_PATHS + 5, recipientCount: STATUS_BATCH_RECIPIENTS + 3, lagMs: 22 })
    expect(b[0]?.changes).toHaveLength(STATUS_BATCH_PATHS)
    expect(b[0]?.recipients).toHaveLength(STATUS_BATCH_RECIPIENTS)
    expect(b[STATUS_BATCHES - 1]?.seq).toBe(11)
    expect(b[1]?.changes).toEqual([{ path: `p${STATUS_BATCHES + 8}`, action: 'delete' }])
  })
})
