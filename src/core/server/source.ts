/**
 * The AssetSource seam: where the server's files come from. A session lists, looks up and reads
 * entries only through it, never through the file system, so the same sessions can serve a
 * folder (FolderSource), bytes in memory (MemorySource, tests) or, later, a chunk store or S3.
 *
 * The one promise every source keeps: the bytes a reader gives are exactly the content its
 * `entry.hash` describes (or the read rejects with ERR_CHANGED). The server announces that hash
 * before it sends a byte; the client checks it before a file becomes visible.
 */
import type { ManifestEntry } from '../../protocol/messages.js'
import type { ChunkList } from '../delta/chunk-list.js'
import type { SkippedPath } from '../fs/disk-names.js'
import type { PathMatcher } from '../fs/ignore.js'

export type { SkippedPath } from '../fs/disk-names.js'

/** One page of a source's listing (a MANIFEST_REPLY's entries). */
export interface ManifestPage {
  entries: ManifestEntry[]
  /** No entry after the last one here matches. */
  done: boolean
  /**
   * Set when `work` ended the scan early: the last path examined. The page is not over (entries
   * may still be added): the caller goes on from there (as `after`, with the bytes left) in its
   * next slice, or sends what it has with done = false.
   */
  resume?: string
}

/**
 * Bounds the matching work behind one page (issue 12; core/server/match-work.ts). A source that
 * filters paths itself calls `examined` after each path it ran `match` on, and stops after the
 * first that returns true, returning what it has with `resume`.
 */
export interface PageWork {
  examined(path: string): boolean
}

/** What building a source's listing did (the folder: walk, hashing what the cache could not vouch for). */
export interface ScanResult {
  /** Entries listed. */
  files: number
  /** Entries whose content had to be hashed. */
  hashed: number
  /** Bytes hashed. */
  bytes: number
  ms: number
  /**
   * Paths found that will not be served, and why (the folder: names that are not UTF-8, hold a
   * backslash or control character, are too deep or too long, collide with another name once
   * NFC-normalized; symlinks out of the root). Ignored paths are not in it.
   */
  skipped?: SkippedPath[]
}

/** How to open an entry (see AssetSource.open). */
export interface OpenOptions {
  /**
   * The hash this connection was just sent for this path, which the client asks for again without
   * having it: its bytes failed that hash. A source that can re-check (the folder: re-hash the
   * opened file) does so before it announces this hash again (issue 11).
   */
  distrust?: Uint8Array
}

/**
 * An open handle on one entry's content. Cheap to hold while idle (the folder: one file
 * descriptor); the server holds one per transfer and closes it when the transfer ends.
 */
export interface SourceReader {
  /** The entry these bytes are: announce exactly this (hash, size, mode, mtime). */
  readonly entry: ManifestEntry
  /**
   * Fills `into[0, length)` with the content bytes at [position, position + length), a range
   * within `entry.size`; length 0 resolves at once. Rejects with ERR_CHANGED when the source can
   * tell the content is no longer the entry's (the folder: the file shrank, or its stamp moved by
   * the time the read that ends the content is done). Ranges may be read in any order.
   */
  read(into: Uint8Array, position: number, length: number): Promise<void>
  /** Releases the handle. Safe to call twice; never rejects. */
  close(): Promise<void>
}

/**
 * What `AssetSource.readNow` found: the entry and its whole content, or the entry alone when its
 * content is larger than asked (`data` null).
 */
export interface WholeRead {
  readonly entry: ManifestEntry
  readonly data: Buffer | null
}

/**
 * Where a server's entries and bytes come from. The server calls `scan` once before it listens
 * and `close` once when it stops; it owns the source from `AssetServer.start` on.
 */
export interface AssetSource {
  /** What is served, for messages and status ("folder /srv/assets", "memory"). */
  readonly description: string
  /** Entries listed now. */
  readonly size: number
  /** Builds the listing. Called once, before any other call (unless the server uses `index`). */
  scan(): Promise<ScanResult>
  /**
   * Optional: builds the listing like `scan`, for a source that can answer every other call while
   * it runs (the folder: a REQUEST looks at its one path, a MANIFEST pages over what is complete).
   * The server then calls this instead of `scan`, and listens once it resolves or
   * SERVE_LISTEN_WAIT_MS passed, whichever is first (issue 15).
   */
  index?(): Promise<ScanResult>
  /**
   * One manifest page: the entries whose path matches `match` and sorts after `after` (UTF-16
   * code-unit order, as `<` on strings), in that order, their encoded size within `maxBytes`
   * (default MANIFEST_PAGE_BYTES; at least one entry per page), cut short by `work` (PageWork).
   */
  page(match: PathMatcher, after: string, maxBytes?: number, work?: PageWork): Promise<ManifestPage>
  /**
   * The entry at `path` as it is now, or null. A source that can change under the server
   * re-checks it (the folder: a stat, hashing only if the stamp moved) and updates its listing.
   */
  get(path: string): Promise<ManifestEntry | null>
  /**
   * Opens `path` (an accepted wire path: checkWirePath passed) for reading. Null if there is no
   * such entry (absent, ignored, not a regular file). Rejects with ERR_PATH_REFUSED (the message
   * says why) for a path the source will not serve, ERR_CHANGED if it kept changing while opened.
   */
  open(path: string, opts?: OpenOptions): Promise<SourceReader | null>
  /**
   * Optional fast path of small files (feature `batch-request`): the entry at `path` and, when its
   * size is at most `maxBytes`, its whole content, read now, synchronously, without a thread-pool
   * round trip. The same promise as `open` + `read`: `data` is exactly what `entry.hash` describes.
   * Null: nothing is served at `path` (as `open` resolving null). 'slow': this cannot be answered
   * at once (not indexed yet, changed since, a link, ...): use `open`, which has the whole answer.
   */
  readNow?(path: string, maxBytes: number): WholeRead | 'slow' | null
  /**
   * Optional: a number that changes whenever the listing changes (an entry added, removed or
   * changed), so that what is computed from the listing (its digest, feature `manifest-digest`)
   * can be kept until it moves. Without it nothing derived is kept.
   */
  readonly version?: number
  /** Releases what the source holds (the folder: saves its hash cache). */
  close(): Promise<void>
  /**
   * Optional, the `chunks` feature (docs/delta.md): the content-defined chunk list of `path`'s
   * content. Without it the server declines every chunk list and clients fetch whole files.
   */
  chunkList?(path: string, hash: Uint8Array | null): Promise<ChunkedEntry | null>
  /**
   * Optional: the bytes of one chunk by its BLAKE3 hash (a chunk store, or S3 keyed by chunk hash).
   * Without it, the server reads a chunk as a range of the file (`open(path)`, then `read` at the
   * chunk's offset in the list): a chunk is addressed by (path, file hash, offset, length) or by
   * chunk hash. May resolve null (not stored): the server then reads the range. The server
   * never trusts it blindly: the client verifies every chunk's hash.
   */
  readChunk?(hash: Uint8Array, length: number): Promise<Uint8Array | null>
}

/** An entry and the chunk list of its content (`list.hash` = `entry.hash`, `list.size` = `entry.size`). */
export interface ChunkedEntry {
  entry: ManifestEntry
  list: ChunkList
}

/**
 * What `AssetSource.chunkList` promises: resolves the list of the entry at `path` now, provided
 * its content hash is `hash` (any content when null); null when there is no such entry; rejects
 * with ERR_CHANGED when the entry's content is no longer `hash`, ERR_PATH_REFUSED as `open` does.
 * A source computes a list once per content (the folder: a persistent cache keyed by stamp).
 */
export type ChunkListFn = NonNullable<AssetSource['chunkList']>
