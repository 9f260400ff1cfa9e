/**
 * The ChangeFeed seam: where a server's settled change batches come from, and where it may
 * forward them. A feed hands the server ready-to-push UPDATE entries; the server fans each batch
 * out to its subscribers (changes.ts) and then forwards it to its publishers. Feeds: FolderFeed
 * (the folder watcher, diffed against what was last published), MemoryFeed (tests push batches
 * by hand); later a NATS feed (an edge receives an origin's batches; an origin publishes its own).
 */
import type { AssetSyncError } from '../../errors.js'
import type { UpdateEntry } from '../../protocol/messages.js'

/** A settled set of changes, ready to push. */
export interface ChangeBatch {
  /**
   * In order. A path appears at most once; a rename names two (`from` and `path`). Every entry is
   * news: a feed drops paths whose content subscribers already have.
   */
  readonly entries: readonly UpdateEntry[]
}

/** What a feed delivers to (the server). */
export interface FeedSink {
  /**
   * Pushes a batch to subscribers (and forwards it). A feed delivers one batch at a time: the
   * next only after this promise settled, so batches arrive in order.
   */
  deliver(batch: ChangeBatch): Promise<void>
  /** A problem the feed survives (a folder it cannot watch, a lost broker connection). */
  error(err: unknown): void
  /**
   * The feed cannot go on, and neither can what it feeds: the served folder is gone for good. The
   * server reports it ('fatal'); its source already fails every call with `err`.
   */
  fail?(err: AssetSyncError): void
}

/** Takes batches a server pushed, to hand them on (an origin publishing to its edges). */
export interface ChangePublisher {
  /** Resolves once the batch is handed over (e.g. flushed to the broker); rejects if it could not be. */
  publish(batch: ChangeBatch): Promise<void>
}

/**
 * A source of change batches for one server, which owns it from `AssetServer.start` on.
 *
 * Contract: by the time a batch is delivered, the server's AssetSource already answers with the
 * entries it names (the folder feed refreshes the folder index first; a NATS edge feed would
 * update its source's listing first), so a client that requests a path it was just told about
 * gets at least that version.
 *
 * A feed that can also carry batches away (NATS) implements `publish` too; the server forwards
 * to the publishers in `AssetServerOptions.forward`, never to its own input feed by itself.
 */
export interface ChangeFeed extends Partial<ChangePublisher> {
  /** What the batches come from, for messages and status ("folder /srv/assets", "memory"). */
  readonly description: string
  /** Starts delivering to `sink`. Called once, after the server's source is scanned. */
  start(sink: FeedSink): Promise<void>
  /** Resolves once every change noticed so far has been delivered (tests, shutdown). */
  idle(): Promise<void>
  /** Stops; nothing is delivered once it resolved. */
  close(): Promise<void>
}
