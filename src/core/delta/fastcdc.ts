/**
 * FastCDC content-defined chunking (Xia et al., "FastCDC: a Fast and Efficient Content-Defined
 * Chunking Approach for Data Deduplication", USENIX ATC '16, and its 2020 TPDS version): a gear
 * rolling hash, cut-point skipping (nothing before the minimum size is hashed), normalized
 * chunking with two masks (a strict one before the normal point, a loose one after it; level 1,
 * see the constructor) and the
 * 2020 version's two-bytes-per-step loop. Boundaries depend only on the bytes, so an edit moves
 * at most the one or two boundaries around it; every other chunk is found again, shifted.
 *
 * The hash is 32-bit (`h = 2h + GEAR[byte]`, wrapping): JS has no fast 64-bit integers. Bit k of
 * h depends on the last k + 1 bytes, so the masks take the high bits (30 and down): a cut depends
 * on the last ~31 bytes, never on where the chunk started once 31 bytes past the minimum.
 * Bit 31 is left out so that the doubled masks of the two-byte step test the same bits.
 *
 * Streaming: `Chunker.push` takes buffers of any size and keeps only the hash, the chunk's length
 * so far and the absolute offset; its cuts are identical to `chunkBoundaries` on the whole input.
 */
import { DELTA_AVG_CHUNK_BYTES, DELTA_MAX_CHUNK_BYTES, DELTA_MIN_CHUNK_BYTES } from '../../limits.js'

/** mulberry32 (Tommy Ettinger's public-domain 32-bit generator): the gear table's source. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
}

/** The seed of the gear table ("CDC1" in ASCII). Changing it changes every boundary. */
export const GEAR_SEED = 0x43444331

/**
 * The gear table: 256 pseudo-random 32-bit values, GEAR[i] = the (i+1)-th output of
 * mulberry32(GEAR_SEED), as int32. Pinned by test/delta/fastcdc.test.ts: a different table
 * would silently stop old chunk lists from matching new ones.
 */
export const GEAR: Int32Array = (() => {
  const next = mulberry32(GEAR_SEED)
  const g = new Int32Array(256)
  for (let i = 0; i < 256; i++) g[i] = next() | 0
  return g
})()
/** GEAR shifted left once: the first byte of a two-byte step is hashed as (h << 2) + 2·GEAR[b]. */
const GEAR2: Int32Array = GEAR.map((v) => v << 1)

/** Chunk size bounds in bytes. `avgSize` is the normal point, a power of two (the masks have log2(avg) ± 1 bits). */
export interface ChunkerOptions {
  minSize: number
  avgSize: number
  maxSize: number
}

/** The sizes every chunk list of assetsync uses (chunker id 1, see chunk-list.ts). */
export const DEFAULT_CHUNKER: Readonly<ChunkerOptions> = Object.freeze({
  minSize: DELTA_MIN_CHUNK_BYTES,
  avgSize: DELTA_AVG_CHUNK_BYTES,
  maxSize: DELTA_MAX_CHUNK_BYTES,
})

/** `bits` one-bits ending at bit 30 (bit 31 stays clear, see the file comment). */
function highMask(bits: number): number {
  return ((2 ** bits - 1) * 2 ** (31 - bits)) | 0
}

function checkOptions(o: ChunkerOptions): void {
  const pow2 = Number.isInteger(o.avgSize) && (o.avgSize & (o.avgSize - 1)) === 0 && o.avgSize <= 2 ** 29
  if (!pow2 || !Number.isInteger(o.minSize) || !Number.isInteger(o.maxSize) || !(64 <= o.minSize && o.minSize < o.avgSize && o.avgSize < o.maxSize && o.maxSize <= 2 ** 30)) {
    throw new RangeError(`chunker sizes must be integers 64 ≤ min < avg < max ≤ 2^30, avg a power of two (got ${o.minSize}/${o.avgSize}/${o.maxSize})`)
  }
}

/**
 * A streaming FastCDC chunker. Feed bytes with `push` (buffers of any size, even empty), then
 * call `finish` once. Both return the absolute end offsets of the chunks completed by that call.
 * No allocation per byte; one small array per call.
 */
export class Chunker {
  readonly #min: number
  readonly #normal: number
  readonly #max: number
  /**
   * Normalized chunking, level 1: the strict mask has log2(avg) + 1 bits, the loose one
   * log2(avg) - 1. Level 2 (the paper's choice) gives tighter sizes but, measured on shifted
   * data, re-synchronizes worse: after an insertion at the front, ~8 % of cases moved more
   * than 2 boundaries (up to 11), against 0.4 % (up to 3) at level 1 (docs/delta.md).
   */
  readonly #maskS: number
  readonly #maskL: number
  /** Absolute offset of the current chunk's first byte. */
  #start = 0
  /** Bytes of the current chunk seen so far. */
  #len = 0
  #hash = 0
  #finished = false

  constructor(options: ChunkerOptions = DEFAULT_CHUNKER) {
    checkOptions(options)
    this.#min = options.minSize
    this.#normal = options.avgSize
    this.#max = options.maxSize
    const bits = Math.log2(options.avgSize)
    this.#maskS = highMask(bits + 1)
    this.#maskL = highMask(bits - 1)
  }

  /** Bytes pushed so far. */
  get offset(): number { return this.#start + this.#len }

  /** Feeds `data`; returns the end offsets of the chunks it completed, in order. */
  push(data: Uint8Array): number[] {
    if (this.#finished) throw new Error('chunker already finished')
    const cuts: number[] = []
    const n = data.length
    const min = this.#min
    const normal = this.#normal
    const max = this.#max
    let len = this.#len
    let h = this.#hash
    let i = 0
    while (i < n) {
      if (len < min) { // cut-point skipping: bytes below the minimum are not hashed
        const skip = Math.min(min - len, n - i)
        i += skip
        len += skip
        continue
      }
      const strict = len < normal
      const mask = strict ? this.#maskS : this.#maskL
      const mask2 = mask << 1
      const from = i
      const end = Math.min(n, i + (strict ? normal : max) - len)
      let cut = -1
      // Two bytes a step: h·4 + 2·G[a] is h after byte a, doubled; testing it against the doubled
      // mask is testing h against the mask (bit 31 is in neither).
      for (; i + 1 < end; i += 2) {
        h = ((h << 2) + GEAR2[data[i]!]!) | 0
        if ((h & mask2) === 0) {
          cut = i + 1
          break
        }
        h = (h + GEAR[data[i + 1]!]!) | 0
        if ((h & mask) === 0) {
          cut = i + 2
          break
        }
      }
      if (cut < 0 && i < end) {
        h = ((h << 1) + GEAR[data[i]!]!) | 0
        i++
        if ((h & mask) === 0) cut = i
      }
      if (cut < 0) {
        len += i - from
        if (len < max) continue // next region, or the next buffer
        cut = i // forced cut at the maximum
      } else {
        len += cut - from
        i = cut
      }
      this.#start += len
      cuts.push(this.#start)
      len = 0
      h = 0
    }
    this.#len = len
    this.#hash = h
    return cuts
  }

  /** Ends the input: the last chunk's end offset, if any bytes are left over. */
  finish(): number[] {
    if (this.#finished) return []
    this.#finished = true
    if (this.#len === 0) return []
    this.#start += this.#len
    this.#len = 0
    return [this.#start]
  }
}

/** The chunk end offsets of a whole buffer (the same as streaming it through a `Chunker`). */
export function chunkBoundaries(data: Uint8Array, options: ChunkerOptions = DEFAULT_CHUNKER): number[] {
  const c = new Chunker(options)
  const cuts = c.push(data)
  for (const end of c.finish()) cuts.push(end)
  return cuts
}
