/**
 * The server's side of one client connection: answers REQUEST, MANIFEST, CANCEL (and SUBSCRIBE
 * through the server's registry). Transfers are interleaved round robin, SERVER_READ_BYTES a turn,
 * so a small file is never stuck behind a big one. With the `priority` feature, transfers carry a
 * class (blocking, normal, background): every queued transfer of a more urgent class gets its
 * turns first, so a program's blocking `require` never waits behind bulk `load_asset_async`
 * downloads (issue 13); without it every request is `normal` and the order is plain round robin. Each turn waits for flow-control credit and
 * the connection to drain (backpressure), so a slow client costs bounded memory and never slows
 * the others. Entries and bytes come from the server's AssetSource: a session never touches the
 * file system, so it serves a folder, memory or a remote store alike.
 */
import { EventEmitter } from 'node:events'
import { AssetSyncError, ProtocolError } from '../../errors.js'
import { BACKGROUND_FRAME_BYTES, BACKGROUND_WINDOW_BYTES, CHUNK_SIZE, FLOW_WINDOW_BYTES, SENT_MEMORY_PER_CLIENT, SERVER_READ_BYTES, STATUS_MAX_JSON_BYTES } from '../../limits.js'
import { PRIORITY, type ClientMessage, type PriorityRequestMsg, type ReportMsg, type RequestMsg, type RequestPriority } from '../../protocol/messages.js'
import { equalHash } from '../fs/hash.js'
import type { BufferPool } from '../fs/pool.js'
import { checkWirePath, printable } from '../fs/paths.js'
import { type ChunkTransfer, type PieceState, pieceFrame, sendChunkTurn } from './chunk-serving.js'
import { SessionBudget, type SessionGuard, ownGuard } from './session-budget.js'
import { FeatureRequests } from './session-features.js'
import { NO_METRICS, type SessionConnection, type SessionMetrics } from './session-types.js'
import type { AssetSource, SourceReader } from './source.js'

interface Transfer {
  id: number
  path: string
  /** performance.now() when its REQUEST arrived. */
  started: number
  reader: SourceReader
  size: number
  offset: number
  cancelled: boolean
  /** Index of its lane (PRIORITY value). */
  lane: number
  /** A CHUNK_FETCH (feature `chunks`): the chunks to send; absent for a whole file. */
  chunks?: ChunkTransfer
  /** Compression of a whole file's pieces (feature `zstd`). */
  pieces?: PieceState
}

/** How many priority classes there are (one lane each). */
const LANES = Object.keys(PRIORITY).length

export class ClientSession extends EventEmitter {
  readonly conn: SessionConnection
  readonly #source: AssetSource
  readonly #transfers = new Map<number, Transfer>()
  /** Queued transfers by priority class, most urgent first; round robin within each. */
  #lanes: Transfer[][] = Array.from({ length: LANES }, () => [])
  /** Priorities of requests still being opened (a REPRIORITIZE may come before the transfer exists). */
  readonly #opening = new Map<number, number>()
  /** Wakes a pump that waits for credit: a transfer was queued that may be more urgent. */
  #nudge: (() => void) | null = null
  /** The pending wait for flow-control credit (one at a time: a wake only means "look again"). */
  #creditWait: { bytes: number; done: Promise<void> } | null = null
  #pumping = false
  #pending = 0
  readonly #buffers: BufferPool
  /** In-flight requests, MANIFEST/SUBSCRIBE order and cost, memory and queued frames (issue 12). */
  readonly budget: SessionBudget
  readonly #metrics: SessionMetrics
  /**
   * Path → hash of the transfers this connection completed lately (at most
   * SENT_MEMORY_PER_CLIENT, oldest first). Asked again for one of them by a client that does not
   * show that hash, we read it as "those bytes failed their hash" (every client retries a download
   * exactly so, protocol 2 included) and have the source re-check the file first (issue 11).
   */
  readonly #sent = new Map<string, Uint8Array>()
  /** BATCH, CHUNK_LIST and CHUNK_FETCH (features `batch-request`, `chunks`: session-features.ts). */
  readonly #features: FeatureRequests
  /** A STATUS_REPLY is still queued (not drained): the next STATUS waits for it. */
  #statusBusy = false
  /**
   * Handles SUBSCRIBE (the server owns the registry): called in order, one at a time, each on a
   * turn of the MatchScheduler. Throws an AssetSyncError to refuse it.
   */
  onSubscribe: ((msg: Extract<ClientMessage, { type: 'subscribe' }>) => void) | null = null
  /** Handles DIRECT (`direct` feature: a server with an S3 origin). */
  onDirect: ((msg: Extract<ClientMessage, { type: 'direct' }>) => void) | null = null
  /** Handles REPORT (feature `report`: the frame only arrives when it was agreed). */
  onReport: ((msg: ReportMsg) => void) | null = null
  /** The server's StatusJson as JSON text within `maxBytes`, for STATUS (feature `status`). */
  statusJson: ((maxBytes: number) => string) | null = null

  /** `guard`: the server's matching scheduler and memory budget (default: a session's own, for tests). */
  constructor(conn: SessionConnection, source: AssetSource, buffers: BufferPool, metrics: SessionMetrics = NO_METRICS, guard: SessionGuard = ownGuard()) {
    super()
    this.conn = conn
    this.#source = source
    this.#buffers = buffers
    this.budget = new SessionBudget(conn, source, guard, () => this.#pending + this.#transfers.size + this.#features.inflight, () => this.#features.held)
    this.#metrics = metrics
    this.#features = new FeatureRequests({
      conn, source, metrics, budget: this.budget,
      emit: (event, info) => this.emit(event, info),
      fail: (id, err, frame) => this.#fail(id, err, frame),
      refuse: (id, path, reason) => this.#refuse(id, path, reason),
      remember: (path, hash) => this.#remember(path, hash),
      sentHash: (path) => this.#sent.get(path),
      transfer: (opened) => {
        const t: Transfer = { ...opened, offset: 0, cancelled: false, lane: PRIORITY.normal }
        this.#transfers.set(t.id, t)
        this.#enqueue(t)
        void this.#pump()
      },
    })
    conn.on('message', (msg: ClientMessage) => this.#onMessage(msg))
    conn.once('close', () => this.#closeAll())
  }

  #onMessage(msg: ClientMessage): void {
    switch (msg.type) {
      case 'batch': // feature `batch-request`: admitted like REQUEST, answered back to back
        this.#features.batch(msg)
        return
      case 'manifest-digest': // on the MatchScheduler, like MANIFEST (its pages are built as MANIFEST's are)
        this.budget.manifestDigest(msg, (err) => this.#fail(msg.id, err, msg.type))
        return
      case 'request':
      case 'priority-request': {
        const refused = this.budget.admit()
        if (refused) {
          this.#metrics.request('error')
          this.#fail(msg.id, refused)
          return
        }
        this.#pending++
        this.#opening.set(msg.id, PRIORITY[msg.type === 'request' ? 'normal' : msg.priority])
        void this.#onRequest(msg, performance.now()).catch((err: unknown) => {
          this.#metrics.request('error')
          this.#fail(msg.id, err)
        }).finally(() => {
          this.#pending--
          this.#opening.delete(msg.id)
          this.budget.settle()
        })
        return
      }
      case 'reprioritize':
        this.#reprioritize(msg.id, msg.priority)
        return
      case 'chunk-list':
      case 'chunk-fetch': // feature `chunks` (docs/delta.md): admitted and answered like REQUEST, in the normal lane
        this.#features.chunks(msg)
        return
      case 'manifest':
        this.budget.manifest(msg, (err) => this.#fail(msg.id, err, msg.type))
        return
      case 'cancel': {
        const t = this.#transfers.get(msg.id)
        if (t) this.#finish(t)
        else this.#features.cancel(msg.id)
        return
      }
      case 'subscribe': {
        const handle = this.onSubscribe
        if (handle) this.budget.subscribe(msg, handle, (err) => this.#fail(msg.id, err, msg.type))
        else this.#fail(msg.id, new AssetSyncError('ERR_PROTOCOL', 'subscriptions are not enabled on this server'))
        return
      }
      case 'report':
        this.onReport?.(msg)
        return
      case 'status':
        this.#onStatus(msg.id)
        return
      case 'direct':
        if (this.onDirect) this.onDirect(msg)
        else this.#fail(msg.id, new AssetSyncError('ERR_NOT_FOUND', 'this server has no S3 origin: pull through it instead'))
        return
      case 'auth':
        this.conn.fail(new ProtocolError('AUTH after authentication'))
        return
      case 'ping':
      case 'credit': // the connection consumes CREDIT itself
        return
    }
  }

  /**
   * Sends an ERROR for request `id` (and counts it). Anything but an AssetSyncError is a failure
   * we did not plan for (a bug, or the file system failing): the client gets ERR_INTERNAL and the
   * server's owner an 'internal' event with the cause (serve logs it), once.
   */
  #fail(id: number, err: unknown, frame = 'request'): void {
    let e: AssetSyncError
    if (err instanceof AssetSyncError) e = err
    else {
      e = new AssetSyncError('ERR_INTERNAL', `server error: ${(err as Error)?.message ?? err}`, { cause: err })
      this.emit('internal', { frame, error: err })
    }
    this.#metrics.error(e.code)
    this.conn.send({ type: 'error', id, code: e.code, message: e.message })
  }

  #refuse(id: number, path: string, reason: string): void {
    this.emit('refused', { path: printable(path), reason })
    this.#metrics.request('refused')
    this.conn.send({ type: 'response', id, status: 'refused', reason })
  }

  /** Moves request `id` to the lane of `priority` (a queued transfer keeps its place in the round). */
  #reprioritize(id: number, priority: RequestPriority): void {
    const lane = PRIORITY[priority]
    if (this.#opening.has(id)) this.#opening.set(id, lane)
    const t = this.#transfers.get(id)
    if (!t || t.lane === lane) return
    const from = this.#lanes[t.lane] as Transfer[]
    const at = from.indexOf(t)
    t.lane = lane
    if (at < 0) return // taking its turn now: it re-queues into its new lane
    from.splice(at, 1)
    this.#enqueue(t)
  }

  #enqueue(t: Transfer): void {
    ;(this.#lanes[t.lane] as Transfer[]).push(t)
    const nudge = this.#nudge
    this.#nudge = null
    nudge?.()
  }

  /** The next transfer to take a turn: the head of the most urgent non-empty lane. */
  #next(): Transfer | null {
    for (const lane of this.#lanes) {
      while (lane.length > 0) {
        const t = lane.shift() as Transfer
        if (!t.cancelled) return t
      }
    }
    return null
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

  async #onRequest(msg: RequestMsg | PriorityRequestMsg, started: number): Promise<void> {
    const { id, path } = msg
    const why = checkWirePath(path)
    if (why !== null) return this.#refuse(id, path, why)
    const sent = this.#sent.get(path)
    if (sent) this.#sent.delete(path)
    const distrust = sent && !equalHash(msg.haveHash, sent) ? sent : undefined
    let reader: SourceReader | null
    try {
      reader = await this.#source.open(path, distrust ? { distrust } : undefined)
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
    const t: Transfer = { id, path, started, reader, size: entry.size, offset: 0, cancelled: false, lane: this.#opening.get(id) ?? PRIORITY.normal }
    this.#transfers.set(id, t)
    this.#enqueue(t)
    void this.#pump()
  }

  /**
   * Gives each active transfer a turn of up to SERVER_READ_BYTES (one read, sent as CHUNK frames):
   * the most urgent lane first, round robin within it, until all are done or the peer is gone.
   * Waits for flow-control credit before reading a turn, and for the stream to drain after it.
   * A transfer queued while the pump waits for credit is looked at again: a blocking one whose
   * turn fits the credit left goes first instead of waiting behind a bulk turn.
   */
  async #pump(): Promise<void> {
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (!this.conn.closed) {
        const t = this.#next()
        if (!t) break
        // A background turn is one CHUNK: a blocking file queued behind it waits for less.
        const want = t.chunks ? t.chunks.turnBytes() : Math.min(t.lane === PRIORITY.background ? CHUNK_SIZE : SERVER_READ_BYTES, t.size - t.offset)
        // A background turn also keeps the data outstanding within BACKGROUND_WINDOW_BYTES: all of
        // it is queued ahead of the next blocking file in the one ordered stream.
        const need = t.lane === PRIORITY.background ? FLOW_WINDOW_BYTES - BACKGROUND_WINDOW_BYTES + want : want
        if (this.conn.credit < need) {
          const nudged = new Promise<void>((resolve) => { this.#nudge = resolve })
          await Promise.race([this.#credited(need), nudged])
          this.#nudge = null
          // Credit came, or a transfer was queued: t goes back to the head of its lane, and the
          // most urgent transfer is chosen again.
          if (!t.cancelled) (this.#lanes[t.lane] as Transfer[]).unshift(t)
          continue
        }
        let ok: boolean
        try {
          ok = await (t.chunks ? this.#sendChunks(t, t.chunks, want) : this.#sendTurn(t, want))
        } catch (err) {
          this.#fail(t.id, err)
          this.#finish(t)
          continue
        }
        if (!t.cancelled) (this.#lanes[t.lane] as Transfer[]).push(t)
        if (!ok) await this.conn.drained()
      }
    } catch {
      // drained() and credited() reject when the connection closes; #closeAll releases the files.
    } finally {
      this.#pumping = false
      this.#nudge = null
    }
  }

  /** Resolves once `bytes` of credit are there (or earlier: the caller looks again); rejects once closed. */
  #credited(bytes: number): Promise<void> {
    const w = this.#creditWait
    if (w && w.bytes <= bytes) return w.done
    const done = this.conn.credited(bytes)
    const wait = { bytes, done }
    this.#creditWait = wait
    done.then(() => { if (this.#creditWait === wait) this.#creditWait = null }, () => {})
    return done
  }

  /**
   * Reads the next `want` bytes of `t` into a shared buffer and sends them as CHUNK frames (the
   * codec copies each into its frame, so the buffer goes back at once); finishes `t` after the
   * last. Returns send()'s verdict. The source vouches for the bytes (see SourceReader.read).
   * Background frames are small (BACKGROUND_FRAME_BYTES): the client consumes and credits a frame
   * at a time, so the small window keeps flowing with little of it ahead of a blocking file.
   */
  async #sendTurn(t: Transfer, want: number): Promise<boolean> {
    const buf = await this.#buffers.acquire()
    try {
      await t.reader.read(buf, t.offset, want)
      while (this.conn.credit < want) await this.conn.credited(want) // a BATCH may have spent it meanwhile
      if (t.cancelled) return true
      const final = t.offset + want === t.size
      const zstd = this.conn.has?.('zstd') ?? false
      const frame = t.lane === PRIORITY.background ? BACKGROUND_FRAME_BYTES : CHUNK_SIZE
      let ok = true
      let at = 0
      do {
        const n = Math.min(frame, want - at)
        const last = at + n === want
        // zstd agreed: a piece that compresses goes as CHUNK_Z (its wire bytes spend the credit).
        ok = this.conn.send(pieceFrame(t.id, t.path, t.offset + at, final && last, buf.subarray(at, at + n), zstd, t.pieces ??= { skip: 0 }))
        at += n
      } while (at < want)
      t.offset += want
      if (final) {
        this.#finish(t)
        this.#remember(t.path, t.reader.entry.hash)
        this.#metrics.transferDone(performance.now() - t.started)
      }
      return ok
    } finally {
      this.#buffers.release(buf)
    }
  }

  /** A CHUNK_FETCH turn: its next chunks as CHUNK_DATA (chunk-serving.ts); finishes `t` after the last. */
  async #sendChunks(t: Transfer, c: ChunkTransfer, want: number): Promise<boolean> {
    const ok = await sendChunkTurn(this.conn, this.#source, this.#buffers, { id: t.id, path: t.path, reader: t.reader, cancelled: () => t.cancelled }, c, want)
    if ((t.offset += want) < t.size) return ok
    this.#finish(t)
    this.#metrics.transferDone(performance.now() - t.started)
    return ok
  }

  /** Notes a completed transfer (see #sent). */
  #remember(path: string, hash: Uint8Array): void {
    this.#sent.delete(path)
    this.#sent.set(path, hash)
    if (this.#sent.size > SENT_MEMORY_PER_CLIENT) this.#sent.delete(this.#sent.keys().next().value as string)
  }

  #finish(t: Transfer): void {
    if (t.cancelled) return
    t.cancelled = true
    this.#transfers.delete(t.id)
    void t.reader.close()
    this.budget.settle()
  }

  #closeAll(): void {
    for (const t of [...this.#transfers.values()]) this.#finish(t)
    this.#features.close()
    this.#lanes = Array.from({ length: LANES }, () => [])
    this.#nudge?.()
    this.budget.close()
  }
}
