/**
 * The raw datagrams of the UDP handshake (before a udx stream exists). Pure encode/decode.
 *
 *   HELLO   'A' 'S' 0x01 version u8 | client stream id u32 | nonce 16 | cookie len u8 | cookie | zero padding
 *   COOKIE  'A' 'S' 0x02 version u8 | nonce 16 | cookie 20
 *   WELCOME 'A' 'S' 0x03 version u8 | nonce 16 | server stream id u32
 *   REJECT  'A' 'S' 0x04 version u8 | nonce 16 | reason u8
 *
 * udx's own packets start with 0xff, so the two never collide on one socket. HELLO is padded to
 * HELLO_MIN_BYTES so that every answer sent before a cookie is echoed is smaller than the HELLO.
 */
import { HELLO_MIN_BYTES } from '../limits.js'

export const HS_MAGIC_0 = 0x41 // 'A'
export const HS_MAGIC_1 = 0x53 // 'S'
export const HS = { hello: 1, cookie: 2, welcome: 3, reject: 4 } as const
export const REJECT_REASON = { version: 1, full: 2 } as const
export const NONCE_BYTES = 16
export const COOKIE_BYTES = 20 // time bucket u32 + 16-byte MAC

export type HandshakePacket =
  | { type: 'hello'; version: number; clientId: number; nonce: Buffer; cookie: Buffer | null }
  | { type: 'cookie'; version: number; nonce: Buffer; cookie: Buffer }
  | { type: 'welcome'; version: number; nonce: Buffer; serverId: number }
  | { type: 'reject'; version: number; nonce: Buffer; reason: number }

function header(size: number, type: number, version: number): Buffer {
  const b = Buffer.alloc(size)
  b[0] = HS_MAGIC_0
  b[1] = HS_MAGIC_1
  b[2] = type
  b[3] = version
  return b
}

export function encodeHandshake(p: HandshakePacket): Buffer {
  switch (p.type) {
    case 'hello': {
      const b = header(HELLO_MIN_BYTES, HS.hello, p.version)
      b.writeUInt32BE(p.clientId, 4)
      p.nonce.copy(b, 8)
      const cookie = p.cookie ?? Buffer.alloc(0)
      b[24] = cookie.length
      cookie.copy(b, 25)
      return b
    }
    case 'cookie': {
      const b = header(4 + NONCE_BYTES + COOKIE_BYTES, HS.cookie, p.version)
      p.nonce.copy(b, 4)
      p.cookie.copy(b, 4 + NONCE_BYTES)
      return b
    }
    case 'welcome': {
      const b = header(4 + NONCE_BYTES + 4, HS.welcome, p.version)
      p.nonce.copy(b, 4)
      b.writeUInt32BE(p.serverId, 4 + NONCE_BYTES)
      return b
    }
    case 'reject': {
      const b = header(4 + NONCE_BYTES + 1, HS.reject, p.version)
      p.nonce.copy(b, 4)
      b[4 + NONCE_BYTES] = p.reason
      return b
    }
  }
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
      return {
        type: 'hello', version, clientId: b.readUInt32BE(4), nonce: Buffer.from(b.subarray(8, 24)),
        cookie: len === 0 ? null : Buffer.from(b.subarray(25, 25 + len)),
      }
    }
    case HS.cookie:
      if (b.length !== 4 + NONCE_BYTES + COOKIE_BYTES) return null
      return { type: 'cookie', version, nonce: Buffer.from(b.subarray(4, 20)), cookie: Buffer.from(b.subarray(20)) }
    case HS.welcome:
      if (b.length !== 4 + NONCE_BYTES + 4) return null
      return { type: 'welcome', version, nonce: Buffer.from(b.subarray(4, 20)), serverId: b.readUInt32BE(20) }
    case HS.reject:
      if (b.length !== 4 + NONCE_BYTES + 1) return null
      return { type: 'reject', version, nonce: Buffer.from(b.subarray(4, 20)), reason: b[20] as number }
    default:
      return null
  }
}
