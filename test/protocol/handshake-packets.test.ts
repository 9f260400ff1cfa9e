import { type Socket, createSocket } from 'node:dgram'
import { afterEach, describe, expect, it } from 'vitest'
import { COOKIE_BUCKET_MS, HELLO_MIN_BYTES } from '../../src/limits.js'
import { ManualClock } from '../../src/protocol/clock.js'
import {
  COOKIE_BYTES, HS, HS_MAGIC_0, HS_MAGIC_1, NONCE_BYTES, OFFER_AT, OFFER_BYTES, REJECT_REASON, decodeHandshake,
  encodeHandshake, type HandshakePacket,
} from '../../src/protocol/handshake-packets.js'
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js'
import { LOCAL_OFFER, type ProtocolOffer } from '../../src/protocol/negotiation.js'
import { UdpListener } from '../../src/protocol/udp.js'
import { bytesOf, h8 } from './golden-frames.js'

const NONCE_HEX = '00112233445566778899aabbccddeeff'
const NONCE = Buffer.from(NONCE_HEX, 'hex')
const COOKIE_HEX = '0000abcd' + 'c0c1c2c3c4c5c6c7c8c9cacbcccdcecf' // time bucket u32 + 16-byte MAC
const COOKIE = Buffer.from(COOKIE_HEX, 'hex')
const head = (type: number, version: number): string => h8(HS_MAGIC_0) + h8(HS_MAGIC_1) + h8(type) + h8(version)
/** Bytes before a HELLO's cookie: magic 2, type 1, version 1, client id 4, nonce 16, cookie length 1. */
const HELLO_FIXED = 4 + 4 + NONCE_BYTES + 1
/** A protocol-3 offer block: tag 'V', lowest version u16, highest u16, features u32. */
const OFFER: ProtocolOffer = { minVersion: 2, maxVersion: 3, features: 0x00000005 }
const OFFER_HEX = '56' + '0002' + '0003' + '00000005'

const GOLDEN: { name: string; packet: HandshakePacket; bytes: Buffer }[] = [
  // Protocol 2: exactly what a protocol-2 peer sends and expects (version byte 2, no offer).
  {
    name: 'HELLO without cookie',
    packet: { type: 'hello', version: 2, clientId: 0x01020304, nonce: NONCE, cookie: null },
    bytes: bytesOf(head(HS.hello, 2), '01020304', NONCE_HEX, '00', '00'.repeat(HELLO_MIN_BYTES - HELLO_FIXED)),
  },
  {
    name: 'HELLO with cookie',
    packet: { type: 'hello', version: 2, clientId: 0xfffffffe, nonce: NONCE, cookie: COOKIE },
    bytes: bytesOf(head(HS.hello, 2), 'fffffffe', NONCE_HEX, h8(COOKIE_BYTES), COOKIE_HEX,
      '00'.repeat(HELLO_MIN_BYTES - HELLO_FIXED - COOKIE_BYTES)),
  },
  {
    name: 'COOKIE',
    packet: { type: 'cookie', version: 2, nonce: NONCE, cookie: COOKIE },
    bytes: bytesOf(head(HS.cookie, 2), NONCE_HEX, COOKIE_HEX),
  },
  {
    name: 'WELCOME',
    packet: { type: 'welcome', version: 2, nonce: NONCE, serverId: 0xcafebabe },
    bytes: bytesOf(head(HS.welcome, 2), NONCE_HEX, 'cafebabe'),
  },
  {
    name: 'REJECT (version)',
    packet: { type: 'reject', version: 3, nonce: NONCE, reason: REJECT_REASON.version },
    bytes: bytesOf(head(HS.reject, 3), NONCE_HEX, h8(REJECT_REASON.version)),
  },
  {
    name: 'REJECT (server full)',
    packet: { type: 'reject', version: 2, nonce: NONCE, reason: REJECT_REASON.full },
    bytes: bytesOf(head(HS.reject, 2), NONCE_HEX, h8(REJECT_REASON.full)),
  },
  // Protocol 3: the offer block in the HELLO's padding at OFFER_AT (45), after a WELCOME or REJECT.
  {
    name: 'HELLO with offer, without cookie',
    packet: { type: 'hello', version: 2, clientId: 0x01020304, nonce: NONCE, cookie: null, offer: OFFER },
    bytes: bytesOf(head(HS.hello, 2), '01020304', NONCE_HEX, '00', '00'.repeat(COOKIE_BYTES), OFFER_HEX,
      '00'.repeat(HELLO_MIN_BYTES - OFFER_AT - OFFER_BYTES)),
  },
  {
    name: 'HELLO with offer and cookie',
    packet: { type: 'hello', version: 2, clientId: 0xfffffffe, nonce: NONCE, cookie: COOKIE, offer: OFFER },
    bytes: bytesOf(head(HS.hello, 2), 'fffffffe', NONCE_HEX, h8(COOKIE_BYTES), COOKIE_HEX, OFFER_HEX,
      '00'.repeat(HELLO_MIN_BYTES - OFFER_AT - OFFER_BYTES)),
  },
  {
    name: 'WELCOME with offer',
    packet: { type: 'welcome', version: 3, nonce: NONCE, serverId: 0xcafebabe, offer: OFFER },
    bytes: bytesOf(head(HS.welcome, 3), NONCE_HEX, 'cafebabe', OFFER_HEX),
  },
  {
    name: 'REJECT (version) with offer',
    packet: { type: 'reject', version: 3, nonce: NONCE, reason: REJECT_REASON.version, offer: OFFER },
    bytes: bytesOf(head(HS.reject, 3), NONCE_HEX, h8(REJECT_REASON.version), OFFER_HEX),
  },
  {
    name: 'REJECT (server full) with offer',
    packet: { type: 'reject', version: 3, nonce: NONCE, reason: REJECT_REASON.full, offer: { minVersion: 3, maxVersion: 0xffff, features: 0xffffffff } },
    bytes: bytesOf(head(HS.reject, 3), NONCE_HEX, h8(REJECT_REASON.full), '56', '0003', 'ffff', 'ffffffff'),
  },
]

function golden(name: string): Buffer {
  const gp = GOLDEN.find((x) => x.name === name)
  if (!gp) throw new Error(`no golden packet ${name}`)
  return Buffer.from(gp.bytes)
}

describe('handshake packets: golden bytes', () => {
  for (const gp of GOLDEN) {
    it(`encodes ${gp.name}`, () => {
      expect(encodeHandshake(gp.packet).toString('hex')).toBe(gp.bytes.toString('hex'))
    })
    it(`decodes ${gp.name}`, () => {
      expect(decodeHandshake(gp.bytes)).toEqual(gp.packet)
    })
  }

  it('pads every HELLO to exactly HELLO_MIN_BYTES, with or without an offer', () => {
    for (const gp of GOLDEN.filter((x) => x.packet.type === 'hello')) expect(gp.bytes.length).toBe(HELLO_MIN_BYTES)
  })

  it('puts the offer where a protocol-2 listener never looks: after the cookie slot, in the padding', () => {
    // A protocol-2 decoder reads magic, type, version, client id, nonce, cookie length and the
    // cookie (bytes 0..44); bytes 45.. are padding to it. The protocol-2 HELLO is the same
    // datagram with zeros there.
    expect(OFFER_AT).toBe(HELLO_FIXED + COOKIE_BYTES)
    const v3 = golden('HELLO with offer and cookie')
    const v2 = golden('HELLO with cookie')
    expect(v3.subarray(0, OFFER_AT)).toEqual(v2.subarray(0, OFFER_AT))
    expect(v2.subarray(OFFER_AT).every((x) => x === 0)).toBe(true)
  })

  it('sizes server packets by the peer: 24/21 bytes (protocol 2) or with the 9-byte offer', () => {
    expect(golden('WELCOME').length).toBe(24)
    expect(golden('REJECT (version)').length).toBe(21)
    expect(golden('WELCOME with offer').length).toBe(24 + OFFER_BYTES)
    expect(golden('REJECT (version) with offer').length).toBe(21 + OFFER_BYTES)
  })

  it('ignores a HELLO whose offer block is tagged but malformed (lowest version 0, or above the highest)', () => {
    for (const [min, max] of [[0, 3], [4, 3], [0, 0]] as const) {
      const b = golden('HELLO with offer, without cookie')
      b.writeUInt16BE(min, OFFER_AT + 1)
      b.writeUInt16BE(max, OFFER_AT + 3)
      expect(decodeHandshake(b)).toBeNull()
    }
    // Without the tag the same bytes are padding: a protocol-2 HELLO.
    const b = golden('HELLO with offer, without cookie')
    b[OFFER_AT] = 0
    expect(decodeHandshake(b)).toEqual({ type: 'hello', version: 2, clientId: 0x01020304, nonce: NONCE, cookie: null })
  })

  it('accepts a HELLO longer than the minimum (padding is not interpreted)', () => {
    const longer = Buffer.concat([golden('HELLO with cookie'), Buffer.alloc(64, 0x55)])
    expect(decodeHandshake(longer)).toEqual(GOLDEN[1]?.packet)
    const longerV3 = Buffer.concat([golden('HELLO with offer and cookie'), Buffer.alloc(64, 0x55)])
    expect(decodeHandshake(longerV3)).toEqual(GOLDEN.find((x) => x.name === 'HELLO with offer and cookie')?.packet)
  })

  it('passes a foreign version through so the server can answer REJECT', () => {
    const b = golden('HELLO without cookie')
    b[3] = PROTOCOL_VERSION + 1
    expect(decodeHandshake(b)).toMatchObject({ type: 'hello', version: PROTOCOL_VERSION + 1 })
  })
})

describe('handshake packets: the no-amplification rule', () => {
  it('makes every non-HELLO packet smaller than HELLO_MIN_BYTES', () => {
    const replies = GOLDEN.filter((gp) => gp.packet.type !== 'hello')
    expect(replies.map((gp) => gp.packet.type).sort()).toEqual(['cookie', 'reject', 'reject', 'reject', 'reject', 'welcome', 'welcome'])
    for (const gp of replies) {
      expect(encodeHandshake(gp.packet).length).toBeLessThan(HELLO_MIN_BYTES)
    }
  })

  it('refuses every HELLO shorter than HELLO_MIN_BYTES', () => {
    for (const name of ['HELLO without cookie', 'HELLO with cookie', 'HELLO with offer and cookie']) {
      const b = golden(name)
      for (let n = 0; n < HELLO_MIN_BYTES; n++) expect(decodeHandshake(b.subarray(0, n))).toBeNull()
    }
  })
})

describe('handshake packets: what is not a handshake packet decodes as null', () => {
  it('ignores udx-looking packets (first byte 0xff), whatever follows', () => {
    for (const gp of GOLDEN) {
      const b = Buffer.from(gp.bytes)
      b[0] = 0xff
      expect(decodeHandshake(b)).toBeNull()
    }
    // A udx data header: magic 0xff, version 1, type, data offset, then the stream id.
    for (const size of [20, 21, 40, HELLO_MIN_BYTES, 1200]) {
      const b = Buffer.alloc(size, 0x41)
      b.set([0xff, 0x01, 0x04, 0x00], 0)
      expect(decodeHandshake(b)).toBeNull()
    }
  })

  it('ignores a wrong magic, an unknown packet type and a wrong length', () => {
    for (const gp of GOLDEN) {
      const badMagic = Buffer.from(gp.bytes)
      badMagic[1] = 0x54
      expect(decodeHandshake(badMagic)).toBeNull()
    }
    const known = new Set<number>(Object.values(HS))
    for (let t = 0; t < 256; t++) {
      if (known.has(t)) continue
      expect(decodeHandshake(bytesOf(head(t, 2), NONCE_HEX, '00'.repeat(HELLO_MIN_BYTES)))).toBeNull()
    }
    for (const name of ['COOKIE', 'WELCOME', 'REJECT (version)', 'WELCOME with offer', 'REJECT (version) with offer']) {
      const b = golden(name)
      expect(decodeHandshake(b.subarray(0, b.length - 1))).toBeNull()
      expect(decodeHandshake(Buffer.concat([b, Buffer.alloc(1)]))).toBeNull()
    }
    // A server packet's trailing offer must be a well-formed block: tagged, lowest ≤ highest.
    for (const name of ['WELCOME with offer', 'REJECT (version) with offer']) {
      const untagged = golden(name)
      untagged[untagged.length - OFFER_BYTES] = 0
      expect(decodeHandshake(untagged)).toBeNull()
      const inverted = golden(name)
      inverted.writeUInt16BE(9, inverted.length - OFFER_BYTES + 1)
      expect(decodeHandshake(inverted)).toBeNull()
    }
  })

  it('ignores a HELLO whose cookie length is neither 0 nor COOKIE_BYTES', () => {
    for (const n of [1, COOKIE_BYTES - 1, COOKIE_BYTES + 1, 0xff]) {
      const b = golden('HELLO with cookie')
      b[HELLO_FIXED - 1] = n
      expect(decodeHandshake(b)).toBeNull()
    }
  })
})

// --- the server's rules, on a real socket ---------------------------------------------------------

interface Probe { sock: Socket; port: number; replies: Buffer[]; waiters: ((b: Buffer) => void)[] }

async function probe(): Promise<Probe> {
  const sock = createSocket('udp4')
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve))
  const p: Probe = { sock, port: sock.address().port, replies: [], waiters: [] }
  sock.on('message', (b) => {
    const w = p.waiters.shift()
    if (w) w(b)
    else p.replies.push(b)
  })
  return p
}

/** The next datagram this probe receives (fails after 2 s of real time). */
function nextReply(p: Probe): Promise<Buffer> {
  const queued = p.replies.shift()
  if (queued) return Promise.resolve(queued)
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no reply within 2 s')), 2000)
    p.waiters.push((b) => { clearTimeout(t); resolve(b) })
  })
}

function hello(clientId: number, nonce: Buffer, cookie: Buffer | null, version = PROTOCOL_VERSION): Buffer {
  return encodeHandshake({ type: 'hello', version, clientId, nonce, cookie })
}

async function ask(p: Probe, port: number, datagram: Buffer): Promise<HandshakePacket | null> {
  p.sock.send(datagram, port, '127.0.0.1')
  return decodeHandshake(await nextReply(p))
}

describe('UdpListener: stateless cookie handshake', () => {
  const cleanup: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0)) await fn()
  })

  async function setup(opts: { maxClients?: number; offer?: ProtocolOffer } = {}): Promise<{ listener: UdpListener; port: number; clock: ManualClock; a: Probe }> {
    const clock = new ManualClock()
    clock.advance(5 * COOKIE_BUCKET_MS) // not bucket 0, so "bucket - 1" is a real bucket
    const listener = UdpListener.listen('127.0.0.1', 0, { clock, ...opts })
    const a = await probe()
    cleanup.push(() => listener.close(), () => new Promise<void>((resolve) => a.sock.close(() => resolve())))
    return { listener, port: listener.address().port, clock, a }
  }

  it('answers a HELLO with a smaller COOKIE and allocates nothing until the cookie is echoed', async () => {
    const { listener, port, a } = await setup()
    const nonce = Buffer.alloc(NONCE_BYTES, 1)
    const reply = await ask(a, port, hello(7, nonce, null))
    expect(reply?.type).toBe('cookie')
    if (reply?.type !== 'cookie') return
    expect(reply.nonce).toEqual(nonce)
    expect(listener.stats.handshakeBytesOut).toBeLessThan(listener.stats.bytesIn)
    expect(listener.stats.streamsCreated).toBe(0)
    expect(listener.connections).toBe(0)

    const connections: string[] = []
    listener.on('connection', (_raw, remote) => connections.push(remote))
    const welcome = await ask(a, port, hello(7, nonce, reply.cookie))
    expect(welcome?.type).toBe('welcome')
    expect(listener.stats.streamsCreated).toBe(1)
    expect(connections).toEqual([`127.0.0.1:${a.port}`])

    // A retransmitted HELLO (our WELCOME was lost) gets the same WELCOME and no second stream.
    const again = await ask(a, port, hello(7, nonce, reply.cookie))
    expect(again).toEqual(welcome)
    expect(listener.stats.streamsCreated).toBe(1)
  })

  // Forged, replayed and expired cookies and the rate limit are covered end to end in
  // test/transport/handshake.test.ts; these cover what that file does not.
  it('binds a cookie to the source port it was sent to', async () => {
    const { listener, port, a } = await setup()
    const nonce = Buffer.alloc(NONCE_BYTES, 2)
    const c = await ask(a, port, hello(9, nonce, null))
    if (c?.type !== 'cookie') throw new Error('expected a cookie')
    const b = await probe()
    cleanup.push(() => new Promise<void>((resolve) => b.sock.close(() => resolve())))
    expect((await ask(b, port, hello(9, nonce, c.cookie)))?.type).toBe('cookie')
    expect(listener.stats.streamsCreated).toBe(0)
  })

  it('takes a cookie in its own time bucket and the next one, not later', async () => {
    const { listener, port, clock, a } = await setup()
    const n1 = Buffer.alloc(NONCE_BYTES, 4)
    const c1 = await ask(a, port, hello(1, n1, null))
    if (c1?.type !== 'cookie') throw new Error('expected a cookie')
    expect(c1.cookie.readUInt32BE(0)).toBe(Math.floor(clock.now() / COOKIE_BUCKET_MS))
    clock.advance(2 * COOKIE_BUCKET_MS)
    expect((await ask(a, port, hello(1, n1, c1.cookie)))?.type).toBe('cookie') // two buckets on: stale

    const n2 = Buffer.alloc(NONCE_BYTES, 5)
    const c2 = await ask(a, port, hello(2, n2, null))
    if (c2?.type !== 'cookie') throw new Error('expected a cookie')
    clock.advance(2 * COOKIE_BUCKET_MS - 1 - (clock.now() % COOKIE_BUCKET_MS)) // last ms of the next bucket
    expect((await ask(a, port, hello(2, n2, c2.cookie)))?.type).toBe('welcome')
    expect(listener.stats.streamsCreated).toBe(1)
  })

  it('answers a foreign version with a REJECT smaller than the HELLO', async () => {
    const { listener, port, a } = await setup()
    const nonce = Buffer.alloc(NONCE_BYTES, 6)
    const datagram = hello(1, nonce, null, PROTOCOL_VERSION + 1)
    const r = await ask(a, port, datagram)
    expect(r).toEqual({ type: 'reject', version: PROTOCOL_VERSION, nonce, reason: REJECT_REASON.version })
    expect(encodeHandshake(r as HandshakePacket).length).toBeLessThan(datagram.length)
    expect(listener.stats.streamsCreated).toBe(0)
  })

  /** COOKIE then WELCOME (or REJECT) for one HELLO shape; returns both replies as raw bytes. */
  async function handshake(a: Probe, port: number, id: number, fill: number, version: number, offer?: ProtocolOffer): Promise<[Buffer, Buffer]> {
    const nonce = Buffer.alloc(NONCE_BYTES, fill)
    a.sock.send(encodeHandshake({ type: 'hello', version, clientId: id, nonce, cookie: null, offer }), port, '127.0.0.1')
    const cookie = await nextReply(a)
    const c = decodeHandshake(cookie)
    if (c?.type !== 'cookie') throw new Error(`expected a cookie, got ${c?.type}`)
    a.sock.send(encodeHandshake({ type: 'hello', version, clientId: id, nonce, cookie: c.cookie, offer }), port, '127.0.0.1')
    return [cookie, await nextReply(a)]
  }

  it('answers a protocol-2 HELLO with the exact protocol-2 packets: version byte 2, 40-byte COOKIE, 24-byte WELCOME', async () => {
    const { port, a } = await setup()
    const [cookie, welcome] = await handshake(a, port, 21, 21, 2)
    expect(cookie.length).toBe(40)
    expect(cookie[3]).toBe(2)
    expect(welcome.length).toBe(24)
    expect(decodeHandshake(welcome)).toMatchObject({ type: 'welcome', version: 2 })
    expect(decodeHandshake(welcome)).not.toHaveProperty('offer')
  })

  it('answers a HELLO with an offer with the agreed version and the server\'s own offer in the WELCOME', async () => {
    const { port, a } = await setup()
    const [cookie, welcome] = await handshake(a, port, 22, 22, 2, { minVersion: 2, maxVersion: 9, features: 0xff })
    expect(cookie.length).toBe(40) // the COOKIE never changes
    expect(cookie[3]).toBe(PROTOCOL_VERSION)
    expect(decodeHandshake(welcome)).toMatchObject({ type: 'welcome', version: PROTOCOL_VERSION, offer: LOCAL_OFFER })
  })

  it('REJECTs (version) a HELLO whose range has no version in common, with its offer to a client that sent one', async () => {
    const { listener, port, a } = await setup()
    const nonce = Buffer.alloc(NONCE_BYTES, 23)
    const future = { minVersion: PROTOCOL_VERSION + 1, maxVersion: PROTOCOL_VERSION + 5, features: 0 }
    const r = await ask(a, port, encodeHandshake({ type: 'hello', version: future.minVersion, clientId: 1, nonce, cookie: null, offer: future }))
    expect(r).toEqual({ type: 'reject', version: PROTOCOL_VERSION, nonce, reason: REJECT_REASON.version, offer: LOCAL_OFFER })
    expect(listener.stats.cookiesSent).toBe(0)
  })

  it('honours the listener\'s offer: a server of versions 3 only REJECTs a protocol-2 HELLO and takes a 2–3 one', async () => {
    const { port, a } = await setup({ offer: { minVersion: 3, maxVersion: 3, features: 0 } })
    const r = await ask(a, port, hello(1, Buffer.alloc(NONCE_BYTES, 24), null, 2))
    expect(r).toMatchObject({ type: 'reject', version: 3, reason: REJECT_REASON.version })
    expect(r).not.toHaveProperty('offer') // a protocol-2 client only takes the 21-byte REJECT
    const [, welcome] = await handshake(a, port, 25, 25, 2, LOCAL_OFFER)
    expect(decodeHandshake(welcome)).toMatchObject({ type: 'welcome', version: 3 })
  })

  it('ignores short HELLOs and udx-looking datagrams (no reply at all)', async () => {
    const { listener, port, a } = await setup()
    const short = hello(1, Buffer.alloc(NONCE_BYTES, 7), null).subarray(0, HELLO_MIN_BYTES - 1)
    a.sock.send(short, port, '127.0.0.1')
    a.sock.send(Buffer.from([0xff, 0x01, 0x00, 0x00, ...Buffer.alloc(HELLO_MIN_BYTES)]), port, '127.0.0.1')
    // Loopback keeps order: the first reply must be the one to the valid probe sent last.
    const probeNonce = Buffer.alloc(NONCE_BYTES, 8)
    const r = await ask(a, port, hello(1, probeNonce, null))
    expect(r?.nonce).toEqual(probeNonce)
    expect(listener.stats.cookiesSent).toBe(1)
  })

  it('answers REJECT (server full) past maxClients, still without amplification', async () => {
    const { listener, port, a } = await setup({ maxClients: 1 })
    for (const [id, fill] of [[1, 11], [2, 12]] as const) {
      const nonce = Buffer.alloc(NONCE_BYTES, fill)
      const c = await ask(a, port, hello(id, nonce, null))
      if (c?.type !== 'cookie') throw new Error('expected a cookie')
      const r = await ask(a, port, hello(id, nonce, c.cookie))
      expect(r?.type).toBe(id === 1 ? 'welcome' : 'reject')
      if (r?.type === 'reject') expect(r.reason).toBe(REJECT_REASON.full)
    }
    expect(listener.stats.streamsCreated).toBe(1)
    // A protocol-3 client gets the full REJECT with the server's offer.
    const [, full] = await handshake(a, port, 3, 13, 2, LOCAL_OFFER)
    expect(decodeHandshake(full)).toMatchObject({ type: 'reject', reason: REJECT_REASON.full, offer: LOCAL_OFFER })
  })
})
