/**
 * The requests of one session that belong to the bulk features (issue 15, issue 16): BATCH
 * (`batch-request`: many small files, answered back to back by batch-serving.ts) and CHUNK_LIST /
 * CHUNK_FETCH (`chunks`: a file's chunk list, then the chunks it lacks; chunk-serving.ts). Each is
 * admitted by the session's budget exactly like REQUEST (MAX_INFLIGHT_PER_CLIENT and the memory
 * budget; a BATCH is charged what its items hold until it is answered), and a CHUNK_FETCH becomes
 * a transfer the session's pump sends in the normal lane, interleaved with the others.
 */
import { AssetSyncError } from '../../errors.js'
import type { BatchMsg, ChunkFetchMsg, ChunkListMsg } from '../../protocol/messages.js'
import { equalHash } from '../fs/hash.js'
import { checkWirePath, printable } from '../fs/paths.js'
import { BatchServer, batchBytes } from './batch-serving.js'
import { type ChunkTransfer, ChunkLocator, openChunkFetch, sendChunkList } from './chunk-serving.js'
import type { SessionBudget } from './session-budget.js'
import type { SessionConnection, SessionMetrics } from './session-types.js'
import type { AssetSource, SourceReader } from './source.js'

/** A CHUNK_FETCH opened: what the session's pump sends, in the normal lane. */
export interface OpenedChunks { id: number; path: string; started: number; reader: SourceReader; size: number; chunks: ChunkTransfer }

/** What these requests need of their session. */
export interface FeatureHost {
  readonly conn: SessionConnection
  readonly source: AssetSource
  readonly budget: SessionBudget
  readonly metrics: SessionMetrics
  /** Emits a session event ('refused': a path refused, printable, and why). */
  emit(event: 'refused', info: { path: string; reason: string }): void
  /** Sends ERROR for request `id` (and counts it); `frame` names the request in an 'internal' event. */
  fail(id: number, err: unknown, frame: string): void
  /** Answers RESPONSE `refused` for `path` (and reports it). */
  refuse(id: number, path: string, reason: string): void
  /** Notes a completed transfer of `path` (the session's memory of what it sent lately). */
  remember(path: string, hash: Uint8Array): void
  /** The hash this connection sent lately for `path`, if any (see OpenOptions.distrust). */
  sentHash(path: string): Uint8Array | undefined
  /** Queues an opened CHUNK_FETCH for the pump. */
  transfer(t: OpenedChunks): void
}

export class FeatureRequests {
  readonly #host: FeatureHost
  readonly #batches: BatchServer
  readonly #locator = new ChunkLocator()
  /** Chunk requests being answered or opened (a CHUNK_FETCH then counts as a transfer). */
  #opening = 0

  constructor(host: FeatureHost) {
    this.#host = host
    this.#batches = new BatchServer({
      source: host.source,
      conn: host.conn,
      settled: () => host.budget.settle(),
      answered: (outcome, path, reason) => {
        if (outcome === 'refused') host.emit('refused', { path: printable(path), reason })
        host.metrics.request(outcome)
      },
      sent: (path, hash, ms) => {
        host.remember(path, hash)
        host.metrics.transferDone(ms)
      },
      distrust: (path, haveHash) => {
        const sent = host.sentHash(path)
        return sent && !equalHash(haveHash, sent) ? sent : undefined
      },
      fail: (id, err) => host.fail(id, err, 'batch'),
    })
  }

  /** Requests in flight here (open batches, chunk requests being opened), for the session's count. */
  get inflight(): number { return this.#opening + this.#batches.open }
  /** Bytes they hold beyond REQUEST_BYTES each (the open batches' items). */
  get held(): number { return this.#batches.bytes }

  /** BATCH: admitted with what its items hold, then queued behind the connection's other batches. */
  batch(msg: BatchMsg): void {
    const bytes = batchBytes(msg)
    const refused = this.#host.budget.admit(bytes)
    if (refused) return this.#host.fail(msg.id, refused, msg.type)
    try {
      this.#batches.accept(msg, bytes)
    } catch (err) {
      this.#host.fail(msg.id, err, msg.type)
    } finally {
      this.#host.budget.settle()
    }
  }

  /** CHUNK_LIST: the list in slices (or "whole"); CHUNK_FETCH: a transfer of the named chunks. */
  chunks(msg: ChunkListMsg | ChunkFetchMsg): void {
    const refused = this.#host.budget.admit()
    if (refused) return this.#host.fail(msg.id, refused, msg.type)
    this.#opening++
    void this.#onChunks(msg).catch((err: unknown) => this.#host.fail(msg.id, err, msg.type)).finally(() => {
      this.#opening--
      this.#host.budget.settle()
    })
  }

  async #onChunks(msg: ChunkListMsg | ChunkFetchMsg): Promise<void> {
    const { conn, source } = this.#host
    const why = checkWirePath(msg.path)
    if (why !== null) return this.#host.refuse(msg.id, msg.path, why)
    try {
      if (msg.type === 'chunk-list') return await sendChunkList(conn, source, msg)
      const opened = await openChunkFetch(conn, source, this.#locator, msg)
      if (opened) this.#host.transfer({ id: msg.id, path: msg.path, started: performance.now(), ...opened })
    } catch (err) {
      if (err instanceof AssetSyncError && err.code === 'ERR_PATH_REFUSED') return this.#host.refuse(msg.id, msg.path, err.message)
      throw err
    }
  }

  /** CANCEL of batch `id`; false if no such batch is open. */
  cancel(id: number): boolean { return this.#batches.cancel(id) }

  /** The connection closed: forgets every batch. */
  close(): void { this.#batches.close() }
}
