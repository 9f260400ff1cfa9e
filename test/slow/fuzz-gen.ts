/**
 * Generators for the live fuzz runs (./fuzz.test.ts): hostile datagrams for the server's UDP port
 * and hostile frames for an authenticated Noise stream. Everything is drawn from one seeded PRNG
 * (FUZZ_SEED), so a run can be replayed in what it sends (not in its timing).
 */
import { encode } from '../../src/protocol/codec.js'
import { encodeHandshake, NONCE_BYTES } from '../../src/protocol/handshake-packets.js'
import { type ClientMessage, MSG, PROTOCOL_VERSION } from '../../src/protocol/messages.js'
import { mulberry32 } from '../helpers/lossy-proxy.js'
import { udxPacket } from '../helpers/raw-peers.js'

export class Rand {
  readonly next: () => number
  readonly #pool: Buffer

  constructor(seed: number) {
    this.next = mulberry32(seed)
    this.#pool = Buffer.alloc(4 * 1024 * 1024)
    for (let i = 0; i < this.#pool.length; i += 4) this.#pool.writeUInt32LE((this.next() * 2 ** 32) >>> 0, i)
  }

  int(n: number): number { return Math.floor(this.next() * n) }
  u32(): number { return (this.next() * 2 ** 32) >>> 0 }
  chance(p: number): boolean { return this.next() < p }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)] as T }
  /** `n` pseudo-random bytes (a view into the pool: copy before changing). */
  bytes(n: number): Buffer {
    const at = this.int(this.#pool.length - n)
    return this.#pool.subarray(at, at + n)
  }
}

/** Applies 1..4 random mutations to a copy of `b`. */
export function mutate(r: Rand, b: Uint8Array): Buffer {
  let out = Buffer.from(b)
  for (let k = 1 + r.int(4); k > 0; k--) {
    const at = out.length === 0 ? 0 : r.int(out.length)
    switch (r.int(8)) {
      case 0: if (out.length) out[at] = (out[at] as number) ^ (1 << r.int(8)); break
      case 1: if (out.length) out[at] = r.int(256); break
      case 2: out = out.subarray(0, r.int(out.length + 1)); break
      case 3: out = Buffer.concat([out, r.bytes(1 + r.int(64))]); break
      case 4: out = Buffer.concat([out.subarray(0, at), r.bytes(1 + r.int(16)), out.subarray(at)]); break
      case 5: if (out.length > 2) out.writeUInt16BE(r.pick([0, 0xffff, 0x8000, 1025, 65, 257]), r.int(out.length - 1)); break
      case 6: if (out.length) out[0] = r.int(256); break
      default: if (out.length > 4) out.writeUInt32BE(r.pick([0, 0xffffffff, 0x7fffffff, r.u32()]), r.int(out.length - 3))
    }
  }
  return out
}

// --- datagrams ---------------------------------------------------------------------------------------

export interface CookieSeen { source: number; clientId: number; nonce: Buffer; cookie: Buffer }

export type DatagramKind = 'random' | 'hello' | 'cookie-echo' | 'udx' | 'udx-live' | 'handshake-other'

/**
 * One hostile datagram and the source socket to send it from. `live` are stream ids the server
 * has open (learnt from it); `cookies` real COOKIEs some source socket received.
 */
export function datagram(r: Rand, sources: number, live: readonly number[], cookies: readonly CookieSeen[]): {
  kind: DatagramKind; source: number; data: Buffer; hello?: { clientId: number; nonce: Buffer }
} {
  const source = r.int(sources)
  const roll = r.next()
  if (roll < 0.2) return { kind: 'random', source, data: Buffer.from(r.bytes(r.int(1400))) }
  if (roll < 0.45) {
    const clientId = r.u32() || 1
    const nonce = Buffer.from(r.bytes(NONCE_BYTES))
    const hello = encodeHandshake({
      type: 'hello', version: r.chance(0.9) ? PROTOCOL_VERSION : r.int(256), clientId, nonce, cookie: r.chance(0.3) ? Buffer.from(r.bytes(20)) : null,
    })
    // Unmutated HELLOs are remembered, so a COOKIE that answers one can be echoed later.
    return r.chance(0.7) ? { kind: 'hello', source, data: mutate(r, hello) } : { kind: 'hello', source, data: hello, hello: { clientId, nonce } }
  }
  if (roll < 0.5 && cookies.length > 0) {
    const c = r.pick(cookies)
    // Mostly wrong: a mutated cookie, another stream id or nonce, another source port. Rarely the
    // exact echo, which legitimately makes the server create a stream (then time out: no Noise).
    const exact = r.chance(0.002)
    const cookie = exact || r.chance(0.3) ? c.cookie : mutate(r, c.cookie).subarray(0, 20)
    const padded = cookie.length === 20 ? cookie : Buffer.concat([cookie, Buffer.alloc(20 - cookie.length)])
    const hello = encodeHandshake({
      type: 'hello', version: PROTOCOL_VERSION, clientId: exact || r.chance(0.5) ? c.clientId : r.u32() || 1,
      nonce: exact || r.chance(0.5) ? c.nonce : Buffer.from(r.bytes(NONCE_BYTES)), cookie: padded,
    })
    return { kind: 'cookie-echo', source: exact || r.chance(0.5) ? c.source : source, data: hello }
  }
  if (roll < 0.95) {
    const useLive = live.length > 0 && r.chance(0.5)
    const id = useLive ? r.pick(live) : r.u32()
    const seq = r.chance(0.5) ? r.int(64) : r.u32()
    let p = udxPacket(r.int(32), id, seq, r.chance(0.5) ? r.int(64) : r.u32(), r.bytes(r.int(1200)), r.u32())
    if (r.chance(0.1)) p = mutate(r, p)
    if (r.chance(0.05)) p = p.subarray(0, r.int(20))
    return { kind: useLive ? 'udx-live' : 'udx', source, data: p }
  }
  const other = r.pick(['cookie', 'welcome', 'reject'] as const)
  const nonce = Buffer.from(r.bytes(NONCE_BYTES))
  const pkt = other === 'cookie'
    ? encodeHandshake({ type: 'cookie', version: PROTOCOL_VERSION, nonce, cookie: Buffer.from(r.bytes(20)) })
    : other === 'welcome'
      ? encodeHandshake({ type: 'welcome', version: PROTOCOL_VERSION, nonce, serverId: r.u32() })
      : encodeHandshake({ type: 'reject', version: PROTOCOL_VERSION, nonce, reason: r.int(256) })
  return { kind: 'handshake-other', source, data: r.chance(0.5) ? mutate(r, pkt) : pkt }
}

// --- frames ---------------------------------------------------------------------------------------------

const PATHS = [
  '../etc/passwd', '/etc/passwd', 'a/../../b', 'C:\\x', 'a\\b', 'a\u0000b', '.', '..', 'a//b', 'a/./b', 'u\u0308', 'x'.repeat(1024),
  `${'d/'.repeat(70)}f`, 'scripts/main.lua', 'many/0/f0001.dat', 'nope.txt', '.hidden/.dotfile', 'textures/big texture.bin',
  'ü/日本.lua', 'empty', 'bin/run.sh', 'config/private.key', '.git/config', 'node_modules/x', '\u202e', '\ud800x',
]
const PATTERNS = [
  '**', '*', '**/*.lua', '{a,b}/**', '[', '[!a]', '!(x)', '+(a|b)', '@(a)', '\\', '**/**/**', 'x'.repeat(1000), '', '.*', '***',
  '?(*)', '{', '}', '{,}', '{1..1000}', '**/{a,b,c}/{d,e,f}/**', '../**', '/**', '!**', 'many/**', 'scripts/*', '*(a|aa)b',
]

function randomString(r: Rand, maxBytes: number): string {
  const s = r.chance(0.5) ? r.bytes(r.int(maxBytes / 2)).toString('latin1') : r.bytes(r.int(maxBytes)).toString('base64').slice(0, maxBytes)
  return Buffer.byteLength(s) <= maxBytes ? s : s.slice(0, maxBytes / 2)
}

/** A well-formed client frame with hostile content; the server must answer or ignore it, not close. */
export function hostileMessage(r: Rand): ClientMessage {
  const roll = r.next()
  const id = r.chance(0.1) ? r.int(4) : r.u32()
  if (roll < 0.35) {
    return { type: 'request', id, path: r.chance(0.7) ? r.pick(PATHS) : randomString(r, 1024), haveHash: r.chance(0.3) ? Buffer.from(r.bytes(32)) : null }
  }
  if (roll < 0.45) return { type: 'cancel', id }
  if (roll < 0.6) {
    const patterns = Array.from({ length: r.int(9) }, () => (r.chance(0.8) ? r.pick(PATTERNS) : randomString(r, 1024)))
    return { type: 'subscribe', id, instanceId: r.u32(), subscribe: r.chance(0.7), patterns }
  }
  if (roll < 0.85) {
    const patterns = Array.from({ length: r.int(5) }, () => (r.chance(0.8) ? r.pick(PATTERNS) : randomString(r, 1024)))
    return { type: 'manifest', id, patterns, after: r.chance(0.6) ? '' : r.chance(0.5) ? r.pick(PATHS) : randomString(r, 1024) }
  }
  return { type: 'ping' }
}

export type FrameKind = 'hostile' | 'mutated' | 'random' | 'auth-again' | 'over-cap'

/** A frame that is probably invalid (the server should close with ERR_PROTOCOL). */
export function badFrame(r: Rand): { kind: FrameKind; data: Buffer } {
  const roll = r.next()
  if (roll < 0.6) return { kind: 'mutated', data: mutate(r, encode(hostileMessage(r))) }
  if (roll < 0.9) {
    const types = [...Object.values(MSG), r.int(256)]
    return { kind: 'random', data: Buffer.concat([Buffer.from([r.pick(types)]), r.bytes(r.int(512))]) }
  }
  if (roll < 0.95) return { kind: 'auth-again', data: encode({ type: 'auth', version: PROTOCOL_VERSION, token: '' }) }
  return { kind: 'over-cap', data: encode({ type: 'request', id: 1, path: 'y'.repeat(1025 + r.int(3000)), haveHash: null }) }
}
