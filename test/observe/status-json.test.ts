/**
 * StatusJson off the wire (fitStatus to one frame, parseStatusJson refusing other shapes) and the
 * human table of `assetsync status`, which must never write a server's control characters raw.
 */
import { describe, expect, it } from 'vitest'
import { formatStatus, visible } from '../../src/commands/status-format.js'
import { MAX_FRAME_BYTES } from '../../src/limits.js'
import { StatusTracker } from '../../src/core/server/status.js'
import { type StatusJson, fitStatus, parseStatusJson } from '../../src/protocol/status-json.js'

const T0 = Date.UTC(2025, 4, 1, 9, 0, 0)

function sample(clients = 2): StatusJson {
  const now = { t: T0 }
  const t = new StatusTracker({ version: '0.1.0', protocol: 2, key: 'ef'.repeat(32), transport: 'udp', address: 'udp://0.0.0.0:7420', files: () => 40, now: () => now.t })
  for (let i = 0; i < clients; i++) {
    const remote = `10.0.${i >> 8}.${i & 255}:5${String(i).padStart(4, '0')}`
    t.clientConnected({
      remote, transport: i % 2 ? 'tcp' : 'udp', bytes: () => ({ sent: 2_400_000, received: 5300 }),
      subscriptions: () => Array.from({ length: 20 }, (_, k) => ({ pattern: `folder${k}/${'x'.repeat(200)}/**`, instances: [1, 2] })),
    })
  }
  now.t += 90_000
  t.batch({ changes: [{ path: 'scripts/main.lua', action: 'change' }, { path: 'old.txt', action: 'delete' }], recipients: ['10.0.0.0:50000'], lagMs: 24 })
  t.clientReport('10.0.0.0:50000', { ok: false, paths: ['scripts/main.lua'], ms: 4, error: 'scripts/main.lua:12: attempt to call a nil value\nstack traceback:\n\t...' })
  if (clients > 1) t.clientReport('10.0.0.1:50001', { ok: true, paths: ['scripts/main.lua'], ms: 6 })
  now.t += 30_000
  return t.snapshot()
}

describe('fitStatus / parseStatusJson', () => {
  it('round-trips a status that fits', () => {
    const s = sample()
    const json = fitStatus(s, MAX_FRAME_BYTES)
    expect(parseStatusJson(json)).toEqual(s)
  })

  it('cuts a status too big for one frame, and says so', () => {
    const s = sample(600) // 600 clients × 20 subscriptions of ~210 bytes: ~2.6 MB
    expect(Buffer.byteLength(JSON.stringify(s))).toBeGreaterThan(MAX_FRAME_BYTES)
    const json = fitStatus(s, MAX_FRAME_BYTES)
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(MAX_FRAME_BYTES)
    const back = parseStatusJson(json)
    expect(back.truncated).toBe(true)
    expect(back.clients.length).toBeGreaterThan(100)
    expect(back.clients[0]?.subscriptions).toHaveLength(16)
    // Even a tiny budget gives a valid document.
    const tiny = fitStatus(s, 2000)
    expect(Buffer.byteLength(tiny)).toBeLessThanOrEqual(2000)
    expect(parseStatusJson(tiny)).toMatchObject({ truncated: true, clients: [] })
  })

  it.each([
    ['not JSON', '{', /not JSON/],
    ['a list', '[]', /status is not an object/],
    ['a missing field', JSON.stringify({ ...sample(1), key: undefined }), /status\.key is not a string/],
    ['a bad transport', JSON.stringify({ ...sample(1), transport: 'quic' }), /status\.transport is not udp or tcp/],
    ['a bad client', JSON.stringify({ ...sample(1), clients: [{ remote: 1 }] }), /status\.clients\[0\]\.remote is not a string/],
    ['a bad batch action', JSON.stringify({ ...sample(1), batches: [{ ...sample(1).batches[0], changes: [{ path: 'a', action: 'explode' }] }] }), /changes\[0\]\.action/],
  ])('refuses %s as a protocol error', (_what, text, msg) => {
    expect(() => parseStatusJson(text)).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL', message: expect.stringMatching(msg) }))
  })
})

describe('formatStatus', () => {
  it('prints the header, one row per device and the recent batches', () => {
    const text = formatStatus(sample())
    const rows = text.split('\n')
    expect(rows[0]).toBe('assetsync 0.1.0 serving udp://0.0.0.0:7420, up 2 min, 40 files')
    expect(rows[1]).toBe(`server key ${'ef'.repeat(32)}`)
    expect(rows[3]).toMatch(/^DEVICE\s+VIA\s+CONNECTED\s+SENT\s+RECEIVED\s+SUBSCRIPTIONS\s+LAST RELOAD$/)
    expect(rows[4]).toMatch(/^10\.0\.0\.0:50000\s+udp\s+2 min ago\s+2\.3 MiB\s+5\.2 KiB\s+folder0\/x+…\s+FAILED: scripts\/main\.lua:12: attempt to call a nil value$/)
    expect(rows[5]).toMatch(/^10\.0\.0\.1:50001\s+tcp\s+2 min ago .* ok: 1 file in 6 ms, 30 s ago$/)
    expect(text).toContain('RECENT CHANGES (newest first)')
    expect(text).toMatch(/30 s ago\s+2\s+24 ms\s+scripts\/main\.lua, old\.txt\s+10\.0\.0\.0:50000/)
  })

  it('shows a hostile server\'s terminal escapes instead of writing them', () => {
    const s = sample(1)
    s.clients[0]!.remote = 'evil\u001b[2J\u001b]0;pwned\u0007'
    s.batches[0]!.changes[0]!.path = 'a\rb\u009bc'
    const text = formatStatus(s)
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/)
    expect(text).toContain('evil\\u001b[2J\\u001b]0;pwned\\u0007')
    expect(visible('a\nb')).toBe('a\\u000ab')
  })

  it('says when nothing is connected, nothing changed, or the status was cut', () => {
    const s = { ...sample(0), batches: [], truncated: true }
    const text = formatStatus(s)
    expect(text).toContain('no devices connected')
    expect(text).toContain('none yet')
    expect(text).toContain('the server cut this status')
  })
})
