/**
 * RESET (docs/protocol.md §1.5): a listener's answer to a udx packet for a stream it does not have,
 * so that a client of a restarted server reconnects at its next keepalive instead of after its idle
 * timeout. Golden bytes, strict decoding, and the listener's rules (smaller than what it answers,
 * rate-limited, never for a DESTROY or stream id 0), with real sockets on port 0.
 */
import { type Socket, createSocket } from 'node:dgram'
import { afterEach, describe, expect, it } from 'vitest'
import { HANDSHAKE_RATE_PER_ADDR } from '../../src/limits.js'
import { ManualClock } from '../../src/protocol/clock.js'
import {
  HS, RESET_BYTES, UDX_FLAG_DESTROY, UDX_HEADER_BYTES, decodeHandshake, decodeReset, encodeReset, udxStreamIdOf,
} from '../../src/protocol/handshake-packets.js'
import { LOCAL_OFFER } from '../../src/protocol/negotiation.js'
import { UdpListener } from '../../src/protocol/udp.js'
import { waitFor } from '../helpers/common.js'

/** A udx packet header (libudx udx_write_header): magic, version, type, data offset, id/rwnd/seq/ack u32 LE. */
function udxPacket(streamId: number, type = 0x01, payload = 16): Buffer {
  const b = Buffer.alloc(UDX_HEADER_BYTES + payload)
  b[0] = 0xff
  b[1] = 1
  b[2] = type
  b.writeUInt32LE(streamId, 4)
  b.writeUInt32LE(65536, 8)
  b.writeUInt32LE(7, 12)
  b.writeUInt32LE(9, 16)
  return b
}

describe('RESET packet', () => {
  it('golden bytes: 41 53 05 <version> <server stream id u32 BE>, 8 bytes', () => {
    const b = encodeReset({ version: 3, streamId: 0xcafebabe })
    expect(b.toString('hex')).toBe('41530503cafebabe')
    expect(b.length).toBe(RESET_BYTES)
    expect(HS.reset).toBe(5)
    expect(decodeReset(b)).toEqual({ version: 3, streamId: 0xcafebabe })
  })

  it('decodes only exactly 8 bytes with the magic and type 5; decodeHandshake ignores it', () => {
    const b = encodeReset({ version: 3, streamId: 42 })
    expect(decodeHandshake(b)).toBeNull()
    expect(decodeReset(b.subarray(0, 7))).toBeNull()
    expect(decodeReset(Buffer.concat([b, Buffer.from([0])]))).toBeNull()
    for (const [at, v] of [[0, 0x42], [1, 0x54], [2, HS.welcome]] as const) {
      const bad = Buffer.from(b)
      bad[at] = v
      expect(decodeReset(bad)).toBeNull()
    }
  })

  it('udxStreamIdOf reads the destination id of a udx packet, and nothing else', () => {
    expect(udxStreamIdOf(udxPacket(0x01020304))).toBe(0x01020304)
    expect(udxStreamIdOf(udxPacket(0x01020304).subarray(0, UDX_HEADER_BYTES - 1))).toBeNull()
    expect(udxStreamIdOf(udxPacket(0))).toBeNull() // 0 is never a stream id
    expect(udxStreamIdOf(udxPacket(5, UDX_FLAG_DESTROY))).toBeNull() // the peer is closing anyway
    const wrongVersion = udxPacket(5)
    wrongVersion[1] = 2
    expect(udxStreamIdOf(wrongVersion)).toBeNull()
    expect(udxStreamIdOf(encodeReset({ version: 3, streamId: 5 }))).toBeNull()
  })
})

describe('UdpListener answers packets for streams it does not have with RESET', () => {
  const cleanup: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const fn of cleanup.splice(0)) await fn()
  })

  async function setup(): Promise<{ listener: UdpListener; port: number; clock: ManualClock; sock: Socket; got: Buffer[] }> {
    const clock = new ManualClock()
    clock.advance(10_000)
    const listener = UdpListener.listen('127.0.0.1', 0, { clock })
    const sock = createSocket('udp4')
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve))
    const got: Buffer[] = []
    sock.on('message', (b) => got.push(b))
    cleanup.push(() => listener.close(), () => new Promise<void>((resolve) => sock.close(() => resolve())))
    return { listener, port: listener.address().port, clock, sock, got }
  }

  it('answers a stale data packet with a smaller RESET naming the stream, allocating nothing', async () => {
    const { listener, port, sock, got } = await setup()
    const stale = udxPacket(0x0badf00d)
    sock.send(stale, port, '127.0.0.1')
    await waitFor(() => got.length === 1, 2000, 'the RESET')
    expect(decodeReset(got[0] as Buffer)).toEqual({ version: LOCAL_OFFER.maxVersion, streamId: 0x0badf00d })
    expect((got[0] as Buffer).length).toBeLessThan(stale.length)
    expect(listener.stats.resetsSent).toBe(1)
    expect(listener.stats.streamsCreated).toBe(0)
    expect(listener.connections).toBe(0)
  })

  it('does not answer a DESTROY, stream id 0, or a bare header-sized probe of another kind', async () => {
    const { listener, port, sock, got } = await setup()
    sock.send(udxPacket(77, UDX_FLAG_DESTROY), port, '127.0.0.1')
    sock.send(udxPacket(0), port, '127.0.0.1')
    sock.send(Buffer.from([0]), port, '127.0.0.1') // a liveness port probe (liveness.ts)
    sock.send(udxPacket(78), port, '127.0.0.1') // a barrier: loopback keeps order
    await waitFor(() => got.length >= 1, 2000, 'the barrier RESET')
    await waitFor(() => listener.stats.datagramsIn === 4, 2000, 'all four datagrams read')
    expect(got.map((b) => decodeReset(b)?.streamId)).toEqual([78])
    expect(listener.stats.resetsSent).toBe(1)
  })

  it('shares the per-address rate limit with HELLOs', async () => {
    const { listener, port, sock, got } = await setup()
    const burst = HANDSHAKE_RATE_PER_ADDR + 25
    for (let i = 0; i < burst; i++) sock.send(udxPacket(1000 + i), port, '127.0.0.1')
    await waitFor(() => listener.stats.datagramsIn === burst, 5000, 'the burst read')
    await waitFor(() => got.length === HANDSHAKE_RATE_PER_ADDR, 5000, 'the answers')
    expect(listener.stats.resetsSent).toBe(HANDSHAKE_RATE_PER_ADDR)
    expect(listener.stats.rateLimited).toBe(burst - HANDSHAKE_RATE_PER_ADDR)
    expect(listener.stats.handshakeBytesOut).toBeLessThan(listener.stats.bytesIn)
  })
})
