/**
 * The codec's byte-level primitives (./codec.ts is where frames become messages): an encoder's
 * operations, run once to size a frame (Sizer) and once to fill it (Writer), and a bounds-checked
 * Reader whose every failure is a ProtocolError.
 */
import { ProtocolError } from '../errors.js'

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** The operations an encoder performs; run once to size the frame, once to fill it. */
export interface Out {
  u8(v: number): void
  u16(v: number): void
  u32(v: number): void
  u64(v: number): void
  raw(b: Uint8Array): void
  str16(s: string): void
  /** u32 byte length, then UTF-8 (long text: STATUS_REPLY's JSON). */
  str32(s: string): void
}

export class Sizer implements Out {
  size = 0
  u8(_v: number): void { this.size += 1 }
  u16(_v: number): void { this.size += 2 }
  u32(_v: number): void { this.size += 4 }
  u64(_v: number): void { this.size += 8 }
  raw(b: Uint8Array): void { this.size += b.byteLength }
  str16(s: string): void { this.size += 2 + Buffer.byteLength(s, 'utf8') }
  str32(s: string): void { this.size += 4 + Buffer.byteLength(s, 'utf8') }
}

export class Writer implements Out {
  readonly buf: Buffer
  #at = 0
  constructor(size: number) { this.buf = Buffer.allocUnsafe(size) }
  u8(v: number): void { this.#at = this.buf.writeUInt8(v, this.#at) }
  u16(v: number): void { this.#at = this.buf.writeUInt16BE(v, this.#at) }
  u32(v: number): void { this.#at = this.buf.writeUInt32BE(v >>> 0, this.#at) }
  u64(v: number): void {
    // A u64 here is a count, an offset or a time since 1970: a negative or fractional value is a
    // local bug (a file dated before 1970 is announced as 0: wireMtime in core/fs/stamp.ts).
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 field must be an integer in [0, 2^53), got ${v}`)
    this.#at = this.buf.writeUInt32BE(Math.floor(v / 0x1_0000_0000), this.#at)
    this.#at = this.buf.writeUInt32BE(v >>> 0, this.#at)
  }
  raw(b: Uint8Array): void { this.buf.set(b, this.#at); this.#at += b.byteLength }
  str16(s: string): void {
    const n = this.buf.write(s, this.#at + 2, 'utf8')
    this.buf.writeUInt16BE(n, this.#at)
    this.#at += 2 + n
  }
  str32(s: string): void {
    const n = this.buf.write(s, this.#at + 4, 'utf8')
    this.buf.writeUInt32BE(n, this.#at)
    this.#at += 4 + n
  }
}

export class Reader {
  readonly #buf: Uint8Array
  readonly #view: DataView
  #at: number
  constructor(buf: Uint8Array, at: number) {
    this.#buf = buf
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    this.#at = at
  }
  get left(): number { return this.#buf.byteLength - this.#at }
  #need(n: number, what: string): void {
    if (n > this.left) throw new ProtocolError(`truncated frame: ${what} needs ${n} bytes, ${this.left} left`)
  }
  u8(what: string): number { this.#need(1, what); return this.#view.getUint8(this.#at++) }
  u16(what: string): number { this.#need(2, what); const v = this.#view.getUint16(this.#at); this.#at += 2; return v }
  u32(what: string): number { this.#need(4, what); const v = this.#view.getUint32(this.#at); this.#at += 4; return v }
  u64(what: string): number {
    this.#need(8, what)
    const hi = this.#view.getUint32(this.#at)
    const lo = this.#view.getUint32(this.#at + 4)
    if (hi >= 0x20_0000) throw new ProtocolError(`${what} exceeds 2^53`)
    this.#at += 8
    return hi * 0x1_0000_0000 + lo
  }
  bool(what: string): boolean {
    const v = this.u8(what)
    if (v > 1) throw new ProtocolError(`${what} must be 0 or 1, got ${v}`)
    return v === 1
  }
  raw(n: number, what: string): Uint8Array {
    this.#need(n, what)
    const b = this.#buf.subarray(this.#at, this.#at + n)
    this.#at += n
    return b
  }
  rest(): Uint8Array { return this.raw(this.left, 'rest') }
  str16(max: number, what: string): string {
    return this.#text(this.u16(`${what} length`), max, what)
  }
  str32(max: number, what: string): string {
    return this.#text(this.u32(`${what} length`), max, what)
  }
  #text(n: number, max: number, what: string): string {
    if (n > max) throw new ProtocolError(`${what} is ${n} bytes, limit ${max}`)
    try {
      return utf8.decode(this.raw(n, what))
    } catch (err) {
      if (err instanceof ProtocolError) throw err
      throw new ProtocolError(`${what} is not valid UTF-8`)
    }
  }
  count(max: number, what: string, wide = false): number {
    const n = wide ? this.u32(what) : this.u16(what)
    if (n > max) throw new ProtocolError(`${what} is ${n}, limit ${max}`)
    return n
  }
  end(type: string): void {
    if (this.left !== 0) throw new ProtocolError(`${this.left} trailing bytes after ${type}`)
  }
}
