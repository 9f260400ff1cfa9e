/** Per-chunk zstd: round trips, skipping what does not compress, and refusing bombs unread. */
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import {
  CODING, checkZstdFrame, compressChunk, compressChunkAsync, decompressChunk, decompressChunkAsync, isCompressedExtension, worthCompressing,
} from '../../src/core/delta/compress.js'
import { type PieceState, pieceFrame } from '../../src/core/server/chunk-serving.js'
import { ProtocolError } from '../../src/errors.js'
import { BACKGROUND_FRAME_BYTES, CHUNK_SIZE, DELTA_MAX_CHUNK_BYTES, ZSTD_RETRY_BYTES } from '../../src/limits.js'
import { concat, jsonText, seededBytes } from './support.js'

const zstd = createRequire(import.meta.url)('@toondepauw/node-zstd') as typeof import('@toondepauw/node-zstd')
const raw = new zstd.Decoder()

const MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd])
/** A 3-byte block header: last flag, type (0 raw, 1 RLE, 2 compressed, 3 reserved), size. */
const block = (last: boolean, type: number, size: number): Buffer => {
  const h = (size << 3) | (type << 1) | (last ? 1 : 0)
  return Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff])
}
/** A frame header with a 512 KiB window and no content size (what level 1 writes). */
const WINDOWED = Buffer.concat([MAGIC, Buffer.from([0x00, 0x48])])

describe('compressChunk', () => {
  const json = jsonText(192 * 1024, 1).subarray(0, 192 * 1024)

  it('round-trips JSON-like text at a fraction of its size, sync and async', async () => {
    const c = compressChunk(json, 'levels/level1.json')
    expect(c.coding).toBe(CODING.ZSTD)
    expect(c.data.length).toBeLessThan(json.length * 0.35)
    expect(Buffer.compare(Buffer.from(decompressChunk(c.coding, c.data, json.length)), json)).toBe(0)
    const a = await compressChunkAsync(json, 'levels/level1.json')
    expect(Buffer.from(a.data)).toEqual(Buffer.from(c.data))
    expect(Buffer.compare(Buffer.from(await decompressChunkAsync(a.coding, a.data, json.length)), json)).toBe(0)
  })

  it('sends incompressible data raw after compressing only a sample', () => {
    const noise = seededBytes(192 * 1024, 2)
    expect(worthCompressing(noise)).toBe(false)
    const c = compressChunk(noise)
    expect(c.coding).toBe(CODING.RAW)
    expect(c.data).toBe(noise)
    expect(decompressChunk(CODING.RAW, c.data, noise.length)).toBe(noise)
  })

  it('a REQUEST\'s incompressible pieces are tried once per MiB (ZSTD_RETRY_BYTES), whatever their size', () => {
    const noise = seededBytes(4 * 1024 * 1024, 5)
    const json4 = jsonText(4 * 1024 * 1024, 6).subarray(0, 4 * 1024 * 1024)
    for (const piece of [CHUNK_SIZE, BACKGROUND_FRAME_BYTES]) {
      const state: PieceState = { skip: 0 }
      let tries = 0
      for (let at = 0; at < noise.length; at += piece) {
        if (state.skip <= 0) tries++ // pieceFrame tries zstd exactly when nothing is left to skip
        expect(pieceFrame(1, 'pack.bin', at, false, noise.subarray(at, at + piece), true, state).type).toBe('chunk')
      }
      expect(tries, `${piece}-byte pieces`).toBe(noise.length / ZSTD_RETRY_BYTES)
    }
    // A compressible file is compressed piece after piece; without zstd agreed, nothing is.
    const state: PieceState = { skip: 0 }
    for (let at = 0; at < 4 * CHUNK_SIZE; at += CHUNK_SIZE) expect(pieceFrame(1, 'a.json', at, false, json4.subarray(at, at + CHUNK_SIZE), true, state).type).toBe('chunk-z')
    expect(pieceFrame(1, 'a.json', 0, false, json4.subarray(0, CHUNK_SIZE), false, { skip: 0 }).type).toBe('chunk')
  })

  it('sends known-compressed extensions and tiny chunks raw without trying', () => {
    for (const p of ['a/b.png', 'x.JPG', 'music.ogg', 'pack.zip', 'tex.ktx2', 't.basis', 'v.mp4', 'z.zst', 'i.webp', 'i.avif']) {
      expect(isCompressedExtension(p), p).toBe(true)
      expect(compressChunk(json, p).coding).toBe(CODING.RAW)
    }
    for (const p of ['a.json', 'init.lua', 'png', 'dir.png/file', '.gz', 'Makefile']) expect(isCompressedExtension(p), p).toBe(false)
    expect(compressChunk(json.subarray(0, 100)).coding).toBe(CODING.RAW)
  })

  it('keeps a sample-passing chunk raw when the whole does not shrink enough', () => {
    // Compressible in the middle (where the sample is), noise elsewhere.
    const mixed = concat(seededBytes(93 * 1024, 3), new Uint8Array(6 * 1024), seededBytes(93 * 1024, 4))
    expect(worthCompressing(mixed)).toBe(true)
    expect(compressChunk(mixed).coding).toBe(CODING.RAW)
  })
})

describe('decompressChunk refuses', () => {
  const text = jsonText(128 * 1024, 5).subarray(0, 128 * 1024)
  const good = new zstd.Encoder(1).encodeSync(text)
  const expectRefused = (f: () => unknown, message: RegExp): void => {
    expect(f).toThrow(ProtocolError)
    expect(f).toThrow(message)
  }

  it('an RLE bomb before decoding it', () => {
    // 3,000 RLE blocks of 128 KiB: 12 KiB of frame that the library would expand to 375 MiB.
    const blocks = Array.from({ length: 3000 }, (_, i) => Buffer.concat([block(i === 2999, 1, 128 * 1024), Buffer.from([0x41])]))
    const bomb = Buffer.concat([WINDOWED, ...blocks])
    expectRefused(() => decompressChunk(CODING.ZSTD, bomb, 64 * 1024), /may decode to more than 65536/)
  })

  it('a frame of repeated compressed blocks that the library would expand past the announced size', () => {
    expect(good[4]).toBe(0x00) // level 1: no content size, a window
    // Level 1 writes a full compressed block, then an empty last raw block when it finishes.
    const body = good.subarray(6)
    const first = 3 + ((body[0]! | (body[1]! << 8) | (body[2]! << 16)) >>> 3)
    expect((body[0]! >> 1) & 3).toBe(2)
    expect(body.subarray(first)).toEqual(block(true, 0, 0))
    const compressed = body.subarray(0, first)
    const repeated = Buffer.concat([WINDOWED, compressed, compressed, compressed, compressed, block(true, 0, 0)])
    expect(raw.decodeSync(repeated).length).toBe(4 * text.length) // the library alone has no limit
    expectRefused(() => decompressChunk(CODING.ZSTD, repeated, text.length), /may decode to more than/)
  })

  it('a second frame after the first', () => {
    const two = Buffer.concat([good, good])
    expect(raw.decodeSync(two).length).toBe(2 * text.length)
    expectRefused(() => decompressChunk(CODING.ZSTD, two, text.length), /bytes after the frame/)
  })

  it('output of another size than announced', () => {
    expect(Buffer.compare(decompressChunk(CODING.ZSTD, good, text.length) as Buffer, text)).toBe(0)
    expectRefused(() => decompressChunk(CODING.ZSTD, good, text.length + 1), /decoded to 131072 bytes, 131073 announced/)
    // One block's worth past the announced size is decoded, then refused by its length.
    expectRefused(() => decompressChunk(CODING.ZSTD, good, 1000), /decoded to 131072 bytes, 1000 announced/)
    const twoBlocks = new zstd.Encoder(1).encodeSync(Buffer.concat([text, text]))
    expectRefused(() => decompressChunk(CODING.ZSTD, twoBlocks, 1000), /may decode to more than 1000/)
  })

  it('a large window, a dictionary, reserved bits and types, a wrong content size, truncation, garbage', () => {
    const hello = Buffer.concat([MAGIC, Buffer.from([0x20, 5]), block(true, 0, 5), Buffer.from('hello')])
    expect(Buffer.from(decompressChunk(CODING.ZSTD, hello, 5)).toString()).toBe('hello')
    expectRefused(() => decompressChunk(CODING.ZSTD, hello, 6), /declares 5 bytes, 6 announced/)
    const bigWindow = Buffer.concat([MAGIC, Buffer.from([0x00, 0x88]), block(true, 0, 5), Buffer.from('hello')])
    expectRefused(() => decompressChunk(CODING.ZSTD, bigWindow, 5), /window of 134217728 bytes/)
    const dict = Buffer.concat([MAGIC, Buffer.from([0x21, 7, 5]), block(true, 0, 5), Buffer.from('hello')])
    expectRefused(() => decompressChunk(CODING.ZSTD, dict, 5), /dictionary/)
    const reserved = Buffer.concat([MAGIC, Buffer.from([0x28, 5]), block(true, 0, 5), Buffer.from('hello')])
    expectRefused(() => decompressChunk(CODING.ZSTD, reserved, 5), /reserved header bit/)
    const badType = Buffer.concat([MAGIC, Buffer.from([0x20, 5]), block(true, 3, 5), Buffer.from('hello')])
    expectRefused(() => decompressChunk(CODING.ZSTD, badType, 5), /reserved block type/)
    expectRefused(() => decompressChunk(CODING.ZSTD, hello.subarray(0, hello.length - 1), 5), /truncated block/)
    expectRefused(() => decompressChunk(CODING.ZSTD, good.subarray(0, 8), text.length), /truncated block/)
    expectRefused(() => decompressChunk(CODING.ZSTD, Buffer.from('not zstd at all'), 5), /not a zstd frame/)
    const corrupt = Buffer.from(good)
    corrupt.fill(0xff, 20, 60)
    expectRefused(() => decompressChunk(CODING.ZSTD, corrupt, text.length), /corrupt frame|decoded to/)
  })

  it('a raw chunk of the wrong length, an unknown coding, an announced size over the cap', async () => {
    expectRefused(() => decompressChunk(CODING.RAW, new Uint8Array(10), 11), /raw chunk of 10 bytes, 11 announced/)
    expectRefused(() => decompressChunk(7, good, text.length), /unknown coding 7/)
    expectRefused(() => decompressChunk(CODING.RAW, new Uint8Array(0), DELTA_MAX_CHUNK_BYTES + 1), /over 196608/)
    await expect(decompressChunkAsync(CODING.ZSTD, Buffer.concat([good, good]), text.length)).rejects.toThrow(/bytes after the frame/)
    expect(checkZstdFrame(good, text.length)).toBe(128 * 1024)
  })
})
