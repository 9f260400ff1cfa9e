/**
 * The server's side of feature `batch-request` (issue 15): one BATCH names up to BATCH_MAX_FILES
 * small files, and the answers stream back to back in BATCH_DATA frames, each file whole (meta
 * and content), in the order asked. Per file that leaves a few syscalls (AssetSource.readNow: no
 * thread-pool round trip) instead of a request, a RESPONSE, a CHUNK and six thread-pool hops; per
 * frame (up to BATCH_FRAME_BYTES) one encryption and one write. A path the fast path cannot answer
 * goes through `open` like a REQUEST; a file larger than BATCH_FILE_BYTES is answered `alone` and
 * the client fetches it with a REQUEST.
 *
 * Batches of one connection are answered one after the other (the client keeps the next one
 * queued here, so the stream never waits for a round trip); each frame waits for flow-control
 * credit and for the stream to drain, and the loop yields after every frame, so one connection's
 * batch never holds the event loop from the others.
 */
import { setImmediate as yieldTurn } from 'node:timers/promises'
import { AssetSyncError } from '../../errors.js'
import { BATCH_FILE_BYTES, BATCH_FRAME_BYTES, BATCH_MAX_OPEN, MAX_TEXT_BYTES } from '../../limits.js'
import type { BatchAnswer, BatchItem, BatchMsg } from '../../protocol/messages.js'
import { equalHash } from '../fs/hash.js'
import { checkWirePath, printable } from '../fs/paths.js'
import type { AssetSource, OpenOptions, WholeRead } from './source.js'

/** What the batch server needs of its session. */
export interface BatchHost {
  readonly source: AssetSource
  readonly conn: {
    readonly closed: boolean
    readonly credit: number
    send(msg: { type: 'batch-data'; id: number; final: boolean; answers: BatchAnswer[] }): boolean
    drained(): Promise<void>
    credited(bytes: number): Promise<void>
  }
  /** A batch was answered in full, failed or cancelled: what it held is released. */
  settled(): void
  /** Counts an answered path ('file', 'up-to-date', 'not-found', 'refused'). */
  answered(outcome: 'file' | 'up-to-date' | 'not-found' | 'refused', path: string, reason: string): void
  /** A file was sent whole, `ms` after its batch arrived (remembered for a retried REQUEST). */
  sent(path: string, hash: Uint8Array, ms: number): void
  /** The hash this connection just sent for `path`, when `haveHash` is not it (see OpenOptions.distrust). */
  distrust(path: string, haveHash: Uint8Array | null): Uint8Array | undefined
  /** Ends batch `id` with an ERROR (a failure of the whole batch: a bug, the source gone). */
  fail(id: number, err: unknown): void
}

interface Batch {
  readonly id: number
  readonly items: BatchItem[]
  /** What its items hold (batchBytes), charged to the session's memory budget while open. */
  readonly bytes: number
  readonly started: number
  cancelled: boolean
}

/** Bytes an answer adds to a BATCH_DATA frame (status, then meta and content or a reason). */
function answerBytes(a: BatchAnswer): number {
  return 1 + (a.status === 'file' ? 52 + a.data.byteLength : 2 + Buffer.byteLength(a.reason))
}

/**
 * What a BATCH's items hold in memory until it is answered (UTF-16 paths, hashes, objects): the
 * session charges it to its memory budget on top of a request's own (issue 12).
 */
export function batchBytes(msg: BatchMsg): number {
  let n = 0
  for (const it of msg.items) n += 2 * it.path.length + 96
  return n
}

/** The BATCH_DATA header: type, id, final, count. */
const FRAME_HEAD = 1 + 4 + 1 + 2

export class BatchServer {
  readonly #host: BatchHost
  readonly #open = new Map<number, Batch>()
  readonly #queue: Batch[] = []
  #running = false
  #bytes = 0

  constructor(host: BatchHost) { this.#host = host }

  /** Batches accepted and not yet fully answered. */
  get open(): number { return this.#open.size }
  /** What the open batches hold (their `bytes` at `accept`). */
  get bytes(): number { return this.#bytes }

  /**
   * Queues a BATCH whose items hold `bytes` (batchBytes); ERR_LIMIT (thrown, for the session to
   * send) past BATCH_MAX_OPEN.
   */
  accept(msg: BatchMsg, bytes = 0): void {
    if (this.#open.size >= BATCH_MAX_OPEN) throw new AssetSyncError('ERR_LIMIT', `more than ${BATCH_MAX_OPEN} batches open`)
    if (this.#open.has(msg.id)) throw new AssetSyncError('ERR_PROTOCOL', `batch ${msg.id} is already open`)
    const b: Batch = { id: msg.id, items: msg.items, bytes, started: performance.now(), cancelled: false }
    this.#open.set(b.id, b)
    this.#bytes += bytes
    this.#queue.push(b)
    void this.#run()
  }

  /** CANCEL of batch `id`: no further frame of it is sent. False if no such batch is open. */
  cancel(id: number): boolean {
    const b = this.#open.get(id)
    if (!b) return false
    b.cancelled = true
    this.#settle(b)
    return true
  }

  /** The connection closed: forget every batch. */
  close(): void {
    for (const b of this.#open.values()) b.cancelled = true
    this.#open.clear()
    this.#bytes = 0
    this.#queue.length = 0
  }

  /** `b` is no longer open: releases what it held. */
  #settle(b: Batch): void {
    if (this.#open.get(b.id) !== b) return
    this.#open.delete(b.id)
    this.#bytes -= b.bytes
    this.#host.settled()
  }

  async #run(): Promise<void> {
    if (this.#running) return
    this.#running = true
    try {
      for (let b = this.#queue.shift(); b; b = this.#queue.shift()) {
        if (b.cancelled) continue
        try {
          await this.#answer(b)
        } catch (err) {
          if (this.#host.conn.closed) return
          if (!b.cancelled) this.#host.fail(b.id, err)
        } finally {
          this.#settle(b)
        }
      }
    } finally {
      this.#running = false
    }
  }

  /** Answers every item of `b`, packing frames up to BATCH_FRAME_BYTES. */
  async #answer(b: Batch): Promise<void> {
    let answers: BatchAnswer[] = []
    let bytes = FRAME_HEAD
    let fileBytes = 0
    const sent: Array<{ path: string; hash: Uint8Array }> = []
    const flush = async (final: boolean): Promise<void> => {
      // Credit is shared with the transfer pump: check it right before the send, with no await between.
      while (this.#host.conn.credit < fileBytes) await this.#host.conn.credited(fileBytes)
      if (b.cancelled || this.#host.conn.closed) return
      const ok = this.#host.conn.send({ type: 'batch-data', id: b.id, final, answers })
      const ms = performance.now() - b.started
      for (const s of sent) this.#host.sent(s.path, s.hash, ms)
      answers = []
      bytes = FRAME_HEAD
      fileBytes = 0
      sent.length = 0
      if (!ok) await this.#host.conn.drained()
      else await yieldTurn()
    }
    for (const item of b.items) {
      if (b.cancelled || this.#host.conn.closed) return
      const a = await this.#answerOne(item)
      const size = answerBytes(a)
      if (answers.length > 0 && bytes + size > BATCH_FRAME_BYTES) await flush(false)
      if (b.cancelled || this.#host.conn.closed) return
      answers.push(a)
      bytes += size
      if (a.status === 'file') {
        fileBytes += a.data.byteLength
        sent.push({ path: item.path, hash: a.hash })
      }
    }
    await flush(true)
  }

  /** The answer to one path: the fast path first, `open` when it cannot answer at once. */
  async #answerOne(item: BatchItem): Promise<BatchAnswer> {
    const { path, haveHash } = item
    const why = checkWirePath(path)
    if (why !== null) return this.#outcome('refused', path, why)
    const distrust = this.#host.distrust(path, haveHash)
    let read: WholeRead | 'slow' | null = 'slow'
    try {
      if (!distrust && this.#host.source.readNow) read = this.#host.source.readNow(path, BATCH_FILE_BYTES)
      if (read === 'slow') read = await this.#readSlow(path, distrust ? { distrust } : undefined)
    } catch (err) {
      if (err instanceof AssetSyncError && err.code === 'ERR_PATH_REFUSED') return this.#outcome('refused', path, err.message)
      // Changing, unreadable, or a bug: the REQUEST that follows has the full error path.
      return { status: 'alone', reason: clip(`${printable(path)}: ${(err as Error)?.message ?? err}`) }
    }
    if (read === null) return this.#outcome('not-found', path, `not found: ${path}`)
    const { entry, data } = read
    if (equalHash(haveHash, entry.hash)) return this.#outcome('up-to-date', path, '')
    if (data === null) return { status: 'alone', reason: `larger than ${BATCH_FILE_BYTES} bytes` }
    this.#host.answered('file', path, '')
    return { status: 'file', hash: entry.hash, size: entry.size, mode: entry.mode, mtime: entry.mtime, data }
  }

  #outcome(status: 'up-to-date' | 'not-found' | 'refused', path: string, reason: string): BatchAnswer {
    this.#host.answered(status, path, reason)
    return { status, reason: clip(reason) }
  }

  /** `open` and one read of the whole file (null content when it is over BATCH_FILE_BYTES). */
  async #readSlow(path: string, opts: OpenOptions | undefined): Promise<WholeRead | null> {
    const reader = await this.#host.source.open(path, opts)
    if (!reader) return null
    try {
      const { entry } = reader
      if (entry.size > BATCH_FILE_BYTES) return { entry, data: null }
      const data = Buffer.allocUnsafe(entry.size)
      await reader.read(data, 0, entry.size)
      return { entry, data }
    } finally {
      await reader.close()
    }
  }
}

/** A reason within MAX_TEXT_BYTES (the peer refuses a longer one), cut on a character boundary. */
function clip(s: string): string {
  if (Buffer.byteLength(s) <= MAX_TEXT_BYTES) return s
  let out = Buffer.from(s).subarray(0, MAX_TEXT_BYTES - 3).toString('utf8')
  if (out.endsWith('\ufffd')) out = out.slice(0, -1)
  return `${out}…`
}
