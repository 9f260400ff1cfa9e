/** Chunk lists: computed in one pass, encoded compactly, decoded strictly; the persistent cache. */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CHUNK_LIST_HEADER_BYTES, ChunkList, ChunkListBuilder, chunkBytes, chunkFile, decodeChunkList, encodeChunkList, maxChunkListBytes } from '../../src/core/delta/chunk-list.js'
import { chunkBoundaries } from '../../src/core/delta/fastcdc.js'
import { ChunkListCache, listCacheFileFor } from '../../src/core/delta/list-cache.js'
import { cacheFileFor } from '../../src/core/fs/hash-cache.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import { ProtocolError } from '../../src/errors.js'
import { DELTA_MAX_CHUNK_BYTES, DELTA_MAX_LIST_CHUNKS, DELTA_MIN_CHUNK_BYTES } from '../../src/limits.js'
import { seededBytes } from './support.js'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'assetsync-chunklist-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const data = seededBytes(1536 * 1024 + 333, 0xc1)

describe('chunkBytes / chunkFile', () => {
  it('give the chunker boundaries, each chunk BLAKE3 and the whole-file BLAKE3, in one pass', async () => {
    const list = chunkBytes(data)
    const cuts = chunkBoundaries(data)
    expect(list.count).toBe(cuts.length)
    expect(list.size).toBe(data.length)
    expect(list.hash).toEqual(hashBytes(data))
    for (let i = 0; i < list.count; i++) {
      const start = i > 0 ? cuts[i - 1]! : 0
      expect(list.offsets[i]).toBe(start)
      expect(list.lengths[i]).toBe(cuts[i]! - start)
      expect(list.chunkHash(i)).toEqual(hashBytes(data.subarray(start, cuts[i])))
    }
    const file = join(dir, 'pack.bin')
    await writeFile(file, data)
    const fromFile = await chunkFile(file)
    expect(encodeChunkList(fromFile)).toEqual(encodeChunkList(list))
  })

  it('give the same list whatever the pieces pushed', () => {
    const b = new ChunkListBuilder()
    for (let at = 0, step = 1; at < data.length; at += step, step = (step * 7 + 3) % 200_003) b.push(data.subarray(at, at + step))
    expect(encodeChunkList(b.finish())).toEqual(encodeChunkList(chunkBytes(data)))
  })

  it('give an empty file no chunks, and a file up to the minimum one chunk whose hash is the file hash', async () => {
    const empty = chunkBytes(new Uint8Array(0))
    expect(empty.count).toBe(0)
    expect(empty.hash).toEqual(hashBytes(new Uint8Array(0)))
    const small = data.subarray(0, DELTA_MIN_CHUNK_BYTES)
    const one = chunkBytes(small)
    expect(one.count).toBe(1)
    expect(one.chunkHash(0)).toEqual(one.hash)
    await writeFile(join(dir, 'empty'), '')
    expect((await chunkFile(join(dir, 'empty'))).count).toBe(0)
  })

  it('fails on a missing file', async () => {
    await expect(chunkFile(join(dir, 'nope'))).rejects.toThrow(/ENOENT/)
  })
})

describe('chunk list encoding', () => {
  const list = chunkBytes(data)
  const enc = encodeChunkList(list)

  it('is 46 + 36 bytes a chunk, with the golden header', () => {
    expect(enc.length).toBe(CHUNK_LIST_HEADER_BYTES + 36 * list.count)
    expect(enc.subarray(0, 10).toString('hex')).toBe('0101' + '000000000018014d') // format 1, chunker 1, size 1573197
    expect(enc.subarray(10, 42)).toEqual(list.hash)
    expect(enc.readUInt32BE(42)).toBe(list.count)
    expect(enc.readUInt32BE(46)).toBe(list.lengths[0])
    expect(enc.subarray(46 + 4 * list.count, 46 + 4 * list.count + 32)).toEqual(list.chunkHash(0))
    expect(enc.length).toBeLessThanOrEqual(maxChunkListBytes(list.size))
  })

  it('round-trips, checked against the announced size and hash', () => {
    const back = decodeChunkList(enc, { size: data.length, hash: hashBytes(data) })
    expect(back.size).toBe(list.size)
    expect(back.lengths).toEqual(list.lengths)
    expect(back.hashes).toEqual(list.hashes)
    expect(back.offsets).toEqual(list.offsets)
    expect(encodeChunkList(back)).toEqual(enc)
    expect(decodeChunkList(encodeChunkList(chunkBytes(new Uint8Array(0)))).count).toBe(0)
  })

  /** A copy of `enc` changed by `f`. */
  const mutate = (f: (b: Buffer) => Buffer | void): Buffer => {
    const b = Buffer.from(enc)
    return f(b) ?? b
  }
  /** A hand-made list: `lengths`, zero hashes, the given size. */
  const made = (size: number, lengths: number[], count = lengths.length): Buffer => {
    const b = Buffer.alloc(CHUNK_LIST_HEADER_BYTES + 36 * lengths.length)
    b[0] = 1
    b[1] = 1
    b.writeUInt32BE(Math.floor(size / 2 ** 32), 2)
    b.writeUInt32BE(size >>> 0, 6)
    b.writeUInt32BE(count, 42)
    lengths.forEach((l, i) => b.writeUInt32BE(l, 46 + 4 * i))
    return b
  }
  const min = DELTA_MIN_CHUNK_BYTES
  const max = DELTA_MAX_CHUNK_BYTES
  const cases: [string, Buffer, RegExp, object?][] = [
    ['an empty buffer', Buffer.alloc(0), /shorter than its header/],
    ['a truncated header', enc.subarray(0, 45), /shorter than its header/],
    ['an unknown format', mutate((b) => { b[0] = 2 }), /unknown format 2/],
    ['an unknown chunker', mutate((b) => { b[1] = 9 }), /unknown chunker 9/],
    ['a size over 2^53', mutate((b) => { b.writeUInt32BE(0x200000, 2) }), /over 2\^53/],
    ['a size not the announced one', enc, /size 1573197, expected 1573196/, { size: data.length - 1 }],
    ['a hash not the announced one', enc, /not the announced one/, { hash: Buffer.alloc(32) }],
    ['a missing chunk', enc.subarray(0, enc.length - 1), /bytes for/],
    ['a trailing byte', Buffer.concat([enc, Buffer.alloc(1)]), /bytes for/],
    ['more chunks than the size allows', made(2 * min, [min, min, 1]), /3 chunks for 32768 bytes/],
    ['more chunks than the cap, before reading them', made(2 ** 40, [], DELTA_MAX_LIST_CHUNKS + 1), /at most 1048576/],
    ['fewer chunks than can cover the size', made(max + 1, [max]), /cannot cover/],
    ['chunks for an empty file', made(0, [1]), /1 chunks for 0 bytes/],
    ['a chunk of length 0', made(min + 1, [min + 1, 0]), /chunk 1 has length 0/],
    ['a chunk over the maximum', made(max + min, [max + 1, min - 1]), /chunk 0 has length 196609/],
    ['a chunk under the minimum (not the last)', made(3 * min, [min - 1, 2 * min + 1]), /chunk 0 has length 16383/],
    ['chunks past the size', made(2 * min, [min, min + 1]), /past the size/],
    ['chunks short of the size', made(2 * min + 5, [min, min]), /cover 32768 of 32773/],
  ]
  for (const [what, bytes, message, expect_] of cases) {
    it(`refuses ${what}`, () => {
      expect(() => decodeChunkList(bytes, expect_)).toThrow(ProtocolError)
      expect(() => decodeChunkList(bytes, expect_)).toThrow(message)
    })
  }

  it('accepts a last chunk shorter than the minimum, and bounds announcements by size', () => {
    expect(decodeChunkList(made(min + 1, [min, 1])).count).toBe(2)
    expect(maxChunkListBytes(0)).toBe(CHUNK_LIST_HEADER_BYTES)
    expect(maxChunkListBytes(min)).toBe(CHUNK_LIST_HEADER_BYTES + 36)
    expect(maxChunkListBytes(min + 1)).toBe(CHUNK_LIST_HEADER_BYTES + 72)
    expect(maxChunkListBytes(2 ** 50)).toBe(CHUNK_LIST_HEADER_BYTES + 36 * DELTA_MAX_LIST_CHUNKS)
  })
})

describe('ChunkListCache', () => {
  const list = chunkBytes(data)
  const stamp = { size: data.length, mtimeMs: 1700000000123.5, ino: 4242, ctimeMs: 1700000000456.25 }

  it('lives beside the hash cache, outside the folder', () => {
    const f = listCacheFileFor('/cfg', 'mirror', '/home/me/assets')
    expect(dirname(f)).toBe(dirname(cacheFileFor('/cfg', 'mirror', '/home/me/assets')))
    expect(f).toMatch(/^\/cfg\/cache\/mirror-[0-9a-f]{24}\.chunks\.bin$/)
  })

  it('round-trips through its file and misses on any changed stamp field', async () => {
    const file = join(dir, 'cfg', 'cache', 'lists.bin')
    const c = new ChunkListCache(file)
    c.set('levels/pack 1.bin', stamp, list)
    c.set('ünï/small', { ...stamp, size: 5 }, chunkBytes(Buffer.from('hello')))
    await c.save()
    const back = await ChunkListCache.load(file)
    expect(back.size).toBe(2)
    const hit = back.lookup('levels/pack 1.bin', stamp) as ChunkList
    expect(encodeChunkList(hit)).toEqual(encodeChunkList(list))
    expect(back.lookup('ünï/small', { ...stamp, size: 5 })?.hash).toEqual(hashBytes(Buffer.from('hello')))
    for (const k of ['size', 'mtimeMs', 'ino', 'ctimeMs'] as const) {
      expect(back.lookup('levels/pack 1.bin', { ...stamp, [k]: stamp[k] + 1 })).toBeNull()
    }
    expect(back.lookup('other', stamp)).toBeNull()
    back.retain(new Set(['ünï/small']))
    expect(back.lookup('levels/pack 1.bin', stamp)).toBeNull()
  })

  it('reads a missing, foreign, truncated or damaged file as empty, and a bad record as a miss', async () => {
    const file = join(dir, 'damaged.bin')
    const c = new ChunkListCache(file)
    c.set('a', stamp, list)
    await c.save()
    const good = await readFile(file)
    expect((await ChunkListCache.load(join(dir, 'missing.bin'))).size).toBe(0)
    await writeFile(file, Buffer.concat([Buffer.from('ASYNCHC\x02'), good.subarray(8)]))
    expect((await ChunkListCache.load(file)).size).toBe(0)
    await writeFile(file, good.subarray(0, good.length - 7))
    expect((await ChunkListCache.load(file)).size).toBe(0)
    const flipped = Buffer.from(good)
    flipped[flipped.length - 36 * list.count - 3]! ^= 0x40 // a chunk length inside the record
    await writeFile(file, flipped)
    const damaged = await ChunkListCache.load(file)
    expect(damaged.size).toBe(1)
    expect(damaged.lookup('a', stamp)).toBeNull()
    expect(damaged.size).toBe(0)
    expect((await ChunkListCache.load(null)).size).toBe(0)
  })

  it('keeps at most its byte cap, dropping the least recently used', async () => {
    const one = encodeChunkList(list).length + 2 + 1 + 36
    const c = new ChunkListCache(join(dir, 'capped.bin'), 3 * one)
    for (const p of ['a', 'b', 'c']) c.set(p, stamp, list)
    expect(c.lookup('a', stamp)).not.toBeNull() // a is now the most recently used
    c.set('d', stamp, list)
    expect(c.size).toBe(3)
    expect(c.lookup('b', stamp)).toBeNull()
    expect(c.lookup('a', stamp)).not.toBeNull()
    await c.save()
    expect((await stat(join(dir, 'capped.bin'))).size).toBe(8 + 3 * one)
    expect((await ChunkListCache.load(join(dir, 'capped.bin'), 3 * one)).size).toBe(3)
  })
})
