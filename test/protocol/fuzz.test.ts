/**
 * Fuzzes the decoders with random and mutated frames. decode() must return a message or throw
 * ProtocolError, never anything else; a frame it accepts must re-encode to the same bytes (the
 * codec is canonical). decodeHandshake() must return a packet or null and never throw.
 *
 * Seeded (mulberry32): set FUZZ_SEED=<n> to replay a run; FUZZ_FRAMES=<n> to run longer.
 */
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ProtocolError } from '../../src/errors.js'
import { MAX_PATH_BYTES, MAX_PATTERNS, MAX_TOKEN_BYTES, MAX_UPDATE_ENTRIES } from '../../src/limits.js'
import { MAX_MANIFEST_ENTRIES, decode, encode } from '../../src/protocol/codec.js'
import {
  COOKIE_BYTES, NONCE_BYTES, OFFER_AT, OFFER_TAG, REJECT_REASON, decodeHandshake, encodeHandshake, type HandshakePacket,
} from '../../src/protocol/handshake-packets.js'
import { MSG, PROTOCOL_VERSION, type Sender } from '../../src/protocol/messages.js'
import { mulberry32 } from '../helpers/lossy-proxy.js'
import { GOLDEN } from './golden-frames.js'


const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : randomBytes(4).readUInt32BE(0)
const FRAMES = Math.max(100_000, Number(process.env.FUZZ_FRAMES ?? 0) || 0)
const HANDSHAKE_PACKETS = 50_000
console.log(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED})`)

class Rng {
  readonly #next: () => number
  constructor(seed: number) { this.#next = mulberry32(seed) }
  /** Integer in [0, n). */
  int(n: number): number { return Math.floor(this.#next() * n) }
  pick<T>(xs: readonly T[]): T {
    const x = xs[this.int(xs.length)]
    if (x === undefined) throw new Error('pick from an empty list')
    return x
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) b[i] = this.int(256)
    return b
  }
  chance(p: number): boolean { return this.#next() < p }
}

const INTERESTING_U8 = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff]
const INTERESTING_LEN = [
  0, 1, 2, 3, 0x7f, 0x80, 0xff, 0x100, MAX_PATTERNS, MAX_PATTERNS + 1, MAX_TOKEN_BYTES, MAX_TOKEN_BYTES + 1,
  MAX_PATH_BYTES, MAX_PATH_BYTES + 1, MAX_UPDATE_ENTRIES, MAX_UPDATE_ENTRIES + 1, 0x7fff, 0x8000, 0xfffe, 0xffff,
]
const INTERESTING_U32 = [...INTERESTING_LEN, MAX_MANIFEST_ENTRIES, MAX_MANIFEST_ENTRIES + 1, 0x7fffffff, 0x80000000, 0xffffffff]
const TYPE_CODES = Object.values(MSG)

/** One mutation of `b` (never modifies `b`). */
function mutate(rng: Rng, b: Buffer, lengths: readonly { at: number; size: number }[]): Buffer {
  const out = Buffer.from(b)
  switch (rng.int(8)) {
    case 0: { // bit flips
      if (out.length === 0) return out
      for (let i = 1 + rng.int(8); i > 0; i--) {
        const at = rng.int(out.length)
        out[at] = (out[at] as number) ^ (1 << rng.int(8))
      }
      return out
    }
    case 1: // truncation
      return out.subarray(0, rng.int(out.length + 1))
    case 2: // extension
      return Buffer.concat([out, rng.chance(0.5) ? Buffer.alloc(1 + rng.int(16)) : rng.bytes(1 + rng.int(64))])
    case 3: { // byte overwrites
      if (out.length === 0) return out
      for (let i = 1 + rng.int(4); i > 0; i--) out[rng.int(out.length)] = rng.chance(0.5) ? rng.pick(INTERESTING_U8) : rng.int(256)
      return out
    }
    case 4: { // length-field corruption
      const f = lengths.length > 0 ? rng.pick(lengths) : null
      if (!f || f.at + f.size > out.length) return out
      const cur = f.size === 2 ? out.readUInt16BE(f.at) : out.readUInt32BE(f.at)
      const choice = rng.int(4)
      let v = choice === 0 ? cur + 1 : choice === 1 ? cur - 1 : choice === 2 ? rng.pick(f.size === 2 ? INTERESTING_LEN : INTERESTING_U32) : rng.int(2 ** (8 * f.size))
      v = f.size === 2 ? v & 0xffff : v >>> 0
      if (f.size === 2) out.writeUInt16BE(v, f.at)
      else out.writeUInt32BE(v, f.at)
      return out
    }
    case 5: // another type byte over this body
      if (out.length > 0) out[0] = rng.pick(TYPE_CODES)
      return out
    case 6: { // splice with another golden frame
      const other = rng.pick(GOLDEN).bytes
      return Buffer.concat([out.subarray(0, rng.int(out.length + 1)), other.subarray(rng.int(other.length + 1))])
    }
    default: { // insert or delete a run of bytes
      const at = rng.int(out.length + 1)
      return rng.chance(0.5)
        ? Buffer.concat([out.subarray(0, at), rng.bytes(1 + rng.int(8)), out.subarray(at)])
        : Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + rng.int(8))])
    }
  }
}

function randomFrame(rng: Rng): Buffer {
  const n = rng.chance(0.9) ? rng.int(64) : rng.int(2048)
  const b = rng.bytes(n)
  if (n > 0 && rng.chance(0.7)) b[0] = rng.pick(TYPE_CODES)
  return b
}

interface Failure { seed: number; i: number; sender: Sender; hex: string; error: string }

describe('codec fuzz', () => {
  it(`decodes ${FRAMES} random and mutated frames from both senders: a message or ProtocolError, nothing else`, () => {
    const rng = new Rng(SEED)
    const failures: Failure[] = []
    const outcome = { ok: 0, refused: 0 }
    const started = performance.now()
    for (let i = 0; i < FRAMES; i++) {
      let frame: Buffer
      if (rng.chance(0.15)) frame = randomFrame(rng)
      else {
        const gf = rng.pick(GOLDEN)
        frame = gf.bytes
        for (let m = 1 + rng.int(3); m > 0; m--) frame = mutate(rng, frame, gf.lengths)
      }
      for (const sender of ['client', 'server'] as const) {
        try {
          const msg = decode(frame, sender)
          outcome.ok++
          // Canonical: a frame the decoder accepts re-encodes to exactly the same bytes.
          const again = encode(msg)
          if (!again.equals(frame)) {
            failures.push({ seed: SEED, i, sender, hex: frame.toString('hex'), error: `re-encodes as ${again.toString('hex')}` })
          }
        } catch (err) {
          if (err instanceof ProtocolError && err.code === 'ERR_PROTOCOL') outcome.refused++
          else failures.push({ seed: SEED, i, sender, hex: frame.toString('hex').slice(0, 400), error: String(err) })
        }
      }
      if (failures.length >= 10) break
    }
    const ms = performance.now() - started
    console.log(`codec fuzz: ${FRAMES} frames x 2 senders in ${ms.toFixed(0)} ms; ${outcome.ok} decoded, ${outcome.refused} refused (seed ${SEED})`)
    expect(failures).toEqual([])
    expect(outcome.ok + outcome.refused).toBe(FRAMES * 2)
    // Mutations must reach both outcomes, or the fuzzer is not exercising the decoder.
    expect(outcome.ok).toBeGreaterThan(FRAMES / 50)
    expect(outcome.refused).toBeGreaterThan(FRAMES / 2)
  })
})

describe('handshake fuzz', () => {
  const nonce = Buffer.from('00112233445566778899aabbccddeeff', 'hex')
  const offer = { minVersion: 2, maxVersion: PROTOCOL_VERSION, features: 0x0000_0041 }
  const seeds: HandshakePacket[] = [
    { type: 'hello', version: PROTOCOL_VERSION, clientId: 0x01020304, nonce, cookie: null },
    { type: 'hello', version: PROTOCOL_VERSION, clientId: 0xfffffffe, nonce, cookie: Buffer.alloc(COOKIE_BYTES, 0xc0) },
    { type: 'cookie', version: PROTOCOL_VERSION, nonce, cookie: Buffer.alloc(COOKIE_BYTES, 0xc0) },
    { type: 'welcome', version: PROTOCOL_VERSION, nonce, serverId: 0xcafebabe },
    { type: 'reject', version: PROTOCOL_VERSION, nonce, reason: REJECT_REASON.full },
    // Protocol 3: the offer block in a HELLO's padding and after a WELCOME or REJECT.
    { type: 'hello', version: 2, clientId: 0x01020304, nonce, cookie: null, offer },
    { type: 'hello', version: 2, clientId: 0x01020304, nonce, cookie: Buffer.alloc(COOKIE_BYTES, 0xc0), offer },
    { type: 'welcome', version: PROTOCOL_VERSION, nonce, serverId: 0xcafebabe, offer },
    { type: 'reject', version: PROTOCOL_VERSION, nonce, reason: REJECT_REASON.version, offer },
  ]
  const seedBytes = seeds.map((p) => encodeHandshake(p))
  // The cookie-length byte of a HELLO sits after magic, type, version, client id and nonce.
  const COOKIE_LEN_AT = 4 + 4 + NONCE_BYTES

  it(`decodes ${HANDSHAKE_PACKETS} random and mutated datagrams to a packet or null, never throwing`, () => {
    const rng = new Rng(SEED ^ 0x5eed)
    const failures: { i: number; hex: string; error: string }[] = []
    let packets = 0
    for (let i = 0; i < HANDSHAKE_PACKETS && failures.length < 10; i++) {
      let b: Buffer
      if (rng.chance(0.2)) b = rng.bytes(rng.int(200))
      else {
        b = Buffer.from(rng.pick(seedBytes))
        for (let m = 1 + rng.int(3); m > 0; m--) {
          if (rng.chance(0.1) && b.length > COOKIE_LEN_AT) b[COOKIE_LEN_AT] = rng.pick([0, COOKIE_BYTES, COOKIE_BYTES + 1, 0xff])
          else if (rng.chance(0.1) && b.length > OFFER_AT) b[OFFER_AT] = rng.pick([0, OFFER_TAG, OFFER_TAG + 1])
          else b = mutate(rng, b, [])
        }
      }
      try {
        const p = decodeHandshake(b)
        if (p === null) continue
        packets++
        // What decodes must survive encode -> decode unchanged.
        const again = decodeHandshake(encodeHandshake(p))
        if (JSON.stringify(again) !== JSON.stringify(p)) failures.push({ i, hex: b.toString('hex'), error: 'not stable under re-encode' })
        if (p.type !== 'hello' && !encodeHandshake(p).equals(b)) failures.push({ i, hex: b.toString('hex'), error: 'reply not canonical' })
      } catch (err) {
        failures.push({ i, hex: b.toString('hex'), error: String(err) })
      }
    }
    expect(failures).toEqual([])
    expect(packets).toBeGreaterThan(HANDSHAKE_PACKETS / 20)
  })
})
