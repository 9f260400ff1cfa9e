/**
 * FolderFeed: the ChangeFeed of a served folder. The watcher (watcher.ts) names settled paths; the
 * feed refreshes each in the FolderSource's index and diffs it against what subscribers last
 * heard (batch-diff.ts), so what it delivers is exactly the news: changes, deletes and renames.
 */
import { SETTLE_MS } from '../../limits.js'
import type { Clock } from '../../protocol/clock.js'
import type { FileMeta } from '../../protocol/messages.js'
import { walkFiles } from '../fs/walk.js'
import { diffBatch } from './batch-diff.js'
import type { ChangeFeed, FeedSink } from './feed.js'
import type { FolderSource } from './folder-source.js'
import { FolderWatcher } from './watcher.js'

export interface FolderFeedOptions {
  /** Quiet time before a changed file is announced; default SETTLE_MS. */
  settleMs?: number
  /** The watcher's timers (default the system clock); now() must be comparable with file mtimes. */
  clock?: Clock
}

/** The change feed of a FolderSource: its folder's settled changes, as news for subscribers. */
export class FolderFeed implements ChangeFeed {
  readonly #source: FolderSource
  readonly #settleMs: number
  readonly #clock: Clock | undefined
  #watcher: FolderWatcher | null = null
  #sink: FeedSink | null = null
  #chain: Promise<void> = Promise.resolve()
  /**
   * Each path's hash as last announced to subscribers (or listed at start). A batch is diffed
   * against this, not against the index: a REQUEST for a changed file refreshes the index before
   * the watcher's batch arrives, and the change must still be pushed.
   */
  readonly #published = new Map<string, Uint8Array>()

  constructor(source: FolderSource, opts: FolderFeedOptions = {}) {
    this.#source = source
    this.#settleMs = opts.settleMs ?? SETTLE_MS
    this.#clock = opts.clock
  }

  get description(): string { return this.#source.description }
  /** Folders watched (one OS watch each). */
  get folders(): number { return this.#watcher?.folders ?? 0 }

  async start(sink: FeedSink): Promise<void> {
    this.#sink = sink
    for (let after: string | null = ''; after !== null;) {
      const page = await this.#source.page(() => true, after, Infinity)
      for (const e of page.entries) this.#published.set(e.path, e.hash)
      after = page.done ? null : (page.entries.at(-1)?.path ?? null)
    }
    const source = this.#source
    const watcher = new FolderWatcher(source.root, source.ignored, () => source.paths(), this.#settleMs, this.#clock)
    watcher.on('batch', (paths: string[]) => this.#enqueue(paths))
    watcher.on('error', (err: unknown) => sink.error(err))
    await watcher.start()
    this.#watcher = watcher
    // What was saved between the scan and this watch raised events nobody heard, and the index
    // still has the old hash: a server restarted while files are being saved kept serving stale
    // entries (issue 14's soak). Look at every path once more now that the watch is on; only
    // what really changed goes out, as one batch, before start() resolves (so a later move is
    // still one rename, not split across this batch and the watcher's).
    const paths = new Set(source.paths())
    for await (const f of walkFiles(source.root, source.ignored)) paths.add(f.wire)
    this.#enqueue([...paths])
    await this.#chain
  }

  /** Settled paths are processed one batch at a time, in order. */
  #enqueue(paths: string[]): void {
    this.#chain = this.#chain.then(() => this.#onPaths(paths)).catch((err: unknown) => this.#sink?.error(err))
  }

  async #onPaths(paths: string[]): Promise<void> {
    const before = new Map(paths.map((p) => [p, this.#published.get(p) ?? null]))
    const after = new Map<string, FileMeta | null>()
    for (const p of paths) {
      const now = await this.#source.get(p)
      after.set(p, now)
      if (now) this.#published.set(p, now.hash)
      else this.#published.delete(p)
    }
    const entries = diffBatch(before, after)
    if (entries.length > 0) await this.#sink?.deliver({ entries })
  }

  idle(): Promise<void> { return this.#chain }

  /** Stops watching; batches the watcher already emitted are still delivered before it resolves. */
  async close(): Promise<void> {
    await this.#watcher?.close()
    await this.#chain
  }
}
