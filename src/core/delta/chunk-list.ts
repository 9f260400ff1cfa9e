/**
 * Chunk lists: a file's content-defined chunks, in order, each with its BLAKE3 hash, plus the
 * file's size and whole-file BLAKE3. Computed in one read pass (`chunkFile`); encoded compactly
 * for the wire and the persistent cache (`encodeChunkList`); decoded strictly
 * (`decodeChunkList`), so a malicious server cannot make a client do unbounded work or write
 * outside the announced size.
 *
 * Encoding (big-endian), 46 + 36·n bytes:
 *
 *   offset  size  field
 *   0       1     format, 1
 *   1       1     chunker id: 1 = FastCDC, gear table GEAR_SEED, DELTA_MIN/AVG/MAX_CHUNK_BYTES
 *   2       8     file size (u64, at most 2^53 - 1)
 *   10      32    BLAKE3 of the whole file
 *   42      4     n, the chunk count (u32)
 *   46      4·n   chunk lengths (u32 each); offsets are implicit: chunks are contiguous from 0
 *   46+4n   32·n  chunk BLAKE3 hashes
 *
 * Memory: a list keeps its lengths in a Uint32Array and its hashes in one Buffer (44 bytes a
 * chunk with offsets), never an object per chunk.
 */
import { open } from 'node:fs/promises'
import { ProtocolError } from '../../errors.js'
import { DELTA_MAX_CHUNK_BYTES, DELTA_MAX_LIST_CHUNKS, DELTA_MIN_CHUNK_BYTES, DELTA_READ_BYTES } from '../../limits.js'
import { type Hasher, createHasher, equalHash } from '../fs/hash.js'
import { Chunker } from './fastcdc.js'

/** Bytes of a BLAKE3 hash. */
export const CHUNK_HASH_BYTES = 32
/** The encoding's format byte. */
export const CHUNK_LIST_FORMAT = 1
/** The only chunker this build can reproduce (see the encoding above). */
export const CHUNKER_ID = 1
/** Bytes before the per-chunk arrays. */
export const CHUNK_LIST_HEADER_BYTES = 46
const PER_CHUNK_BYTES = 4 + CHUNK_HASH_BYTES

/** One file's chunks. Immutable; built by `chunkFile`/`chunkBytes` or a strict decode. */
export class ChunkList {
  /** The file's size in bytes. */
  readonly size: number
  /** BLAKE3 of the whole file. */
  readonly hash: Buffer
  /** Chunk lengths, in file order. */
  readonly lengths: Uint32Array
  /** Chunk hashes, 32 bytes each, in file order. */
  readonly hashes: Buffer
  /** Chunk start offsets (offsets[i] = sum of lengths[0..i-1]). */
  readonly offsets: Float64Array

  /** Takes its parts as they are: callers check them (decode) or made them (chunking). */
  constructor(size: number, hash: Buffer, lengths: Uint32Array, hashes: Buffer) {
    this.size = size
    this.hash = hash
    this.lengths = lengths
    this.hashes = hashes
    this.offsets = new Float64Array(lengths.length)
    for (let i = 1, at = 0; i < lengths.length; i++) this.offsets[i] = at += lengths[i - 1]!
  }

  get count(): number { return this.lengths.length }

  /** Chunk i's hash (a view into `hashes`). */
  chunkHash(i: number): Buffer {
    return this.hashes.subarray(i * CHUNK_HASH_BYTES, (i + 1) * CHUNK_HASH_BYTES)
  }

  /** Chunk i's hash as a 32-character latin1 string: a cheap Map key. */
  chunkKey(i: number): string {
    return this.hashes.toString('latin1', i * CHUNK_HASH_BYTES, (i + 1) * CHUNK_HASH_BYTES)
  }
}

/** A Map key for a chunk hash (the same string `ChunkList.chunkKey` gives). */
export function hashKey(hash: Uint8Array): string {
  return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('latin1')
}

/** The longest encoding a file of `size` bytes can have; a longer announcement is refused unread. */
export function maxChunkListBytes(size: number): number {
  return CHUNK_LIST_HEADER_BYTES + PER_CHUNK_BYTES * maxChunkCount(size)
}

/** Every chunk but the last is ≥ the minimum, and the cap applies whatever the size. */
function maxChunkCount(size: number): number {
  if (size <= 0) return 0
  return Math.min(DELTA_MAX_LIST_CHUNKS, Math.floor((size - 1) / DELTA_MIN_CHUNK_BYTES) + 1)
}

/** The wire and cache encoding of a list (46 + 36·n bytes, see the layout above). */
export function encodeChunkList(list: ChunkList): Buffer {
  const n = list.count
  const buf = Buffer.allocUnsafe(CHUNK_LIST_HEADER_BYTES + PER_CHUNK_BYTES * n)
  buf[0] = CHUNK_LIST_FORMAT
  buf[1] = CHUNKER_ID
  buf.writeUInt32BE(Math.floor(list.size / 2 ** 32), 2)
  buf.writeUInt32BE(list.size >>> 0, 6)
  list.hash.copy(buf, 10)
  buf.writeUInt32BE(n, 42)
  let at = CHUNK_LIST_HEADER_BYTES
  for (let i = 0; i < n; i++, at += 4) buf.writeUInt32BE(list.lengths[i]!, at)
  list.hashes.copy(buf, at, 0, n * CHUNK_HASH_BYTES)
  return buf
}

/** What the decoder checks the list against: the size and hash the file was announced with. */
export interface ChunkListExpectation {
  size?: number
  hash?: Uint8Array
}

const refuse = (why: string): never => {
  throw new ProtocolError(`chunk list refused: ${why}`)
}

/**
 * Decodes and checks a chunk list; anything off is a `ProtocolError`. Refused: a short or long
 * buffer (its length must be exactly 46 + 36·n), an unknown format or chunker, a size over 2^53
 * or not the expected one, a whole-file hash not the expected one, more chunks than the size
 * allows (⌊(size-1)/min⌋ + 1) or than DELTA_MAX_LIST_CHUNKS, fewer than ⌈size/max⌉, a chunk
 * longer than the maximum or (but the last) shorter than the minimum, lengths not summing to
 * the size. So the work is linear in bytes the caller already bounded (`maxChunkListBytes`), and
 * every chunk lies within [0, size). The result's buffers are copies, not views of `data`.
 */
export function decodeChunkList(data: Uint8Array, expect: ChunkListExpectation = {}): ChunkList {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (buf.length < CHUNK_LIST_HEADER_BYTES) refuse(`${buf.length} bytes is shorter than its header`)
  if (buf[0] !== CHUNK_LIST_FORMAT) refuse(`unknown format ${buf[0]}`)
  if (buf[1] !== CHUNKER_ID) refuse(`unknown chunker ${buf[1]}`)
  const hi = buf.readUInt32BE(2)
  if (hi >= 2 ** 21) refuse('file size over 2^53')
  const size = hi * 2 ** 32 + buf.readUInt32BE(6)
  if (expect.size !== undefined && size !== expect.size) refuse(`size ${size}, expected ${expect.size}`)
  const hash = Buffer.from(buf.subarray(10, 42))
  if (expect.hash && !equalHash(hash, expect.hash)) refuse('whole-file hash is not the announced one')
  const n = buf.readUInt32BE(42)
  if (n > maxChunkCount(size)) refuse(`${n} chunks for ${size} bytes (at most ${maxChunkCount(size)})`)
  if (n < Math.ceil(size / DELTA_MAX_CHUNK_BYTES)) refuse(`${n} chunks cannot cover ${size} bytes`)
  if (buf.length !== CHUNK_LIST_HEADER_BYTES + PER_CHUNK_BYTES * n) refuse(`${buf.length} bytes for ${n} chunks`)
  const lengths = new Uint32Array(n)
  let sum = 0
  for (let i = 0, at = CHUNK_LIST_HEADER_BYTES; i < n; i++, at += 4) {
    const len = buf.readUInt32BE(at)
    const last = i === n - 1
    if (len > DELTA_MAX_CHUNK_BYTES || len === 0 || (!last && len < DELTA_MIN_CHUNK_BYTES)) refuse(`chunk ${i} has length ${len}`)
    sum += len
    if (sum > size) refuse(`chunk ${i} ends at ${sum}, past the size ${size}`)
    lengths[i] = len
  }
  if (sum !== size) refuse(`chunks cover ${sum} of ${size} bytes`)
  const from = CHUNK_LIST_HEADER_BYTES + 4 * n
  return new ChunkList(size, hash, lengths, Buffer.from(buf.subarray(from, from + n * CHUNK_HASH_BYTES)))
}

/**
 * Builds a list while bytes stream past: one pass feeds the chunker, the whole-file hasher and
 * the current chunk's hasher. Push buffers in order, then `finish` (or `abort`, to release the
 * hashers' wasm memory).
 */
export class ChunkListBuilder {
  readonly #chunker = new Chunker()
  readonly #whole: Hasher = createHasher()
  #chunk: Hasher = createHasher()
  /** Absolute offset of the current chunk's start. */
  #start = 0
  #offset = 0
  #count = 0
  /** Grown by doubling: one object a chunk cost ~100 bytes each, 100 MB for a million chunks. */
  #lengths = new Uint32Array(64)
  #hashes = Buffer.allocUnsafe(64 * CHUNK_HASH_BYTES)

  push(data: Uint8Array): void {
    this.#whole.update(data)
    let from = 0
    for (const end of this.#chunker.push(data)) this.#cut(data, from, (from = end - this.#offset))
    if (from < data.length) this.#chunk.update(data.subarray(from))
    this.#offset += data.length
  }

  finish(): ChunkList {
    for (const end of this.#chunker.finish()) this.#cut(new Uint8Array(0), 0, end - this.#offset)
    this.#chunk.digest()
    const n = this.#count
    return new ChunkList(this.#offset, this.#whole.digest(), this.#lengths.slice(0, n),
      Buffer.from(this.#hashes.subarray(0, n * CHUNK_HASH_BYTES)))
  }

  abort(): void {
    this.#chunk.digest()
    this.#whole.digest()
  }

  /** Closes the chunk that ends at `to` in `data` (the hasher holds its earlier bytes). */
  #cut(data: Uint8Array, from: number, to: number): void {
    if (to > from) this.#chunk.update(data.subarray(from, to))
    const end = this.#offset + to
    const n = this.#count++
    if (n === this.#lengths.length) {
      const lengths = new Uint32Array(n * 2)
      lengths.set(this.#lengths)
      this.#lengths = lengths
      const hashes = Buffer.allocUnsafe(n * 2 * CHUNK_HASH_BYTES)
      this.#hashes.copy(hashes)
      this.#hashes = hashes
    }
    this.#lengths[n] = end - this.#start
    this.#chunk.digest().copy(this.#hashes, n * CHUNK_HASH_BYTES)
    this.#chunk = createHasher()
    this.#start = end
  }
}

/** The chunk list of bytes in memory. */
export function chunkBytes(data: Uint8Array): ChunkList {
  const b = new ChunkListBuilder()
  b.push(data)
  return b.finish()
}

/**
 * The chunk list of what `next(buf)` yields, in order: each call fills the start of `buf` (one
 * reused buffer of at most DELTA_READ_BYTES) and returns how many bytes it put there, 0 at the
 * end. A failed read aborts the builder and is thrown.
 */
async function chunkPieces(bufBytes: number, next: (buf: Buffer) => Promise<number>): Promise<ChunkList> {
  const b = new ChunkListBuilder()
  try {
    const buf = Buffer.allocUnsafe(Math.min(DELTA_READ_BYTES, Math.max(1, bufBytes)))
    for (let n = await next(buf); n > 0; n = await next(buf)) b.push(buf.subarray(0, n))
    return b.finish()
  } catch (err) {
    b.abort()
    throw err
  }
}

/**
 * The chunk list of `size` bytes that `read(buf, pos, n)` fills in order (n ≤ DELTA_READ_BYTES at
 * a time, into one reused buffer): a server's hardened reader, for instance.
 */
export function chunkReads(read: (buf: Buffer, pos: number, n: number) => Promise<unknown>, size: number): Promise<ChunkList> {
  let pos = 0
  return chunkPieces(size, async (buf) => {
    const n = Math.min(buf.length, size - pos)
    if (n > 0) await read(buf, pos, n)
    pos += n
    return n
  })
}

/**
 * The chunk list of a file, in one read pass of DELTA_READ_BYTES reads. The size is what was
 * read: a caller that stat-ed the file first compares the two to notice a concurrent write.
 */
export async function chunkFile(path: string): Promise<ChunkList> {
  const fh = await open(path, 'r')
  let pos = 0
  try {
    return await chunkPieces(DELTA_READ_BYTES, async (buf) => {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
      pos += bytesRead
      return bytesRead
    })
  } finally {
    await fh.close()
  }
}
