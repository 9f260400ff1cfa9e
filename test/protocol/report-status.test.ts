/**
 * The optional frames of features `report` (REPORT) and `status` (STATUS, STATUS_REPLY): their
 * caps in the codec, the sender keeping to them, which peers agree on them, the ignore rule for
 * a peer that did not, and the server answering one STATUS at a time. Golden bytes are in
 * golden-frames.ts (run by codec.test.ts and the fuzzer).
 */
import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { ProtocolError } from '../../src/errors.js'
import { MAX_PATH_BYTES, REPORT_MAX_ERROR_BYTES, REPORT_MAX_PATHS, STATUS_MAX_JSON_BYTES } from '../../src/limits.js'
import { ManualClock } from '../../src/protocol/clock.js'
import { decode, encode } from '../../src/protocol/codec.js'
import { ClientConnection, ServerConnection } from '../../src/protocol/connection.js'
import { FEATURES, IMPLEMENTED_FEATURES, MSG, type ClientMessage, type Message, type ServerMessage } from '../../src/protocol/messages.js'
import { type ProtocolOffer, negotiate, offerOf } from '../../src/protocol/negotiation.js'
import { ClientSession } from '../../src/core/server/session.js'
import type { SessionConnection } from '../../src/core/server/session-types.js'
import { MemorySource } from '../../src/core/server/memory-source.js'
import { BufferPool } from '../../src/core/fs/pool.js'
import { memoryPair } from '../helpers/memory-pair.js'
import { bytesOf, h16, h32, h8 } from './golden-frames.js'

const aHex = (n: number): string => '61'.repeat(n)

function refused(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError)
    return (err as Error).message
  }
  throw new Error('expected a ProtocolError')
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

async function openPair(client: Partial<ProtocolOffer> = {}, server: Partial<ProtocolOffer> = {}): Promise<{
  client: ClientConnection; server: ServerConnection; clientRaw: ReturnType<typeof memoryPair>['a']; fromClient: Message[]
}> {
  const clock = new ManualClock()
  const { a, b } = memoryPair()
  const c = new ClientConnection(a, { remote: 'server', clock, protocol: client })
  const s = new ServerConnection(b, { remote: 'client', clock, protocol: server })
  const fromClient: Message[] = []
  s.on('message', (m: Message) => fromClient.push(m))
  await Promise.all([s.acceptAuth(null), c.authenticate('')])
  return { client: c, server: s, clientRaw: a, fromClient }
}

describe('REPORT and STATUS_REPLY caps in the codec', () => {
  const report = (paths: number, pathBytes: number, errorBytes: number, ok = '00'): Buffer =>
    bytesOf(h8(MSG.report), ok, '00000001', h16(paths), `${h16(pathBytes)}${aHex(pathBytes)}`.repeat(paths), h16(errorBytes), aHex(errorBytes))

  it(`accepts ${REPORT_MAX_PATHS} paths and refuses ${REPORT_MAX_PATHS + 1}`, () => {
    const ok = decode(report(REPORT_MAX_PATHS, 3, 0), 'client')
    expect(ok.type === 'report' && ok.paths.length).toBe(REPORT_MAX_PATHS)
    expect(refused(() => decode(report(REPORT_MAX_PATHS + 1, 3, 0), 'client'))).toContain(`report path count is ${REPORT_MAX_PATHS + 1}, limit ${REPORT_MAX_PATHS}`)
  })

  it(`accepts an error of ${REPORT_MAX_ERROR_BYTES} bytes and a path of ${MAX_PATH_BYTES}, and refuses one byte more of either`, () => {
    const ok = decode(report(1, MAX_PATH_BYTES, REPORT_MAX_ERROR_BYTES), 'client')
    expect(ok).toMatchObject({ type: 'report', ok: false, ms: 1, error: 'a'.repeat(REPORT_MAX_ERROR_BYTES) })
    expect(encode(ok).toString('hex')).toBe(report(1, MAX_PATH_BYTES, REPORT_MAX_ERROR_BYTES).toString('hex'))
    expect(refused(() => decode(report(1, 3, REPORT_MAX_ERROR_BYTES + 1), 'client'))).toContain(`limit ${REPORT_MAX_ERROR_BYTES}`)
    expect(refused(() => decode(report(1, MAX_PATH_BYTES + 1, 0), 'client'))).toContain(`limit ${MAX_PATH_BYTES}`)
  })

  it('refuses an ok flag other than 0 or 1, and a report from the server', () => {
    expect(refused(() => decode(report(0, 0, 0, '02'), 'client'))).toMatch(/must be 0 or 1/)
    expect(refused(() => decode(report(0, 0, 0), 'server'))).toMatch(/unknown frame type|not valid from the server/)
    expect(refused(() => decode(bytesOf(h8(MSG['status-reply']), '00000001', '00000000'), 'client'))).toMatch(/not valid from the client|unknown/)
  })

  it(`accepts a status JSON of ${STATUS_MAX_JSON_BYTES} bytes, refuses one byte more before reading it, and refuses bad UTF-8`, () => {
    const reply = (n: number, body = aHex(n)): Buffer => bytesOf(h8(MSG['status-reply']), '00000007', h32(n), body)
    const ok = decode(reply(STATUS_MAX_JSON_BYTES), 'server')
    expect(ok.type === 'status-reply' && ok.json.length).toBe(STATUS_MAX_JSON_BYTES)
    expect(refused(() => decode(reply(STATUS_MAX_JSON_BYTES + 1, ''), 'server'))).toContain(`is ${STATUS_MAX_JSON_BYTES + 1} bytes, limit ${STATUS_MAX_JSON_BYTES}`)
    expect(refused(() => decode(reply(2, 'c328'), 'server'))).toMatch(/not valid UTF-8/)
  })
})

describe('features report and status', () => {
  it('are implemented, so offered by default, and agreed by two peers of this build', () => {
    expect(FEATURES.report.implemented && FEATURES.status.implemented).toBe(true)
    const both = (1 << FEATURES.report.bit) | (1 << FEATURES.status.bit)
    expect(IMPLEMENTED_FEATURES & both).toBe(both)
    expect(negotiate(offerOf(), offerOf())?.features).toBe(IMPLEMENTED_FEATURES)
    // A protocol-2 peer agrees on nothing.
    expect(negotiate(offerOf(), { minVersion: 2, maxVersion: 2, features: 0 })).toEqual({ version: 2, features: 0 })
  })

  it('a sender keeps a report to the caps: first paths that fit, error cut on a character boundary, whole milliseconds', async () => {
    const { client, fromClient } = await openPair()
    expect(client.has('report')).toBe(true)
    const paths = ['x'.repeat(MAX_PATH_BYTES + 1), ...Array.from({ length: REPORT_MAX_PATHS + 40 }, (_, i) => `p/${i}.lua`)]
    const error = `main.lua:1: ${'é'.repeat(REPORT_MAX_ERROR_BYTES)}`
    client.send({ type: 'report', ok: false, ms: 3.7, paths, error })
    client.send({ type: 'report', ok: true, ms: -5, paths: [], error: null })
    client.send({ type: 'report', ok: true, ms: Number.NaN, paths: [], error: null })
    await flush()
    expect(fromClient).toHaveLength(3)
    const [first, second, third] = fromClient as Extract<ClientMessage, { type: 'report' }>[]
    expect(first?.paths).toEqual(paths.slice(1, REPORT_MAX_PATHS + 1))
    expect(Buffer.byteLength(first?.error ?? '')).toBeLessThanOrEqual(REPORT_MAX_ERROR_BYTES)
    expect(first?.error).toMatch(/^main\.lua:1: (é)+…$/)
    expect([first?.ms, second?.ms, third?.ms]).toEqual([4, 0, 0])
  })

  it('is never sent to a peer that did not agree: send() refuses it, and a server skips one that arrives anyway', async () => {
    const { client, server, clientRaw, fromClient } = await openPair({}, { features: 0 })
    expect([client.has('report'), client.has('status')]).toEqual([false, false])
    expect(() => client.send({ type: 'report', ok: true, ms: 1, paths: [], error: null })).toThrow(RangeError)
    expect(() => client.send({ type: 'status', id: 1 })).toThrow(RangeError)
    clientRaw.write(encode({ type: 'report', ok: false, ms: 1, paths: ['a'], error: 'boom' }))
    clientRaw.write(encode({ type: 'status', id: 9 }))
    clientRaw.write(encode({ type: 'cancel', id: 7 }))
    await flush()
    expect(server.skippedFrames).toBe(2)
    expect(fromClient).toEqual([{ type: 'cancel', id: 7 }])
    expect(server.isOpen).toBe(true)
  })
})

/**
 * A SessionConnection whose send buffer is full until the test says it drained: the one thing
 * a loopback socket cannot be made to do on demand.
 */
class BackedUpConnection extends EventEmitter implements SessionConnection {
  readonly remote = '10.0.0.5:4000'
  closed = false
  readonly bytesSent = 0
  readonly bytesReceived = 0
  readonly credit = 1 << 30
  readonly sent: ServerMessage[] = []
  #drain: (() => void) | null = null
  send(msg: ServerMessage): boolean { this.sent.push(msg); return false }
  drained(): Promise<void> { return new Promise((resolve) => { this.#drain = resolve }) }
  drain(): void { this.#drain?.(); this.#drain = null }
  credited(): Promise<void> { return Promise.resolve() }
  fail(): void { this.closed = true }
}

describe('the server answers one STATUS at a time', () => {
  it('refuses a second STATUS with ERR_LIMIT while the first reply is queued, and answers once it drained', async () => {
    const conn = new BackedUpConnection()
    const session = new ClientSession(conn, new MemorySource({ 'a.txt': 'a' }), new BufferPool(1, 16))
    const caps: number[] = []
    session.statusJson = (max) => { caps.push(max); return '{"ok":true}' }
    const ask = (id: number): void => { conn.emit('message', { type: 'status', id }) }
    ask(1)
    ask(2)
    expect(conn.sent).toEqual([
      { type: 'status-reply', id: 1, json: '{"ok":true}' },
      { type: 'error', id: 2, code: 'ERR_LIMIT', message: expect.stringMatching(/one status query at a time/) },
    ])
    conn.drain()
    await flush()
    ask(3)
    expect(conn.sent.at(-1)).toEqual({ type: 'status-reply', id: 3, json: '{"ok":true}' })
    expect(caps).toEqual([STATUS_MAX_JSON_BYTES, STATUS_MAX_JSON_BYTES])
  })
})
