/**
 * The server's side of one client connection: answers REQUEST, MANIFEST, CANCEL (and SUBSCRIBE
 * through the server's registry). Transfers are interleaved round robin, SERVER_READ_BYTES a turn,
 * so a small file is never stuck behind a big one. Each turn waits for flow-control credit and
 * the connection to drain (backpressure), so a slow client costs bounded memory and never slows
 * the others. Entries and bytes come from the server's AssetSource: a session never touches the
 * file system, so it serves a folder, memory or a remote store alike.
 */
import { EventEmitter } from 'node:events'
import { AssetSyncError, ProtocolError } from '../../errors.js'
import { CHUNK_SIZE, MAX_INFLIGHT_PER_CLIENT, SERVER_READ_BYTES, STATUS_MAX_JSON_BYTES } from '../../limits.js'
import type { ClientMessage, ManifestMsg, ReportMsg, RequestMsg, ServerMessage } from '../../protocol/messages.js'
import { equalHash } from '../fs/hash.js'
import { type PathMatcher, patternMatcher } from '../fs/ignore.js'
import type { BufferPool } from '../fs/pool.js'
import { checkWirePath, printable } from '../fs/paths.js'
import type { AssetSource, SourceReader } from './source.js'

/**
 * What a session needs of its connection (the server half of protocol/connection.ts): named here
 * so the session depends on these methods, not on how the protocol layer splits its classes.
 */
export interface SessionConnection {
  readonly remote: string
  readonly closed: boolean
  /** Frame bytes so far each way (read by the metrics and the status at scrape time). */
  readonly bytesSent: number
  readonly bytesReceived: number
  /** Flow-control credit: CHUNK bytes the client allows us to send now. */
  readonly credit: number
  send(msg: ServerMessage): boolean
  drained(): Promise<void>
  credited(bytes: number): Promise<void>
  /** Ends the connection with a protocol error. */
  fail(err: AssetSyncError): void
  on(event: 'message', listener: (msg: ClientMessage) => void): unknown
  once(event: 'close', listener: (err: AssetSyncError | null) => void): unknown
}

/** How a REQUEST was answered, for the counters. */
export type RequestOutcome = 'file' | 'up-to-date' | 'not-found' | 'refused' | 'error'

/** What a session counts as it answers (Metrics has these methods; tests may pass their own). */
export interface SessionMetrics {
  /** A REQUEST was answered. */
  request(outcome: RequestOutcome): void
  /** An ERROR frame with this code was sent. */
  error(code: string): void
  /** A file transfer's last chunk was sent, `ms` after its REQUEST arrived. */
  transferDone(ms: number): void
}

const NO_METRICS: SessionMetrics = { request: () => {}, error: () => {}, transferDone: () => {} }

interface Transfer {
  id: number
  /** performance.now() when its REQUEST arrived. */
  started: number
  reader: SourceReader
  size: number
  offset: number
  cancelled: boolean
}

export class ClientSession extends EventEmitter {
  readonly conn: SessionConnection
  readonly #source: AssetSource
  readonly #transfers = new Map<number, Transfer>()
  #queue: Transfer[] = []
  #pumping = false
  #pending = 0
  readonly #buffers: BufferPool
  readonly #matchers = new Map<string, PathMatcher>()
  readonly #metrics: SessionMetrics
  /** A STATUS_REPLY is still queued (not drained): the next STATUS waits for it. */
  #statusBusy = false
  /** Handles SUBSCRIBE (the server owns the registry). */
  onSubscribe: ((msg: Extract<ClientMessage, { type: 'subscribe' }>) => void) | null = null
  /** Handles REPORT (feature `report`: the frame only arrives when it was agreed). */
  onReport: ((msg: ReportMsg) => void) | null = null
  /** The server's StatusJson as JSON text within `maxBytes`, for STATUS (feature `status`). */
  statusJson: ((maxBytes: number) => string) | null = null

  constructor(conn: SessionConnection, source: AssetSource, buffers: BufferPool, metrics: SessionMetrics = NO_METRICS) {
    super()
    this.conn = conn
    this.#source = source
    this.#buffers = buffers
    this.#metrics = metrics
    conn.on('message', (msg: ClientMessage) => this.#onMessage(msg))
    conn.once('close', () => this.#closeAll())
  }

  #onMessage(msg: ClientMessage): void {
    switch (msg.type) {
      case 'request': {
        if (this.#pending + this.#transfers.size >= MAX_INFLIGHT_PER_CLIENT) {
          this.#metrics.request('error')
          this.#fail(msg.id, new AssetSyncError('ERR_LIMIT', `more than ${MAX_INFLIGHT_PER_CLIENT} requests in flight`))
          return
        }
        this.#pending++
        void this.#onRequest(msg, performance.now()).catch((err: unknown) => {
          this.#metrics.request('error')
          this.#fail(msg.id, err)
        }).finally(() => { this.#pending-- })
        return
      }
      case 'manifest':
        void this.#onManifest(msg).catch((err: unknown) => this.#fail(msg.id, err))
        return
      case 'cancel': {
        const t = this.#transfers.get(msg.id)
        if (t) this.#finish(t)
        return
      }
      case 'subscribe':
        if (this.onSubscribe) this.onSubscribe(msg)
        else this.#fail(msg.id, new AssetSyncError('ERR_PROTOCOL', 'subscriptions are not enabled on this server'))
        return
      case 'report':
        this.onReport?.(msg)
        return
      case 'status':
        this.#onStatus(msg.id)
        return
      case 'auth':
        this.conn.fail(new ProtocolError('AUTH after authentication'))
        return
      case 'ping':
      case 'credit': // the connection consumes CREDIT itself
        return
    }
  }

  /** Sends an ERROR for request `id` (and counts it). */
  #fail(id: number, err: unknown): void {
    const e = err instanceof AssetSyncError ? err : new AssetSyncError('ERR_INTERNAL', `server error: ${(err as Error)?.message ?? err}`)
    this.#metrics.error(e.code)
    this.conn.send({ type: 'error', id, code: e.code, message: e.message })
  }

  #refuse(id: number, path: string, reason: string): void {
    this.emit('refused', { path: printable(path), reason })
    this.#metrics.request('refused')
    this.conn.send({ type: 'response', id, status: 'refused', reason })
  }

  /**
   * Answers STATUS with the server's StatusJson, cut to fit one frame. One reply at a time: a
   * client that asks again before the last reply drained gets ERR_LIMIT, so a client that never
   * reads cannot make the server queue reply after reply (each up to STATUS_MAX_JSON_BYTES).
   */
  #onStatus(id: number): void {
    if (!this.statusJson) return this.#fail(id, new AssetSyncError('ERR_PROTOCOL', 'status queries are not enabled on this server'))
    if (this.#statusBusy) return this.#fail(id, new AssetSyncError('ERR_LIMIT', 'one status query at a time: wait for the last answer'))
    const json = this.statusJson(STATUS_MAX_JSON_BYTES)
    if (this.conn.send({ type: 'status-reply', id, json })) return
    this.#statusBusy = true
    this.conn.drained().then(() => { this.#statusBusy = false }, () => { /* closed */ })
  }

  async #onRequest(msg: RequestMsg, started: number): Promise<void> {
    const { id, path } = msg
    const why = checkWirePath(path)
    if (why !== null) return this.#refuse(id, path, why)
    let reader: SourceReader | null
    try {
      reader = await this.#source.open(path)
    } catch (err) {
      if (err instanceof AssetSyncError && err.code === 'ERR_PATH_REFUSED') return this.#refuse(id, path, err.message)
      throw err
    }
    if (!reader) {
      this.#metrics.request('not-found')
      this.conn.send({ type: 'response', id, status: 'not-found', reason: `not found: ${path}` })
      return
    }
    const { entry } = reader
    if (this.conn.closed) return void reader.close()
    if (equalHash(msg.haveHash, entry.hash)) {
      void reader.close()
      this.#metrics.request('up-to-date')
      this.conn.send({ type: 'response', id, status: 'up-to-date', reason: '' })
      return
    }
    this.#metrics.request('file')
    this.conn.send({ type: 'response', id, status: 'file', hash: entry.hash, size: entry.size, mode: entry.mode, mtime: entry.mtime })
    const t: Transfer = { id, started, reader, size: entry.size, offset: 0, cancelled: false }
    this.#transfers.set(id, t)
    this.#queue.push(t)
    void this.#pump()
  }

  async #onManifest(msg: ManifestMsg): Promise<void> {
    const key = msg.patterns.join('\0')
    let match = this.#matchers.get(key)
    if (!match) {
      match = patternMatcher(msg.patterns)
      if (this.#matchers.size > 16) this.#matchers.clear()
      this.#matchers.set(key, match)
    }
    const page = await this.#source.page(match, msg.after)
    if (this.conn.closed) return
    this.conn.send({ type: 'manifest-reply', id: msg.id, done: page.done, entries: page.entries })
  }

  /**
   * Gives each active transfer a turn of up to SERVER_READ_BYTES (one read, sent as CHUNK frames)
   * in round-robin order until all are done or the peer is gone. Waits for flow-control credit
   * before reading a turn, and for the stream to drain after it.
   */
  async #pump(): Promise<void> {
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (this.#queue.length > 0 && !this.conn.closed) {
        const t = this.#queue.shift() as Transfer
        if (t.cancelled) continue
        const want = Math.min(SERVER_READ_BYTES, t.size - t.offset)
        if (this.conn.credit < want) await this.conn.credited(want)
        if (t.cancelled) continue
        let ok: boolean
        try {
          ok = await this.#sendTurn(t, want)
        } catch (err) {
          this.#fail(t.id, err)
          this.#finish(t)
          continue
        }
        if (!t.cancelled) this.#queue.push(t)
        if (!ok) await this.conn.drained()
      }
    } catch {
      // drained() and credited() reject when the connection closes; #closeAll releases the files.
    } finally {
      this.#pumping = false
    }
  }

  /**
   * Reads the next `want` bytes of `t` into a shared buffer and sends them as CHUNK frames (the
   * codec copies each into its frame, so the buffer goes back at once); finishes `t` after the
   * last. Returns send()'s verdict. The source vouches for the bytes (see SourceReader.read).
   */
  async #sendTurn(t: Transfer, want: number): Promise<boolean> {
    const buf = await this.#buffers.acquire()
    try {
      await t.reader.read(buf, t.offset, want)
      if (t.cancelled) return true
      const final = t.offset + want === t.size
      let ok = true
      let at = 0
      do {
        const n = Math.min(CHUNK_SIZE, want - at)
        const last = at + n === want
        ok = this.conn.send({ type: 'chunk', id: t.id, offset: t.offset + at, final: final && last, data: buf.subarray(at, at + n) })
        at += n
      } while (at < want)
      t.offset += want
      if (final) {
        this.#finish(t)
        this.#metrics.transferDone(performance.now() - t.started)
      }
      return ok
    } finally {
      this.#buffers.release(buf)
    }
  }

  #finish(t: Transfer): void {
    if (t.cancelled) return
    t.cancelled = true
    this.#transfers.delete(t.id)
    void t.reader.close()
  }

  #closeAll(): void {
    for (const t of [...this.#transfers.values()]) this.#finish(t)
    this.#queue = []
  }
}
