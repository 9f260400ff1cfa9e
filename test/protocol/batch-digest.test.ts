/**
 * Features `batch-request` and `manifest-digest` (docs/protocol.md §4.10) on a real AssetServer over
 * UDP with a MemorySource: every answer status of a BATCH in order, a batch larger than the
 * flow-control window, the per-connection cap on open batches, the codec's caps, a peer that does
 * not offer the features; the digest a server answers is the one a client computes from the
 * pages it received, and it moves with the listing. Golden bytes are in golden-frames.ts.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import type { BatchResult } from '../../src/core/client/receive-batch.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import { decodeManifest, encodeManifest } from '../../src/core/scale/manifest-object.js'
import { MemorySource } from '../../src/core/server/memory-source.js'
import { AssetServer } from '../../src/core/server/server.js'
import { ProtocolError } from '../../src/errors.js'
import { BATCH_FILE_BYTES, BATCH_MAX_FILES, BATCH_MAX_OPEN, FLOW_WINDOW_BYTES } from '../../src/limits.js'
import { decode } from '../../src/protocol/codec.js'
import { BATCH_STATUS, MSG, type BatchItem } from '../../src/protocol/messages.js'
import { Cleanup, LOOPBACK } from '../helpers/common.js'
import { HASH_HEX, bytesOf, h16, h8 } from './golden-frames.js'

const cleanup = new Cleanup()
const digestOf = (entries: Parameters<typeof encodeManifest>[0]): Buffer => encodeManifest(entries).digest
afterEach(() => cleanup.run())

let work: string
let source: MemorySource
let server: AssetServer
let plain: AssetServer
const small = randomBytes(5000)
const edge = randomBytes(BATCH_FILE_BYTES)
const big = randomBytes(BATCH_FILE_BYTES + 1)
const f16k = randomBytes(16 * 1024)

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'assetsync-batch-'))
  source = new MemorySource({ 'a/small.bin': small, 'a/edge.bin': edge, 'b/big.bin': big, 'c/f16k.bin': f16k, 'empty.txt': '', 'no.txt': 'x' })
  source.refused.add('no.txt')
  server = await AssetServer.start({ source, feed: null, configDir: join(work, 'server'), host: LOOPBACK, port: 0, transport: 'udp' })
  plain = await AssetServer.start({
    source, feed: null, configDir: join(work, 'server'), host: LOOPBACK, port: 0, transport: 'udp', protocol: { features: 0 },
  })
})

afterAll(async () => {
  await server.close()
  await plain.close()
  await rm(work, { recursive: true, force: true })
})

async function client(s = server, features?: number): Promise<AssetClient> {
  const c = await AssetClient.connect({
    server: `${LOOPBACK}:${s.address().port}`, transport: 'udp', key: s.publicKey.toString('hex'),
    configDir: join(work, 'client'), connectTimeoutMs: 10_000, ...(features === undefined ? {} : { protocol: { features } }),
  })
  cleanup.add(() => c.conn.destroy())
  return c
}

async function batch(c: AssetClient, items: BatchItem[]): Promise<BatchResult[]> {
  const got: BatchResult[] = []
  await c.batch(items, (i, r) => {
    expect(i).toBe(got.length) // in order, one each
    got.push(r.status === 'file' ? { ...r, data: Buffer.from(r.data) } : r)
  })
  return got
}

describe('BATCH', () => {
  it('answers every item in order: files whole, up-to-date, not-found, refused, alone', async () => {
    const c = await client()
    expect(c.batches).toBe(true)
    const r = await batch(c, [
      { path: 'a/small.bin', haveHash: null },
      { path: 'empty.txt', haveHash: null },
      { path: 'a/edge.bin', haveHash: null },
      { path: 'a/small.bin', haveHash: hashBytes(small) },
      { path: 'missing.bin', haveHash: null },
      { path: 'no.txt', haveHash: null },
      { path: '../escape', haveHash: null },
      { path: 'b/big.bin', haveHash: null },
      { path: 'a/small.bin', haveHash: hashBytes(big) }, // a stale local copy: the file again
    ])
    expect(r.map((x) => x.status)).toEqual(['file', 'file', 'file', 'up-to-date', 'not-found', 'refused', 'refused', 'alone', 'file'])
    const file = (x: BatchResult | undefined): Buffer => (x?.status === 'file' ? Buffer.from(x.data) : Buffer.alloc(1))
    expect(file(r[0]).equals(small)).toBe(true)
    expect(file(r[1]).length).toBe(0)
    expect(file(r[2]).equals(edge)).toBe(true)
    expect(file(r[8]).equals(small)).toBe(true)
    expect(r[0]?.status === 'file' && Buffer.from(r[0].meta.hash).equals(hashBytes(small))).toBe(true)
    expect(r[7]?.status === 'alone' && r[7].reason).toContain(`${BATCH_FILE_BYTES}`)
    // The connection is still fine: the big file comes by REQUEST.
    expect((await c.read('b/big.bin')).equals(big)).toBe(true)
  })

  it(`streams a batch of ${BATCH_MAX_FILES} files, more than the flow-control window, through CREDIT`, async () => {
    const c = await client()
    const items = Array.from({ length: BATCH_MAX_FILES }, () => ({ path: 'c/f16k.bin', haveHash: null }))
    expect(BATCH_MAX_FILES * f16k.length).toBeGreaterThan(FLOW_WINDOW_BYTES)
    let bytes = 0
    await c.batch(items, (_i, r) => {
      expect(r.status).toBe('file')
      if (r.status === 'file') {
        expect(Buffer.from(r.data).equals(f16k)).toBe(true)
        bytes += r.data.byteLength
      }
    })
    expect(bytes).toBe(BATCH_MAX_FILES * f16k.length)
  })

  it(`refuses a batch past ${BATCH_MAX_OPEN} open on one connection with ERR_LIMIT, and answers the others`, async () => {
    const c = await client()
    // Each batch needs credit twice over: none can end before all of them have arrived.
    const items = Array.from({ length: BATCH_MAX_FILES }, () => ({ path: 'c/f16k.bin', haveHash: null }))
    const runs = Array.from({ length: BATCH_MAX_OPEN + 1 }, () => c.batch(items, () => {}).then(() => 'ok', (err: { code?: string }) => err.code))
    const outcomes = await Promise.all(runs)
    expect(outcomes.filter((o) => o === 'ERR_LIMIT')).toHaveLength(1)
    expect(outcomes.at(-1)).toBe('ERR_LIMIT')
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(BATCH_MAX_OPEN)
  })

  it('a server that does not offer the feature: batches is false, the digest is not asked', async () => {
    const c = await client(plain)
    expect(c.batches).toBe(false)
    expect(await c.manifestDigest(['**'], Buffer.alloc(32))).toBeNull()
    const d = await client(server, 0)
    expect(d.batches).toBe(false)
    expect(await d.manifestDigest(['**'], Buffer.alloc(32))).toBeNull()
  })
})

describe('BATCH and BATCH_DATA caps in the codec', () => {
  const refused = (bytes: Buffer, sender: 'client' | 'server'): string => {
    try {
      decode(bytes, sender)
    } catch (err) {
      expect(err).toBeInstanceOf(ProtocolError)
      return (err as Error).message
    }
    throw new Error('expected a ProtocolError')
  }

  it('refuses an empty batch, a count over BATCH_MAX_FILES, and batch data without answers', () => {
    expect(refused(bytesOf(h8(MSG.batch), '00000001', '0000'), 'client')).toContain('empty batch')
    expect(refused(bytesOf(h8(MSG.batch), '00000001', h16(BATCH_MAX_FILES + 1)), 'client')).toContain(`limit ${BATCH_MAX_FILES}`)
    expect(refused(bytesOf(h8(MSG['batch-data']), '00000001', '01', '0000'), 'server')).toContain('without answers')
  })

  it('refuses a batched file over BATCH_FILE_BYTES before its bytes are looked for, and an unknown status', () => {
    const size = (BATCH_FILE_BYTES + 1).toString(16).padStart(16, '0')
    const frame = bytesOf(h8(MSG['batch-data']), '00000001', '01', '0001', h8(BATCH_STATUS.file), HASH_HEX, size, '000001a4', '0000000000000000')
    expect(refused(frame, 'server')).toContain(`exceeds ${BATCH_FILE_BYTES}`)
    expect(refused(bytesOf(h8(MSG['batch-data']), '00000001', '01', '0001', '05', '0000'), 'server')).toContain('unknown batch status 5')
    const short = bytesOf(h8(MSG['batch-data']), '00000001', '01', '0001', h8(BATCH_STATUS.file), HASH_HEX, '0000000000000004', '000001a4', '0000000000000000', 'aabb')
    expect(refused(short, 'server')).toContain('truncated')
  })
})

describe('MANIFEST_DIGEST', () => {
  it('the server answers the digest a client computes from the pages; unchanged until the listing moves', async () => {
    const c = await client()
    const listing = await c.manifest(['**'])
    const mine = digestOf(listing)
    const first = await c.manifestDigest(['**'], mine)
    expect(first).toEqual({ unchanged: true, digest: mine })
    // Another selection has another digest, again the one of its pages.
    const aOnly = await c.manifest(['a/**'])
    const a = await c.manifestDigest(['a/**'], mine)
    expect(a?.unchanged).toBe(false)
    expect(a?.digest.equals(digestOf(aOnly))).toBe(true)
    // A change moves it; asking again with the new one is unchanged.
    source.set('a/new.txt', 'new')
    try {
      const after = await c.manifestDigest(['**'], mine)
      expect(after?.unchanged).toBe(false)
      expect(after?.digest.equals(digestOf(await c.manifest(['**'])))).toBe(true)
      expect((await c.manifestDigest(['**'], after?.digest ?? Buffer.alloc(32)))?.unchanged).toBe(true)
    } finally {
      source.delete('a/new.txt')
    }
    expect((await c.manifestDigest(['**'], mine))?.unchanged).toBe(true)
  })

  it('the digest is the BLAKE3 of the manifest object, which decodes back to the listing', async () => {
    const c = await client()
    const listing = await c.manifest(['**'])
    const { bytes, digest } = encodeManifest(listing)
    expect(digest.equals(hashBytes(bytes))).toBe(true)
    const back = decodeManifest(bytes, digest)
    expect(back.entries.map((e) => e.path)).toEqual(listing.map((e) => e.path))
    expect(() => decodeManifest(bytes, Buffer.alloc(32))).toThrow(ProtocolError)
    // Pinned: the empty listing's object, byte for byte (HEAD's and this feature's one layout).
    expect(encodeManifest([]).bytes.toString('hex')).toBe(`4153 4d46 01 01 00000000 00000001 0000000a ${h8(MSG['manifest-reply'])}00000000 01 00000000`.replace(/ /g, ''))
  })
})
