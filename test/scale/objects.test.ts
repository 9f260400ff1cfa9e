/**
 * The scale-out object and message layouts (docs/scale-out.md): manifest objects, HEAD and feed
 * messages round-trip, are deterministic, and refuse anything off; locations parse strictly and
 * never show credentials; the disk cache keeps its byte cap, least recently used first.
 */
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ProtocolError } from '../../src/errors.js'
import { DiskCache } from '../../src/core/scale/chunk-cache.js'
import { decodeFeedMessage, encodeFeedMessage } from '../../src/core/scale/feed-message.js'
import { feedStream, feedSubject, formatLocation, parseBucketUrl, parseFeedUrl, redact } from '../../src/core/scale/location.js'
import { decodeHead, decodeManifest, encodeHead, encodeManifest } from '../../src/core/scale/manifest-object.js'
import { chunkBytes } from '../../src/core/delta/chunk-list.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import type { ManifestEntry, UpdateEntry } from '../../src/protocol/messages.js'
import { isSingleChunk } from '../../src/core/scale/chunk-store.js'
import { DELTA_MIN_CHUNK_BYTES } from '../../src/limits.js'
import { Cleanup, tempDir } from '../helpers/common.js'

const cleanup = new Cleanup()
afterAll(() => cleanup.run())

const entry = (path: string, n: number): ManifestEntry => ({ path, hash: hashBytes(Buffer.from(path)), size: n, mode: 0o644, mtime: 1_700_000_000_000 + n })

describe('manifest objects', () => {
  it('round-trip, span several frames, and are named by the BLAKE3 of their bytes', () => {
    const entries = Array.from({ length: 6000 }, (_, i) => entry(`dir/${String(i).padStart(5, '0')}-${'x'.repeat(40)}.bin`, i))
    const { bytes, digest } = encodeManifest(entries)
    expect(digest).toEqual(hashBytes(bytes))
    expect(bytes.readUInt32BE(10)).toBeGreaterThan(1) // frames
    const m = decodeManifest(bytes, digest)
    expect(m.entries.map((e) => e.path)).toEqual(entries.map((e) => e.path))
    expect(encodeManifest(m.entries).digest).toEqual(digest) // deterministic
    expect(encodeManifest([]).bytes.length).toBeGreaterThan(14)
    expect(decodeManifest(encodeManifest([]).bytes).entries).toEqual([])
  })

  it('refuses other bytes than its digest names, unsorted or unsafe paths, and truncation', () => {
    const { bytes, digest } = encodeManifest([entry('a', 1), entry('b', 2)])
    const other = Buffer.from(bytes)
    other.writeUInt8((other.at(-1) as number) ^ 1, other.length - 1)
    expect(() => decodeManifest(other, digest)).toThrow(/not the digest/)
    expect(() => decodeManifest(bytes.subarray(0, bytes.length - 3))).toThrow(ProtocolError)
    expect(() => decodeManifest(encodeManifest([entry('b', 1), entry('a', 2)]).bytes)).toThrow(/increasing/)
    expect(() => decodeManifest(encodeManifest([entry('a', 1), entry('a', 2)]).bytes)).toThrow(/increasing/)
    expect(() => decodeManifest(encodeManifest([entry('../etc/passwd', 1)]).bytes)).toThrow(/path/)
    expect(() => decodeManifest(Buffer.from('not a manifest at all'))).toThrow(/magic/)
  })

  it('HEAD is strict JSON naming a digest and a version', () => {
    const h = { digest: hashBytes(Buffer.from('x')), version: 7, files: 3, at: '2026-01-01T00:00:00.000Z' }
    expect(decodeHead(encodeHead(h))).toEqual(h)
    for (const bad of ['', '{}', '{"format":1,"digest":"zz","version":1,"files":1,"at":""}', '{"format":2}', 'x'.repeat(5000)]) {
      expect(() => decodeHead(Buffer.from(bad))).toThrow(ProtocolError)
    }
  })
})

describe('feed messages', () => {
  const d1 = hashBytes(Buffer.from('1'))
  const d2 = hashBytes(Buffer.from('2'))
  const changes: UpdateEntry[] = [
    { kind: 'change', path: 'a.lua', hash: d1, size: 3, mode: 0o644, mtime: 5 },
    { kind: 'rename', path: 'b/new.png', from: 'b/old.png', hash: d2, size: 9, mode: 0o600, mtime: 6 },
    { kind: 'delete', path: 'gone.txt' },
  ]

  it('carry a version, both digests and the batch as UPDATE frames', () => {
    const m = decodeFeedMessage(encodeFeedMessage({ version: 2 ** 40, digest: d2, previous: d1, entries: changes }))
    expect(m).toEqual({ version: 2 ** 40, digest: d2, previous: d1, entries: changes.map((e) => ({ ...e, ...('hash' in e ? { hash: e.hash } : {}) })) })
    const first = decodeFeedMessage(encodeFeedMessage({ version: 1, digest: d1, previous: null, entries: [] }))
    expect(first.previous).toBeNull()
    expect(first.entries).toEqual([])
  })

  it('leave the entries out when the batch does not fit, and refuse anything off', () => {
    const many: UpdateEntry[] = Array.from({ length: 5000 }, (_, i) => ({ kind: 'delete', path: `p/${i}-${'y'.repeat(100)}` }))
    const big = encodeFeedMessage({ version: 3, digest: d2, previous: d1, entries: many }, 64 * 1024)
    expect(big.length).toBe(82)
    expect(decodeFeedMessage(big).entries).toBeNull()
    const ok = encodeFeedMessage({ version: 3, digest: d2, previous: d1, entries: changes })
    expect(() => decodeFeedMessage(ok.subarray(0, ok.length - 1))).toThrow(ProtocolError)
    expect(() => decodeFeedMessage(Buffer.concat([ok, Buffer.from([0])]))).toThrow(ProtocolError)
    const flags = Buffer.from(ok)
    flags[77] = 4
    expect(() => decodeFeedMessage(flags)).toThrow(/flags/)
  })
})

describe('locations', () => {
  it('parse s3:// strictly and name subjects and streams injectively', () => {
    expect(parseBucketUrl('s3://assets/studio/main/', '--publish')).toEqual({ bucket: 'assets', prefix: 'studio/main/' })
    expect(parseBucketUrl('s3://assets', '--publish')).toEqual({ bucket: 'assets', prefix: '' })
    expect(formatLocation(parseBucketUrl('s3://assets/a/b', 'x'))).toBe('s3://assets/a/b')
    for (const bad of ['assets/x', 's3://A_B/x', 's3://ab', 's3://assets/../x', 's3://assets/a b', 's3://assets/a\\b']) {
      expect(() => parseBucketUrl(bad, '--origin'), bad).toThrow(/--origin/)
    }
    const a = parseBucketUrl('s3://assets/a.b', 'x')
    const b = parseBucketUrl('s3://assets/a_b', 'x')
    expect(feedSubject(a)).toBe('assetsync.assets_2fa_2eb.changes')
    expect(feedSubject(a)).not.toBe(feedSubject(b))
    expect(feedStream(a)).toMatch(/^ASSETSYNC_[A-Za-z0-9_-]+$/)
  })

  it('never show credentials of a feed URL', () => {
    const f = parseFeedUrl('nats://user:secret@host1:4222,nats://host2:4222')
    expect(f.display).toBe('nats://host1:4222,nats://host2:4222')
    expect(f.servers).toHaveLength(2)
    expect(redact('nats://u:p@h:1')).toBe('nats://h:1')
    expect(() => parseFeedUrl('http://x:1')).toThrow(/nats:\/\//)
    expect(() => parseFeedUrl('nats://u:pw@')).toThrow(/^(?!.*pw)/)
  })

  it('a file of at most the minimum chunk size is one chunk named by its own hash', () => {
    for (const size of [1, 100, DELTA_MIN_CHUNK_BYTES]) {
      const data = Buffer.alloc(size, 7)
      const list = chunkBytes(data)
      expect(isSingleChunk(size)).toBe(true)
      expect(list.count).toBe(1)
      expect(list.chunkHash(0)).toEqual(hashBytes(data))
    }
    expect(isSingleChunk(DELTA_MIN_CHUNK_BYTES + 1)).toBe(false)
  })
})

describe('disk cache', () => {
  it('keeps its byte cap, least recently used first, across reopening; drops temp files; vouches only for its own unchanged writes', async () => {
    const { dir, remove } = await tempDir('scale-cache')
    cleanup.add(remove)
    const name = (i: number): string => `c-${hashBytes(Buffer.from([i])).toString('hex')}`
    const cache = await DiskCache.open(dir, 3000)
    for (let i = 0; i < 3; i++) await cache.put(name(i), Buffer.alloc(1000, i))
    expect(await cache.get(name(0))).toEqual({ bytes: Buffer.alloc(1000, 0), vouched: true }) // 0 is now the most recent
    await cache.put(name(3), Buffer.alloc(1000, 3))
    expect(cache.has(name(1))).toBe(false) // the least recently used went
    expect(cache.has(name(0)) && cache.has(name(2)) && cache.has(name(3))).toBe(true)
    expect(cache.bytes).toBe(3000)
    const sub = name(0).slice(2, 4)
    await writeFile(join(dir, sub, '.tmp-1-1'), 'half')
    // Written to behind its back: its stamp moved, so it is no longer vouched for.
    await writeFile(join(dir, name(3).slice(2, 4), name(3)), Buffer.alloc(1000, 9))
    expect((await cache.get(name(3)))?.vouched).toBe(false)
    const again = await DiskCache.open(dir, 2000)
    expect(again.count).toBe(2)
    // A file from an earlier run is never vouched for: the chunk store hashes it.
    const left = [name(0), name(2), name(3)].filter((n) => again.has(n))
    for (const n of left) expect((await again.get(n))?.vouched).toBe(false)
    expect((await readdir(join(dir, sub))).some((n) => n.startsWith('.tmp-'))).toBe(false)
  })
})
