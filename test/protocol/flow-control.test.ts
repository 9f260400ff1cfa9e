/**
 * Flow control (CREDIT frames, FLOW_WINDOW_BYTES): the server never has more CHUNK data out than
 * the client has room for, so a client's memory is bounded even over udx, which ignores pause().
 * First the Connection rules over an in-memory pair, then the real server against a client that
 * stops consuming, over UDP and TCP.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hashBytes } from '../../src/core/fs/hash.js'
import { AssetServer } from '../../src/core/server/server.js'
import type { AssetSyncError } from '../../src/errors.js'
import { CHUNK_SIZE, CREDIT_UPDATE_BYTES, FLOW_WINDOW_BYTES } from '../../src/limits.js'
import { ManualClock } from '../../src/protocol/clock.js'
import { decode, encode } from '../../src/protocol/codec.js'
import { ClientConnection, ServerConnection } from '../../src/protocol/connection.js'
import { dial } from '../../src/protocol/endpoint.js'
import { type ChunkMsg, type Message, PROTOCOL_VERSION } from '../../src/protocol/messages.js'
import { memoryPair } from '../helpers/memory-pair.js'
import { Cleanup, LOOPBACK, waitFor, withTimeout } from '../helpers/common.js'

const TOKEN = 'flow'
const flush = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

async function openPair(): Promise<{ client: ClientConnection; server: ServerConnection; fromClient: Message[] }> {
  const clock = new ManualClock()
  const { a, b } = memoryPair()
  const client = new ClientConnection(a, { remote: 'server', clock })
  const server = new ServerConnection(b, { remote: 'client', clock })
  const fromClient: Message[] = []
  // CREDIT frames are consumed by the Connection; seeing them needs the raw side.
  b.on('data', (frame: Buffer) => { if (server.isOpen) fromClient.push(decode(frame, 'client')) })
  await Promise.all([server.acceptAuth(TOKEN), client.authenticate(TOKEN)])
  return { client, server, fromClient }
}

const chunk = (id: number, offset: number, bytes: number, final = false): ChunkMsg =>
  ({ type: 'chunk', id, offset, final, data: Buffer.alloc(bytes) })

describe('Connection flow control', () => {
  it('a server starts with FLOW_WINDOW_BYTES of credit, and a CHUNK past the credit is a local bug', async () => {
    // The client is a raw peer that never grants credit back.
    const { a, b } = memoryPair()
    const server = new ServerConnection(b, { remote: 'client', clock: new ManualClock() })
    const opened = server.acceptAuth(TOKEN)
    a.write(encode({ type: 'auth', version: PROTOCOL_VERSION, token: TOKEN }))
    await opened
    expect(server.credit).toBe(FLOW_WINDOW_BYTES)
    const credit = FLOW_WINDOW_BYTES
    for (let off = 0; off < credit; off += CHUNK_SIZE) {
      expect(server.credit).toBe(credit - off)
      server.send(chunk(1, off, CHUNK_SIZE))
    }
    expect(server.credit).toBe(0)
    expect(() => server.send(chunk(1, credit, 1))).toThrow(RangeError)
    expect(server.send(chunk(1, credit, 0, true))).toBe(true) // an empty final chunk costs nothing
  })

  it('held CHUNK bytes go back as CREDIT only when released, in CREDIT_UPDATE_BYTES steps; then the server may send again', async () => {
    const { client, server, fromClient } = await openPair()
    let received = 0
    const req = client.request((id) => ({ type: 'request', id, path: 'big', haveHash: null }), (r) => {
      if (r.type === 'chunk') received += r.data.byteLength
      return r.type === 'chunk' && r.final
    }, { holdChunks: true })
    await flush()
    let off = 0
    while (server.credit >= CHUNK_SIZE) { server.send(chunk(req.id, off, CHUNK_SIZE)); off += CHUNK_SIZE }
    await flush()
    expect(received).toBe(FLOW_WINDOW_BYTES)
    let sent = false
    const next = server.sendChunk(chunk(req.id, off, CHUNK_SIZE, true)).then(() => { sent = true })
    await flush()
    expect(sent).toBe(false) // nothing consumed yet: the server waits

    client.release(CREDIT_UPDATE_BYTES - 1)
    await flush()
    expect(fromClient.filter((m) => m.type === 'credit')).toEqual([])
    expect(sent).toBe(false)

    client.release(1)
    await flush()
    expect(fromClient.filter((m) => m.type === 'credit')).toEqual([{ type: 'credit', bytes: CREDIT_UPDATE_BYTES }])
    await next
    expect(sent).toBe(true)
    await req.done
    expect(received).toBe(FLOW_WINDOW_BYTES + CHUNK_SIZE)
    expect(server.credit).toBe(CREDIT_UPDATE_BYTES - CHUNK_SIZE)
  })

  it('without holdChunks, and for late chunks of a cancelled request, credit comes back by itself', async () => {
    const { client, server } = await openPair()
    let received = 0
    const total = 3 * FLOW_WINDOW_BYTES
    const req = client.request((id) => ({ type: 'request', id, path: 'big', haveHash: null }), (r) => {
      if (r.type === 'chunk') received += r.data.byteLength
      return r.type === 'chunk' && r.final
    })
    await flush()
    for (let off = 0; off < total; off += CHUNK_SIZE) await server.sendChunk(chunk(req.id, off, CHUNK_SIZE, off + CHUNK_SIZE === total))
    await req.done
    expect(received).toBe(total)

    // A cancelled request's late chunks are dropped, and their bytes are not lost to the window.
    const held = client.request((id) => ({ type: 'request', id, path: 'x', haveHash: null }), () => false, { holdChunks: true })
    held.done.catch(() => {})
    client.cancel(held.id, new Error('test'))
    for (let off = 0; off < total; off += CHUNK_SIZE) await server.sendChunk(chunk(held.id, off, CHUNK_SIZE))
    expect(client.isOpen).toBe(true)
  })

  it('a server that sends past the window is refused with ERR_PROTOCOL (a malicious server cannot fill our memory)', async () => {
    const clock = new ManualClock()
    const { a, b } = memoryPair()
    const client = new ClientConnection(a, { remote: 'evil', clock })
    const fromClient: Message[] = []
    b.on('data', (frame: Buffer) => fromClient.push(decode(frame, 'client')))
    const auth = client.authenticate('')
    await flush()
    b.write(encode({ type: 'auth-ok', version: (fromClient[0] as { version: number }).version }))
    await auth
    const req = client.request((id) => ({ type: 'request', id, path: 'big', haveHash: null }), () => false, { holdChunks: true })
    const outcome = req.done.then(() => null, (err: AssetSyncError) => err)
    await flush()
    for (let off = 0; off < FLOW_WINDOW_BYTES; off += CHUNK_SIZE) b.write(encode(chunk(req.id, off, CHUNK_SIZE)))
    await flush()
    expect(client.isOpen).toBe(true)
    b.write(encode(chunk(req.id, FLOW_WINDOW_BYTES, 1)))
    await flush()
    expect(client.closed).toBe(true)
    expect(client.closeError?.code).toBe('ERR_PROTOCOL')
    expect(client.closeError?.message).toMatch(/flow-control window/)
    expect((await outcome)?.code).toBe('ERR_PROTOCOL')
    // A client has no ERROR frame to send (it is server → client only); it just closes.
    expect(fromClient.map((m) => m.type)).toEqual(['auth', 'request'])
  })
})

describe('the server honours the window (real server, port 0)', () => {
  const cleanup = new Cleanup()
  afterEach(() => cleanup.run())
  let dir: string
  let data: Buffer
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'assetsync-flow-'))
    data = randomBytes(3 * FLOW_WINDOW_BYTES + 12_345)
    await writeFile(join(dir, 'big.bin'), data)
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it.each(['udp', 'tcp'] as const)('%s: a client that stops consuming receives exactly FLOW_WINDOW_BYTES, then the rest once it releases', async (transport) => {
    const server = await AssetServer.start({ root: join(dir), configDir: join(dir, '.cfg'), host: LOOPBACK, port: 0, transport, watch: false })
    cleanup.add(() => server.close())
    const conn = await dial({ transport, host: LOOPBACK, port: server.address().port, connectTimeoutMs: 5000 })
    cleanup.add(() => conn.destroy())
    const parts: Buffer[] = []
    let received = 0
    let expectedHash: Uint8Array | null = null
    const req = conn.request((id) => ({ type: 'request', id, path: 'big.bin', haveHash: null }), (r) => {
      if (r.type === 'response' && r.status === 'file') { expectedHash = r.hash; return false }
      if (r.type !== 'chunk') throw new Error(`unexpected ${r.type}`)
      parts.push(Buffer.from(r.data))
      received += r.data.byteLength
      return r.final
    }, { holdChunks: true })

    await waitFor(() => received === FLOW_WINDOW_BYTES, 10_000, 'the first window')
    // The server is now out of credit. Give it time to (wrongly) send more: it must not.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(received).toBe(FLOW_WINDOW_BYTES)
    expect(conn.isOpen).toBe(true)

    // Consume as we go from now on: everything arrives, whole.
    let released = 0
    const consume = (): void => { conn.release(received - released); released = received }
    consume()
    const drain = setInterval(consume, 5)
    cleanup.add(() => clearInterval(drain))
    await withTimeout(req.done, 20_000, 'the rest of the file')
    const got = Buffer.concat(parts)
    expect(got.length).toBe(data.length)
    expect(got.equals(data)).toBe(true)
    expect(Buffer.from(expectedHash as unknown as Uint8Array).equals(hashBytes(data))).toBe(true)
  })
})
