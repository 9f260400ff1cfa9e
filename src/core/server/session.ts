/**
 * The server's side of one client connection: answers REQUEST, MANIFEST, CANCEL (and SUBSCRIBE
 * through the server's registry). Transfers are interleaved round robin, SERVER_READ_BYTES a turn,
 * so a small file is never stuck behind a big one. Each turn waits for flow-control credit and
 * the connection to drain (backpressure), so a slow client costs bounded memory and never slows
 * the others.
 */
import { EventEmitter } from 'node:events'
import { constants } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { open } from 'node:fs/promises'
import { AssetSyncError, ProtocolError } from '../../errors.js'
import { CHUNK_SIZE, MAX_INFLIGHT_PER_CLIENT, SERVER_READ_BYTES } from '../../limits.js'
import type { ServerConnection } from '../../protocol/connection.js'
import type { ClientMessage, ManifestMsg, RequestMsg } from '../../protocol/messages.js'
import { equalHash } from '../fs/hash.js'
import { type PathMatcher, patternMatcher } from '../fs/ignore.js'
import type { BufferPool } from '../fs/pool.js'
import { checkWirePath, printable, resolveForRead } from '../fs/paths.js'
import type { Entry, Store } from './store.js'

interface Transfer {
  id: number
  path: string
  entry: Entry
  fh: FileHandle
  offset: number
  cancelled: boolean
}

/** Times a request re-reads a file that keeps changing under it before giving up. */
const OPEN_RETRIES = 3
/**
 * Read-only and non-blocking: a FIFO in the served folder would otherwise block open() in the
 * libuv threadpool until a writer appears — four such requests froze all file I/O of the server
 * (and its SIGTERM shutdown). O_NONBLOCK changes nothing for regular files; the isFile check
 * below then answers not-found. (O_NONBLOCK is undefined on Windows, which has no FIFOs here.)
 */
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0)

export class ClientSession extends EventEmitter {
  readonly conn: ServerConnection
  readonly #store: Store
  readonly #transfers = new Map<number, Transfer>()
  #queue: Transfer[] = []
  #pumping = false
  #pending = 0
  readonly #buffers: BufferPool
  readonly #matchers = new Map<string, PathMatcher>()
  /** Handles SUBSCRIBE (the server owns the registry). */
  onSubscribe: ((msg: Extract<ClientMessage, { type: 'subscribe' }>) => void) | null = null

  constructor(conn: ServerConnection, store: Store, buffers: BufferPool) {
    super()
    this.conn = conn
    this.#store = store
    this.#buffers = buffers
    conn.on('message', (msg: ClientMessage) => this.#onMessage(msg))
    conn.once('close', () => this.#closeAll())
  }

  #onMessage(msg: ClientMessage): void {
    switch (msg.type) {
      case 'request': {
        if (this.#pending + this.#transfers.size >= MAX_INFLIGHT_PER_CLIENT) {
          this.#fail(msg.id, new AssetSyncError('ERR_LIMIT', `more than ${MAX_INFLIGHT_PER_CLIENT} requests in flight`))
          return
        }
        this.#pending++
        void this.#onRequest(msg).catch((err: unknown) => this.#fail(msg.id, err)).finally(() => { this.#pending-- })
        return
      }
      case 'manifest': this.#onManifest(msg); return
      case 'cancel': {
        const t = this.#transfers.get(msg.id)
        if (t) this.#finish(t)
        return
      }
      case 'subscribe':
        if (this.onSubscribe) this.onSubscribe(msg)
        else this.#fail(msg.id, new AssetSyncError('ERR_PROTOCOL', 'subscriptions are not enabled on this server'))
        return
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
    const notFound = (): void => { this.conn.send({ type: 'response', id, status: 'not-found', reason: `not found: ${path}` }) }
    if (this.#store.isIgnored(path)) return notFound()
    let real: string
    try {
      real = await resolveForRead(this.#store.root, path)
    } catch (err) {
      if (err instanceof AssetSyncError && err.code === 'ERR_PATH_REFUSED') return this.#refuse(id, path, err.message)
      if (err instanceof AssetSyncError && err.code === 'ERR_NOT_FOUND') return notFound()
      throw err
    }
    for (let attempt = 0; attempt < OPEN_RETRIES; attempt++) {
      let fh: FileHandle
      try {
        fh = await open(real, OPEN_FLAGS)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT' || code === 'EISDIR') return notFound()
        throw err
      }
      const st = await fh.stat()
      let entry = this.#store.get(path)
      if (!st.isFile()) { await fh.close(); return notFound() }
      if (!entry || entry.ino !== st.ino || entry.size !== st.size || entry.mtimeMs !== st.mtimeMs) {
        entry = (await this.#store.refresh(path)) ?? undefined
      }
      // The index must describe exactly the inode we opened, or the hash we announce could lie.
      if (!entry || entry.ino !== st.ino || entry.size !== st.size || entry.mtimeMs !== st.mtimeMs) {
        await fh.close()
        if (!entry) return notFound()
        continue
      }
      if (this.conn.closed) { await fh.close(); return }
      if (equalHash(msg.haveHash, entry.hash)) {
        await fh.close()
        this.conn.send({ type: 'response', id, status: 'up-to-date', reason: '' })
        return
      }
      this.conn.send({ type: 'response', id, status: 'file', hash: entry.hash, size: entry.size, mode: entry.mode, mtime: entry.mtime })
      const t: Transfer = { id, path, entry, fh, offset: 0, cancelled: false }
      this.#transfers.set(id, t)
      this.#queue.push(t)
      void this.#pump()
      return
    }
    throw new AssetSyncError('ERR_CHANGED', `${path} keeps changing; try again`)
  }

  #onManifest(msg: ManifestMsg): void {
    const key = msg.patterns.join('\0')
    let match = this.#matchers.get(key)
    if (!match) {
      match = patternMatcher(msg.patterns)
      if (this.#matchers.size > 16) this.#matchers.clear()
      this.#matchers.set(key, match)
    }
    const page = this.#store.page(match, msg.after)
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
        const want = Math.min(SERVER_READ_BYTES, t.entry.size - t.offset)
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
   * last. Returns send()'s verdict.
   */
  async #sendTurn(t: Transfer, want: number): Promise<boolean> {
    const buf = await this.#buffers.acquire()
    try {
      const { bytesRead } = want > 0 ? await t.fh.read(buf, 0, want, t.offset) : { bytesRead: 0 }
      if (t.cancelled) return true
      if (bytesRead < want) throw new AssetSyncError('ERR_CHANGED', `${t.path} shrank during the transfer; try again`)
      const final = t.offset + want === t.entry.size
      if (final && t.offset > 0) {
        // Written in place while we sent it? The client's BLAKE3 check already refuses a mix of
        // old and new bytes; this cheap stat lets it retry at once with a clear reason (re-hashing
        // every byte sent here cost 15-19 % of server CPU: docs/benchmarks.md). A file sent in
        // one turn was read right after the stat taken when it was opened.
        const st = await t.fh.stat()
        if (st.size !== t.entry.size || st.mtimeMs !== t.entry.mtimeMs || st.ino !== t.entry.ino) {
          throw new AssetSyncError('ERR_CHANGED', `${t.path} changed during the transfer; try again`)
        }
        if (t.cancelled) return true
      }
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
    void t.fh.close().catch(() => {})
  }

  #closeAll(): void {
    for (const t of [...this.#transfers.values()]) this.#finish(t)
    this.#queue = []
  }
}
