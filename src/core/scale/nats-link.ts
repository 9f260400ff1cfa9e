/**
 * NatsLink: the connection to the NATS feed of one published tree, over the real `nats` client
 * (2.29) and JetStream. The origin publishes each version's change message on
 * `assetsync.<name>.changes`; each edge reads them through its own durable consumer, so messages
 * published while it was disconnected are replayed when it comes back (for as long as the stream
 * keeps them: SCALE_FEED_MAX_AGE_MS, SCALE_FEED_MAX_MSGS).
 *
 * Reconnection is the client's (forever, to any server of the cluster it learnt); a publish waits
 * through it and is retried (JetStream de-duplicates by message id); a consumer is re-attached if
 * its pull loop ends. Nothing here logs: problems go to `onError`.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { AckPolicy, DeliverPolicy, type JsMsg, type NatsConnection, RetentionPolicy, StorageType, connect, nanos } from 'nats'
import { AssetSyncError } from '../../errors.js'
import {
  SCALE_FEED_ACK_WAIT_MS, SCALE_FEED_DRAIN_MS, SCALE_FEED_DUPLICATE_WINDOW_MS, SCALE_FEED_MAX_AGE_MS, SCALE_FEED_MAX_MSGS, SCALE_FEED_MESSAGE_BYTES,
  SCALE_FEED_PING_MS, SCALE_FEED_RECONNECT_JITTER_MS, SCALE_FEED_RECONNECT_MS, SCALE_FEED_RETRY_MS, SCALE_FEED_TIMEOUT_MS, SCALE_S3_RETRY_MAX_MS,
} from '../../limits.js'
import { type BucketLocation, type FeedLocation, feedStream, feedSubject, redact } from './location.js'

export interface NatsLinkOptions {
  /** Client name shown by the NATS server (monitoring). */
  name?: string
  /** Stream limits (tests shorten them). */
  maxAgeMs?: number
  maxMsgs?: number
  /** Problems the link survives (a failed publish attempt, a consumer restart). */
  onError?: (err: unknown) => void
}

/** One message of the feed as a consumer hands it over. */
export interface FeedDelivery {
  data: Uint8Array
  /** JetStream stream sequence. */
  seq: number
  /** Tells the server the message is still being worked on (a long catch-up). */
  working(): void
}

/** One published tree's NATS JetStream feed: publish change messages, or read them through a durable consumer. */
export class NatsLink {
  readonly feed: FeedLocation
  readonly subject: string
  readonly stream: string
  readonly #nc: NatsConnection
  readonly #opts: NatsLinkOptions
  #closed = false
  #connected = true
  readonly #stops: (() => void)[] = []
  readonly #onReconnect = new Set<() => void>()

  private constructor(feed: FeedLocation, loc: BucketLocation, nc: NatsConnection, opts: NatsLinkOptions) {
    this.feed = feed
    this.subject = feedSubject(loc)
    this.stream = feedStream(loc)
    this.#nc = nc
    this.#opts = opts
    void this.#watchStatus()
  }

  /** Connects (ERR_CONNECT if no server answers) and makes sure the stream exists. */
  static async connect(feed: FeedLocation, loc: BucketLocation, opts: NatsLinkOptions = {}): Promise<NatsLink> {
    let nc: NatsConnection
    try {
      nc = await connect({
        servers: feed.servers, name: opts.name ?? 'assetsync', reconnect: true, maxReconnectAttempts: -1,
        reconnectTimeWait: SCALE_FEED_RECONNECT_MS, reconnectJitter: SCALE_FEED_RECONNECT_JITTER_MS,
        pingInterval: SCALE_FEED_PING_MS, maxPingOut: 2, timeout: SCALE_FEED_TIMEOUT_MS,
      })
    } catch (err) {
      throw new AssetSyncError('ERR_CONNECT', `cannot connect to the feed ${feed.display}: ${redact(String((err as Error)?.message ?? err))}`, { cause: err })
    }
    const link = new NatsLink(feed, loc, nc, opts)
    try {
      await link.#ensureStream()
    } catch (err) {
      await link.close()
      throw err
    }
    return link
  }

  /** Whether the client is connected to a server right now. */
  get connected(): boolean { return this.#connected && !this.#closed }

  async #watchStatus(): Promise<void> {
    for await (const s of this.#nc.status()) {
      if (s.type === 'disconnect') this.#connected = false
      else if (s.type === 'reconnect') {
        this.#connected = true
        for (const fn of this.#onReconnect) fn()
      }
    }
  }

  /** Calls `fn` each time the client reconnected after losing its server; returns how to stop. */
  onReconnect(fn: () => void): () => void {
    this.#onReconnect.add(fn)
    return () => { this.#onReconnect.delete(fn) }
  }

  /**
   * Messages the stream still holds for the durable consumer `durable`: not yet delivered, or
   * delivered and not acknowledged. 0 after a reconnect means JetStream has nothing to replay
   * (messages missed meanwhile expired, or were purged).
   */
  async pending(durable: string): Promise<number> {
    try {
      const info = await (await this.#nc.jetstreamManager()).consumers.info(this.stream, durable)
      return info.num_pending + info.num_ack_pending
    } catch (err) {
      throw wrap(err, `reading the consumer ${durable}`)
    }
  }

  /**
   * Creates the stream if it is missing: replicated on 3 servers when the cluster has them (a
   * lost server then loses nothing), else 1. Limits-based, de-duplicating by message id.
   */
  async #ensureStream(): Promise<void> {
    const jsm = await this.#nc.jetstreamManager()
    try {
      await jsm.streams.info(this.stream)
      return
    } catch (err) {
      if (!/not found/i.test(String((err as Error)?.message))) throw wrap(err, `JetStream on ${this.feed.display}`)
    }
    const config = {
      name: this.stream, subjects: [this.subject], retention: RetentionPolicy.Limits, storage: StorageType.File,
      max_age: nanos(this.#opts.maxAgeMs ?? SCALE_FEED_MAX_AGE_MS), max_msgs: this.#opts.maxMsgs ?? SCALE_FEED_MAX_MSGS,
      max_msg_size: SCALE_FEED_MESSAGE_BYTES, duplicate_window: nanos(SCALE_FEED_DUPLICATE_WINDOW_MS),
    }
    for (const replicas of [3, 1]) {
      try {
        await jsm.streams.add({ ...config, num_replicas: replicas })
        return
      } catch (err) {
        const msg = String((err as Error)?.message)
        if (/already in use|exists/i.test(msg)) return // another server created it meanwhile
        if (replicas === 1 || !/replicas|resources|peers|clustered/i.test(msg)) throw wrap(err, `creating the stream ${this.stream}`)
      }
    }
  }

  /**
   * Publishes `data` with message id `id`; retries (waiting through reconnections) until the
   * stream acknowledged it or the link is closed (then ERR_CONNECT).
   */
  async publish(data: Uint8Array, id: string): Promise<{ seq: number; duplicate: boolean }> {
    const js = this.#nc.jetstream()
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) throw new AssetSyncError('ERR_CONNECT', `feed ${this.feed.display} closed before a publish was acknowledged`)
      try {
        const ack = await js.publish(this.subject, data, { msgID: id, timeout: SCALE_FEED_TIMEOUT_MS })
        return { seq: ack.seq, duplicate: ack.duplicate }
      } catch (err) {
        this.#opts.onError?.(wrap(err, `publishing to ${this.subject} (attempt ${attempt})`))
        await sleep(Math.min(SCALE_S3_RETRY_MAX_MS, 100 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random()))
      }
    }
  }

  /**
   * Reads the feed through the durable consumer `durable` (created if missing: new messages only,
   * explicit acks, one message in flight so they are handled in order). `handle` runs once per
   * message; the message is acknowledged when it resolves, and redelivered (after a pause) when it
   * rejects. Returns a stop function.
   */
  async consume(durable: string, handle: (d: FeedDelivery) => Promise<void>): Promise<() => void> {
    await this.ensureConsumer(durable)
    let stopped = false
    let current: { stop(): void } | null = null
    const stop = (): void => {
      stopped = true
      current?.stop()
    }
    this.#stops.push(stop)
    const loop = async (): Promise<void> => {
      while (!stopped && !this.#closed) {
        try {
          const consumer = await this.#nc.jetstream().consumers.get(this.stream, durable)
          const messages = await consumer.consume({ max_messages: 1 })
          current = messages
          for await (const m of messages) {
            if (stopped) break
            await this.#deliver(m, handle)
          }
        } catch (err) {
          if (!stopped && !this.#closed) this.#opts.onError?.(wrap(err, `reading the feed ${this.subject}`))
        }
        if (!stopped && !this.#closed) await sleep(500)
      }
    }
    void loop()
    return stop
  }

  /**
   * Creates the durable consumer `durable` if it is missing: it then starts at the next message
   * published, so create it before reading HEAD (nothing published in between is missed). An
   * existing consumer with another ack wait (one made before SCALE_FEED_ACK_WAIT_MS, with 30 s) is
   * updated to it.
   */
  async ensureConsumer(durable: string): Promise<void> {
    const jsm = await this.#nc.jetstreamManager()
    const ackWait = nanos(SCALE_FEED_ACK_WAIT_MS)
    let info: Awaited<ReturnType<typeof jsm.consumers.info>> | null = null
    try {
      info = await jsm.consumers.info(this.stream, durable)
    } catch {
      await jsm.consumers.add(this.stream, {
        durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New,
        max_ack_pending: 1, ack_wait: ackWait, filter_subject: this.subject,
      }).catch((err: unknown) => { throw wrap(err, `creating the consumer ${durable}`) })
      return
    }
    if (info.config.ack_wait !== ackWait) {
      await jsm.consumers.update(this.stream, durable, { ack_wait: ackWait })
        .catch((err: unknown) => { throw wrap(err, `updating the consumer ${durable}`) })
    }
  }

  /**
   * Hands `m` to `handle`, keeping it alive meanwhile (a catch-up may take longer than the ack
   * wait: a redelivery would then only be skipped, but it would stall the feed once more).
   */
  async #deliver(m: JsMsg, handle: (d: FeedDelivery) => Promise<void>): Promise<void> {
    const alive = setInterval(() => m.working(), SCALE_FEED_ACK_WAIT_MS / 2)
    try {
      await handle({ data: m.data, seq: m.seq, working: () => m.working() })
      m.ack()
    } catch (err) {
      this.#opts.onError?.(err)
      m.nak(SCALE_FEED_RETRY_MS)
    } finally {
      clearInterval(alive)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const s of this.#stops) s()
    // Drain flushes what is queued; a link whose server is away closes without it.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.#nc.drain().catch(() => {}), new Promise<void>((r) => { timer = setTimeout(r, SCALE_FEED_DRAIN_MS) })])
    clearTimeout(timer)
    if (!this.#nc.isClosed()) await this.#nc.close().catch(() => {})
  }
}

function wrap(err: unknown, what: string): AssetSyncError {
  if (err instanceof AssetSyncError) return err
  return new AssetSyncError('ERR_CONNECT', `${what}: ${redact(String((err as Error)?.message ?? err))}`, { cause: err })
}
