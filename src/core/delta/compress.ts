/**
 * Per-chunk zstd (@toondepauw/node-zstd 2, libzstd 1.5.7; Node 20's zlib has no zstd). A chunk
 * goes on the wire raw or as one zstd frame, with a one-byte coding flag (`CODING`).
 *
 * Sending: level 1 (measured here ~200 MB/s compress, ~350 MB/s decompress, JSON at ~0.1-0.25
 * of its size). Chunks of files with a known-compressed extension are sent raw without trying;
 * other chunks first compress a DELTA_ZSTD_SAMPLE_BYTES sample from their middle, and are sent
 * raw if it does not shrink to COMPRESS_SAMPLE_RATIO, so incompressible data costs ~2 % of a
 * full compression. A compressed chunk is kept only if it saves at least 1/COMPRESS_MIN_GAIN.
 *
 * Receiving: the library decodes a whole stream with no output limit (several concatenated
 * frames, or one frame of RLE blocks that expands 32,000-fold), so a frame is walked before it is
 * decoded (`checkZstdFrame`): exactly one frame, no dictionary, a window ≤
 * DELTA_ZSTD_MAX_WINDOW_BYTES, a declared content size (if any) equal to the announced size, and
 * a block structure that bounds the output below announced + one block. Only then is it decoded,
 * and the output must be exactly the announced size.
 */
import { createRequire } from 'node:module'
import { ProtocolError } from '../../errors.js'
import { DELTA_MAX_CHUNK_BYTES, DELTA_ZSTD_MAX_WINDOW_BYTES, DELTA_ZSTD_SAMPLE_BYTES } from '../../limits.js'

type Zstd = typeof import('@toondepauw/node-zstd')
let zstd: Zstd | null = null
/** Loaded on first use: a pull that compresses nothing never loads the native addon. */
function lib(): Zstd {
  zstd ??= createRequire(import.meta.url)('@toondepauw/node-zstd') as Zstd
  return zstd
}

/** The wire flag of a chunk's bytes. */
export const CODING = { RAW: 0, ZSTD: 1 } as const
/** A chunk's coding on the wire: `CODING.RAW` or `CODING.ZSTD`. */
export type Coding = (typeof CODING)[keyof typeof CODING]

/** zstd level for chunks: 1 is ~3× faster than 3 for a few % of ratio on JSON and Lua. */
export const ZSTD_LEVEL = 1
/** A sample must compress to at most this fraction of its size for the chunk to be compressed. */
export const COMPRESS_SAMPLE_RATIO = 0.9
/** A compressed chunk is kept only if it is smaller by at least 1/this (~3 %). */
export const COMPRESS_MIN_GAIN = 32
/** Chunks smaller than this are sent raw: a frame's ~10 bytes of overhead eat the gain. */
export const COMPRESS_MIN_BYTES = 128

/**
 * File extensions whose content is already compressed (images, audio, video, archives, GPU
 * texture containers with supercompression): their chunks are sent raw without trying.
 */
export const COMPRESSED_EXTENSIONS: ReadonlySet<string> = new Set([
  'png', 'jpg', 'jpeg', 'gif', 'webp', 'avif', 'heic', 'jxl',
  'ogg', 'oga', 'opus', 'mp3', 'aac', 'm4a', 'flac', 'wma',
  'mp4', 'm4v', 'mov', 'webm', 'mkv', 'avi', 'bik', 'bk2',
  'zip', 'gz', 'tgz', 'bz2', 'xz', 'lz4', 'zst', 'br', '7z', 'rar', 'jar', 'apk', 'pak',
  'ktx2', 'basis', 'crn', 'woff', 'woff2', 'pdf',
])

/** True if `path` (a wire path or file name) ends in a known-compressed extension. */
export function isCompressedExtension(path: string): boolean {
  const slash = path.lastIndexOf('/')
  const dot = path.lastIndexOf('.')
  if (dot <= slash + 1) return false
  return COMPRESSED_EXTENSIONS.has(path.slice(dot + 1).toLowerCase())
}

/** A chunk as it goes on the wire. */
export interface EncodedChunk {
  coding: Coding
  data: Uint8Array
}

const encoders = new Map<number, InstanceType<Zstd['Encoder']>>()
function encoder(level: number): InstanceType<Zstd['Encoder']> {
  let e = encoders.get(level)
  if (!e) encoders.set(level, (e = new (lib().Encoder)(level)))
  return e
}
let decoderInstance: InstanceType<Zstd['Decoder']> | null = null
function decoder(): InstanceType<Zstd['Decoder']> {
  decoderInstance ??= new (lib().Decoder)()
  return decoderInstance
}

const asBuffer = (d: Uint8Array): Buffer => Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.byteLength)

/** Whether a chunk is worth a full compression: its extension, its size, then a sample. */
export function worthCompressing(data: Uint8Array, path = '', level = ZSTD_LEVEL): boolean {
  if (data.length < COMPRESS_MIN_BYTES || isCompressedExtension(path)) return false
  if (data.length <= 2 * DELTA_ZSTD_SAMPLE_BYTES) return true
  const from = (data.length - DELTA_ZSTD_SAMPLE_BYTES) >>> 1
  const sample = asBuffer(data).subarray(from, from + DELTA_ZSTD_SAMPLE_BYTES)
  return encoder(level).encodeSync(sample).length <= DELTA_ZSTD_SAMPLE_BYTES * COMPRESS_SAMPLE_RATIO
}

function pick(data: Uint8Array, z: Buffer): EncodedChunk {
  return z.length <= data.length - data.length / COMPRESS_MIN_GAIN ? { coding: CODING.ZSTD, data: z } : { coding: CODING.RAW, data }
}

/** Encodes a chunk for the wire, synchronously (a 64 KiB chunk takes ~0.3 ms at level 1). */
export function compressChunk(data: Uint8Array, path = '', level = ZSTD_LEVEL): EncodedChunk {
  if (!worthCompressing(data, path, level)) return { coding: CODING.RAW, data }
  return pick(data, encoder(level).encodeSync(asBuffer(data)))
}

/** The same on the libuv thread pool (the sample test stays synchronous: it is ~10 µs). */
export async function compressChunkAsync(data: Uint8Array, path = '', level = ZSTD_LEVEL): Promise<EncodedChunk> {
  if (!worthCompressing(data, path, level)) return { coding: CODING.RAW, data }
  return pick(data, await encoder(level).encode(asBuffer(data)))
}

const ZSTD_MAGIC = 0xfd2fb528
const BLOCK_MAX = 128 * 1024

const refuse = (why: string): never => {
  throw new ProtocolError(`zstd chunk refused: ${why}`)
}

/**
 * Walks one zstd frame (RFC 8878 §3.1.1) without decoding it and refuses anything that could
 * make decoding cost more than `announced` + one block of output, or a large window; returns
 * the bound on the decoded size.
 */
export function checkZstdFrame(frame: Uint8Array, announced: number): number {
  const b = asBuffer(frame)
  if (b.length < 6 || b.readUInt32LE(0) !== ZSTD_MAGIC) refuse('not a zstd frame')
  const fhd = b[4]!
  const fcsFlag = fhd >> 6
  const single = (fhd >> 5) & 1
  if (fhd & 0x08) refuse('reserved header bit set')
  if (fhd & 0x03) refuse('dictionary frames are not used')
  const checksum = (fhd >> 2) & 1
  let at = 5
  let window = 0
  if (!single) {
    const wd = b[at++]!
    const base = 2 ** (10 + (wd >> 3))
    window = base + (base / 8) * (wd & 7)
  }
  const fcsBytes = fcsFlag === 0 ? single : 2 ** fcsFlag
  if (at + fcsBytes > b.length) refuse('truncated header')
  let fcs = -1
  if (fcsBytes === 1) fcs = b[at]!
  else if (fcsBytes === 2) fcs = b.readUInt16LE(at) + 256
  else if (fcsBytes === 4) fcs = b.readUInt32LE(at)
  else if (fcsBytes === 8) fcs = b.readUInt32LE(at + 4) * 2 ** 32 + b.readUInt32LE(at)
  at += fcsBytes
  if (single) window = fcs
  if (fcs >= 0 && fcs !== announced) refuse(`declares ${fcs} bytes, ${announced} announced`)
  if (window > DELTA_ZSTD_MAX_WINDOW_BYTES) refuse(`window of ${window} bytes`)
  const blockMax = Math.min(window, BLOCK_MAX)
  let bound = 0
  for (let last = 0; !last;) {
    if (at + 3 > b.length) refuse('truncated block header')
    const h = b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16)
    at += 3
    last = h & 1
    const type = (h >> 1) & 3
    const size = h >>> 3
    if (type === 3) refuse('reserved block type')
    if (size > blockMax) refuse(`block of ${size} bytes (at most ${blockMax})`)
    const stored = type === 1 ? 1 : size // RLE: one byte repeated `size` times
    if (at + stored > b.length) refuse('truncated block')
    at += stored
    bound += type === 2 ? blockMax : size
    // Every block but the last of an ordinary encoder is full, so a legitimate frame's bound is
    // below announced + blockMax; a frame of many small compressed blocks is refused here,
    // before the library could expand each of them. (Should libzstd let a block regenerate more
    // than blockMax, its output buffer, window + block, still caps it: with the few blocks
    // allowed here, a frame decodes to a few MiB at most, and is then refused by its length.)
    if (bound > announced && bound >= announced + blockMax) refuse(`blocks may decode to more than ${announced} bytes`)
  }
  at += checksum * 4
  if (at !== b.length) refuse(at > b.length ? 'truncated checksum' : 'bytes after the frame')
  return bound
}

/**
 * Decodes a chunk received with `coding`; `announced` is its length from the chunk list (at most
 * `maxBytes`). Anything else, or output of another length, is a `ProtocolError`.
 */
export function decompressChunk(coding: number, data: Uint8Array, announced: number, maxBytes = DELTA_MAX_CHUNK_BYTES): Uint8Array {
  if (!(announced >= 0 && announced <= maxBytes)) refuse(`announced size ${announced} over ${maxBytes}`)
  if (coding === CODING.RAW) {
    if (data.length !== announced) refuse(`raw chunk of ${data.length} bytes, ${announced} announced`)
    return data
  }
  if (coding !== CODING.ZSTD) refuse(`unknown coding ${coding}`)
  checkZstdFrame(data, announced)
  let out: Buffer
  try {
    out = decoder().decodeSync(asBuffer(data))
  } catch (err) {
    return refuse(`corrupt frame (${(err as Error).message})`)
  }
  if (out.length !== announced) refuse(`decoded to ${out.length} bytes, ${announced} announced`)
  return out
}

/** The same on the libuv thread pool (the frame walk stays synchronous: it reads only headers). */
export async function decompressChunkAsync(coding: number, data: Uint8Array, announced: number, maxBytes = DELTA_MAX_CHUNK_BYTES): Promise<Uint8Array> {
  if (coding !== CODING.ZSTD) return decompressChunk(coding, data, announced, maxBytes)
  if (!(announced >= 0 && announced <= maxBytes)) refuse(`announced size ${announced} over ${maxBytes}`)
  checkZstdFrame(data, announced)
  let out: Buffer
  try {
    out = await decoder().decode(asBuffer(data))
  } catch (err) {
    return refuse(`corrupt frame (${(err as Error).message})`)
  }
  if (out.length !== announced) refuse(`decoded to ${out.length} bytes, ${announced} announced`)
  return out
}
