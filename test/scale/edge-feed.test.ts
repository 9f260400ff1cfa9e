/**
 * The edge's feed logic, in process, with a real NATS JetStream server and a real S3 API server:
 * versions in order arrive with their batches; an edge away while messages expired (the stream
 * purged) fills the gap by diffing manifests; a duplicate or old message is skipped; nothing is
 * delivered twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BucketPublisher } from '../../src/core/server/bucket-publisher.js'
import { BucketSource } from '../../src/core/server/bucket-source.js'
import { EdgeFeed, type EdgeVersionEvent } from '../../src/core/server/edge-feed.js'
import type { ChangeBatch } from '../../src/core/server/feed.js'
import { MemorySource } from '../../src/core/server/memory-source.js'
import { ChunkStore, bucketObjects } from '../../src/core/scale/chunk-store.js'
import { encodeFeedMessage } from '../../src/core/scale/feed-message.js'
import { parseFeedUrl } from '../../src/core/scale/location.js'
import { NatsLink } from '../../src/core/scale/nats-link.js'
import { S3Store } from '../../src/core/scale/s3-store.js'
import { waitFor } from '../helpers/common.js'
import { BUCKET, NATS_MISSING, S3_KEYS, TestNats, TestS3 } from './support.js'

describe.skipIf(NATS_MISSING)('EdgeFeed', () => {
  let s3: TestS3
  let nats: TestNats
  beforeAll(async () => {
    s3 = await TestS3.start()
    nats = await TestNats.start(1)
  }, 30_000)
  afterAll(async () => {
    await nats?.stop()
    await s3?.remove()
  })

  it('applies versions in order, fills a gap from manifests, skips duplicates, delivers nothing twice', async () => {
    const loc = { bucket: BUCKET, prefix: 'feed/' }
    const opts = { endpoint: s3.endpoint, credentials: { accessKeyId: S3_KEYS.AWS_ACCESS_KEY_ID, secretAccessKey: S3_KEYS.AWS_SECRET_ACCESS_KEY } }
    const feed = parseFeedUrl(nats.url)
    const originLink = await NatsLink.connect(feed, loc)
    const originStore = await S3Store.open(loc, opts)
    const source = new MemorySource({ 'a.txt': 'a1', 'b.txt': 'b1' })
    const pub = new BucketPublisher({ store: originStore, link: originLink })
    const change = async (path: string, data: string | null): Promise<void> => {
      if (data === null) source.delete(path)
      else source.set(path, data)
      await pub.publish({ entries: [data === null ? { kind: 'delete', path } : { kind: 'change', ...(await source.get(path))! }] })
      await pub.idle()
    }
    await pub.start(source)
    await pub.idle()

    // The edge: its consumer first, then HEAD (v1), then the feed.
    const edgeStore = await S3Store.open(loc, opts)
    const edge = new BucketSource(edgeStore, new ChunkStore(bucketObjects(edgeStore)))
    const batches: ChangeBatch[] = []
    const versions: EdgeVersionEvent[] = []
    const sink = { deliver: async (b: ChangeBatch) => { batches.push(b) }, error: () => {} }
    let link = await NatsLink.connect(feed, loc)
    await link.ensureConsumer('edge-test')
    await edge.scan()
    expect(edge.version).toBe(1)
    let ef = new EdgeFeed(edge, link, { durable: 'edge-test', headPollMs: 3_600_000, onVersion: (e) => versions.push(e) })
    await ef.start(sink)

    await change('a.txt', 'a2') // v2
    await waitFor(() => edge.version === 2, 10_000, 'v2 at the edge')
    expect(versions.at(-1)).toMatchObject({ version: 2, via: 'feed', changes: 1 })
    expect(batches.at(-1)?.entries.map((e) => [e.kind, e.path])).toEqual([['change', 'a.txt']])

    // The edge goes away; v3 and v4 are published, then the stream loses them (expired).
    await ef.close()
    await link.close()
    await change('b.txt', null) // v3
    await change('c.txt', 'c1') // v4
    const admin = await NatsLink.connect(feed, loc)
    const { connect } = await import('nats')
    const nc = await connect({ servers: nats.url.split(',') })
    await (await nc.jetstreamManager()).streams.purge(admin.stream)
    await nc.close()
    await admin.close()
    await change('a.txt', 'a3') // v5: its previous (v4) is not what the edge serves (v2)

    const before = batches.length
    link = await NatsLink.connect(feed, loc)
    ef = new EdgeFeed(edge, link, { durable: 'edge-test', headPollMs: 3_600_000, onVersion: (e) => versions.push(e) })
    await ef.start(sink)
    await waitFor(() => edge.version === 5, 15_000, 'v5 at the edge')
    expect(versions.at(-1)).toMatchObject({ version: 5, via: 'gap' })
    const gap = batches.slice(before).flatMap((b) => b.entries.map((e) => `${e.kind} ${e.path}`)).sort()
    expect(gap).toEqual(['change a.txt', 'change c.txt', 'delete b.txt'])
    expect((await edge.get('a.txt'))?.hash).toEqual((await source.get('a.txt'))?.hash)

    // An old message arriving again (a redelivery, a replay) changes nothing.
    const delivered = batches.length
    await originLink.publish(encodeFeedMessage({ version: 2, digest: edge.manifest!.digest, previous: null, entries: [{ kind: 'delete', path: 'a.txt' }] }), 'replayed-old')
    await change('d.txt', 'd1') // v6, after it: once it is in, the old one was handled
    await waitFor(() => edge.version === 6, 10_000, 'v6 at the edge')
    expect(batches.slice(delivered).flatMap((b) => b.entries.map((e) => `${e.kind} ${e.path}`))).toEqual(['change d.txt'])
    expect(versions.map((v) => v.version)).toEqual([2, 5, 6])

    await ef.close()
    await link.close()
    await pub.close()
    await originLink.close()
    edgeStore.close()
    originStore.close()
  }, 60_000)
})
