/**
 * MemoryFeed: a ChangeFeed a test drives by hand. `push` delivers a batch (in order, one at a
 * time, like every feed); `publish` records what a server forwarded to it.
 */
import { AssetSyncError } from '../../errors.js'
import type { UpdateEntry } from '../../protocol/messages.js'
import type { ChangeBatch, ChangeFeed, FeedSink } from './feed.js'

/** A feed driven by hand (`push`), recording what is published to it (`published`). */
export class MemoryFeed implements ChangeFeed {
  readonly description = 'memory'
  /** Batches a server published to this feed (it is in that server's `forward` list), oldest first. */
  readonly published: ChangeBatch[] = []
  #sink: FeedSink | null = null
  #chain: Promise<void> = Promise.resolve()
  #closed = false

  start(sink: FeedSink): Promise<void> {
    if (this.#sink) return Promise.reject(new AssetSyncError('ERR_INTERNAL', 'MemoryFeed started twice'))
    this.#sink = sink
    return Promise.resolve()
  }

  /**
   * Delivers a batch (or bare entries) after those pushed before; resolves once the server has
   * pushed it. Rejects if the feed is not started or already closed.
   */
  push(batch: ChangeBatch | readonly UpdateEntry[]): Promise<void> {
    const sink = this.#sink
    if (!sink || this.#closed) return Promise.reject(new AssetSyncError('ERR_INTERNAL', 'MemoryFeed is not started or closed'))
    // (`'entries' in batch` would not do: every array has an `entries` method.)
    const b: ChangeBatch = Array.isArray(batch) ? { entries: batch as readonly UpdateEntry[] } : batch as ChangeBatch
    const done = this.#chain.then(() => (this.#closed ? undefined : sink.deliver(b)))
    this.#chain = done.catch(() => {})
    return done
  }

  publish(batch: ChangeBatch): Promise<void> {
    this.published.push(batch)
    return Promise.resolve()
  }

  idle(): Promise<void> { return this.#chain }

  async close(): Promise<void> {
    this.#closed = true
    await this.#chain
  }
}
