/** The server's Prometheus series, read back through a real prom-client registry and its text format. */
import { describe, expect, it } from 'vitest'
import { Metrics } from '../../src/core/server/metrics.js'

interface Sample { name: string; labels: Record<string, string>; value: number }
interface Exposition { samples: Sample[]; types: Map<string, string>; helps: Set<string> }

/** A strict reader of the Prometheus text format (0.0.4): throws on a line it does not understand. */
function parse(text: string): Exposition {
  const out: Exposition = { samples: [], types: new Map(), helps: new Set() }
  for (const line of text.split('\n')) {
    if (line === '') continue
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line)
    if (m) {
      const [, kind, name, rest] = m as unknown as [string, string, string, string]
      if (kind === 'TYPE') {
        if (out.types.has(name)) throw new Error(`TYPE of ${name} twice`)
        out.types.set(name, rest)
      } else {
        out.helps.add(name)
      }
      continue
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string
    out.samples.push({ name: m[1] as string, labels, value: Number(m[3]) })
  }
  return out
}

function value(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  return e.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}

describe('Metrics', () => {
  it('names every series assetsync_… by the Prometheus rules, process metrics included', async () => {
    const m = new Metrics({ version: '9.9.9' })
    const e = parse(await m.text())
    expect(e.types.size).toBeGreaterThan(20)
    for (const [family, type] of e.types) {
      expect(family).toMatch(/^assetsync_[a-z0-9_]+$/)
      expect(e.helps.has(family)).toBe(true)
      if (type === 'counter') expect(family).toMatch(/_total$/)
      else expect(family).not.toMatch(/_total$/)
    }
    for (const s of e.samples) expect(s.name.startsWith('assetsync_')).toBe(true)
    for (const f of ['assetsync_process_cpu_seconds_total', 'assetsync_process_resident_memory_bytes', 'assetsync_nodejs_eventloop_lag_seconds']) {
      expect(e.types.has(f)).toBe(true)
    }
    expect(value(e, 'assetsync_build_info', { version: '9.9.9' })).toBe(1)
    // Zero series exist before anything happens.
    expect(value(e, 'assetsync_connections_total', { transport: 'udp' })).toBe(0)
    expect(value(e, 'assetsync_requests_total', { status: 'file' })).toBe(0)
  })

  it('moves with each call', async () => {
    const m = new Metrics({ version: '1', processMetrics: false })
    m.connectionOpened('udp')
    m.connectionOpened('udp')
    m.connectionOpened('tcp')
    m.connectionClosed('udp')
    m.handshakeRefused('ERR_AUTH')
    m.handshakeRefused('ERR_AUTH')
    m.request('file')
    m.request('up-to-date')
    m.request('up-to-date')
    m.request('not-found')
    m.bytes(1000, 20)
    m.bytes(24, 0)
    m.transferDone(250)
    m.transferDone(3)
    m.batchPushed(3, 40)
    m.batchPushed(1, null)
    m.subscriptions(7)
    m.subscriptions(5)
    m.error('ERR_LIMIT')
    m.report(true)
    m.report(false)
    m.report(false)
    const e = parse(await m.text())
    expect(value(e, 'assetsync_connections_total', { transport: 'udp' })).toBe(2)
    expect(value(e, 'assetsync_connections_total', { transport: 'tcp' })).toBe(1)
    expect(value(e, 'assetsync_connections_open', { transport: 'udp' })).toBe(1)
    expect(value(e, 'assetsync_handshakes_refused_total', { reason: 'ERR_AUTH' })).toBe(2)
    expect(value(e, 'assetsync_requests_total', { status: 'up-to-date' })).toBe(2)
    expect(value(e, 'assetsync_requests_total', { status: 'not-found' })).toBe(1)
    expect(value(e, 'assetsync_sent_bytes_total')).toBe(1024)
    expect(value(e, 'assetsync_received_bytes_total')).toBe(20)
    expect(value(e, 'assetsync_transfer_duration_seconds_count')).toBe(2)
    expect(value(e, 'assetsync_transfer_duration_seconds_sum')).toBeCloseTo(0.253, 6)
    expect(value(e, 'assetsync_transfer_duration_seconds_bucket', { le: '0.005' })).toBe(1)
    expect(value(e, 'assetsync_transfer_duration_seconds_bucket', { le: '0.25' })).toBe(2)
    expect(value(e, 'assetsync_change_batches_total')).toBe(2)
    expect(value(e, 'assetsync_changes_total')).toBe(4)
    expect(value(e, 'assetsync_watcher_lag_seconds_count')).toBe(1) // the null lag is not observed
    expect(value(e, 'assetsync_watcher_lag_seconds_bucket', { le: '0.05' })).toBe(1)
    expect(value(e, 'assetsync_watcher_lag_seconds_bucket', { le: '0.025' })).toBe(0)
    expect(value(e, 'assetsync_subscriptions')).toBe(5)
    expect(value(e, 'assetsync_errors_total', { code: 'ERR_LIMIT' })).toBe(1)
    expect(value(e, 'assetsync_reload_reports_total', { result: 'ok' })).toBe(1)
    expect(value(e, 'assetsync_reload_reports_total', { result: 'error' })).toBe(2)
    expect(m.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
  })

  it('reads live connections\' byte counters at scrape time and keeps them after close', async () => {
    const m = new Metrics({ version: '1', processMetrics: false })
    const conn = { bytesSent: 100, bytesReceived: 10 }
    const other = { bytesSent: 1, bytesReceived: 1 }
    const stop = m.watchBytes(conn)
    m.watchBytes(other)
    m.bytes(5, 0)
    const sent = async (): Promise<number | undefined> => value(parse(await m.text()), 'assetsync_sent_bytes_total')
    expect(await sent()).toBe(106)
    conn.bytesSent = 1000
    expect(await sent()).toBe(1006)
    stop()
    stop() // twice is once
    conn.bytesSent = 5000 // after close: no longer read
    expect(await sent()).toBe(1006)
    expect(value(parse(await m.text()), 'assetsync_received_bytes_total')).toBe(11)
  })

  it('keeps labels to fixed sets: unknown values from the wire become "other"', async () => {
    const m = new Metrics({ version: '1', processMetrics: false })
    for (let i = 0; i < 100; i++) {
      m.handshakeRefused(`ERR_${i}`)
      m.error(`x"}\n${i}`)
      m.connectionOpened(`quic${i}`)
      m.request(`weird${i}` as 'file')
    }
    const e = parse(await m.text())
    expect(value(e, 'assetsync_handshakes_refused_total', { reason: 'other' })).toBe(100)
    expect(value(e, 'assetsync_errors_total', { code: 'other' })).toBe(100)
    expect(value(e, 'assetsync_connections_total', { transport: 'other' })).toBe(100)
    expect(value(e, 'assetsync_requests_total', { status: 'other' })).toBe(100)
    expect(e.samples.filter((s) => s.name === 'assetsync_errors_total')).toHaveLength(1)
  })

  it('two servers in one process keep separate registries', async () => {
    const a = new Metrics({ version: '1' })
    const b = new Metrics({ version: '1' })
    a.request('file')
    a.request('file')
    b.request('file')
    expect(value(parse(await a.text()), 'assetsync_requests_total', { status: 'file' })).toBe(2)
    expect(value(parse(await b.text()), 'assetsync_requests_total', { status: 'file' })).toBe(1)
  })
})
