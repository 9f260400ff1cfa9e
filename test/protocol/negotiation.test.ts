/**
 * Protocol evolution (docs/protocol.md §5): the feature registry, version/feature negotiation,
 * the AUTH exchange in both layouts, and the ignore rule for optional frames, on connections
 * over an in-memory pair driven by a ManualClock.
 */
import type { Duplex } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/protocol/clock.js'
import { decode, encode } from '../../src/protocol/codec.js'
import { ClientConnection, ServerConnection } from '../../src/protocol/connection.js'
import {
  FEATURES, IMPLEMENTED_FEATURES, MIN_PROTOCOL_VERSION, MSG, OPTIONAL_CODES, PROTOCOL_VERSION, featureBits, featureNames,
  allowedFrom, featureOfCode, isOptionalCode, skipsFrame, type FeatureName, type FeatureSpec, type Message, type MessageType,
  type Sender,
} from '../../src/protocol/messages.js'
import { LOCAL_OFFER, type ProtocolOffer, negotiate, offerOf } from '../../src/protocol/negotiation.js'
import { memoryPair } from '../helpers/memory-pair.js'

const NAMES = Object.keys(FEATURES) as FeatureName[]
const SENDERS: readonly Sender[] = ['client', 'server']
const DIRECTION: Record<Sender, { first: number; last: number }> = { client: { first: 0x01, last: 0x3f }, server: { first: 0x41, last: 0x7e } }

const flush = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

describe('feature registry', () => {
  it('reserves the wave-2 features, each with its own bit', () => {
    expect(NAMES.sort()).toEqual(['batch-request', 'chunks', 'direct', 'manifest-digest', 'priority', 'report', 'status', 'zstd'])
    const bits = NAMES.map((n) => FEATURES[n].bit)
    expect(new Set(bits).size).toBe(bits.length)
    for (const b of bits) expect(b >= 0 && b < 32).toBe(true)
    expect(featureNames(featureBits(NAMES)).sort()).toEqual(NAMES.sort())
    expect(featureBits([])).toBe(0)
    expect(featureNames(0x80000000)).toEqual([]) // an unknown bit has no name
  })

  it('offers exactly the implemented features by default', () => {
    const implemented = NAMES.filter((n) => (FEATURES[n] as FeatureSpec).implemented)
    expect(IMPLEMENTED_FEATURES).toBe(featureBits(implemented))
    expect(LOCAL_OFFER).toEqual({ minVersion: MIN_PROTOCOL_VERSION, maxVersion: PROTOCOL_VERSION, features: IMPLEMENTED_FEATURES })
    expect(MIN_PROTOCOL_VERSION).toBe(2)
    expect(PROTOCOL_VERSION).toBe(3)
  })

  it('keeps the optional ranges inside their direction, clear of every mandatory frame', () => {
    for (const s of SENDERS) {
      const r = OPTIONAL_CODES[s]
      expect(r.first).toBeGreaterThan(DIRECTION[s].first)
      expect(r.last).toBe(DIRECTION[s].last) // the upper part of the direction's range
    }
    // A frame in an optional range belongs to a feature (its block); every other frame is mandatory.
    for (const [type, code] of Object.entries(MSG)) {
      if (type === 'ping') continue
      const sender: Sender = allowedFrom('client', type as MessageType) ? 'client' : 'server'
      const owner = featureOfCode(code, sender)
      // A frame in an optional range belongs to an implemented feature's block of its own direction;
      // every other frame is mandatory and clear of both optional ranges.
      if (owner === null) expect(SENDERS.some((s) => isOptionalCode(code, s)), `${type} 0x${code.toString(16)}`).toBe(false)
      else expect([type, isOptionalCode(code, sender), (FEATURES[owner] as FeatureSpec).implemented]).toEqual([type, true, true])
    }
  })

  it('gives each feature codes of its own, inside the optional range of each direction', () => {
    for (const s of SENDERS) {
      const owned = new Map<number, FeatureName>()
      for (const n of NAMES) {
        const r = FEATURES[n].frames[s]
        expect(isOptionalCode(r.first, s) && isOptionalCode(r.last, s)).toBe(true)
        for (let c = r.first; c <= r.last; c++) {
          expect(owned.get(c), `0x${c.toString(16)} owned twice`).toBeUndefined()
          owned.set(c, n)
          expect(featureOfCode(c, s)).toBe(n)
        }
      }
    }
    expect(featureOfCode(0x3c, 'client')).toBe('direct') // the last block (scale-out)
    expect(featureOfCode(0x7e, 'server')).toBe('direct')
    expect(featureOfCode(0x7f, 'server')).toBeNull() // PING is no feature's
    expect(featureOfCode(0x20, 'server')).toBeNull() // another direction's range
  })

  it('skips exactly the optional codes not agreed or unknown, for every code, sender and feature set', () => {
    const sets = [0, 0xffffffff, ...NAMES.map((n) => featureBits([n]))]
    for (const s of SENDERS) {
      for (let code = 0; code < 256; code++) {
        for (const features of sets) {
          const owner = featureOfCode(code, s)
          const agreed = owner !== null && ((features >>> FEATURES[owner].bit) & 1) === 1
          const known = Object.values(MSG).includes(code as never)
          const expected = isOptionalCode(code, s) && !(agreed && known)
          expect(skipsFrame(code, s, features), `${s} 0x${code.toString(16)} features ${features}`).toBe(expected)
        }
      }
    }
  })
})

describe('negotiate', () => {
  const offer = (minVersion: number, maxVersion: number, features = 0): ProtocolOffer => ({ minVersion, maxVersion, features })

  it('picks the highest common version, and the common features from version 3 on', () => {
    expect(negotiate(offer(2, 3, 0b1011), offer(2, 3, 0b0110))).toEqual({ version: 3, features: 0b0010 })
    expect(negotiate(offer(2, 5, 1), offer(3, 4, 1))).toEqual({ version: 4, features: 1 })
    expect(negotiate(offer(2, 3, 0xffffffff), offer(2, 3, 0xffffffff))).toEqual({ version: 3, features: 0xffffffff })
    // Protocol 2 has no features, whatever was offered.
    expect(negotiate(offer(2, 3, 7), offer(2, 2, 7))).toEqual({ version: 2, features: 0 })
  })

  it('finds nothing when the ranges do not overlap', () => {
    expect(negotiate(offer(2, 3), offer(4, 6))).toBeNull()
    expect(negotiate(offer(3, 3), offer(2, 2))).toBeNull()
  })

  it('refuses a nonsensical local offer', () => {
    expect(() => offerOf({ minVersion: 0 })).toThrow(RangeError)
    expect(() => offerOf({ minVersion: 3, maxVersion: 2 })).toThrow(RangeError)
    expect(offerOf({ features: -1 }).features).toBe(0xffffffff)
  })
})

// --- connections -----------------------------------------------------------------------------------

/** A connection of `role` whose peer is a raw stream the test drives (frames in, frames out). */
function rawPeer<R extends Sender>(role: R, protocol: Partial<ProtocolOffer> = {}): {
  conn: R extends 'client' ? ClientConnection : ServerConnection; raw: Duplex; received: Buffer[]
} {
  const { a, b } = memoryPair()
  const opts = { remote: 'peer', clock: new ManualClock(), protocol }
  const conn = role === 'client' ? new ClientConnection(a, opts) : new ServerConnection(a, opts)
  const received: Buffer[] = []
  b.on('data', (frame: Buffer) => received.push(frame))
  return { conn: conn as R extends 'client' ? ClientConnection : ServerConnection, raw: b, received }
}

async function openPair(client: Partial<ProtocolOffer> = {}, server: Partial<ProtocolOffer> = {}): Promise<{
  client: ClientConnection; server: ServerConnection; clientRaw: Duplex; serverRaw: Duplex; fromClient: Message[]; fromServer: Message[]
}> {
  const clock = new ManualClock()
  const { a, b } = memoryPair()
  const c = new ClientConnection(a, { remote: 'server', clock, protocol: client })
  const s = new ServerConnection(b, { remote: 'client', clock, protocol: server })
  const fromClient: Message[] = []
  const fromServer: Message[] = []
  s.on('message', (m: Message) => fromClient.push(m))
  c.on('message', (m: Message) => fromServer.push(m))
  await Promise.all([s.acceptAuth(null), c.authenticate('')])
  return { client: c, server: s, clientRaw: a, serverRaw: b, fromClient, fromServer }
}

describe('AUTH negotiation between two protocol-3 ends', () => {
  it('agrees on version 3 and the features both offered, the same on both ends', async () => {
    const { client, server } = await openPair(
      { features: featureBits(['priority', 'status']) }, { features: featureBits(['status', 'zstd']) })
    for (const end of [client, server]) {
      expect(end.version).toBe(3)
      expect(end.features).toBe(featureBits(['status']))
      expect(end.has('status')).toBe(true)
      expect(end.has('priority') || end.has('zstd')).toBe(false)
    }
  })

  it('settles on the highest common version: a client of 2 only gets protocol 2 and no features', async () => {
    const { client, server } = await openPair({ maxVersion: 2, features: 1 }, { features: 1 })
    expect([client.version, server.version, client.features, server.features]).toEqual([2, 2, 0, 0])
  })

  it('refuses with ERR_VERSION, naming both ranges, when the ranges do not overlap', async () => {
    const { conn: server, raw, received } = rawPeer('server')
    const accepted = server.acceptAuth(null)
    raw.write(encode({ type: 'auth', version: 9, token: '', minVersion: 7, features: 0 }))
    await expect(accepted).rejects.toMatchObject({ code: 'ERR_VERSION', message: 'client speaks protocol versions 7–9, server speaks versions 2–3' })
    await flush()
    expect(decode(received[0] as Buffer, 'server')).toMatchObject({ type: 'error', id: 0, code: 'ERR_VERSION' })
  })

  it('sends its offer in the AUTH tail: highest version, token, lowest version, features', async () => {
    const { conn, received } = rawPeer('client', { features: 0x41 })
    void conn.authenticate('tok').catch(() => {})
    await flush()
    expect(received[0]?.toString('hex')).toBe(`01 0003 0003 746f6b 0002 00000041`.replace(/ /g, ''))
    conn.destroy()
  })

  it('refuses an AUTH_OK that grants a feature it did not offer (ERR_PROTOCOL)', async () => {
    const { conn, raw } = rawPeer('client', { features: featureBits(['zstd']) })
    const authed = conn.authenticate('')
    raw.write(encode({ type: 'auth-ok', version: 3, features: featureBits(['zstd', 'chunks']) }))
    await expect(authed).rejects.toMatchObject({ code: 'ERR_PROTOCOL', message: expect.stringMatching(/not offered/) })
    expect(conn.refusedNegotiation).toBe(false)
  })
})

describe('AUTH with a protocol-2 peer', () => {
  it('a server answers a protocol-2 AUTH with the 3-byte AUTH_OK a protocol-2 client expects', async () => {
    const { conn: server, raw, received } = rawPeer('server', { features: 0xff })
    const accepted = server.acceptAuth('t')
    raw.write(Buffer.from('01 0002 0001 74'.replace(/ /g, ''), 'hex')) // what a protocol-2 client sends
    await accepted
    await flush()
    expect(received.map((b) => b.toString('hex'))).toEqual(['410002'])
    expect([server.version, server.features]).toEqual([2, 0])
  })

  it('a client in legacy style sends the protocol-2 AUTH and takes the protocol-2 AUTH_OK', async () => {
    const { conn, raw, received } = rawPeer('client', { features: 0xff })
    const authed = conn.authenticate('t', 'legacy')
    await flush()
    expect(received.map((b) => b.toString('hex'))).toEqual(['010002000174'])
    raw.write(Buffer.from('410002', 'hex'))
    await authed
    expect([conn.version, conn.features, conn.isOpen]).toEqual([2, 0, true])
  })

  it('a client in legacy style refuses any other version, and features', async () => {
    const other = rawPeer('client')
    const p1 = other.conn.authenticate('', 'legacy')
    other.raw.write(encode({ type: 'auth-ok', version: 3 }))
    await expect(p1).rejects.toMatchObject({ code: 'ERR_VERSION' })
    const featured = rawPeer('client')
    const p2 = featured.conn.authenticate('', 'legacy')
    featured.raw.write(encode({ type: 'auth-ok', version: 2, features: 1 }))
    await expect(p2).rejects.toMatchObject({ code: 'ERR_PROTOCOL' })
  })

  it('marks a protocol-3 AUTH refused with ERR_PROTOCOL (what a protocol-2 server answers), and nothing else', async () => {
    const refused = rawPeer('client')
    const p1 = refused.conn.authenticate('')
    // A protocol-2 server's answer to the AUTH tail (its decoder refuses trailing bytes).
    refused.raw.write(encode({ type: 'error', id: 0, code: 'ERR_PROTOCOL', message: 'protocol error: 6 trailing bytes after auth' }))
    await expect(p1).rejects.toMatchObject({ code: 'ERR_PROTOCOL' })
    expect(refused.conn.refusedNegotiation).toBe(true)

    const denied = rawPeer('client')
    const p2 = denied.conn.authenticate('')
    denied.raw.write(encode({ type: 'error', id: 0, code: 'ERR_AUTH', message: 'access token rejected by the server' }))
    await expect(p2).rejects.toMatchObject({ code: 'ERR_AUTH' })
    expect(denied.conn.refusedNegotiation).toBe(false)
  })

  it('a client whose lowest version is above 2 cannot use the legacy style', async () => {
    const { conn } = rawPeer('client', { minVersion: 3 })
    await expect(conn.authenticate('', 'legacy')).rejects.toMatchObject({ code: 'ERR_VERSION' })
  })
})

describe('optional frames: skipped when not agreed or unknown; mandatory unknown codes end the connection', () => {
  const frameOf = (code: number): Buffer => Buffer.from([code, 1, 2, 3, 4, 5])

  it('a server skips (and counts) optional client frames, then serves on', async () => {
    const { client, server, clientRaw, fromClient } = await openPair({ features: featureBits(['status']) }, { features: featureBits(['status']) })
    const codes = [
      FEATURES.priority.frames.client.first, // owned by a feature that was not agreed
      FEATURES.status.frames.client.last, // agreed, but this build has no frame with that code
      0x3c, 0x3f, // owned by no feature
    ]
    for (const code of codes) clientRaw.write(frameOf(code))
    clientRaw.write(encode({ type: 'cancel', id: 7 }))
    await flush()
    expect(server.skippedFrames).toBe(codes.length)
    expect(fromClient).toEqual([{ type: 'cancel', id: 7 }])
    expect(client.isOpen && server.isOpen).toBe(true)
  })

  it('a client skips optional server frames too, and a reply after them still arrives', async () => {
    const { client, server, serverRaw, fromServer } = await openPair()
    const req = client.request((id) => ({ type: 'request', id, path: 'a', haveHash: null }), () => true)
    await flush()
    for (const code of [0x60, 0x6d, 0x7d, 0x7e]) serverRaw.write(frameOf(code)) // 0x6d (zstd), 0x7d (direct): agreed, not defined
    server.send({ type: 'response', id: req.id, status: 'not-found', reason: '' })
    await req.done
    expect(client.skippedFrames).toBe(4)
    expect(fromServer).toEqual([])
    expect(client.isOpen).toBe(true)
  })

  it('skips optional frames that arrive before AUTH (nothing is agreed yet) without taking them for the AUTH', async () => {
    const { conn: server, raw, received } = rawPeer('server')
    const accepted = server.acceptAuth(null)
    raw.write(frameOf(0x20))
    raw.write(encode({ type: 'auth', version: 3, token: '', minVersion: 2, features: 0 }))
    await accepted
    await flush()
    expect(server.skippedFrames).toBe(1)
    expect(received.map((b) => b.toString('hex'))).toEqual(['41000300000000'])
  })

  it('ends the connection with ERR_PROTOCOL for an unknown mandatory code, or an optional code of the other direction', async () => {
    for (const [code, from] of [[0x10, 'client'], [0x1f, 'client'], [0x60, 'client'], [0x50, 'server'], [0x5f, 'server'], [0x20, 'server']] as const) {
      const { client, server, clientRaw, serverRaw } = await openPair()
      const receiver = from === 'client' ? server : client
      ;(from === 'client' ? clientRaw : serverRaw).write(frameOf(code))
      await flush()
      expect(receiver.closeError?.code, `0x${code.toString(16)} from the ${from}`).toBe('ERR_PROTOCOL')
      // 0x20 is a client frame (PRIORITY_REQUEST): from the server it is refused as such.
      expect(receiver.closeError?.message).toMatch(code === 0x20 ? /not valid from the server/ : /unknown frame type/)
      expect(receiver.skippedFrames).toBe(0)
    }
  })
})
