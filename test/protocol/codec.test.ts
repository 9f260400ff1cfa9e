import { describe, expect, it } from 'vitest'
import { ProtocolError } from '../../src/errors.js'
import {
  CHUNK_SIZE, MAX_FRAME_BYTES, MAX_PATH_BYTES, MAX_PATTERN_BYTES, MAX_PATTERNS, MAX_TEXT_BYTES, MAX_TOKEN_BYTES,
  MAX_UPDATE_ENTRIES,
} from '../../src/limits.js'
import { MAX_MANIFEST_ENTRIES, decode, encode, encodedSize } from '../../src/protocol/codec.js'
import { MAX_ERROR_CODE_BYTES } from '../../src/limits.js'
import {
  CHANGE_KIND, HASH_BYTES, MSG, PROTOCOL_VERSION, STATUS, allowedFrom, type Message, type MessageType, type Sender,
} from '../../src/protocol/messages.js'
import {
  CHUNK_HEADER_BYTES, GOLDEN, HASH_HEX, dataHeaderBytes, META, META_HEX, bytesOf, h16, h32, h8, hexOf,
} from './golden-frames.js'

const other = (s: Sender): Sender => (s === 'client' ? 'server' : 'client')
const SENDERS: readonly Sender[] = ['client', 'server']
/** An AUTH or AUTH_OK in the protocol-2 layout (no version range, no features). */
const isV2Auth = (m: Message): boolean => (m.type === 'auth' && m.minVersion === undefined) || (m.type === 'auth-ok' && m.features === undefined)

/** Runs `fn`, which must throw a ProtocolError (ERR_PROTOCOL); returns it. */
function protocolError(fn: () => unknown): ProtocolError {
  let result: unknown
  try {
    result = fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError)
    expect((err as ProtocolError).code).toBe('ERR_PROTOCOL')
    return err as ProtocolError
  }
  throw new Error(`expected a ProtocolError, got ${JSON.stringify(result)}`)
}

/** 'a' repeated n times as hex. */
const aHex = (n: number): string => '61'.repeat(n)

describe('codec: golden bytes', () => {
  for (const gf of GOLDEN) {
    it(`encodes ${gf.name}`, () => {
      expect(encode(gf.msg).toString('hex')).toBe(gf.bytes.toString('hex'))
      expect(encodedSize(gf.msg)).toBe(gf.bytes.length)
    })
    it(`decodes ${gf.name} sent by the ${gf.sender}`, () => {
      expect(decode(gf.bytes, gf.sender)).toEqual(gf.msg)
    })
  }

  it('covers every message type, status, update kind and both chunk flags', () => {
    const types = new Set(GOLDEN.map((gf) => gf.msg.type))
    expect([...types].sort()).toEqual(Object.keys(MSG).sort())
    const statuses = new Set(GOLDEN.flatMap((gf) => (gf.msg.type === 'response' ? [gf.msg.status] : [])))
    expect([...statuses].sort()).toEqual(Object.keys(STATUS).sort())
    const kinds = new Set(GOLDEN.flatMap((gf) => (gf.msg.type === 'update' ? gf.msg.entries.map((e) => e.kind) : [])))
    expect([...kinds].sort()).toEqual(Object.keys(CHANGE_KIND).sort())
    const finals = new Set(GOLDEN.flatMap((gf) => (gf.msg.type === 'chunk' ? [gf.msg.final] : [])))
    expect(finals).toEqual(new Set([true, false]))
    expect(GOLDEN.some((gf) => gf.msg.type === 'manifest-reply' && gf.msg.entries.length > 0)).toBe(true)
    expect(GOLDEN.filter((gf) => gf.msg.type === 'ping').map((gf) => gf.sender).sort()).toEqual(['client', 'server'])
  })

  it('keeps the direction ranges of type codes: client 0x01-0x3f, server 0x41-0x7e, ping 0x7f', () => {
    for (const [type, code] of Object.entries(MSG) as [MessageType, number][]) {
      const fromClient = allowedFrom('client', type)
      const fromServer = allowedFrom('server', type)
      if (type === 'ping') {
        expect(code).toBe(0x7f)
        expect(fromClient && fromServer).toBe(true)
      } else if (fromClient) {
        expect(fromServer).toBe(false)
        expect(code).toBeGreaterThanOrEqual(0x01)
        expect(code).toBeLessThanOrEqual(0x3f)
      } else {
        expect(fromServer).toBe(true)
        expect(code).toBeGreaterThanOrEqual(0x41)
        expect(code).toBeLessThanOrEqual(0x7e)
      }
    }
    expect(new Set(Object.values(MSG)).size).toBe(Object.keys(MSG).length)
  })

  it('uses a 32-byte BLAKE3 hash in the golden metadata', () => {
    expect(HASH_HEX.length / 2).toBe(HASH_BYTES)
  })

  it('decodes a frame that is a view into a larger buffer', () => {
    for (const gf of GOLDEN) {
      const backing = Buffer.alloc(gf.bytes.length + 7, 0xaa)
      gf.bytes.copy(backing, 3)
      const view = new Uint8Array(backing.buffer, backing.byteOffset + 3, gf.bytes.length)
      const msg = decode(view, gf.sender)
      expect(msg.type).toBe(gf.msg.type)
      expect(encode(msg).toString('hex')).toBe(gf.bytes.toString('hex'))
    }
  })

  it('round-trips the largest safe u64 and the top u32 values', () => {
    const msg: Message = { type: 'chunk', id: 0xffffffff, offset: Number.MAX_SAFE_INTEGER, final: true, data: Buffer.from('z') }
    const bytes = bytesOf(h8(MSG.chunk), 'ffffffff', '001fffffffffffff', '01', '7a')
    expect(encode(msg).toString('hex')).toBe(bytes.toString('hex'))
    expect(decode(bytes, 'server')).toEqual(msg)
  })

  it('keeps a byte-order mark in a string (ignoreBOM) so decode(encode(x)) is exact', () => {
    const msg: Message = { type: 'cancel', id: 1 }
    expect(decode(encode(msg), 'client')).toEqual(msg)
    const bytes = bytesOf(h8(MSG.request), '00000001', '0004', 'efbbbf61', '00')
    const req = decode(bytes, 'client')
    expect(req).toEqual({ type: 'request', id: 1, path: '\ufeffa', haveHash: null })
    expect(encode(req).toString('hex')).toBe(bytes.toString('hex'))
  })
})

describe('codec: frames that must be refused', () => {
  it('refuses every frame sent from the wrong side', () => {
    let checked = 0
    for (const gf of GOLDEN) {
      if (gf.msg.type === 'ping') continue
      const err = protocolError(() => decode(gf.bytes, other(gf.sender)))
      expect(err.message).toMatch(/not valid from the (client|server)/)
      checked++
    }
    expect(checked).toBeGreaterThan(20)
  })

  it('refuses a request decoded as sent by the server, and auth-ok as sent by the client', () => {
    const request = GOLDEN.find((gf) => gf.msg.type === 'request')
    const authOk = GOLDEN.find((gf) => gf.msg.type === 'auth-ok')
    if (!request || !authOk) throw new Error('golden frames missing')
    expect(protocolError(() => decode(request.bytes, 'server')).message).toBe('request frame is not valid from the server')
    expect(protocolError(() => decode(authOk.bytes, 'client')).message).toBe('auth-ok frame is not valid from the client')
  })

  it('refuses every unknown type byte, from both sides', () => {
    const known = new Set<number>(Object.values(MSG))
    let unknown = 0
    for (let code = 0; code < 256; code++) {
      if (known.has(code)) continue
      unknown++
      for (const s of SENDERS) {
        expect(protocolError(() => decode(Buffer.from([code, 0, 0, 0, 0]), s)).message).toMatch(/unknown frame type/)
      }
    }
    expect(unknown).toBe(256 - Object.keys(MSG).length)
  })

  it('refuses every client frame that names id 0 (the connection\'s own: ERROR id 0 ends it); a server frame may', () => {
    let checked = 0
    for (const gf of GOLDEN) {
      if (!('id' in gf.msg)) continue
      const zero = encode({ ...gf.msg, id: 0 } as Message)
      if (gf.sender === 'client') {
        expect(protocolError(() => decode(zero, 'client')).message).toBe(`${gf.msg.type} frame with id 0 (reserved for the connection)`)
        checked++
      } else {
        expect(decode(zero, 'server')).toEqual({ ...gf.msg, id: 0 })
      }
    }
    expect(checked).toBeGreaterThan(8)
  })

  it('refuses an empty frame', () => {
    for (const s of SENDERS) expect(protocolError(() => decode(Buffer.alloc(0), s)).message).toMatch(/empty/)
  })

  it('refuses every truncation of every golden frame (chunk: every cut inside the header)', () => {
    let cuts = 0
    for (const gf of GOLDEN) {
      const min = dataHeaderBytes(gf.msg) ?? gf.bytes.length
      // A protocol-3 AUTH or AUTH_OK cut exactly before its tail is the protocol-2 frame.
      const tail = gf.msg.type === 'auth' && gf.msg.minVersion !== undefined ? 6 : gf.msg.type === 'auth-ok' && gf.msg.features !== undefined ? 4 : 0
      for (let n = 0; n < min; n++) {
        if (tail > 0 && n === gf.bytes.length - tail) {
          const { minVersion: _m, features: _f, ...v2 } = gf.msg as Message & { minVersion?: number; features?: number }
          expect(decode(gf.bytes.subarray(0, n), gf.sender)).toEqual(v2)
          continue
        }
        protocolError(() => decode(gf.bytes.subarray(0, n), gf.sender))
        cuts++
      }
    }
    expect(cuts).toBeGreaterThan(500)
  })

  it('treats a chunk cut inside its data as a shorter chunk (data runs to the end of the frame)', () => {
    const gf = GOLDEN.find((x) => x.msg.type === 'chunk' && x.msg.data.length > 0)
    if (!gf) throw new Error('no chunk with data')
    for (let n = CHUNK_HEADER_BYTES; n <= gf.bytes.length; n++) {
      const msg = decode(gf.bytes.subarray(0, n), 'server')
      expect(msg).toEqual({ ...gf.msg, data: gf.bytes.subarray(CHUNK_HEADER_BYTES, n) })
    }
  })

  it('refuses trailing bytes after every golden frame but a chunk', () => {
    for (const gf of GOLDEN) {
      const longer = Buffer.concat([gf.bytes, Buffer.from([0])])
      const header = dataHeaderBytes(gf.msg)
      if (header !== null) {
        const msg = decode(longer, 'server') as Message & { data: Uint8Array }
        expect(msg.type).toBe(gf.msg.type)
        expect(msg.data.length).toBe(longer.length - header)
      } else if (isV2Auth(gf.msg)) {
        // After a protocol-2 AUTH or AUTH_OK, more bytes start the protocol-3 tail: cut short.
        expect(protocolError(() => decode(longer, gf.sender)).message).toMatch(/truncated frame: (lowest version|features)/)
      } else {
        expect(protocolError(() => decode(longer, gf.sender)).message).toMatch(/1 trailing bytes|past its 0 bytes/)
      }
    }
  })

  it('reads AUTH and AUTH_OK in both layouts: protocol 2 (no tail) and protocol 3 (range, features)', () => {
    expect(decode(bytesOf(h8(MSG.auth), '0002', '0000'), 'client')).toEqual({ type: 'auth', version: 2, token: '' })
    expect(decode(bytesOf(h8(MSG.auth), '0003', '0000', '0002', '00000001'), 'client'))
      .toEqual({ type: 'auth', version: 3, token: '', minVersion: 2, features: 1 })
    expect(decode(bytesOf(h8(MSG['auth-ok']), '0002'), 'server')).toEqual({ type: 'auth-ok', version: 2 })
    expect(decode(bytesOf(h8(MSG['auth-ok']), '0003', '00000001'), 'server')).toEqual({ type: 'auth-ok', version: 3, features: 1 })
    // The encoder writes the tail exactly when minVersion (AUTH) or features (AUTH_OK) is set.
    expect(encode({ type: 'auth', version: 3, token: '', minVersion: 3 }).toString('hex')).toBe('0100030000000300000000')
    expect(encode({ type: 'auth-ok', version: 2 }).toString('hex')).toBe('410002')
  })

  it('refuses an AUTH whose lowest version is above its highest, and every partial tail', () => {
    expect(protocolError(() => decode(bytesOf(h8(MSG.auth), '0002', '0000', '0003', '00000000'), 'client')).message)
      .toBe('lowest version 3 is above the highest, 2')
    const full = bytesOf(h8(MSG.auth), '0003', '0000', '0002', '00000000')
    for (let n = 6; n < full.length; n++) expect(protocolError(() => decode(full.subarray(0, n), 'client')).message).toMatch(/truncated/)
    const ok = bytesOf(h8(MSG['auth-ok']), '0003', '00000000')
    for (let n = 4; n < ok.length; n++) expect(protocolError(() => decode(ok.subarray(0, n), 'server')).message).toMatch(/truncated/)
  })

  describe('string caps', () => {
    const cases: { what: string; sender: Sender; max: number; build: (n: number) => Buffer }[] = [
      { what: 'request path', sender: 'client', max: MAX_PATH_BYTES,
        build: (n) => bytesOf(h8(MSG.request), '00000001', h16(n), aHex(n), '00') },
      { what: 'auth token', sender: 'client', max: MAX_TOKEN_BYTES,
        build: (n) => bytesOf(h8(MSG.auth), h16(PROTOCOL_VERSION), h16(n), aHex(n)) },
      { what: 'subscribe pattern', sender: 'client', max: MAX_PATTERN_BYTES,
        build: (n) => bytesOf(h8(MSG.subscribe), '00000001', '00000001', '01', '0001', h16(n), aHex(n)) },
      { what: 'manifest cursor', sender: 'client', max: MAX_PATH_BYTES,
        build: (n) => bytesOf(h8(MSG.manifest), '00000001', '0000', h16(n), aHex(n)) },
      { what: 'response reason', sender: 'server', max: MAX_TEXT_BYTES,
        build: (n) => bytesOf(h8(MSG.response), '00000001', h8(STATUS.refused), h16(n), aHex(n)) },
      { what: 'update path', sender: 'server', max: MAX_PATH_BYTES,
        build: (n) => bytesOf(h8(MSG.update), '0001', h8(CHANGE_KIND.delete), h16(n), aHex(n)) },
      { what: 'rename source', sender: 'server', max: MAX_PATH_BYTES,
        build: (n) => bytesOf(h8(MSG.update), '0001', h8(CHANGE_KIND.rename), '0001', '62', h16(n), aHex(n), META_HEX) },
      { what: 'manifest-reply path', sender: 'server', max: MAX_PATH_BYTES,
        build: (n) => bytesOf(h8(MSG['manifest-reply']), '00000001', '01', '00000001', h16(n), aHex(n), META_HEX) },
      { what: 'error code', sender: 'server', max: MAX_ERROR_CODE_BYTES,
        build: (n) => bytesOf(h8(MSG.error), '00000000', h16(n), aHex(n), '0000') },
      { what: 'error message', sender: 'server', max: MAX_TEXT_BYTES,
        build: (n) => bytesOf(h8(MSG.error), '00000000', '0001', '61', h16(n), aHex(n)) },
    ]
    for (const c of cases) {
      it(`accepts a ${c.what} of exactly ${c.max} bytes and refuses ${c.max + 1}`, () => {
        const ok = decode(c.build(c.max), c.sender)
        expect(encode(ok).toString('hex')).toBe(c.build(c.max).toString('hex'))
        const err = protocolError(() => decode(c.build(c.max + 1), c.sender))
        expect(err.message).toContain(`is ${c.max + 1} bytes, limit ${c.max}`)
      })
    }

    it('refuses an over-cap length before looking for the bytes (a lying length costs nothing)', () => {
      const err = protocolError(() => decode(bytesOf(h8(MSG.request), '00000001', 'ffff'), 'client'))
      expect(err.message).toContain(`limit ${MAX_PATH_BYTES}`)
    })
  })

  describe('count caps', () => {
    const patternsFrame = (type: 'subscribe' | 'manifest', n: number): Buffer => {
      const patterns = '0001 2a'.repeat(n)
      return type === 'subscribe'
        ? bytesOf(h8(MSG.subscribe), '00000001', '00000002', '01', h16(n), patterns)
        : bytesOf(h8(MSG.manifest), '00000001', h16(n), patterns, '0000')
    }
    for (const type of ['subscribe', 'manifest'] as const) {
      it(`accepts ${MAX_PATTERNS} patterns in ${type} and refuses ${MAX_PATTERNS + 1}`, () => {
        const ok = decode(patternsFrame(type, MAX_PATTERNS), 'client')
        expect(ok.type === type && ok.patterns.length).toBe(MAX_PATTERNS)
        const err = protocolError(() => decode(patternsFrame(type, MAX_PATTERNS + 1), 'client'))
        expect(err.message).toContain(`pattern count is ${MAX_PATTERNS + 1}, limit ${MAX_PATTERNS}`)
      })
    }

    it(`accepts ${MAX_UPDATE_ENTRIES} update entries and refuses ${MAX_UPDATE_ENTRIES + 1}`, () => {
      const build = (n: number): Buffer => bytesOf(h8(MSG.update), h16(n), `${h8(CHANGE_KIND.delete)} 0001 61`.repeat(n))
      const ok = decode(build(MAX_UPDATE_ENTRIES), 'server')
      expect(ok.type === 'update' && ok.entries.length).toBe(MAX_UPDATE_ENTRIES)
      expect(protocolError(() => decode(build(MAX_UPDATE_ENTRIES + 1), 'server')).message)
        .toContain(`limit ${MAX_UPDATE_ENTRIES}`)
    })

    it(`refuses a manifest-reply claiming more than ${MAX_MANIFEST_ENTRIES} entries`, () => {
      // Each entry is at least 2 + 52 bytes, so more than MAX_FRAME_BYTES / 54 can never fit.
      expect(MAX_MANIFEST_ENTRIES * (2 + HASH_BYTES + 8 + 4 + 8)).toBeLessThanOrEqual(MAX_FRAME_BYTES)
      const err = protocolError(() => decode(bytesOf(h8(MSG['manifest-reply']), '00000001', '01', h32(MAX_MANIFEST_ENTRIES + 1)), 'server'))
      expect(err.message).toContain(`limit ${MAX_MANIFEST_ENTRIES}`)
      // A count within the cap but larger than the bytes present is a truncation, not a hang.
      expect(protocolError(() => decode(bytesOf(h8(MSG['manifest-reply']), '00000001', '01', h32(MAX_MANIFEST_ENTRIES)), 'server')).message)
        .toMatch(/truncated/)
    })
  })

  it('refuses invalid UTF-8 in strings', () => {
    const bad = ['ff', 'c328', 'c0af', 'eda080', 'f4908080', 'e282', '80']
    for (const b of bad) {
      const frame = bytesOf(h8(MSG.request), '00000001', h16(b.length / 2), b, '00')
      expect(protocolError(() => decode(frame, 'client')).message).toMatch(/not valid UTF-8/)
    }
    const token = bytesOf(h8(MSG.auth), h16(PROTOCOL_VERSION), '0002', 'c328')
    expect(protocolError(() => decode(token, 'client')).message).toMatch(/token is not valid UTF-8/)
  })

  it('refuses a bool byte other than 0 or 1 in every flag', () => {
    const frames: [Sender, (flag: string) => Buffer][] = [
      ['client', (f) => bytesOf(h8(MSG.request), '00000001', '0001', '78', f, HASH_HEX)],
      ['client', (f) => bytesOf(h8(MSG.subscribe), '00000001', '00000001', f, '0000')],
      ['server', (f) => bytesOf(h8(MSG.chunk), '00000001', '0000000000000000', f, '616263')],
      ['server', (f) => bytesOf(h8(MSG['manifest-reply']), '00000001', f, '00000000')],
    ]
    for (const [sender, build] of frames) {
      expect(decode(build('01'), sender)).toBeTruthy()
      for (const flag of ['02', '80', 'ff']) {
        expect(protocolError(() => decode(build(flag), sender)).message).toMatch(/must be 0 or 1/)
      }
    }
  })

  it('refuses an unknown response status and an unknown update kind', () => {
    const maxStatus = Math.max(...Object.values(STATUS))
    const maxKind = Math.max(...Object.values(CHANGE_KIND))
    expect(protocolError(() => decode(bytesOf(h8(MSG.response), '00000001', h8(maxStatus + 1), '0000'), 'server')).message)
      .toMatch(/unknown response status/)
    expect(protocolError(() => decode(bytesOf(h8(MSG.update), '0001', h8(maxKind + 1), '0001', '61'), 'server')).message)
      .toMatch(/unknown change kind/)
  })

  it('refuses a u64 of 2^53 or more in every u64 field', () => {
    const tooBig = ['0020000000000000', '8000000000000000', 'ffffffffffffffff']
    const builds: [Sender, (v: string) => Buffer][] = [
      ['server', (v) => bytesOf(h8(MSG.chunk), '00000001', v, '00')],
      ['server', (v) => bytesOf(h8(MSG.response), '00000001', h8(STATUS.file), HASH_HEX, v, '000001a4', '0000000000000000')],
      ['server', (v) => bytesOf(h8(MSG.response), '00000001', h8(STATUS.file), HASH_HEX, '0000000000000000', '000001a4', v)],
      ['server', (v) => bytesOf(h8(MSG.update), '0001', h8(CHANGE_KIND.change), '0001', '61', HASH_HEX, v, '000001a4', v)],
    ]
    for (const [sender, build] of builds) {
      expect(decode(build('001fffffffffffff'), sender)).toBeTruthy()
      for (const v of tooBig) expect(protocolError(() => decode(build(v), sender)).message).toMatch(/exceeds 2\^53/)
    }
  })

  it(`accepts chunk data of exactly CHUNK_SIZE (${CHUNK_SIZE}) and refuses one byte more`, () => {
    const header = bytesOf(h8(MSG.chunk), '00000001', '0000000000000000', '01')
    const ok = decode(Buffer.concat([header, Buffer.alloc(CHUNK_SIZE, 7)]), 'server')
    expect(ok.type === 'chunk' && ok.data.length).toBe(CHUNK_SIZE)
    const err = protocolError(() => decode(Buffer.concat([header, Buffer.alloc(CHUNK_SIZE + 1, 7)]), 'server'))
    expect(err.message).toContain(`exceeds ${CHUNK_SIZE}`)
  })

  describe('MAX_FRAME_BYTES', () => {
    // A manifest-reply of exactly MAX_FRAME_BYTES: header 10 bytes, then entries of 2 + L + 52 bytes.
    const ENTRY_FIXED = 2 + HASH_BYTES + 8 + 4 + 8
    const big = (extra: number): Message => {
      const full = 1024 - ENTRY_FIXED // path length that makes an entry exactly 1 KiB
      const room = MAX_FRAME_BYTES - 10
      const n = Math.floor((room - ENTRY_FIXED) / 1024)
      const last = room - n * 1024 - ENTRY_FIXED + extra
      if (last > MAX_PATH_BYTES) throw new Error('bad arithmetic in the test')
      const entries = Array.from({ length: n }, (_, i) => ({ path: `${i}`.padStart(full, 'p'), ...META }))
      entries.push({ path: 'q'.repeat(last), ...META })
      return { type: 'manifest-reply', id: 1, done: true, entries }
    }

    it('encodes and decodes a frame of exactly MAX_FRAME_BYTES', () => {
      const msg = big(0)
      const bytes = encode(msg)
      expect(bytes.length).toBe(MAX_FRAME_BYTES)
      expect(decode(bytes, 'server')).toEqual(msg)
    })

    it('refuses to decode a frame of MAX_FRAME_BYTES + 1, before parsing it', () => {
      const bytes = Buffer.alloc(MAX_FRAME_BYTES + 1)
      bytes[0] = MSG.chunk
      expect(protocolError(() => decode(bytes, 'server')).message).toBe(`frame of ${MAX_FRAME_BYTES + 1} bytes exceeds ${MAX_FRAME_BYTES}`)
    })

    it('throws RangeError when encoding a frame over MAX_FRAME_BYTES', () => {
      expect(() => encode(big(1))).toThrow(RangeError)
      expect(() => encode(big(1))).toThrow(`manifest-reply frame of ${MAX_FRAME_BYTES + 1} bytes exceeds ${MAX_FRAME_BYTES}`)
      const data = Buffer.alloc(MAX_FRAME_BYTES - CHUNK_HEADER_BYTES + 1)
      expect(() => encode({ type: 'chunk', id: 1, offset: 0, final: true, data })).toThrow(RangeError)
      expect(encode({ type: 'chunk', id: 1, offset: 0, final: true, data: data.subarray(1) }).length).toBe(MAX_FRAME_BYTES)
    })

    it('throws RangeError (never truncates a length field) for a string longer than 65535 bytes', () => {
      expect(() => encode({ type: 'error', id: 1, code: 'ERR_INTERNAL', message: 'x'.repeat(0x1_0000) })).toThrow(RangeError)
    })
  })

  it('shows a stable hex helper (sanity of the test-side formatting)', () => {
    expect(hexOf(0x1a4, 4)).toBe('000001a4')
    expect(() => hexOf(0x1_0000, 2)).toThrow(RangeError)
  })
})
