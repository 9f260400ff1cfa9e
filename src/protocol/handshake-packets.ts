/**
 * The raw datagrams of the UDP handshake (before a udx stream exists). Pure encode/decode.
 *
 *   HELLO   'A' 'S' 0x01 version u8 | client stream id u32 | nonce 16 | cookie len u8 | cookie | [@45 offer] | zero padding
 *   COOKIE  'A' 'S' 0x02 version u8 | nonce 16 | cookie 20
 *   WELCOME 'A' 'S' 0x03 version u8 | nonce 16 | server stream id u32 | [offer]
 *   REJECT  'A' 'S' 0x04 version u8 | nonce 16 | reason u8 | [offer]
 *   RESET   'A' 'S' 0x05 version u8 | server stream id u32         (8 bytes, after the handshake)
 *
 * The offer block (protocol 3, OFFER_BYTES) is 'V' | lowest version u16 | highest version u16 |
 * features u32. A protocol-3 client puts it in the HELLO's padding at OFFER_AT, where a
 * protocol-2 listener never looks; only a HELLO that carried it gets a WELCOME or REJECT with
 * one, because a protocol-2 client refuses those packets at any length but 24 and 21.
 *
 * udx's own packets start with 0xff, so the two never collide on one socket. HELLO is padded to
 * HELLO_MIN_BYTES so that every answer sent before a cookie is echoed is smaller than the HELLO.
 *
 * RESET is the listener's answer to a udx packet for a stream it does not have (a server that
 * restarted, or closed that stream): "I do not know server stream <id>". It is smaller than the
 * 20-byte udx header it answers. Only a client connected to that server stream acts on it.
 */
import { HELLO_MIN_BYTES } from '../limits.js'
import type { ProtocolOffer } from './negotiation.js'

export const HS_MAGIC_0 = 0x41 // 'A'
export const HS_MAGIC_1 = 0x53 // 'S'
export const HS = { hello: 1, cookie: 2, welcome: 3, reject: 4, reset: 5 } as const
export const REJECT_REASON = { version: 1, full: 2 } as const
export const NONCE_BYTES = 16
export const COOKIE_BYTES = 20 // time bucket u32 + 16-byte MAC
/** First byte of an offer block ('V'); a protocol-2 HELLO has zero padding there. */
export const OFFER_TAG = 0x56
/** Offer block: tag, lowest version u16, highest version u16, features u32. */
export const OFFER_BYTES = 9
/** Where a HELLO's offer block starts: after the 20-byte cookie slot, used or not. */
export const OFFER_AT = 25 + COOKIE_BYTES

const WELCOME_BYTES = 4 + NONCE_BYTES + 4
const REJECT_BYTES = 4 + NONCE_BYTES + 1
/** RESET: header + server stream id. */
export const RESET_BYTES = 8

/** udx-native's packet header (libudx): magic 0xff, version 1, type flags, data offset, then 4 × u32 LE (stream id, window, seq, ack). */
export const UDX_HEADER_BYTES = 20
/** The udx header type flag of a packet that destroys its stream: a stale one of those needs no RESET. */
export const UDX_FLAG_DESTROY = 0x10

/**
 * The destination stream id of a udx packet (header bytes 4–7, little endian), or null if `b` is
 * not one. A listener sees such packets only for streams it does not have.
 */
export function udxStreamIdOf(b: Buffer): number | null {
  if (b.length < UDX_HEADER_BYTES || b[0] !== 0xff || b[1] !== 1) return null
  if (((b[2] as number) & UDX_FLAG_DESTROY) !== 0) return null
  const id = b.readUInt32LE(4)
  return id === 0 ? null : id // 0 is never a stream id (udp.ts randomId)
}

/** A RESET datagram: `streamId` is the server stream the listener does not know. */
export interface ResetPacket { version: number; streamId: number }

export function encodeReset(p: ResetPacket): Buffer {
  const b = header(RESET_BYTES, HS.reset, p.version)
  b.writeUInt32BE(p.streamId >>> 0, 4)
  return b
}

/** The RESET in `b`, or null for anything else (decodeHandshake ignores RESETs, and this everything but). */
export function decodeReset(b: Buffer): ResetPacket | null {
  if (b.length !== RESET_BYTES || b[0] !== HS_MAGIC_0 || b[1] !== HS_MAGIC_1 || b[2] !== HS.reset) return null
  return { version: b[3] as number, streamId: b.readUInt32BE(4) }
}

/**
 * `version` is the header byte: in a HELLO the client's lowest version (a protocol-2 listener
 * accepts exactly 2), in a server packet the version the server would speak with that client.
 * `offer` is the sender's full offer, present only in the protocol-3 forms.
 */
export type HandshakePacket =
  | { type: 'hello'; version: number; clientId: number; nonce: Buffer; cookie: Buffer | null; offer?: ProtocolOffer }
  | { type: 'cookie'; version: number; nonce: Buffer; cookie: Buffer }
  | { type: 'welcome'; version: number; nonce: Buffer; serverId: number; offer?: ProtocolOffer }
  | { type: 'reject'; version: number; nonce: Buffer; reason: number; offer?: ProtocolOffer }

function header(size: number, type: number, version: number): Buffer {
  const b = Buffer.alloc(size)
  b[0] = HS_MAGIC_0
  b[1] = HS_MAGIC_1
  b[2] = type
  b[3] = version
  return b
}

function writeOffer(b: Buffer, at: number, o: ProtocolOffer): void {
  b[at] = OFFER_TAG
  b.writeUInt16BE(o.minVersion, at + 1)
  b.writeUInt16BE(o.maxVersion, at + 3)
  b.writeUInt32BE(o.features >>> 0, at + 5)
}

/** The offer block at `at`, or null when it is not a well-formed one (no tag, or lowest > highest). */
function readOffer(b: Buffer, at: number): ProtocolOffer | null {
  if (b[at] !== OFFER_TAG) return null
  const minVersion = b.readUInt16BE(at + 1)
  const maxVersion = b.readUInt16BE(at + 3)
  if (minVersion === 0 || minVersion > maxVersion) return null
  return { minVersion, maxVersion, features: b.readUInt32BE(at + 5) }
}

const withOffer = (o: ProtocolOffer | undefined): number => (o ? OFFER_BYTES : 0)

export function encodeHandshake(p: HandshakePacket): Buffer {
  switch (p.type) {
    case 'hello': {
      const b = header(HELLO_MIN_BYTES, HS.hello, p.version)
      b.writeUInt32BE(p.clientId, 4)
      p.nonce.copy(b, 8)
      const cookie = p.cookie ?? Buffer.alloc(0)
      b[24] = cookie.length
      cookie.copy(b, 25)
      if (p.offer) writeOffer(b, OFFER_AT, p.offer)
      return b
    }
    case 'cookie': {
      const b = header(4 + NONCE_BYTES + COOKIE_BYTES, HS.cookie, p.version)
      p.nonce.copy(b, 4)
      p.cookie.copy(b, 4 + NONCE_BYTES)
      return b
    }
    case 'welcome': {
      const b = header(WELCOME_BYTES + withOffer(p.offer), HS.welcome, p.version)
      p.nonce.copy(b, 4)
      b.writeUInt32BE(p.serverId, 4 + NONCE_BYTES)
      if (p.offer) writeOffer(b, WELCOME_BYTES, p.offer)
      return b
    }
    case 'reject': {
      const b = header(REJECT_BYTES + withOffer(p.offer), HS.reject, p.version)
      p.nonce.copy(b, 4)
      b[4 + NONCE_BYTES] = p.reason
      if (p.offer) writeOffer(b, REJECT_BYTES, p.offer)
      return b
    }
  }
}

/**
 * A server packet's optional trailing offer: `base` bytes means none; `base + OFFER_BYTES` with
 * a well-formed block means that offer; anything else is not a packet (undefined).
 */
function trailingOffer(b: Buffer, base: number): { offer?: ProtocolOffer } | undefined {
  if (b.length === base) return {}
  if (b.length !== base + OFFER_BYTES) return undefined
  const offer = readOffer(b, base)
  return offer ? { offer } : undefined
}

/** Returns null for anything that is not a well-formed handshake datagram (it is then ignored). */
export function decodeHandshake(b: Buffer): HandshakePacket | null {
  if (b.length < 4 + NONCE_BYTES || b[0] !== HS_MAGIC_0 || b[1] !== HS_MAGIC_1) return null
  const version = b[3] as number
  switch (b[2]) {
    case HS.hello: {
      if (b.length < HELLO_MIN_BYTES) return null
      const len = b[24] as number
      if (len !== 0 && len !== COOKIE_BYTES) return null
      // A protocol-2 HELLO has zero padding here (no offer). A tag with a bad range is garbage.
      const offer = readOffer(b, OFFER_AT)
      if (offer === null && b[OFFER_AT] === OFFER_TAG) return null
      return {
        type: 'hello', version, clientId: b.readUInt32BE(4), nonce: Buffer.from(b.subarray(8, 24)),
        cookie: len === 0 ? null : Buffer.from(b.subarray(25, 25 + len)), ...(offer ? { offer } : {}),
      }
    }
    case HS.cookie:
      if (b.length !== 4 + NONCE_BYTES + COOKIE_BYTES) return null
      return { type: 'cookie', version, nonce: Buffer.from(b.subarray(4, 20)), cookie: Buffer.from(b.subarray(20)) }
    case HS.welcome: {
      const ext = trailingOffer(b, WELCOME_BYTES)
      if (!ext) return null
      return { type: 'welcome', version, nonce: Buffer.from(b.subarray(4, 20)), serverId: b.readUInt32BE(20), ...ext }
    }
    case HS.reject: {
      const ext = trailingOffer(b, REJECT_BYTES)
      if (!ext) return null
      return { type: 'reject', version, nonce: Buffer.from(b.subarray(4, 20)), reason: b[20] as number, ...ext }
    }
    default:
      return null
  }
}
