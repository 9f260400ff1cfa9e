/** FastCDC: the pinned gear table, golden boundaries, edit locality, streaming = whole buffer. */
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { Chunker, DEFAULT_CHUNKER, GEAR, GEAR_SEED, chunkBoundaries } from '../../src/core/delta/fastcdc.js'
import { DELTA_MAX_CHUNK_BYTES, DELTA_MIN_CHUNK_BYTES } from '../../src/limits.js'
import { mulberry32 } from '../helpers/lossy-proxy.js'
import { concat, seededBytes } from './support.js'

/**
 * Boundaries of `after` past `from` that are not boundaries of `before` moved by `shift`: each
 * starts a chunk the old version does not have (the chunks between old boundaries are reused).
 */
function newBoundaries(before: number[], after: number[], shift: number, from: number): number {
  const moved = new Set(before.map((c) => c + shift))
  return after.filter((c) => c > from && !moved.has(c)).length
}

describe('gear table', () => {
  it('is the pinned one: changing it would silently stop old chunk lists from matching', () => {
    expect(GEAR_SEED).toBe(0x43444331)
    const be = Buffer.alloc(1024)
    GEAR.forEach((v, i) => be.writeInt32BE(v, i * 4))
    expect(createHash('sha256').update(be).digest('hex')).toBe('fcab0d2c121a9b5c2d804a5c3680547536f5c53d8059b15ec95512ecc7877b50')
    expect([...GEAR.slice(0, 4)].map((v) => (v >>> 0).toString(16))).toEqual(['338e409e', 'e0a7ee49', '41ea33dd', 'f7938e58'])
    expect((GEAR[255]! >>> 0).toString(16)).toBe('ebaa55c5')
    expect(new Set(GEAR).size).toBe(256)
  })
})

describe('chunk boundaries', () => {
  const data = seededBytes(2 * 1024 * 1024, 0x5eed)

  it('are the golden ones for a seeded 2 MiB buffer', () => {
    expect(chunkBoundaries(data)).toEqual([
      68283, 88870, 140498, 227278, 341062, 407200, 603808, 731676, 814929, 918106, 1021053, 1103083, 1119719,
      1186527, 1257405, 1375146, 1446126, 1548875, 1621674, 1639781, 1705755, 1804305, 1905216, 1937448, 2064812,
      2097152,
    ])
  })

  it('keep every chunk within [min, max], the last within [1, max]', () => {
    for (const seed of [1, 2, 3]) {
      const cuts = chunkBoundaries(seededBytes(3 * 1024 * 1024 + seed * 777, seed))
      cuts.forEach((end, i) => {
        const len = end - (i > 0 ? cuts[i - 1]! : 0)
        expect(len).toBeLessThanOrEqual(DELTA_MAX_CHUNK_BYTES)
        if (i < cuts.length - 1) expect(len).toBeGreaterThanOrEqual(DELTA_MIN_CHUNK_BYTES)
        else expect(len).toBeGreaterThan(0)
      })
    }
  })

  it('cut a run of one byte value at the maximum, the same way every time', () => {
    expect(chunkBoundaries(new Uint8Array(1024 * 1024))).toEqual([196608, 393216, 589824, 786432, 983040, 1048576])
    expect(chunkBoundaries(new Uint8Array(600_000).fill(0x41))).toEqual([196608, 393216, 589824, 600_000])
  })

  it('of nothing and of less than the minimum are none and one chunk', () => {
    expect(chunkBoundaries(new Uint8Array(0))).toEqual([])
    expect(chunkBoundaries(data.subarray(0, DELTA_MIN_CHUNK_BYTES))).toEqual([DELTA_MIN_CHUNK_BYTES])
    expect(chunkBoundaries(data.subarray(0, 1))).toEqual([1])
  })

  it('move at most 2 boundaries when bytes are inserted or removed at the front (the rest shift)', () => {
    const counts: number[] = []
    for (const seed of [11, 12, 13, 14, 15, 16]) {
      const base = seededBytes(4 * 1024 * 1024, seed)
      const before = chunkBoundaries(base)
      for (const k of [1, 7, 1000, 20_000, 70_000, 1024 * 1024]) {
        // Boundaries inside inserted bytes are new content, not changes to the old ones.
        const inserted = newBoundaries(before, chunkBoundaries(concat(seededBytes(k, seed * 1000 + k), base)), k, k)
        const cut = Math.min(k, 100_000)
        const removed = newBoundaries(before, chunkBoundaries(base.subarray(cut)), -cut, 0)
        expect(inserted, `seed ${seed}, ${k} bytes inserted`).toBeLessThanOrEqual(2)
        expect(removed, `seed ${seed}, ${cut} bytes removed`).toBeLessThanOrEqual(2)
        counts.push(inserted, removed)
      }
    }
    // Most edits move no boundary at all: the first old cut past the edit is found again.
    expect(counts.filter((c) => c === 0).length).toBeGreaterThan(counts.length / 2)
  })

  it('move at most 2 boundaries around an edit in the middle', () => {
    const base = seededBytes(4 * 1024 * 1024, 21)
    const before = chunkBoundaries(base)
    const r = mulberry32(22)
    for (let t = 0; t < 20; t++) {
      const edited = base.slice()
      const at = Math.floor(r() * edited.length)
      edited[at] = edited[at]! ^ 0xff
      expect(newBoundaries(before, chunkBoundaries(edited), 0, 0), `byte ${at} edited`).toBeLessThanOrEqual(2)
    }
  })
})

describe('Chunker (streaming)', () => {
  it('gives the whole-buffer boundaries however the input is split', () => {
    const data = seededBytes(3 * 1024 * 1024 + 5, 99)
    const whole = chunkBoundaries(data)
    const r = mulberry32(7)
    for (let t = 0; t < 12; t++) {
      const c = new Chunker()
      const cuts: number[] = []
      // Piece sizes from 0 bytes to 700 KiB, with many tiny and odd ones.
      for (let at = 0; at < data.length;) {
        const kind = r()
        const size = kind < 0.3 ? Math.floor(r() * 3) : kind < 0.6 ? Math.floor(r() * 4096) : Math.floor(r() * 700 * 1024)
        cuts.push(...c.push(data.subarray(at, at + size)))
        at += size
      }
      cuts.push(...c.finish())
      expect(cuts).toEqual(whole)
      expect(c.offset).toBe(data.length)
    }
  })

  it('gives the same boundaries fed one byte at a time', () => {
    const data = seededBytes(700 * 1024, 5)
    const c = new Chunker()
    const cuts: number[] = []
    for (let i = 0; i < data.length; i++) cuts.push(...c.push(data.subarray(i, i + 1)))
    cuts.push(...c.finish())
    expect(cuts).toEqual(chunkBoundaries(data))
  })

  it('refuses input after finish, and sizes that are not increasing powers of two', () => {
    const c = new Chunker()
    c.finish()
    expect(c.finish()).toEqual([])
    expect(() => c.push(new Uint8Array(1))).toThrow(/finished/)
    expect(() => new Chunker({ ...DEFAULT_CHUNKER, avgSize: 60_000 })).toThrow(RangeError)
    expect(() => new Chunker({ minSize: 65536, avgSize: 65536, maxSize: 262144 })).toThrow(RangeError)
    expect(() => new Chunker({ minSize: 1000, avgSize: 32768, maxSize: 100_000 })).not.toThrow()
    expect(() => new Chunker({ minSize: 1000, avgSize: 32768, maxSize: 2 ** 31 })).toThrow(RangeError)
  })
})
