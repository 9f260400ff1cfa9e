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
import { CHUNK_SIZE, MAX_INFLIGHT_PER_CLIENT, SERVER_READ_BYTES } from '../../limits.js'
import type { ClientMessage, RequestMsg, ServerMessage, SubscribeMsg } from '../../protocol/messages.js'
import { equalHash } from '../fs/hash.js'
import type { BufferPool } from '../fs/pool.js'
import { checkWirePath, printable } from '../fs/paths.js'
import { ManifestScanner } from './manifest-scan.js'
import type { MatchScheduler } from './match-work.js'
import { type MemoryAccount, REQUEST_BYTES } from './memory-budget.js'
import type { AssetSource, SourceReader } from './source.js'

/**
 * What a session needs of its connection (the server half of protocol/connection.ts): named here
 * so the session depends on these methods, not on how the protocol layer splits its classes.
 */
export interface SessionConnection {
  readonly remote: string
  readonly closed: boolean
  /** Flow-control credit: CHUNK bytes the client allows us to send now. */
  readonly credit: number
  /** Bytes of frames queued for sending, not yet handed to the transport (memory budget). */
  readonly queuedBytes: number
  send(msg: ServerMessage): boolean
  drained(): Promise<void>
  credited(bytes: number): Promise<void>
  /** Ends the connection with a protocol error. */
  fail(err: AssetSyncError): void
  on(event: 'message', listener: (msg: ClientMessage) => void): unknown
  once(event: 'close', listener: (err: AssetSyncError | null) => void): unknown
}

/** Bytes a request's patterns hold (UTF-16 strings). */
function patternBytes(patterns: readonly string[]): number {
  let n = 0
  for (const p of patterns) n += 2 * p.length + 64
  return n
}

interface Transfer {
  id: number
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
  /** MANIFEST requests: compiled, charged, scanned in slices (issue 12). */
  readonly manifests: ManifestScanner
  /** What this connection makes the server hold (issue 12). */
  readonly account: MemoryAccount
  readonly #scheduler: MatchScheduler
  /** MANIFEST and SUBSCRIBE requests waiting or running, and the bytes they hold. */
  #patternRequests = 0
  #patternRequestBytes = 0
  #subscribes: Promise<void> = Promise.resolve()
  #queueWatched = false
  /**
   * Handles SUBSCRIBE (the server owns the registry): called in order, one at a time, each on
   * its own turn of the MatchScheduler (compiling a set is matching work too). Throws an
   * AssetSyncError to refuse it.
   */
  onSubscribe: ((msg: SubscribeMsg) => void) | null = null

  /** Past the server's total, the connections queuing the most go (MemoryBudget.shed). */
  readonly #shed: () => void

  constructor(
    conn: SessionConnection, source: AssetSource, buffers: BufferPool, scheduler: MatchScheduler, account: MemoryAccount, shed: () => void,
  ) {
    super()
    this.conn = conn
    this.#source = source
    this.#buffers = buffers
    this.account = account
    this.#shed = shed
    this.#scheduler = scheduler
    this.manifests = new ManifestScanner(conn, source, scheduler, account)
    conn.on('message', (msg: ClientMessage) => this.#onMessage(msg))
    conn.once('close', () => this.#closeAll())
  }

  /** Requests open now: waiting for their file, transferring, MANIFEST or SUBSCRIBE queued or running. */
  get inflight(): number { return this.#pending + this.#transfers.size + this.#patternRequests }

  /**
   * Whether a new request holding `extra` bytes (its patterns) may be counted in: within
   * MAX_INFLIGHT_PER_CLIENT and the memory budget (otherwise it got ERR_LIMIT). The caller counts
   * it, and calls #chargeInflight() when it ends.
   */
  #admit(id: number, extra = 0): boolean {
    if (this.inflight >= MAX_INFLIGHT_PER_CLIENT) {
      this.#fail(id, new AssetSyncError('ERR_LIMIT', `more than ${MAX_INFLIGHT_PER_CLIENT} requests in flight`))
      return false
    }
    try {
      this.#chargeInflight(REQUEST_BYTES + extra)
    } catch (err) {
      this.#fail(id, err)
      return false
    }
    return true
  }

  /** Charges what in-flight requests hold, plus `extra` for one being admitted (ERR_LIMIT if it does not fit). */
  #chargeInflight(extra = 0): void {
    const bytes = (this.#pending + this.#transfers.size) * REQUEST_BYTES + this.#patternRequestBytes + extra
    if (extra === 0) return this.account.set('inflight', bytes)
    if (!this.account.fits('inflight', bytes)) this.manifests.dropCache()
    this.account.charge('inflight', bytes, 'another request')
  }

  /** Runs a MANIFEST or SUBSCRIBE request holding `bytes`, counted in flight until it settles. */
  #patternRequest(id: number, bytes: number, run: () => Promise<void>): void {
    if (!this.#admit(id, bytes)) return
    this.#patternRequests++
    this.#patternRequestBytes += REQUEST_BYTES + bytes
    void run().catch((err: unknown) => this.#fail(id, err)).finally(() => {
      this.#patternRequests--
      this.#patternRequestBytes -= REQUEST_BYTES + bytes
      this.#chargeInflight()
    })
  }

  /**
   * Records the frames now queued for this client; past the memory budget (a client that does
   * not read what it is sent) its MANIFEST caches go first, then the connection.
   */
  checkQueue(): void {
    if (this.conn.closed) return
    const queued = this.conn.queuedBytes
    this.account.set('queue', queued)
    if (queued > 0 && !this.#queueWatched) {
      // Recount once it has drained (below the stream's high-water mark there is no 'drain': the
      // bytes go within a turn), so an idle connection's past burst stays no one's charge.
      this.#queueWatched = true
      const recount = (): void => {
        this.#queueWatched = false
        if (!this.conn.closed) this.account.set('queue', this.conn.queuedBytes)
      }
      this.conn.drained().then(() => setImmediate(recount), () => { this.#queueWatched = false })
    }
    if (this.account.over) {
      this.manifests.dropCache()
      if (this.account.over) this.conn.fail(this.notReading("the connection's memory budget"))
    }
    this.#shed()
  }

  /** The error a connection is closed with when the frames queued for it are too many. */
  notReading(budget: string): AssetSyncError {
    return new AssetSyncError('ERR_LIMIT', `${this.conn.remote} is not reading: ${this.account.of('queue')} bytes of frames queued, past ${budget}`)
  }

  #onMessage(msg: ClientMessage): void {
    switch (msg.type) {
      case 'request': {
        if (!this.#admit(msg.id)) return
        this.#pending++
        void this.#onRequest(msg).catch((err: unknown) => this.#fail(msg.id, err)).finally(() => {
          this.#pending--
          this.#chargeInflight()
        })
        return
      }
      case 'manifest':
        this.#patternRequest(msg.id, patternBytes(msg.patterns), async () => {
          const reply = await this.manifests.answer(msg)
          if (reply && !this.conn.closed) {
            this.conn.send(reply)
            this.checkQueue()
          }
        })
        return
      case 'cancel': {
        const t = this.#transfers.get(msg.id)
        if (t) this.#finish(t)
        return
      }
      case 'subscribe': {
        const handle = this.onSubscribe
        if (!handle) return this.#fail(msg.id, new AssetSyncError('ERR_PROTOCOL', 'subscriptions are not enabled on this server'))
        this.#patternRequest(msg.id, patternBytes(msg.patterns), () => {
          const run = this.#subscribes.then(() => this.#scheduler.turn()).then(() => { if (!this.conn.closed) handle(msg) })
          this.#subscribes = run.catch(() => {})
          return run
        })
        return
      }
      case 'auth':
        this.conn.fail(new ProtocolError('AUTH after authentication'))
        return
      case 'ping':
        return
    }
  }

  #fail(id: number, err: unknown): void {
    const e = err instanceof AssetSyncError ? err : new AssetSyncError('ERR_INTERNAL', `server error: ${(err as Error)?.message ?? err}`)
    this.conn.send({ type: 'error', id, code: e.code, message: e.message })
  }

  #refuse(id: number, path: string, reason: string): void {
    this.emit('refused', { path: printable(path), reason })
    this.conn.send({ type: 'response', id, status: 'refused', reason })
  }

  async #onRequest(msg: RequestMsg): Promise<void> {
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
      this.conn.send({ type: 'response', id, status: 'not-found', reason: `not found: ${path}` })
      return
    }
    const { entry } = reader
    if (this.conn.closed) return void reader.close()
    if (equalHash(msg.haveHash, entry.hash)) {
      void reader.close()
      this.conn.send({ type: 'response', id, status: 'up-to-date', reason: '' })
      return
    }
    this.conn.send({ type: 'response', id, status: 'file', hash: entry.hash, size: entry.size, mode: entry.mode, mtime: entry.mtime })
    const t: Transfer = { id, reader, size: entry.size, offset: 0, cancelled: false }
    this.#transfers.set(id, t)
    this.#queue.push(t)
    void this.#pump()
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
      if (final) this.#finish(t)
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
    this.#chargeInflight()
  }

  #closeAll(): void {
    for (const t of [...this.#transfers.values()]) this.#finish(t)
    this.#queue = []
    this.manifests.dropCache()
    this.account.close()
  }
}
