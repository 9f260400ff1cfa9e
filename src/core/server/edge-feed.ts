/**
 * EdgeFeed: an edge's ChangeFeed. Versions arrive as change messages on the NATS feed (through the
 * edge's durable JetStream consumer), and, as a safety net, from HEAD. Each version is installed
 * in the BucketSource (its manifest fetched and checked against its digest) before its batch is
 * delivered, as the ChangeFeed contract asks.
 *
 * No update is lost and none is applied twice:
 * - a message whose version is not above the one served is a duplicate or old: acknowledged, skipped;
 * - a message whose `previous` is the digest served carries exactly the batch between the two;
 * - any other (messages missed: the stream expired, the edge was away) is a gap: the batch is the
 *   diff of the two manifests (changes and deletes; renames become a delete and a change);
 * - a failure (the bucket away) rejects, the message is redelivered, nothing is half-applied;
 * - HEAD is read every SCALE_HEAD_POLL_MS: when it stays ahead of what the feed delivered for two
 *   reads in a row (or there is no feed), the edge catches up from it like a gap;
 * - HEAD is also read when the link reconnects to NATS: if it is ahead and JetStream holds nothing
 *   more for the edge's consumer (what it missed expired, or the stream was purged), the edge
 *   catches up from it then, not a poll or two later. If JetStream still holds messages, their
 *   replay brings the versions (with their batches), as after any short loss.
 */
import { SCALE_HEAD_POLL_MS } from '../../limits.js'
import type { FileMeta, UpdateEntry } from '../../protocol/messages.js'
import { equalHash } from '../fs/hash.js'
import { decodeFeedMessage } from '../scale/feed-message.js'
import type { Manifest } from '../scale/manifest-object.js'
import type { FeedDelivery, NatsLink } from '../scale/nats-link.js'
import { diffBatch } from './batch-diff.js'
import type { BucketSource } from './bucket-source.js'
import type { ChangeFeed, FeedSink } from './feed.js'

/** A version the edge installed. */
export interface EdgeVersionEvent {
  version: number
  digest: string
  changes: number
  /** Where it came from: the feed's batch, a gap filled by diffing manifests, or HEAD. */
  via: 'feed' | 'gap' | 'head'
}

export interface EdgeFeedOptions {
  /** The durable consumer's name (one per edge). */
  durable: string
  /** How often HEAD is read; default SCALE_HEAD_POLL_MS. */
  headPollMs?: number
  onVersion?: (e: EdgeVersionEvent) => void
}

/** The changes from manifest `a` (null: empty) to `b`. */
export function diffManifests(a: Manifest | null, b: Manifest): UpdateEntry[] {
  const before = new Map<string, Uint8Array | null>()
  const after = new Map<string, FileMeta | null>()
  const old = new Map((a?.entries ?? []).map((e) => [e.path, e]))
  for (const e of b.entries) {
    const o = old.get(e.path)
    old.delete(e.path)
    if (o && equalHash(o.hash, e.hash)) continue
    before.set(e.path, o?.hash ?? null)
    after.set(e.path, e)
  }
  for (const [path, o] of old) {
    before.set(path, o.hash)
    after.set(path, null)
  }
  return diffBatch(before, after)
}

/** An edge's ChangeFeed: versions from the NATS feed (and HEAD), installed in the BucketSource, then delivered. */
export class EdgeFeed implements ChangeFeed {
  readonly #source: BucketSource
  readonly #link: NatsLink | null
  readonly #opts: EdgeFeedOptions
  #sink: FeedSink | null = null
  #chain: Promise<void> = Promise.resolve()
  #stop: (() => void) | null = null
  #timer: NodeJS.Timeout | null = null
  #unlisten: (() => void) | null = null
  /** The HEAD version seen ahead of the served one at the last poll. */
  #aheadAt = 0
  #closed = false

  constructor(source: BucketSource, link: NatsLink | null, opts: EdgeFeedOptions) {
    this.#source = source
    this.#link = link
    this.#opts = opts
  }

  get description(): string {
    return this.#link ? `feed ${this.#link.feed.display} (${this.#link.subject})` : `HEAD of ${this.#source.store.description}`
  }

  async start(sink: FeedSink): Promise<void> {
    this.#sink = sink
    const link = this.#link
    if (link) {
      this.#stop = await link.consume(this.#opts.durable, (d) => this.#serial(() => this.#onMessage(d)))
      this.#unlisten = link.onReconnect(() => { void this.#serial(() => this.#afterReconnect(link)).catch((err: unknown) => sink.error(err)) })
    }
    const every = this.#opts.headPollMs ?? SCALE_HEAD_POLL_MS
    this.#timer = setInterval(() => { void this.#serial(() => this.#poll()).catch((err: unknown) => sink.error(err)) }, every)
    this.#timer.unref()
  }

  /** Runs `fn` after everything queued before it (one version at a time, in order). */
  #serial(fn: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(() => (this.#closed ? undefined : fn()))
    this.#chain = run.catch(() => {})
    return run
  }

  async #onMessage(d: FeedDelivery): Promise<void> {
    const msg = decodeFeedMessage(d.data)
    if (msg.version <= this.#source.version) return // a duplicate or an old one
    const served = this.#source.manifest
    const contiguous = msg.entries !== null && (served ? !!msg.previous && equalHash(msg.previous, served.digest) : msg.previous === null)
    const manifest = await this.#source.fetchManifest(msg.digest)
    d.working()
    await this.#install(manifest, msg.version, contiguous ? msg.entries : null, contiguous ? 'feed' : 'gap')
  }

  async #poll(): Promise<void> {
    const head = await this.#source.readHead()
    if (!head || head.version <= this.#source.version) {
      this.#aheadAt = 0
      return
    }
    // Ahead once may just mean its message is on the way (HEAD is written first).
    if (this.#link && this.#link.connected && this.#aheadAt !== head.version) {
      this.#aheadAt = head.version
      return
    }
    this.#aheadAt = 0
    await this.#install(await this.#source.fetchManifest(head.digest), head.version, null, 'head')
  }

  /**
   * Back on NATS: catches up from HEAD if JetStream has nothing left to replay (queued after the
   * messages delivered so far, so a replay that already came is not undone).
   */
  async #afterReconnect(link: NatsLink): Promise<void> {
    const head = await this.#source.readHead()
    if (!head || head.version <= this.#source.version) return
    if (await link.pending(this.#opts.durable) > 0) return // the replay brings it
    await this.#install(await this.#source.fetchManifest(head.digest), head.version, null, 'head')
  }

  async #install(manifest: Manifest, version: number, entries: UpdateEntry[] | null, via: EdgeVersionEvent['via']): Promise<void> {
    const changes = entries ?? diffManifests(this.#source.manifest, manifest)
    this.#source.install(manifest, version)
    this.#opts.onVersion?.({ version, digest: manifest.digest.toString('hex'), changes: changes.length, via })
    if (changes.length > 0) await this.#sink?.deliver({ entries: changes })
  }

  /** Resolves once every version received so far is installed and delivered. */
  idle(): Promise<void> { return this.#chain }

  async close(): Promise<void> {
    this.#closed = true
    this.#stop?.()
    this.#unlisten?.()
    if (this.#timer) clearInterval(this.#timer)
    await this.#chain
  }
}
