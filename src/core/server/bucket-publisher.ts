/**
 * BucketPublisher: the origin's side of scale-out (`serve ./assets --publish s3://… [--feed …]`).
 * A ChangePublisher in the server's `forward` list: each batch the server pushed to its own
 * subscribers is handed over here, and published in the background, in passes:
 *
 *   1. every changed file is read through the AssetSource seam and chunked (docs/delta.md); each
 *      chunk missing from the bucket is uploaded as `chunks/<hash>` (HEAD before PUT: a chunk is
 *      uploaded once, whoever needs it), then the file's list as `lists/<hash>`;
 *   2. the new manifest goes up as `manifests/<digest>`, then HEAD names it (written last, so HEAD
 *      never names an object that is not there yet);
 *   3. the change message (feed-message.ts) goes out on NATS.
 *
 * Batches that arrive during a pass are merged into the next one (by path: the next pass reads
 * what each path is then), so a burst of saves costs one manifest. A file that changed again
 * while it was read is left for the next pass; one that vanished is published as deleted.
 * Every step is retried (object-store.ts, nats-link.ts); a pass that still fails is retried as a
 * whole after a pause, with the paths it held.
 *
 * On start it reads HEAD: files whose content the current manifest already lists are complete in
 * the bucket (HEAD is written last) and are not read again; the first pass publishes the
 * difference between that manifest and the folder (nothing if they agree).
 */
import { EventEmitter } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { AssetSyncError } from '../../errors.js'
import { SCALE_MAX_MANIFEST_BYTES, SCALE_S3_PARALLEL, SCALE_S3_RETRY_MAX_MS } from '../../limits.js'
import type { FileMeta, ManifestEntry } from '../../protocol/messages.js'
import { chunkReads, encodeChunkList, hashKey } from '../delta/chunk-list.js'
import { equalHash, hashBytes } from '../fs/hash.js'
import { mapLimit } from '../fs/pool.js'
import { isSingleChunk } from '../scale/chunk-store.js'
import { encodeFeedMessage } from '../scale/feed-message.js'
import { hex, keys } from '../scale/location.js'
import { decodeHead, decodeManifest, encodeHead, encodeManifest } from '../scale/manifest-object.js'
import type { NatsLink } from '../scale/nats-link.js'
import type { ObjectStore } from '../scale/object-store.js'
import { Semaphore } from '../scale/semaphore.js'
import { diffBatch } from './batch-diff.js'
import type { ChangeBatch, ChangePublisher } from './feed.js'
import type { AssetSource } from './source.js'

/** One publish: a new version in the bucket (and on the feed). */
export interface PublishedEvent {
  version: number
  digest: string
  files: number
  /** Entries in its change message. */
  changes: number
  chunksUploaded: number
  bytesUploaded: number
  /** Whether the change message reached the feed (false: no feed). */
  announced: boolean
  ms: number
}

export type BucketPublisherEvents = {
  published: [PublishedEvent]
  /** A pass failed and will be retried (the bucket or the feed is away). */
  error: [unknown]
}

export interface BucketPublisherOptions {
  store: ObjectStore
  /** The feed to announce versions on; null: bucket only. */
  link?: NatsLink | null
  /** Object-store requests at once; default SCALE_S3_PARALLEL. */
  parallel?: number
}

/** The origin's publisher: a ChangePublisher that uploads versions to the bucket and announces them (see the file comment). */
export class BucketPublisher extends EventEmitter<BucketPublisherEvents> implements ChangePublisher {
  readonly #store: ObjectStore
  readonly #link: NatsLink | null
  readonly #limit: Semaphore
  #source: AssetSource | null = null
  /** The manifest HEAD names (what edges serve). */
  #published = new Map<string, ManifestEntry>()
  #digest: Buffer | null = null
  #version = 0
  /** File contents (hash keys) complete in the bucket: every chunk and the list are there. */
  readonly #files = new Set<string>()
  /** Chunks (hash keys) known to be in the bucket. */
  readonly #chunks = new Set<string>()
  /** Chunks being uploaded now (a file that needs one waits for it). */
  readonly #chunkJobs = new Map<string, Promise<void>>()
  /** Paths to look at in the next pass; `all` for a full pass (start). */
  #touched = new Set<string>()
  #all = false
  #running: Promise<void> | null = null
  #closed = false

  constructor(opts: BucketPublisherOptions) {
    super()
    this.#store = opts.store
    this.#link = opts.link ?? null
    this.#limit = new Semaphore(opts.parallel ?? SCALE_S3_PARALLEL)
    this.on('error', () => {}) // a failed pass is retried; listeners are optional
  }

  /** The version HEAD names (0 before the first publish). */
  get version(): number { return this.#version }
  get digest(): Buffer | null { return this.#digest }

  /**
   * Reads HEAD and its manifest, then publishes `source` as it is now (in the background: wait
   * with `idle()`). Call once, after the source was scanned.
   */
  async start(source: AssetSource): Promise<void> {
    this.#source = source
    const headBytes = await this.#store.get(keys.head(this.#store.location), 64 * 1024)
    if (headBytes) {
      const head = decodeHead(headBytes)
      const bytes = await this.#store.get(keys.manifest(this.#store.location, head.digest), SCALE_MAX_MANIFEST_BYTES)
      if (!bytes) throw new AssetSyncError('ERR_NOT_FOUND', `${this.#store.description}: HEAD names manifest ${hex(head.digest)}, which is missing`)
      const m = decodeManifest(bytes, head.digest)
      for (const e of m.entries) {
        this.#published.set(e.path, e)
        this.#files.add(hashKey(e.hash))
      }
      this.#digest = head.digest
      this.#version = head.version
    }
    this.#all = true
    this.#kick()
  }

  /** Hands a pushed batch over: its paths join the next pass. Never waits for the bucket. */
  publish(batch: ChangeBatch): Promise<void> {
    for (const e of batch.entries) {
      this.#touched.add(e.path)
      if (e.kind === 'rename') this.#touched.add(e.from)
    }
    this.#kick()
    return Promise.resolve()
  }

  /** Resolves once every batch handed over so far is published (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running
  }

  /** Finishes the pass under way (not the queued ones) and stops. */
  async close(): Promise<void> {
    this.#closed = true
    await this.#running?.catch(() => {})
  }

  #kick(): void {
    if (this.#running || this.#closed || !this.#source) return
    this.#running = (async () => {
      let failures = 0
      while (!this.#closed && (this.#all || this.#touched.size > 0)) {
        const all = this.#all
        const paths = this.#touched
        this.#all = false
        this.#touched = new Set()
        try {
          await this.#pass(all, paths)
          failures = 0
        } catch (err) {
          // Keep what this pass held for the next one, after a pause.
          this.#all ||= all
          for (const p of paths) this.#touched.add(p)
          this.emit('error', err)
          await sleep(Math.min(SCALE_S3_RETRY_MAX_MS * 4, 500 * 2 ** failures++))
        }
      }
    })().finally(() => { this.#running = null })
  }

  async #pass(all: boolean, touched: Set<string>): Promise<void> {
    const t0 = performance.now()
    const source = this.#source as AssetSource
    const now = new Map<string, ManifestEntry | null>()
    if (all) {
      for (const p of this.#published.keys()) now.set(p, null)
      for (let after: string | null = ''; after !== null;) {
        const page = await source.page(() => true, after, Infinity)
        for (const e of page.entries) now.set(e.path, e)
        after = page.done ? null : (page.entries.at(-1)?.path ?? null)
      }
    } else {
      for (const p of touched) now.set(p, await source.get(p))
    }
    const stats = { chunks: 0, bytes: 0 }
    const next = new Map(this.#published)
    const after = new Map<string, FileMeta | null>()
    const toUpload: ManifestEntry[] = []
    for (const [path, e] of now) {
      if (e && !this.#files.has(hashKey(e.hash))) toUpload.push(e)
      else after.set(path, e)
    }
    // One upload per distinct content: the other paths with it wait for that one.
    const byContent = new Map<string, ManifestEntry[]>()
    for (const e of toUpload) {
      const k = hashKey(e.hash)
      const list = byContent.get(k)
      if (list) list.push(e)
      else byContent.set(k, [e])
    }
    await mapLimit([...byContent.values()], 4, async ([first, ...rest]) => {
      const e = first as ManifestEntry
      const got = await this.#uploadFile(e, stats)
      if (got === 'changed') {
        // Read them again in the next pass; keep what edges have meanwhile.
        for (const x of [e, ...rest]) this.#touched.add(x.path)
        return
      }
      after.set(e.path, got)
      for (const x of rest) {
        if (got && equalHash(got.hash, x.hash)) after.set(x.path, x)
        else this.#touched.add(x.path)
      }
    })
    for (const [path, e] of after) {
      if (e) next.set(path, { path, ...metaOf(e) })
      else next.delete(path)
    }
    const before = new Map([...after.keys()].map((p) => [p, this.#published.get(p)?.hash ?? null]))
    const entries = diffBatch(before, after)
    const sorted = [...next.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    const { bytes, digest } = encodeManifest(sorted)
    if (this.#digest && equalHash(digest, this.#digest)) return
    const loc = this.#store.location
    await this.#store.put(keys.manifest(loc, digest), bytes, { immutable: true })
    const version = this.#version + 1
    await this.#store.put(keys.head(loc), encodeHead({ digest, version, files: sorted.length, at: new Date().toISOString() }), { contentType: 'application/json' })
    const previous = this.#digest
    this.#published = next
    this.#digest = digest
    this.#version = version
    let announced = false
    if (this.#link) {
      await this.#link.publish(encodeFeedMessage({ version, digest, previous, entries }), hex(digest))
      announced = true
    }
    this.emit('published', {
      version, digest: hex(digest), files: sorted.length, changes: entries.length, chunksUploaded: stats.chunks,
      bytesUploaded: stats.bytes, announced, ms: Math.round(performance.now() - t0),
    })
  }

  /**
   * Uploads the content of `e` (read through the source): its missing chunks, then its list.
   * Returns the entry actually uploaded (the source may have a newer one), null if the file is
   * gone, 'changed' if it changed while read.
   */
  async #uploadFile(e: ManifestEntry, stats: { chunks: number; bytes: number }): Promise<FileMeta | null | 'changed'> {
    const reader = await (this.#source as AssetSource).open(e.path).catch((err: unknown) => {
      if (err instanceof AssetSyncError && err.code === 'ERR_CHANGED') return 'changed' as const
      if (err instanceof AssetSyncError && err.code === 'ERR_PATH_REFUSED') return null
      throw err
    })
    if (reader === 'changed' || reader === null) return reader
    try {
      const entry = reader.entry
      if (this.#files.has(hashKey(entry.hash))) return entry
      // Pass 1: the chunk list, in one sequential read.
      const list = await chunkReads((buf, pos, n) => reader.read(buf, pos, n), entry.size)
      if (!equalHash(list.hash, entry.hash) || list.size !== entry.size) return 'changed'
      // Pass 2: each chunk the bucket lacks, read again (page cache) and checked before it is named.
      const loc = this.#store.location
      const jobs: Promise<void>[] = []
      let changed = false
      for (let i = 0; i < list.count; i++) {
        const key = list.chunkKey(i)
        if (this.#chunks.has(key)) continue
        // Being uploaded for another file: wait for that upload (a chunk goes up once).
        const pending = this.#chunkJobs.get(key)
        if (pending) {
          jobs.push(pending)
          continue
        }
        const hash = Buffer.from(list.chunkHash(i))
        const offset = list.offsets[i] as number
        const length = list.lengths[i] as number
        const job = this.#limit.run(async () => {
          if (changed) throw new AssetSyncError('ERR_CHANGED', 'changed')
          const k = keys.chunk(loc, hash)
          if (!(await this.#store.exists(k))) {
            const bytes = Buffer.allocUnsafe(length)
            await reader.read(bytes, offset, length)
            if (!equalHash(hashBytes(bytes), hash)) throw new AssetSyncError('ERR_CHANGED', `${e.path} changed while it was published`)
            await this.#store.put(k, bytes, { immutable: true })
            stats.chunks++
            stats.bytes += length
          }
          this.#chunks.add(key)
        }).catch((err: unknown) => {
          if (err instanceof AssetSyncError && err.code === 'ERR_CHANGED') changed = true
          throw err
        }).finally(() => this.#chunkJobs.delete(key))
        this.#chunkJobs.set(key, job)
        jobs.push(job)
      }
      const results = await Promise.allSettled(jobs)
      if (changed) return 'changed'
      const failed = results.find((r) => r.status === 'rejected')
      if (failed) throw (failed as PromiseRejectedResult).reason
      if (!isSingleChunk(entry.size)) {
        const k = keys.list(loc, entry.hash)
        await this.#limit.run(async () => { await this.#store.put(k, encodeChunkList(list), { immutable: true }) })
      }
      this.#files.add(hashKey(entry.hash))
      return entry
    } catch (err) {
      if (err instanceof AssetSyncError && err.code === 'ERR_CHANGED') return 'changed'
      throw err
    } finally {
      await reader.close()
    }
  }
}

function metaOf(e: FileMeta): FileMeta {
  return { hash: e.hash, size: e.size, mode: e.mode, mtime: e.mtime }
}
