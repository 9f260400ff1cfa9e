/**
 * The scale-out half of `assetsync serve` (docs/scale-out.md): its flags, and starting an origin
 * (`serve ./assets --publish s3://bucket/prefix [--feed nats://…]`) or an edge
 * (`serve --origin s3://bucket/prefix --feed nats://…`, no folder). serve.ts stays the plain
 * folder server and calls in here only when one of these flags is given.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Option } from 'commander'
import { AssetSyncError } from '../errors.js'
import { SCALE_CACHE_BYTES, SCALE_MEMORY_CACHE_BYTES } from '../limits.js'
import type { AssetServer, AssetServerOptions } from '../core/server/server.js'
import type { Output } from './output.js'

/** How long a stopping origin waits for its last publish. */
const SHUTDOWN_PUBLISH_MS = 30_000

export interface ScaleFlags {
  publish?: string
  origin?: string
  feed?: string
  cacheSize?: string
  s3Endpoint?: string
}

export function scaleOptions(): Option[] {
  return [
    new Option('--publish <s3url>', 'also publish the served folder to this bucket and prefix (s3://bucket/prefix): chunks, manifests, HEAD'),
    new Option('--origin <s3url>', 'serve what an origin published to s3://bucket/prefix, with no folder: an edge'),
    new Option('--feed <natsurl>', 'NATS server(s) carrying change batches between origin and edges (nats://host:4222[,nats://host2:4222])'),
    new Option('--cache-size <bytes>', `edge: bytes of chunks kept in the local disk cache (default ${SCALE_CACHE_BYTES})`),
    new Option('--s3-endpoint <url>', 'S3-compatible endpoint, overriding AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL'),
  ]
}

export type ServeRole = 'folder' | 'origin' | 'edge'

/** Which server the flags ask for; refuses combinations that make no sense. */
export function serveRole(f: ScaleFlags, dirGiven: boolean): ServeRole {
  if (f.origin !== undefined) {
    if (dirGiven) throw new AssetSyncError('ERR_USAGE', 'an edge (--origin) serves the bucket, not a folder: leave out [dir]')
    if (f.publish !== undefined) throw new AssetSyncError('ERR_USAGE', '--origin and --publish exclude each other: a server is an edge or an origin')
    return 'edge'
  }
  if (f.cacheSize !== undefined) throw new AssetSyncError('ERR_USAGE', '--cache-size is for an edge (--origin)')
  if (f.publish !== undefined) return 'origin'
  if (f.feed !== undefined) throw new AssetSyncError('ERR_USAGE', '--feed needs --publish (an origin) or --origin (an edge)')
  if (f.s3Endpoint !== undefined) throw new AssetSyncError('ERR_USAGE', '--s3-endpoint needs --publish or --origin')
  return 'folder'
}

function parseBytes(v: string): number {
  const n = Number(v)
  if (v.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new AssetSyncError('ERR_USAGE', `--cache-size must be a number of bytes, got "${v}"`)
  return n
}

/** A started origin or edge: the server, what its ready line and listening event add, and how to stop it. */
export interface ScaleServer {
  server: AssetServer
  /** Fields for the listening event. */
  listening: Record<string, unknown>
  /** The human ready line. */
  ready(transport: string, host: string, port: number): string
  close(): Promise<void>
}

/** Starts an origin or an edge; `base` holds the plain server options (host, port, token, …). */
export async function startScaleServer(role: 'origin' | 'edge', dir: string, f: ScaleFlags, base: AssetServerOptions, out: Output): Promise<ScaleServer> {
  const [{ AssetServer }, loc, { S3Store }, { NatsLink }, { configDir, loadIdentity }, { bucketDirect }] = await Promise.all([
    import('../core/server/server.js'), import('../core/scale/location.js'), import('../core/scale/s3-store.js'),
    import('../core/scale/nats-link.js'), import('../core/fs/keys.js'), import('../core/server/direct.js'),
  ])
  const url = (role === 'edge' ? f.origin : f.publish) as string
  const where = loc.parseBucketUrl(url, role === 'edge' ? '--origin' : '--publish')
  const feed = f.feed !== undefined ? loc.parseFeedUrl(f.feed) : null
  const cacheBytes = f.cacheSize !== undefined ? parseBytes(f.cacheSize) : SCALE_CACHE_BYTES
  const cfg = base.configDir ?? configDir()
  const keyPair = base.keyPair ?? await loadIdentity(cfg)
  const store = await S3Store.open(where, { endpoint: f.s3Endpoint })
  const onError = (err: unknown): void => {
    const message = (err as Error)?.message ?? String(err)
    out.event({ event: 'scale-error', message })
    out.note(`assetsync: ${message}`)
  }
  let link: import('../core/scale/nats-link.js').NatsLink | null = null
  try {
    link = feed ? await NatsLink.connect(feed, where, { name: `assetsync ${role}`, onError }) : null
    if (role === 'origin') {
      const { BucketPublisher } = await import('../core/server/bucket-publisher.js')
      const publisher = new BucketPublisher({ store, link })
      publisher.on('published', (e) => {
        out.event({ event: 'published', version: e.version, digest: e.digest, files: e.files, changes: e.changes, chunksUploaded: e.chunksUploaded, bytesUploaded: e.bytesUploaded, announced: e.announced, ms: e.ms })
        out.line(`published version ${e.version} to ${store.description}: ${e.changes} change(s), ${e.chunksUploaded} chunk(s) uploaded`)
      })
      publisher.on('error', onError)
      // The publisher starts from the whole listing: the origin listens once its folder is indexed.
      const server = await AssetServer.start({ ...base, root: dir, keyPair, forward: [publisher], direct: bucketDirect(store), listenWaitMs: Infinity })
      await publisher.start(server.source)
      return {
        server,
        listening: { role: 'origin', publish: store.description, ...(feed ? { feed: feed.display } : {}) },
        ready: (t, h, p) => `assetsync serving ${dir} on ${t}://${h}:${p}, publishing to ${store.description}${feed ? ` (feed ${feed.display})` : ''}`,
        close: async () => {
          await server.close()
          // Publish what the folder feed handed over last, but never hang on a bucket or feed
          // that is away: after the grace, the link closes and the pass under way gives up.
          const grace = new AbortController()
          await Promise.race([publisher.idle(), sleep(SHUTDOWN_PUBLISH_MS, undefined, { signal: grace.signal }).catch(() => {})])
          grace.abort()
          await link?.close()
          await publisher.close()
          store.close()
        },
      }
    }
    const [{ BucketSource }, { EdgeFeed }, { ChunkStore, bucketObjects }, { DiskCache, edgeCacheDir }] = await Promise.all([
      import('../core/server/bucket-source.js'), import('../core/server/edge-feed.js'),
      import('../core/scale/chunk-store.js'), import('../core/scale/chunk-cache.js'),
    ])
    const disk = await DiskCache.open(edgeCacheDir(cfg, where), cacheBytes)
    const chunks = new ChunkStore(bucketObjects(store), { disk, memoryBytes: SCALE_MEMORY_CACHE_BYTES })
    const source = new BucketSource(store, chunks)
    // One durable consumer per edge identity; created before HEAD is read, so nothing published
    // in between is missed (edge-feed.ts).
    const durable = `edge-${keyPair.publicKey.toString('hex').slice(0, 16)}`
    await link?.ensureConsumer(durable)
    const edgeFeed = new EdgeFeed(source, link, {
      durable,
      onVersion: (e) => {
        out.event({ event: 'edge-version', version: e.version, digest: e.digest, changes: e.changes, via: e.via })
        out.line(`version ${e.version} from ${e.via}: ${e.changes} change(s)`)
      },
    })
    const server = await AssetServer.start({ ...base, source, feed: edgeFeed, keyPair, configDir: cfg, direct: bucketDirect(store) })
    return {
      server,
      listening: { role: 'edge', origin: store.description, feed: feed ? feed.display : null, version: source.version },
      ready: (t, h, p) => `assetsync edge of ${store.description} (feed ${feed ? feed.display : 'none: HEAD polling'}) on ${t}://${h}:${p}`,
      close: async () => {
        await server.close()
        await link?.close()
      },
    }
  } catch (err) {
    await link?.close()
    store.close()
    throw err
  }
}
