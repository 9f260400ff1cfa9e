/**
 * The origin's BucketPublisher against a real S3 API server (s3rver) and the real SDK, over a
 * MemorySource: every chunk is uploaded once, whoever needs it; a restarted origin uploads nothing
 * it already published; failed uploads are retried; HEAD is written last and names a manifest
 * whose entries are the source's; an edge's BucketSource serves exactly those bytes.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BucketPublisher } from '../../src/core/server/bucket-publisher.js'
import { BucketSource } from '../../src/core/server/bucket-source.js'
import { MemorySource } from '../../src/core/server/memory-source.js'
import { ChunkStore, bucketObjects } from '../../src/core/scale/chunk-store.js'
import { keys } from '../../src/core/scale/location.js'
import { decodeHead } from '../../src/core/scale/manifest-object.js'
import type { ObjectStore } from '../../src/core/scale/object-store.js'
import { S3Store } from '../../src/core/scale/s3-store.js'
import { BUCKET, S3_KEYS, TestS3 } from './support.js'

/** An ObjectStore that counts PUTs by kind and can fail the next `failPuts` of them (a 503). */
class CountingStore implements ObjectStore {
  readonly inner: S3Store
  readonly puts: string[] = []
  failPuts = 0
  constructor(inner: S3Store) { this.inner = inner }
  get location() { return this.inner.location }
  get description() { return this.inner.description }
  get(key: string, max: number) { return this.inner.get(key, max) }
  exists(key: string) { return this.inner.exists(key) }
  async put(key: string, body: Uint8Array, opts?: { immutable?: boolean; contentType?: string }) {
    if (this.failPuts > 0) {
      this.failPuts--
      throw Object.assign(new Error('SlowDown'), { $metadata: { httpStatusCode: 503 } })
    }
    this.puts.push(key)
    return this.inner.put(key, body, opts)
  }
  presign(key: string, s: number) { return this.inner.presign(key, s) }
  close() { this.inner.close() }
}

describe('BucketPublisher', () => {
  let s3: TestS3
  beforeAll(async () => { s3 = await TestS3.start() })
  afterAll(async () => { await s3?.remove() })

  const store = async (prefix: string): Promise<CountingStore> => // prefix: 'x/'
    new CountingStore(await S3Store.open({ bucket: BUCKET, prefix }, { endpoint: s3.endpoint, credentials: { accessKeyId: S3_KEYS.AWS_ACCESS_KEY_ID, secretAccessKey: S3_KEYS.AWS_SECRET_ACCESS_KEY }, retryBudgetMs: 5000 }))

  it('uploads each chunk once, whoever needs it, then the manifest, then HEAD; a restart uploads nothing', async () => {
    const big = randomBytes(1024 * 1024)
    const source = new MemorySource({
      'a/big.bin': big,
      'b/copy.bin': big, // same content: same chunks, same list
      'c/longer.bin': Buffer.concat([big, randomBytes(100_000)]), // shares all but its tail
      'small.txt': 'hello',
      'empty.txt': '',
    })
    const st = await store('p1/')
    const pub = new BucketPublisher({ store: st })
    const published: number[] = []
    pub.on('published', (e) => published.push(e.version))
    await pub.start(source)
    await pub.idle()
    expect(published).toEqual([1])
    const chunkPuts = st.puts.filter((k) => k.startsWith('p1/chunks/'))
    expect(new Set(chunkPuts).size).toBe(chunkPuts.length) // never twice
    const edge = new BucketSource(st, new ChunkStore(bucketObjects(st)))
    await edge.scan()
    expect(edge.size).toBe(5)
    const lists = await Promise.all(['a/big.bin', 'c/longer.bin'].map(async (p) => (await edge.chunkList(p, null))?.list))
    const distinct = new Set<string>()
    for (const l of lists) for (let i = 0; i < (l?.count ?? 0); i++) distinct.add(l!.chunkKey(i))
    expect(chunkPuts.length).toBe(distinct.size + 1) // + small.txt, one chunk named by its hash
    expect(st.puts.filter((k) => k.startsWith('p1/lists/'))).toHaveLength(2) // big/copy share one
    expect(st.puts.slice(-2)).toEqual([expect.stringMatching(/^p1\/manifests\/[0-9a-f]{64}$/), 'p1/HEAD'])
    // The edge reads exactly the source's bytes.
    for (const path of ['a/big.bin', 'c/longer.bin', 'small.txt', 'empty.txt']) {
      const r = await edge.open(path)
      const e = await source.get(path)
      const buf = Buffer.alloc(e!.size)
      for (let at = 0; at < buf.length; at += 100_000) await r!.read(buf.subarray(at), at, Math.min(100_000, buf.length - at))
      await r!.close()
      const m = await source.open(path)
      const want = Buffer.alloc(e!.size)
      await m!.read(want, 0, want.length)
      expect(buf.equals(want), path).toBe(true)
    }

    // A restarted origin over the same content: HEAD's manifest vouches for every file.
    const before = st.puts.length
    const again = new BucketPublisher({ store: st })
    await again.start(source)
    await again.idle()
    expect(st.puts.length).toBe(before)
    expect(again.version).toBe(1)

    // A change, with the bucket refusing the first 3 PUTs: retried, then version 2.
    source.set('small.txt', 'hello again')
    st.failPuts = 3
    await again.publish({ entries: [{ kind: 'change', ...(await source.get('small.txt'))! }] })
    await again.idle()
    expect(again.version).toBe(2)
    const head = decodeHead((await st.get(keys.head(st.location), 4096))!)
    expect(head.version).toBe(2)
    expect(head.digest).toEqual(again.digest)
    st.close()
  }, 60_000)
})
