/**
 * The connection handshake end to end over real loopback sockets: the stateless cookie exchange
 * (no allocation, no amplification), Noise + server-key pinning, the access token, and timeouts.
 */
import { randomBytes } from 'node:crypto'
import { type Socket as DgramSocket, createSocket } from 'node:dgram'
import { mkdtemp, rm } from 'node:fs/promises'
import { type Socket as TcpSocket, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { KnownServers } from '../../src/core/fs/keys.js'
import { AssetSyncError } from '../../src/errors.js'
import { COOKIE_BUCKET_MS, HANDSHAKE_RATE_PER_ADDR, HELLO_MIN_BYTES } from '../../src/limits.js'
import { ManualClock } from '../../src/protocol/clock.js'
import type { ClientConnection } from '../../src/protocol/connection.js'
import { type DialOptions, ServerEndpoint, dial } from '../../src/protocol/endpoint.js'
import {
  COOKIE_BYTES, NONCE_BYTES, decodeHandshake, encodeHandshake, type HandshakePacket,
} from '../../src/protocol/handshake-packets.js'
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js'
import type { TransportName } from '../../src/protocol/transport.js'
import type { UdpListener } from '../../src/protocol/udp.js'
import { startLossyProxy } from '../helpers/lossy-proxy.js'
import { Cleanup, LOOPBACK, nextEvent, waitFor } from '../helpers/common.js'
import { dialTracked, fetchBlob, listen, listenTracked, newKeyPair, serveBlobs } from '../helpers/endpoints.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const server = (transport: TransportName, extra: Parameters<typeof listen>[1] = {}): Promise<ServerEndpoint> => listenTracked(cleanup, transport, extra)
const connect = (s: ServerEndpoint, extra: Partial<DialOptions> = {}): Promise<ClientConnection> => dialTracked(cleanup, s, extra)

/** Resolves with the AssetSyncError `p` rejects with; fails if it resolves or rejects otherwise. */
async function rejection(p: Promise<unknown>): Promise<AssetSyncError> {
  const err = await p.then(
    (v) => { if (v && typeof (v as ClientConnection).destroy === 'function') (v as ClientConnection).destroy(); return null },
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(AssetSyncError)
  return err as AssetSyncError
}

const hello = (clientId: number, nonce: Buffer, cookie: Buffer | null): HandshakePacket =>
  ({ type: 'hello', version: PROTOCOL_VERSION, clientId, nonce, cookie })

describe('UDP handshake', () => {
  it('50 concurrent clients all complete auth and a request/response round trip', async () => {
    const s = await server('udp', { token: 'shared-secret' })
    serveBlobs(s, (path) => Buffer.from(`contents of ${path}`))
    const t0 = performance.now()
    // 100 HELLOs from one address stay under the per-address limit (HANDSHAKE_RATE_PER_ADDR).
    const conns = await Promise.all(Array.from({ length: 50 }, () => connect(s, { token: 'shared-secret', connectTimeoutMs: 10_000 })))
    const connectedMs = performance.now() - t0
    const bodies = await Promise.all(conns.map((c, i) => fetchBlob(c, `file-${i}.txt`)))
    bodies.forEach((b, i) => expect(b.toString()).toBe(`contents of file-${i}.txt`))
    expect(conns.every((c) => c.isOpen)).toBe(true)
    expect(s.connections.size).toBe(50)
    expect((s.listener as UdpListener).stats.streamsCreated).toBe(50)
    const st = (s.listener as UdpListener).stats
    console.log(`50 clients connected in ${connectedMs.toFixed(0)} ms, round trips done at ${(performance.now() - t0).toFixed(0)} ms;`
      + ` HELLOs in ${st.datagramsIn} (rate-limited ${st.rateLimited}), cookies ${st.cookiesSent}`)
  })

  describe('without a valid cookie nothing is allocated and nothing is amplified', () => {
    /** A raw UDP socket that speaks handshake datagrams to `port` and counts bytes both ways. */
    async function rawClient(port: number): Promise<{
      sock: DgramSocket; sent: () => number; received: () => number
      exchange: (p: HandshakePacket) => Promise<HandshakePacket>
      replies: HandshakePacket[]
    }> {
      const sock = createSocket('udp4')
      cleanup.add(() => new Promise<void>((resolve) => sock.close(() => resolve())))
      await new Promise<void>((resolve) => sock.bind(0, LOOPBACK, () => resolve()))
      let sent = 0
      let received = 0
      const replies: HandshakePacket[] = []
      sock.on('message', (buf) => {
        received += buf.length
        const p = decodeHandshake(buf)
        // Anything that is not a handshake datagram (e.g. udx traffic) would be a failure here.
        replies.push(p ?? { type: 'reject', version: -1, nonce: Buffer.alloc(0), reason: -1 })
      })
      const send = (p: HandshakePacket): void => {
        const b = encodeHandshake(p)
        sent += b.length
        sock.send(b, port, LOOPBACK)
      }
      const nextReply = async (): Promise<HandshakePacket> => {
        const [buf] = await nextEvent(sock, 'message', 2000)
        return decodeHandshake(buf as Buffer) as HandshakePacket
      }
      return {
        sock, replies, sent: () => sent, received: () => received,
        exchange: (p) => { const r = nextReply(); send(p); return r },
      }
    }

    it('answers HELLOs without / with forged / with replayed / with expired cookies only with COOKIE', async () => {
      const clock = new ManualClock()
      clock.advance(1_000_000)
      const s = await server('udp', { clock })
      const stats = (s.listener as UdpListener).stats
      let connections = 0
      s.on('connection', () => connections++)
      const raw = await rawClient(s.address().port)
      const clientId = 0x1234_5678
      const nonce = randomBytes(NONCE_BYTES)

      // 1. No cookie: the server answers with a COOKIE for exactly this address, id and nonce.
      const first = await raw.exchange(hello(clientId, nonce, null))
      expect(first.type).toBe('cookie')
      if (first.type !== 'cookie') return
      expect(first.nonce.equals(nonce)).toBe(true)
      expect(first.cookie.length).toBe(COOKIE_BYTES)
      const realCookie = first.cookie

      const forgedRandom = randomBytes(COOKIE_BYTES)
      const forgedBucket = Buffer.concat([realCookie.subarray(0, 4), Buffer.alloc(COOKIE_BYTES - 4)]) // right bucket, zero MAC
      const flipped = Buffer.from(realCookie)
      flipped[COOKIE_BYTES - 1] = (flipped[COOKIE_BYTES - 1] ?? 0) ^ 1
      const attempts: HandshakePacket[] = [
        hello(clientId, nonce, forgedRandom),
        hello(clientId, nonce, forgedBucket),
        hello(clientId, nonce, flipped),
        hello(clientId + 1, nonce, realCookie), // a real cookie replayed for another stream id
        hello(clientId, randomBytes(NONCE_BYTES), realCookie), // ... or another nonce
      ]
      for (const p of attempts) {
        const reply = await raw.exchange(p)
        expect(reply.type).toBe('cookie')
      }
      // 2. The real cookie after it expired (two buckets later) is refused too.
      clock.advance(2 * COOKIE_BUCKET_MS)
      expect((await raw.exchange(hello(clientId, nonce, realCookie))).type).toBe('cookie')

      expect(raw.replies.every((r) => r.type === 'cookie')).toBe(true)
      expect(raw.replies).toHaveLength(1 + attempts.length + 1)
      expect(stats.streamsCreated).toBe(0)
      expect(s.listener.connections).toBe(0)
      expect(connections).toBe(0)
      // No amplification: the server sent no more handshake bytes than it received, and each
      // answer is smaller than the HELLO it answers.
      expect(stats.handshakeBytesOut).toBeLessThanOrEqual(stats.bytesIn)
      expect(raw.received()).toBeLessThanOrEqual(raw.sent())
      expect(raw.received() / raw.replies.length).toBeLessThan(HELLO_MIN_BYTES)

      // Control: echoing a fresh, real cookie does get a WELCOME and a stream (so the refusals
      // above were about the cookie, not a broken setup).
      const fresh = await raw.exchange(hello(clientId, nonce, null))
      if (fresh.type !== 'cookie') throw new Error(`expected cookie, got ${fresh.type}`)
      const welcome = await raw.exchange(hello(clientId, nonce, fresh.cookie))
      expect(welcome.type).toBe('welcome')
      expect(stats.streamsCreated).toBe(1)
    })

    it('drops HELLOs past the per-address rate limit, still without amplification', async () => {
      const clock = new ManualClock()
      const s = await server('udp', { clock })
      const stats = (s.listener as UdpListener).stats
      const raw = await rawClient(s.address().port)
      const burst = HANDSHAKE_RATE_PER_ADDR + 20
      const burstNonce = Buffer.alloc(NONCE_BYTES, 7)
      for (let i = 0; i < burst; i++) raw.sock.send(encodeHandshake(hello(i + 1, burstNonce, null)), s.address().port, LOOPBACK)
      await waitFor(() => stats.datagramsIn === burst, 3000, 'the server to read the burst')
      // A barrier in the next rate window: the server answers in order on one socket, so once the
      // barrier's answer is here every answer to the burst is here too.
      clock.advance(1000)
      const barrierNonce = randomBytes(NONCE_BYTES)
      expect((await raw.exchange(hello(999, barrierNonce, null))).nonce.equals(barrierNonce)).toBe(true)
      const burstReplies = raw.replies.filter((r) => r.nonce.equals(burstNonce))
      expect(burstReplies.length).toBe(HANDSHAKE_RATE_PER_ADDR)
      expect(stats.rateLimited).toBe(burst - HANDSHAKE_RATE_PER_ADDR)
      expect(stats.streamsCreated).toBe(0)
      expect(stats.handshakeBytesOut).toBeLessThanOrEqual(stats.bytesIn)
    })
  })
})

describe('access token', () => {
  it('a wrong token is refused with ERR_AUTH, the right one is let in', async () => {
    const s = await server('udp', { token: 'open sesame' })
    serveBlobs(s, () => Buffer.from('ok'))
    const rejected = nextEvent(s, 'rejected', 5000)
    const err = await rejection(connect(s, { token: 'open barley' }))
    expect(err.code).toBe('ERR_AUTH')
    const [, serverErr] = await rejected
    expect((serverErr as AssetSyncError).code).toBe('ERR_AUTH')
    expect((await rejection(connect(s))).code).toBe('ERR_AUTH') // no token at all
    expect(s.connections.size).toBe(0)

    const conn = await connect(s, { token: 'open sesame' })
    expect((await fetchBlob(conn, 'x')).toString()).toBe('ok')
  })

  it('a server without a token accepts any token, or none', async () => {
    const s = await server('udp', { token: null })
    serveBlobs(s, () => Buffer.from('ok'))
    for (const token of [undefined, '', 'whatever']) {
      const conn = await connect(s, token === undefined ? {} : { token })
      expect((await fetchBlob(conn, 'x')).toString()).toBe('ok')
    }
  })
})

describe('server key pinning', () => {
  async function tempKnown(): Promise<KnownServers> {
    const dir = await mkdtemp(join(tmpdir(), 'assetsync-keys-'))
    cleanup.add(() => rm(dir, { recursive: true, force: true }))
    return new KnownServers(dir)
  }

  /** Dials with the known-servers verifier for host:port, committing the pin on success. */
  async function dialPinned(known: KnownServers, s: { transport: TransportName; port: number }, token: string, key: Buffer | null = null): Promise<ClientConnection> {
    const addr = `${LOOPBACK}:${s.port}`
    const v = await known.verifier(addr, key)
    const conn = await dial({ transport: s.transport, host: LOOPBACK, port: s.port, token, connectTimeoutMs: 5000, verifyServerKey: v.verify })
    cleanup.add(() => conn.destroy())
    await v.commit()
    return conn
  }

  it('pins on first use; a re-keyed server on the same address is refused before the token is sent', async () => {
    const known = await tempKnown()
    const token = 'never-leak-me'
    const keyA = newKeyPair()
    const a = await ServerEndpoint.listen({ transport: 'udp', host: LOOPBACK, port: 0, keyPair: keyA, token })
    const port = a.address().port
    const addr = `${LOOPBACK}:${port}`
    try {
      await dialPinned(known, { transport: 'udp', port }, token)
      expect(await known.get(addr)).toBe(keyA.publicKey.toString('hex'))
      await dialPinned(known, { transport: 'udp', port }, token) // the same key again is fine
    } finally {
      await a.close()
    }

    // An impostor (another keypair) takes over the same host:port, and knows the token: if the
    // client sent it, the impostor would emit 'connection'.
    const b = await server('udp', { port, token, connectTimeoutMs: 3000 })
    let impostorGotIn = false
    b.on('connection', () => { impostorGotIn = true })
    const bGaveUp = nextEvent(b, 'rejected', 6000)
    const err = await rejection(dialPinned(known, { transport: 'udp', port }, token))
    expect(err.code).toBe('ERR_KEY_MISMATCH')
    expect(err.message).toContain(keyA.publicKey.toString('hex'))
    const [, whyB] = await bGaveUp
    expect(impostorGotIn).toBe(false)
    expect((whyB as AssetSyncError).code).not.toBe('ERR_AUTH') // it never saw any AUTH frame
    expect(await known.get(addr)).toBe(keyA.publicKey.toString('hex')) // the pin is unchanged
  })

  it('a wrong pinned key for the address is refused with ERR_KEY_MISMATCH, the server never sees a client', async () => {
    const known = await tempKnown()
    const s = await server('udp', { token: 't', connectTimeoutMs: 3000 })
    await known.pin(`${LOOPBACK}:${s.address().port}`, newKeyPair().publicKey.toString('hex'))
    let connections = 0
    s.on('connection', () => connections++)
    const gaveUp = nextEvent(s, 'rejected', 6000)
    expect((await rejection(dialPinned(known, { transport: 'udp', port: s.address().port }, 't'))).code).toBe('ERR_KEY_MISMATCH')
    await gaveUp
    expect(connections).toBe(0)
  })

  it('an explicit --key must match; the right one connects and pins nothing', async () => {
    const known = await tempKnown()
    const keyPair = newKeyPair()
    const s = await server('udp', { keyPair, token: 't' })
    const port = s.address().port
    expect((await rejection(dialPinned(known, { transport: 'udp', port }, 't', newKeyPair().publicKey))).code).toBe('ERR_KEY_MISMATCH')
    const conn = await dialPinned(known, { transport: 'udp', port }, 't', keyPair.publicKey)
    expect(conn.isOpen).toBe(true)
    expect(await known.get(`${LOOPBACK}:${port}`)).toBeUndefined()
  })
})

describe.each(['udp', 'tcp'] as const)('request/response over %s', (transport) => {
  it('authenticates and serves a small file, a multi-chunk file and a not-found', async () => {
    const big = randomBytes(300 * 1024 + 17)
    const s = await server(transport, { token: 'tok' })
    serveBlobs(s, (path) => (path === 'small.txt' ? Buffer.from('hello') : path === 'big.bin' ? big : undefined))
    const conn = await connect(s, { token: 'tok' })
    expect(conn.isOpen).toBe(true)
    expect(s.transport).toBe(transport)
    expect((await fetchBlob(conn, 'small.txt')).toString()).toBe('hello')
    expect((await fetchBlob(conn, 'big.bin')).equals(big)).toBe(true)
    await expect(fetchBlob(conn, 'missing.txt')).rejects.toThrow('missing.txt: not-found')
    expect(s.connections.size).toBe(1)
  })
})

describe('unreachable or stalled server: connect deadline', () => {
  it('udp: nothing listening -> ERR_TIMEOUT within connectTimeoutMs', async () => {
    // A port that was free a moment ago and is closed now: HELLOs go nowhere.
    const probe = createSocket('udp4')
    await new Promise<void>((resolve) => probe.bind(0, LOOPBACK, () => resolve()))
    const port = probe.address().port
    await new Promise<void>((resolve) => probe.close(() => resolve()))

    const t0 = performance.now()
    const err = await rejection(dial({ transport: 'udp', host: LOOPBACK, port, connectTimeoutMs: 1500 }))
    const ms = performance.now() - t0
    expect(err.code).toBe('ERR_TIMEOUT')
    expect(ms).toBeGreaterThanOrEqual(1400)
    expect(ms).toBeLessThan(1500 + 1000)
  })

  it('udp: connectTimeoutMs bounds the whole handshake (cookie + Noise + auth), not each phase', async () => {
    const s = await server('udp')
    let hellosLost = 0
    const proxy = await startLossyProxy({
      target: { host: LOOPBACK, port: s.address().port },
      filter: (datagram, direction) => {
        // udx stream packets (first byte 0xff) never pass: Noise cannot complete.
        if (datagram[0] === 0xff) return false
        // The first three HELLOs are lost, so the cookie exchange succeeds only with the fourth,
        // ~1.4 s in (retransmits after 200, 400, 800 ms): most of the budget is gone by then.
        if (direction === 'to-target' && hellosLost < 3) {
          hellosLost++
          return false
        }
        return true
      },
    })
    cleanup.add(() => proxy.close())
    const t0 = performance.now()
    const err = await rejection(dial({ transport: 'udp', host: proxy.host, port: proxy.port, connectTimeoutMs: 1500 }))
    const ms = performance.now() - t0
    expect(hellosLost).toBe(3)
    expect((s.listener as UdpListener).stats.streamsCreated).toBe(1) // the cookie phase did finish
    expect(err.code).toBe('ERR_TIMEOUT')
    expect(ms).toBeLessThan(1500 + 400)
  })

  it('tcp: a peer that accepts but never speaks Noise -> ERR_TIMEOUT within connectTimeoutMs', async () => {
    const accepted = new Set<TcpSocket>()
    const silent = createServer((sock) => {
      accepted.add(sock)
      sock.on('error', () => {})
      sock.resume() // read (and discard) Noise's first message, so the client's FIN is seen
    })
    await new Promise<void>((resolve) => silent.listen(0, LOOPBACK, () => resolve()))
    cleanup.add(() => new Promise<void>((resolve) => {
      for (const sock of accepted) sock.destroy()
      silent.close(() => resolve())
    }))
    const port = (silent.address() as { port: number }).port
    const t0 = performance.now()
    const err = await rejection(dial({ transport: 'tcp', host: LOOPBACK, port, connectTimeoutMs: 1500 }))
    const ms = performance.now() - t0
    expect(err.code).toBe('ERR_TIMEOUT')
    expect(ms).toBeLessThan(1500 + 1000)
  })

  it('tcp: nothing listening -> ERR_CONNECT at once', async () => {
    const probe = createServer()
    await new Promise<void>((resolve) => probe.listen(0, LOOPBACK, () => resolve()))
    const port = (probe.address() as { port: number }).port
    await new Promise<void>((resolve) => probe.close(() => resolve()))
    const err = await rejection(dial({ transport: 'tcp', host: LOOPBACK, port, connectTimeoutMs: 1500 }))
    expect(err.code).toBe('ERR_CONNECT')
  })
})
