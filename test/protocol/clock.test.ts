/**
 * ManualClock, and every timer of Connection driven by it: keepalive, idle timeout, request
 * timeout, close. No test sleeps; frames cross an in-memory pair between clock steps.
 */
import type { Duplex } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { AssetSyncError } from '../../src/errors.js'
import {
  IDLE_TIMEOUT_MS, KEEPALIVE_MS, PORT_PROBE_INTERVAL_MS, REQUEST_TIMEOUT_MS, SUSPECT_MS, TIMER_TICK_MS,
} from '../../src/limits.js'
import { type Clock, ManualClock } from '../../src/protocol/clock.js'
import { decode, encode } from '../../src/protocol/codec.js'
import { ClientConnection, type Connection, type ConnectionOptions, ServerConnection } from '../../src/protocol/connection.js'
import { PROTOCOL_VERSION, type Message, type ReplyMessage, type Sender } from '../../src/protocol/messages.js'
import { memoryPair } from '../helpers/memory-pair.js'

describe('ManualClock', () => {
  it('moves only when advanced, and fires a one-shot timer once, at its due time', () => {
    const clock = new ManualClock()
    const fired: number[] = []
    clock.after(100, () => fired.push(clock.now()))
    expect(clock.now()).toBe(0)
    clock.advance(99)
    expect(fired).toEqual([])
    expect(clock.now()).toBe(99)
    clock.advance(1)
    expect(fired).toEqual([100])
    clock.advance(1000)
    expect(fired).toEqual([100])
    expect(clock.now()).toBe(1100)
  })

  it('fires a repeating timer at every multiple within one advance, until cancelled', () => {
    const clock = new ManualClock()
    const fired: number[] = []
    const cancel = clock.every(250, () => fired.push(clock.now()))
    clock.advance(1000)
    expect(fired).toEqual([250, 500, 750, 1000])
    cancel()
    clock.advance(1000)
    expect(fired).toHaveLength(4)
  })

  it('runs timers in due order (ties in creation order), including ones scheduled while advancing', () => {
    const clock = new ManualClock()
    const log: string[] = []
    clock.after(30, () => log.push('c@30'))
    clock.after(10, () => {
      log.push('a@10')
      clock.after(5, () => log.push(`nested@${clock.now()}`))
    })
    clock.after(10, () => log.push('b@10'))
    const cancelled = clock.after(20, () => log.push('never'))
    cancelled()
    clock.advance(30)
    expect(log).toEqual(['a@10', 'b@10', 'nested@15', 'c@30'])
  })

  it('stall(ms): nothing fires meanwhile, then each due timer once, a repeating one rescheduled from then', () => {
    const clock = new ManualClock()
    const fired: string[] = []
    clock.every(250, () => fired.push(`tick@${clock.now()}`))
    clock.after(100, () => fired.push(`once@${clock.now()}`))
    clock.after(9000, () => fired.push('later'))
    clock.stall(5000)
    expect(fired).toEqual(['once@5000', 'tick@5000'])
    clock.advance(500)
    expect(fired).toEqual(['once@5000', 'tick@5000', 'tick@5250', 'tick@5500'])
  })
})

// --- Connection timers ------------------------------------------------------------------------------

const TOKEN = 's3cret'

/** Lets queued stream events run (frames cross the pair) without touching the clock. */
async function flush(): Promise<void> {
  for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

/** Advances the clock tick by tick for `ms`, letting frames flow after every tick. */
async function run(clock: ManualClock, ms: number, until?: () => boolean): Promise<void> {
  const end = clock.now() + ms
  while (clock.now() < end && !until?.()) {
    clock.advance(Math.min(TIMER_TICK_MS, end - clock.now()))
    await flush()
  }
}

/** Tracks a promise's outcome without leaving a rejection unhandled. */
function track(p: Promise<void>): { state: 'pending' | 'resolved' | 'rejected'; error: unknown } {
  const t: { state: 'pending' | 'resolved' | 'rejected'; error: unknown } = { state: 'pending', error: null }
  p.then(() => { t.state = 'resolved' }, (err: unknown) => { t.state = 'rejected'; t.error = err })
  return t
}

/** Records every 'close' of a connection with the clock time it happened at. */
function closes(conn: Connection, clock: ManualClock): { at: number; err: AssetSyncError | null }[] {
  const seen: { at: number; err: AssetSyncError | null }[] = []
  conn.on('close', (err: AssetSyncError | null) => seen.push({ at: clock.now(), err }))
  return seen
}

type Side<R extends Sender> = R extends 'client' ? ClientConnection : ServerConnection

/** A connection (client or server side) whose peer is a raw stream the test drives by hand. */
function withRawPeer<R extends Sender>(role: R, opts: Partial<ConnectionOptions> = {}): {
  clock: ManualClock; conn: Side<R>; raw: Duplex; received: Message[]; send: (msg: Message) => void
} {
  const clock = new ManualClock()
  const { a, b } = memoryPair()
  const o = { remote: 'peer', clock, ...opts }
  const conn = (role === 'client' ? new ClientConnection(a, o) : new ServerConnection(a, o)) as Side<R>
  const received: Message[] = []
  b.on('data', (frame: Buffer) => received.push(decode(frame, role)))
  return { clock, conn, raw: b, received, send: (msg) => { b.write(encode(msg)) } }
}

/** A client and a server Connection over one in-memory pair, authenticated and open. */
async function openPair(opts: Partial<ConnectionOptions> = {}): Promise<{
  clock: ManualClock; client: ClientConnection; server: ServerConnection; fromClient: Message[]; cut: () => void; clientRaw: Duplex; serverRaw: Duplex
}> {
  const clock = new ManualClock()
  const { a, b, cut } = memoryPair()
  const client = new ClientConnection(a, { remote: 'server', clock, ...opts })
  const server = new ServerConnection(b, { remote: 'client', clock, ...opts })
  const fromClient: Message[] = []
  server.on('message', (msg: Message) => fromClient.push(msg))
  await Promise.all([server.acceptAuth(TOKEN), client.authenticate(TOKEN)])
  expect(client.isOpen && server.isOpen).toBe(true)
  return { clock, client, server, fromClient, cut, clientRaw: a, serverRaw: b }
}

const request = (conn: ClientConnection, onReply: (r: ReplyMessage) => boolean = () => true): { id: number; done: Promise<void> } =>
  conn.request((id) => ({ type: 'request', id, path: 'a.txt', haveHash: null }), onReply)

describe('Connection keepalive and idle timeout (ManualClock)', () => {
  it('sends a PING after KEEPALIVE_MS without sending anything, and not before', async () => {
    const { clock, conn, received } = withRawPeer('client')
    await run(clock, KEEPALIVE_MS - 1)
    expect(received).toEqual([])
    await run(clock, TIMER_TICK_MS)
    expect(received).toEqual([{ type: 'ping' }])

    // Any frame sent counts as traffic: the next PING waits a full KEEPALIVE_MS after it.
    conn.send({ type: 'cancel', id: 1 })
    await run(clock, KEEPALIVE_MS - 1)
    expect(received).toEqual([{ type: 'ping' }, { type: 'cancel', id: 1 }])
    await run(clock, TIMER_TICK_MS)
    expect(received).toEqual([{ type: 'ping' }, { type: 'cancel', id: 1 }, { type: 'ping' }])
    conn.destroy()
  })

  it('closes with ERR_CONNECTION_LOST after IDLE_TIMEOUT_MS without inbound data, within one tick of it', async () => {
    const { clock, conn } = withRawPeer('client')
    const seen = closes(conn, clock)
    await run(clock, IDLE_TIMEOUT_MS - 1)
    expect(conn.closed).toBe(false)
    await run(clock, IDLE_TIMEOUT_MS + 5000, () => conn.closed)
    expect(seen).toHaveLength(1)
    const [c] = seen
    expect(c?.err?.code).toBe('ERR_CONNECTION_LOST')
    expect(c?.at).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS)
    expect(c?.at).toBeLessThanOrEqual(IDLE_TIMEOUT_MS + TIMER_TICK_MS)
    expect(conn.closeError).toBe(c?.err)
  })

  it('counts any inbound frame, a PING included, as a sign of life', async () => {
    const { clock, conn, send } = withRawPeer('server')
    const seen = closes(conn, clock)
    await run(clock, IDLE_TIMEOUT_MS - TIMER_TICK_MS)
    send({ type: 'ping' })
    await flush()
    const lastHeard = clock.now()
    await run(clock, IDLE_TIMEOUT_MS - TIMER_TICK_MS)
    expect(conn.closed).toBe(false)
    await run(clock, IDLE_TIMEOUT_MS + 5000, () => conn.closed)
    expect(seen[0]?.err?.code).toBe('ERR_CONNECTION_LOST')
    expect((seen[0]?.at ?? 0) - lastHeard).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS)
    expect((seen[0]?.at ?? 0) - lastHeard).toBeLessThanOrEqual(IDLE_TIMEOUT_MS + TIMER_TICK_MS)
  })

  it('keeps a quiet but healthy pair open with PINGs, and both ends notice a vanished peer within the idle timeout', async () => {
    const { clock, client, server, cut } = await openPair()
    const clientCloses = closes(client, clock)
    const serverCloses = closes(server, clock)
    await run(clock, 60_000)
    expect(client.isOpen && server.isOpen).toBe(true)

    cut()
    const cutAt = clock.now()
    await run(clock, IDLE_TIMEOUT_MS + 5000, () => client.closed && server.closed)
    for (const seen of [clientCloses, serverCloses]) {
      expect(seen).toHaveLength(1)
      expect(seen[0]?.err?.code).toBe('ERR_CONNECTION_LOST')
      expect((seen[0]?.at ?? Infinity) - cutAt).toBeLessThanOrEqual(IDLE_TIMEOUT_MS + TIMER_TICK_MS)
    }
  })

  it('does not time out a connection we paused ourselves (slow consumer), and resumes the watch on resume()', async () => {
    const { clock, conn } = withRawPeer('client')
    conn.pause()
    await run(clock, 3 * IDLE_TIMEOUT_MS)
    expect(conn.closed).toBe(false)
    conn.resume()
    const resumedAt = clock.now()
    await run(clock, IDLE_TIMEOUT_MS + 5000, () => conn.closed)
    expect(conn.closeError?.code).toBe('ERR_CONNECTION_LOST')
    expect(clock.now() - resumedAt).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS)
  })

  it('runs one repeating timer, stops it on close, and sends nothing afterwards', async () => {
    // A clock that counts live repeating timers, to see the connection's tick being cleared.
    const clock = new ManualClock()
    let live = 0
    const counting: Clock = {
      now: () => clock.now(),
      after: (ms, fn) => clock.after(ms, fn),
      every: (ms, fn) => {
        live++
        const cancel = clock.every(ms, fn)
        let done = false
        return () => { if (!done) { done = true; live--; cancel() } }
      },
    }
    const { a, b } = memoryPair()
    const received: unknown[] = []
    b.on('data', (frame: Buffer) => received.push(frame))
    const conn = new ClientConnection(a, { remote: 'peer', clock: counting })
    expect(live).toBe(1)
    conn.close()
    expect(live).toBe(0)
    await run(clock, 3 * KEEPALIVE_MS)
    expect(received).toEqual([])
    expect(conn.closed).toBe(true)
  })
})

describe('Connection liveness: stalls, transport activity, port probes (issue 14, ManualClock)', () => {
  it("a stall of our own loop is not the peer's silence: the late tick judges nothing, and what was read after it counts", async () => {
    const { clock, conn, send } = withRawPeer('client')
    const seen = closes(conn, clock)
    await run(clock, KEEPALIVE_MS)
    // Our loop is blocked far past the idle timeout; the late tick runs before the socket is read.
    clock.stall(IDLE_TIMEOUT_MS + 10_000)
    expect(conn.closed).toBe(false)
    send({ type: 'ping' }) // what the peer sent meanwhile, read in the poll after the tick
    await flush()
    await run(clock, IDLE_TIMEOUT_MS - TIMER_TICK_MS)
    expect(seen).toEqual([])
  })

  it('after a stall of our own, a peer that is really silent is judged on the time our loop ran', async () => {
    const { clock, conn } = withRawPeer('client')
    const seen = closes(conn, clock)
    await run(clock, KEEPALIVE_MS)
    clock.stall(3 * IDLE_TIMEOUT_MS)
    const resumedAt = clock.now()
    await run(clock, IDLE_TIMEOUT_MS + 5000, () => conn.closed)
    expect(seen[0]?.err?.code).toBe('ERR_CONNECTION_LOST')
    // Silent for KEEPALIVE_MS before the stall, the rest after it: the stall itself is not counted.
    const after = (seen[0]?.at ?? 0) - resumedAt
    expect(after).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - KEEPALIVE_MS - TIMER_TICK_MS)
    expect(after).toBeLessThanOrEqual(IDLE_TIMEOUT_MS - KEEPALIVE_MS + TIMER_TICK_MS)
  })

  it('a loop late on every tick (a starved CPU) still finds a silent peer: only every other late tick is credited', async () => {
    const { clock, conn } = withRawPeer('client')
    const seen = closes(conn, clock)
    // Every tick comes 1 s late; half of that lateness is credited.
    while (!conn.closed && clock.now() < 10 * IDLE_TIMEOUT_MS) {
      clock.stall(TIMER_TICK_MS + 1000)
      await flush()
    }
    expect(seen[0]?.err?.code).toBe('ERR_CONNECTION_LOST')
    expect(seen[0]?.at).toBeGreaterThan(IDLE_TIMEOUT_MS)
    expect(seen[0]?.at).toBeLessThan(2 * IDLE_TIMEOUT_MS)
  })

  it('a late tick (our loop stalled) does not time out a request whose reply waits to be read', async () => {
    const { clock, client, server } = await openPair()
    const req = request(client)
    const t = track(req.done)
    await flush()
    clock.stall(REQUEST_TIMEOUT_MS + 5000)
    await flush()
    expect(t.state).toBe('pending')
    server.send({ type: 'response', id: req.id, status: 'not-found', reason: 'late but here' })
    await flush()
    expect(t.state).toBe('resolved')
    client.destroy()
  })

  it('transport activity (over UDP any udx packet, ACKs included) counts as hearing from the peer', async () => {
    let packets = 0
    const { clock, conn } = withRawPeer('client', { liveness: { activity: () => packets } })
    for (let t = 0; t < 3 * IDLE_TIMEOUT_MS; t += KEEPALIVE_MS) {
      packets++
      await run(clock, KEEPALIVE_MS)
    }
    expect(conn.closed).toBe(false)
    await run(clock, IDLE_TIMEOUT_MS + 5000, () => conn.closed)
    expect(conn.closeError?.code).toBe('ERR_CONNECTION_LOST')
  })

  it("probes a silent peer's port after SUSPECT_MS, stops when it speaks, and a closed port ends the connection at once", async () => {
    const probes: { sends: number; stopped: boolean; closed: (why: string) => void }[] = []
    const liveness = {
      activity: () => 0,
      probe: (closed: (why: string) => void) => {
        const p = { sends: 1, stopped: false, closed }
        probes.push(p)
        return { send: () => { p.sends++ }, stop: () => { p.stopped = true } }
      },
    }
    const { clock, conn, send } = withRawPeer('client', { liveness })
    await run(clock, SUSPECT_MS - TIMER_TICK_MS)
    expect(probes).toHaveLength(0)
    await run(clock, TIMER_TICK_MS)
    expect(probes).toHaveLength(1)
    expect(conn.suspect).toBe(true)
    await run(clock, 2 * PORT_PROBE_INTERVAL_MS)
    expect(probes[0]?.sends).toBe(3)
    send({ type: 'ping' })
    await flush()
    expect(probes[0]?.stopped).toBe(true)
    expect(conn.suspect).toBe(false)
    await run(clock, SUSPECT_MS)
    expect(probes).toHaveLength(2)
    probes[1]?.closed('port 1 of 127.0.0.1 is closed')
    expect(conn.closed).toBe(true)
    expect(conn.closeError?.code).toBe('ERR_CONNECTION_LOST')
    expect(conn.closeError?.message).toMatch(/port 1 of 127\.0\.0\.1 is closed/)
    expect(probes[1]?.stopped).toBe(true)
  })
})

describe('Connection request timeout (ManualClock)', () => {
  it(`rejects a request with no reply with ERR_TIMEOUT after REQUEST_TIMEOUT_MS (${REQUEST_TIMEOUT_MS} ms), PINGs notwithstanding`, async () => {
    const { clock, client, fromClient } = await openPair()
    const req = request(client)
    const outcome = track(req.done)
    await run(clock, REQUEST_TIMEOUT_MS - 1)
    expect(outcome.state).toBe('pending')
    expect(fromClient).toEqual([{ type: 'request', id: req.id, path: 'a.txt', haveHash: null }])
    await run(clock, TIMER_TICK_MS)
    expect(outcome.state).toBe('rejected')
    expect((outcome.error as AssetSyncError).code).toBe('ERR_TIMEOUT')
    // The server is told to stop, and the connection itself stays up.
    expect(fromClient.at(-1)).toEqual({ type: 'cancel', id: req.id })
    expect(client.inflight).toBe(0)
    expect(client.isOpen).toBe(true)
  })

  it('uses requestTimeoutMs when given', async () => {
    const requestTimeoutMs = 5000
    const { clock, client } = await openPair({ requestTimeoutMs })
    const outcome = track(request(client).done)
    await run(clock, requestTimeoutMs - 1)
    expect(outcome.state).toBe('pending')
    await run(clock, TIMER_TICK_MS)
    expect((outcome.error as AssetSyncError).code).toBe('ERR_TIMEOUT')
  })

  it('restarts the request deadline on every reply frame', async () => {
    const { clock, client, server } = await openPair()
    const replies: ReplyMessage[] = []
    const req = request(client, (r) => { replies.push(r); return r.type === 'chunk' && r.final })
    const outcome = track(req.done)
    await run(clock, REQUEST_TIMEOUT_MS - 10 * TIMER_TICK_MS)
    server.send({ type: 'response', id: req.id, status: 'file', hash: Buffer.alloc(32), size: 3, mode: 0o644, mtime: 0 })
    await flush()
    const repliedAt = clock.now()
    expect(replies).toHaveLength(1)
    await run(clock, REQUEST_TIMEOUT_MS - 1)
    expect(clock.now()).toBeGreaterThan(REQUEST_TIMEOUT_MS) // past the first deadline
    expect(outcome.state).toBe('pending')
    await run(clock, TIMER_TICK_MS)
    expect(outcome.state).toBe('rejected')
    expect((outcome.error as AssetSyncError).code).toBe('ERR_TIMEOUT')
    expect(clock.now() - repliedAt).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS)
  })

  it('resolves when the handler reports the request complete', async () => {
    const { clock, client, server } = await openPair()
    const req = request(client, (r) => r.type === 'chunk' && r.final)
    const outcome = track(req.done)
    server.send({ type: 'chunk', id: req.id, offset: 0, final: false, data: Buffer.from('ab') })
    await run(clock, TIMER_TICK_MS)
    expect(outcome.state).toBe('pending')
    server.send({ type: 'chunk', id: req.id, offset: 2, final: true, data: Buffer.from('c') })
    await run(clock, TIMER_TICK_MS)
    expect(outcome.state).toBe('resolved')
    expect(client.inflight).toBe(0)
  })

  it('close() rejects every pending request, and later requests fail at once', async () => {
    const { clock, client, server } = await openPair()
    const serverCloses = closes(server, clock)
    const r1 = track(request(client).done)
    const r2 = track(request(client).done)
    expect(client.inflight).toBe(2)
    client.close()
    await flush()
    for (const r of [r1, r2]) {
      expect(r.state).toBe('rejected')
      expect((r.error as AssetSyncError).code).toBe('ERR_CONNECTION_LOST')
    }
    expect(client.inflight).toBe(0)
    const late = track(request(client).done)
    await flush()
    expect(late.state).toBe('rejected')
    // The server sees the end of the stream and closes too.
    expect(serverCloses.map((c) => c.err?.code)).toEqual(['ERR_CONNECTION_LOST'])
  })

  it('close(err) rejects pending requests with that error', async () => {
    const { client } = await openPair()
    const r = track(request(client).done)
    const err = new AssetSyncError('ERR_INTEGRITY', 'hash mismatch')
    client.close(err)
    await flush()
    expect(r.error).toBe(err)
    expect(client.closeError).toBe(err)
  })

  it('rejects (and forgets) a request whose frame cannot be encoded', async () => {
    const { client } = await openPair()
    const r = track(client.request((id) => ({ type: 'request', id, path: 'x'.repeat(0x1_0000), haveHash: null }), () => true).done)
    await flush()
    expect(r.state).toBe('rejected')
    expect(r.error).toBeInstanceOf(RangeError)
    expect(client.inflight).toBe(0)
  })
})

describe('Connection authentication and bad frames', () => {
  it('opens with the right token, and with any token when the server sets none', async () => {
    for (const required of [TOKEN, null]) {
      const { a, b } = memoryPair()
      const clock = new ManualClock()
      const server = new ServerConnection(b, { remote: 'c', clock })
      const client = new ClientConnection(a, { remote: 's', clock })
      await Promise.all([server.acceptAuth(required), client.authenticate(TOKEN)])
      expect(client.isOpen && server.isOpen).toBe(true)
    }
  })

  it('a wrong token: the client gets ERR_AUTH and both ends close', async () => {
    const { a, b } = memoryPair()
    const clock = new ManualClock()
    const server = new ServerConnection(b, { remote: 'c', clock })
    const client = new ClientConnection(a, { remote: 's', clock })
    const accepted = server.acceptAuth(TOKEN)
    const authed = client.authenticate('not-the-token')
    await expect(authed).rejects.toMatchObject({ code: 'ERR_AUTH' })
    await expect(accepted).rejects.toMatchObject({ code: 'ERR_AUTH' })
    await flush()
    expect(client.closed && server.closed).toBe(true)
  })

  it('a client speaking another protocol version gets ERR_VERSION', async () => {
    const { conn: server, received, send } = withRawPeer('server')
    const accepted = server.acceptAuth(null)
    send({ type: 'auth', version: PROTOCOL_VERSION + 1, token: '' })
    await expect(accepted).rejects.toMatchObject({ code: 'ERR_VERSION' })
    await flush()
    expect(received).toEqual([{ type: 'error', id: 0, code: 'ERR_VERSION', message: expect.stringContaining(`${PROTOCOL_VERSION + 1}`) }])
    expect(server.closed).toBe(true)
  })

  it('a client talking to a server of another version gets ERR_VERSION (refusal or mismatched AUTH_OK)', async () => {
    const refused = withRawPeer('client')
    const p1 = refused.conn.authenticate(TOKEN)
    refused.send({ type: 'error', id: 0, code: 'ERR_VERSION', message: 'server speaks protocol version 2' })
    await expect(p1).rejects.toMatchObject({ code: 'ERR_VERSION' })

    const mismatched = withRawPeer('client')
    const p2 = mismatched.conn.authenticate(TOKEN)
    mismatched.send({ type: 'auth-ok', version: PROTOCOL_VERSION + 1 })
    await expect(p2).rejects.toMatchObject({ code: 'ERR_VERSION' })
    expect(mismatched.conn.isOpen).toBe(false)
  })

  it('a garbage frame: the receiving end closes with ERR_PROTOCOL, tells the peer, and nothing throws', async () => {
    const { clock, client, server, clientRaw } = await openPair()
    const clientCloses = closes(client, clock)
    const serverCloses = closes(server, clock)
    clientRaw.write(Buffer.from([0xff, 0x00, 0x01])) // bypasses the client's encoder
    await flush()
    expect(serverCloses.map((c) => c.err?.code)).toEqual(['ERR_PROTOCOL'])
    expect(serverCloses[0]?.err?.message).toMatch(/unknown frame type 0xff/)
    // The server said why before closing; the client closes with the same code.
    expect(clientCloses.map((c) => c.err?.code)).toEqual(['ERR_PROTOCOL'])
    expect(clientCloses[0]?.err?.message).toMatch(/protocol error/)
  })

  it('a frame of the wrong direction is a protocol error too, in either direction', async () => {
    const toServer = await openPair()
    toServer.clientRaw.write(encode({ type: 'auth-ok', version: PROTOCOL_VERSION }))
    await flush()
    expect(toServer.server.closeError?.code).toBe('ERR_PROTOCOL')
    expect(toServer.client.closeError?.code).toBe('ERR_PROTOCOL')

    const toClient = await openPair()
    toClient.serverRaw.write(encode({ type: 'request', id: 1, path: 'a', haveHash: null }))
    await flush()
    expect(toClient.client.closeError?.code).toBe('ERR_PROTOCOL')
    // ERROR is server → client only, so the client just closes: the server sees the peer go.
    expect(toClient.server.closeError?.code).toBe('ERR_CONNECTION_LOST')
  })

  it('a garbage first frame fails acceptAuth with ERR_PROTOCOL', async () => {
    const { conn: server, received, raw } = withRawPeer('server')
    const accepted = server.acceptAuth(TOKEN)
    raw.write(Buffer.alloc(0))
    await expect(accepted).rejects.toMatchObject({ code: 'ERR_PROTOCOL' })
    await flush()
    expect(received).toMatchObject([{ type: 'error', id: 0, code: 'ERR_PROTOCOL' }])
  })
})
