import { type Socket, createSocket } from 'node:dgram'
import { afterEach, describe, expect, it } from 'vitest'
import { COOKIE_BUCKET_MS, HELLO_MIN_BYTES } from '../../src/limits.js'
import { ManualClock } from '../../src/protocol/clock.js'
import {
  COOKIE_BYTES, HS, HS_MAGIC_0, HS_MAGIC_1, NONCE_BYTES, REJECT_REASON, decodeHandshake, encodeHandshake,
  type HandshakePacket,
} from '../../src/protocol/handshake-packets.js'
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js'
import { UdpListener } from '../../src/protocol/udp.js'
import { bytesOf, h8 } from './golden-frames.js'

const NONCE_HEX = '00112233445566778899aabbccddeeff'
const NONCE = Buffer.from(NONCE_HEX, 'hex')
const COOKIE_HEX = '0000abcd' + 'c0c1c2c3c4c5c6c7c8c9cacbcccdcecf' // time bucket u32 + 16-byte MAC
const COOKIE = Buffer.from(COOKIE_HEX, 'hex')
const head = (type: number, version = PROTOCOL_VERSION): string => h8(HS_MAGIC_0) + h8(HS_MAGIC_1) + h8(type) + h8(version)
/** Bytes before a HELLO's cookie: magic 2, type 1, version 1, client id 4, nonce 16, cookie length 1. */
const HELLO_FIXED = 4 + 4 + NONCE_BYTES + 1

const GOLDEN: { name: string; packet: HandshakePacket; bytes: Buffer }[] = [
  {
    name: 'HELLO without cookie',
    packet: { type: 'hello', version: PROTOCOL_VERSION, clientId: 0x01020304, nonce: NONCE, cookie: null },
    bytes: bytesOf(head(HS.hello), '01020304', NONCE_HEX, '00', '00'.repeat(HELLO_MIN_BYTES - HELLO_FIXED)),
  },
  {
    name: 'HELLO with cookie',
    packet: { type: 'hello', version: PROTOCOL_VERSION, clientId: 0xfffffffe, nonce: NONCE, cookie: COOKIE },
    bytes: bytesOf(head(HS.hello), 'fffffffe', NONCE_HEX, h8(COOKIE_BYTES), COOKIE_HEX,
      '00'.repeat(HELLO_MIN_BYTES - HELLO_FIXED - COOKIE_BYTES)),
  },
  {
    name: 'COOKIE',
    packet: { type: 'cookie', version: PROTOCOL_VERSION, nonce: NONCE, cookie: COOKIE },
    bytes: bytesOf(head(HS.cookie), NONCE_HEX, COOKIE_HEX),
  },
  {
    name: 'WELCOME',
    packet: { type: 'welcome', version: PROTOCOL_VERSION, nonce: NONCE, serverId: 0xcafebabe },
    bytes: bytesOf(head(HS.welcome), NONCE_HEX, 'cafebabe'),
  },
  {
    name: 'REJECT (version)',
    packet: { type: 'reject', version: PROTOCOL_VERSION, nonce: NONCE, reason: REJECT_REASON.version },
    bytes: bytesOf(head(HS.reject), NONCE_HEX, h8(REJECT_REASON.version)),
  },
  {
    name: 'REJECT (server full)',
    packet: { type: 'reject', version: PROTOCOL_VERSION, nonce: NONCE, reason: REJECT_REASON.full },
    bytes: bytesOf(head(HS.reject), NONCE_HEX, h8(REJECT_REASON.full)),
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

  it('pads every HELLO to exactly HELLO_MIN_BYTES', () => {
    expect(golden('HELLO without cookie').length).toBe(HELLO_MIN_BYTES)
    expect(golden('HELLO with cookie').length).toBe(HELLO_MIN_BYTES)
  })

  it('accepts a HELLO longer than the minimum (padding is not interpreted)', () => {
    const longer = Buffer.concat([golden('HELLO with cookie'), Buffer.alloc(64, 0x55)])
    expect(decodeHandshake(longer)).toEqual(GOLDEN[1]?.packet)
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
    expect(replies.map((gp) => gp.packet.type).sort()).toEqual(['cookie', 'reject', 'reject', 'welcome'])
    for (const gp of replies) {
      expect(encodeHandshake(gp.packet).length).toBeLessThan(HELLO_MIN_BYTES)
    }
  })

  it('refuses every HELLO shorter than HELLO_MIN_BYTES', () => {
    for (const name of ['HELLO without cookie', 'HELLO with cookie']) {
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
      expect(decodeHandshake(bytesOf(head(t), NONCE_HEX, '00'.repeat(HELLO_MIN_BYTES)))).toBeNull()
    }
    for (const name of ['COOKIE', 'WELCOME', 'REJECT (version)']) {
      const b = golden(name)
      expect(decodeHandshake(b.subarray(0, b.length - 1))).toBeNull()
      expect(decodeHandshake(Buffer.concat([b, Buffer.alloc(1)]))).toBeNull()
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

  async function setup(opts: { maxClients?: number } = {}): Promise<{ listener: UdpListener; port: number; clock: ManualClock; a: Probe }> {
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
  })
})
