/**
 * Feature `priority`, the connection rules (docs/protocol.md §4.2): a client with a background
 * request open grants credit in PRIORITY_CREDIT_STEP_BYTES steps, REPRIORITIZE moves a request
 * between classes; and the real server against a client that stops consuming: a background
 * transfer gets exactly BACKGROUND_WINDOW_BYTES out (a normal one the whole window), a blocking
 * file still comes at once, and everything arrives once the client consumes again.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetServer } from '../../src/core/server/server.js'
import { BACKGROUND_FRAME_BYTES, BACKGROUND_WINDOW_BYTES, CHUNK_SIZE, CREDIT_UPDATE_BYTES, FLOW_WINDOW_BYTES, PRIORITY_CREDIT_STEP_BYTES } from '../../src/limits.js'
import { ManualClock } from '../../src/protocol/clock.js'
import { decode } from '../../src/protocol/codec.js'
import { ClientConnection, ServerConnection } from '../../src/protocol/connection.js'
import { dial } from '../../src/protocol/endpoint.js'
import { type Message, type RequestPriority, featureBits } from '../../src/protocol/messages.js'
import { Cleanup, LOOPBACK, waitFor, withTimeout } from '../helpers/common.js'
import { memoryPair } from '../helpers/memory-pair.js'

const flush = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

describe('connection: credit steps and REPRIORITIZE', () => {
  async function openPair(): Promise<{ client: ClientConnection; fromClient: Message[] }> {
    const clock = new ManualClock()
    const { a, b } = memoryPair()
    const client = new ClientConnection(a, { remote: 'server', clock, protocol: { features: featureBits(['priority']) } })
    const server = new ServerConnection(b, { remote: 'client', clock, protocol: { features: featureBits(['priority']) } })
    const fromClient: Message[] = []
    b.on('data', (frame: Buffer) => { if (server.isOpen) fromClient.push(decode(frame, 'client')) })
    await Promise.all([server.acceptAuth(null), client.authenticate('')])
    expect(client.has('priority')).toBe(true)
    return { client, fromClient }
  }
  const credits = (m: Message[]): number[] => m.flatMap((x) => (x.type === 'credit' ? [x.bytes] : []))
  const ask = (client: ClientConnection, priority: RequestPriority) =>
    client.request((id) => ({ type: 'priority-request', id, priority, path: 'x', haveHash: null }), () => false, { holdChunks: true })

  it('grants every PRIORITY_CREDIT_STEP_BYTES while a background request is open, CREDIT_UPDATE_BYTES otherwise', async () => {
    const { client, fromClient } = await openPair()
    client.release(PRIORITY_CREDIT_STEP_BYTES) // nothing in the background: the big step
    await flush()
    expect(credits(fromClient)).toEqual([])
    const bg = ask(client, 'background')
    bg.done.catch(() => {})
    client.release(PRIORITY_CREDIT_STEP_BYTES)
    await flush()
    expect(credits(fromClient)).toEqual([2 * PRIORITY_CREDIT_STEP_BYTES])

    // Raised to blocking: no background request is open any more.
    client.reprioritize(bg.id, 'blocking')
    client.release(PRIORITY_CREDIT_STEP_BYTES)
    await flush()
    expect(fromClient.filter((m) => m.type === 'reprioritize')).toEqual([{ type: 'reprioritize', id: bg.id, priority: 'blocking' }])
    expect(credits(fromClient)).toEqual([2 * PRIORITY_CREDIT_STEP_BYTES])
    client.release(CREDIT_UPDATE_BYTES - PRIORITY_CREDIT_STEP_BYTES)
    await flush()
    expect(credits(fromClient)).toEqual([2 * PRIORITY_CREDIT_STEP_BYTES, CREDIT_UPDATE_BYTES])

    // A background request that ends (cancelled) stops the small steps too.
    const bg2 = ask(client, 'background')
    bg2.done.catch(() => {})
    client.cancel(bg2.id, new Error('not needed'))
    client.release(PRIORITY_CREDIT_STEP_BYTES)
    await flush()
    expect(credits(fromClient)).toHaveLength(2)
    client.reprioritize(bg2.id, 'background') // no longer open: nothing is sent
    await flush()
    expect(fromClient.filter((m) => m.type === 'reprioritize')).toHaveLength(1)
  })
})

describe('the server: a background transfer stays within its window (real server, port 0)', () => {
  const cleanup = new Cleanup()
  afterEach(() => cleanup.run())
  let dir: string
  let data: Buffer
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'assetsync-prio-'))
    data = randomBytes(2 * FLOW_WINDOW_BYTES + 777)
    await writeFile(join(dir, 'big.bin'), data)
    await writeFile(join(dir, 'small.lua'), 'return 1')
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  async function connect(): Promise<ClientConnection> {
    const server = await AssetServer.start({ root: dir, configDir: join(dir, '.cfg'), host: LOOPBACK, port: 0, transport: 'udp', watch: false })
    cleanup.add(() => server.close())
    const conn = await dial({ transport: 'udp', host: LOOPBACK, port: server.address().port, connectTimeoutMs: 5000 })
    cleanup.add(() => conn.destroy())
    expect(conn.has('priority')).toBe(true)
    return conn
  }

  /** Requests big.bin with `priority` and holds every chunk (consumes nothing) until told. */
  function hold(conn: ClientConnection, priority: RequestPriority): { received: () => number; largest: () => number; done: Promise<void>; consume: () => void } {
    let received = 0
    let released = 0
    let largest = 0
    const req = conn.request((id) => ({ type: 'priority-request', id, priority, path: 'big.bin', haveHash: null }), (r) => {
      if (r.type === 'response') return false
      if (r.type !== 'chunk') throw new Error(`unexpected ${r.type}`)
      received += r.data.byteLength
      largest = Math.max(largest, r.data.byteLength)
      return r.final
    }, { holdChunks: true })
    return {
      received: () => received,
      largest: () => largest,
      done: req.done,
      consume: () => {
        const drain = setInterval(() => { conn.release(received - released); released = received }, 5)
        cleanup.add(() => clearInterval(drain))
      },
    }
  }

  it('a client that stops consuming gets exactly BACKGROUND_WINDOW_BYTES of a background transfer; a blocking file still comes; then the rest', async () => {
    const conn = await connect()
    const bg = hold(conn, 'background')
    await waitFor(() => bg.received() === BACKGROUND_WINDOW_BYTES, 10_000, 'the background window')
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(bg.received()).toBe(BACKGROUND_WINDOW_BYTES)
    expect(BACKGROUND_WINDOW_BYTES % CHUNK_SIZE).toBe(0)
    // The window holds a turn (one CHUNK_SIZE read) past a credit step not yet granted back.
    expect(BACKGROUND_WINDOW_BYTES).toBeGreaterThan(CHUNK_SIZE + PRIORITY_CREDIT_STEP_BYTES)
    expect(CHUNK_SIZE % BACKGROUND_FRAME_BYTES).toBe(0)
    // Background data comes in small frames (the client credits a frame at a time).
    expect(bg.largest()).toBe(BACKGROUND_FRAME_BYTES)

    // A blocking request is not held back by the stalled background one.
    let got = 0
    await withTimeout(conn.request((id) => ({ type: 'priority-request', id, priority: 'blocking', path: 'small.lua', haveHash: null }), (r) => {
      if (r.type === 'chunk') { got += r.data.byteLength; return r.final }
      return false
    }).done, 5000, 'the blocking file')
    expect(got).toBe(8)

    bg.consume()
    await withTimeout(bg.done, 30_000, 'the rest of the background file')
    expect(bg.received()).toBe(data.length)
  })

  it('a normal request (a plain REQUEST is normal too) still gets the whole FLOW_WINDOW_BYTES', async () => {
    const conn = await connect()
    const normal = hold(conn, 'normal')
    await waitFor(() => normal.received() === FLOW_WINDOW_BYTES, 10_000, 'the whole window')
    normal.consume()
    await withTimeout(normal.done, 30_000, 'the rest')
    expect(normal.received()).toBe(data.length)
    expect(normal.largest()).toBe(CHUNK_SIZE)
  })
})
