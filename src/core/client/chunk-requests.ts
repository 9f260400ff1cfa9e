/**
 * The client's side of the `chunks` feature (docs/protocol.md §4.7): CHUNK_LIST (a file's chunk
 * list, received in slices and decoded strictly) and CHUNK_FETCH (chunks by hash, prefetched in
 * order, at most DELTA_FETCH_AHEAD_BYTES ahead of the assembler). Everything a server sends here
 * is checked before it is used; a list or chunk that is not what it claims is ERR_INTEGRITY
 * (exit 6), like a file that fails its hash.
 */
import { AssetSyncError, ProtocolError } from '../../errors.js'
import { DELTA_FETCH_AHEAD_BYTES, DELTA_FETCH_MAX_CHUNKS } from '../../limits.js'
import type { ClientConnection } from '../../protocol/connection.js'
import type { ChunkRef, FileMeta, ReplyMessage } from '../../protocol/messages.js'
import { type ChunkList, decodeChunkList, maxChunkListBytes } from '../delta/chunk-list.js'
import { CODING, decompressChunk } from '../delta/compress.js'
import { equalHash } from '../fs/hash.js'
import { printable } from '../fs/paths.js'

/** The connection operations these requests need. */
export type ChunkConnection = Pick<ClientConnection, 'request' | 'cancel' | 'release' | 'has'>

const integrity = (err: unknown): unknown =>
  err instanceof ProtocolError ? new AssetSyncError('ERR_INTEGRITY', err.message) : err

/** A RESPONSE to a chunk request: only not-found and refused are meaningful. */
function refusal(r: ReplyMessage, server: string, path: string): AssetSyncError {
  if (r.type === 'response' && r.status === 'not-found') return new AssetSyncError('ERR_NOT_FOUND', `not found on ${server}: ${printable(path)}`)
  if (r.type === 'response' && r.status === 'refused') return new AssetSyncError('ERR_PATH_REFUSED', `${server} refused ${printable(path)}: ${r.reason}`)
  return new AssetSyncError('ERR_PROTOCOL', `unexpected ${r.type} in answer to a chunk request`)
}

/** A chunk list answer: the file's meta and its list, or null when the server sends it whole. */
export interface ListedFile {
  meta: FileMeta
  list: ChunkList | null
  /** Encoded list bytes received. */
  wireBytes: number
}

/**
 * Asks for the chunk list of `path` with content `hash` (null: whatever is current). Refuses a
 * list longer than a file of the announced size can have (before buffering it), a meta that
 * changes between slices or is not `hash`/`expectSize`, and any list `decodeChunkList` refuses.
 */
export async function requestChunkList(conn: ChunkConnection, server: string, path: string, hash: Uint8Array | null, expectSize?: number): Promise<ListedFile> {
  let meta: FileMeta | null = null
  let whole = false
  let buf: Buffer | null = null
  let got = 0
  const onReply = (r: ReplyMessage): boolean => {
    if (r.type !== 'chunk-list-reply') throw refusal(r, server, path)
    const m: FileMeta = { hash: Buffer.from(r.hash), size: r.size, mode: r.mode, mtime: r.mtime }
    if (!meta) {
      if (hash && !equalHash(m.hash, hash)) throw new AssetSyncError('ERR_INTEGRITY', `${server} sent the chunk list of other content than asked for ${printable(path)}`)
      if (expectSize !== undefined && m.size !== expectSize) throw new AssetSyncError('ERR_INTEGRITY', `${server} announced ${m.size} bytes for ${printable(path)}, its manifest said ${expectSize}`)
      meta = m
      if (r.whole) { whole = true; return true }
      if (r.total > maxChunkListBytes(m.size)) {
        throw new AssetSyncError('ERR_INTEGRITY', `${server} announced a chunk list of ${r.total} bytes for a file of ${m.size}`)
      }
      buf = Buffer.allocUnsafe(r.total)
    } else if (r.whole || !equalHash(m.hash, meta.hash) || m.size !== meta.size || m.mode !== meta.mode || m.mtime !== meta.mtime || r.total !== buf?.length) {
      throw new AssetSyncError('ERR_INTEGRITY', `${server} changed the chunk list of ${printable(path)} mid-way`)
    }
    const b = buf as Buffer
    if (r.offset !== got) throw new AssetSyncError('ERR_INTEGRITY', `chunk list slice at ${r.offset}, expected ${got}`)
    b.set(r.data, got)
    got += r.data.byteLength
    return got === b.length
  }
  await conn.request((id) => ({ type: 'chunk-list', id, path, hash }), onReply).done
  const m = meta as FileMeta | null
  if (!m) throw new AssetSyncError('ERR_PROTOCOL', `no chunk list reply for ${printable(path)}`)
  if (whole) return { meta: m, list: null, wireBytes: 0 }
  let list: ChunkList
  try {
    list = decodeChunkList(buf as unknown as Buffer, { size: m.size, hash: m.hash })
  } catch (err) {
    throw integrity(err)
  }
  return { meta: m, list, wireBytes: got }
}

interface Slot {
  ref: ChunkRef
  data: Promise<{ coding: number; data: Uint8Array }>
  resolve: (v: { coding: number; data: Uint8Array }) => void
  reject: (err: unknown) => void
}

/**
 * Fetches the chunks `refs` (hash + length, in the order they will be consumed) of the content
 * `fileHash` of `path`, in CHUNK_FETCH requests of at most DELTA_FETCH_MAX_CHUNKS, keeping at most
 * DELTA_FETCH_AHEAD_BYTES requested beyond what `next` has handed out. Received chunks are taken
 * off the flow-control window at once (they are held here, bounded by that cap), so a fallback
 * fetch (`one`) never waits behind prefetched chunks. `next` decodes and returns them in order;
 * the caller verifies their hashes.
 */
export class ChunkFetcher {
  readonly #conn: ChunkConnection
  readonly #server: string
  readonly #path: string
  readonly #fileHash: Uint8Array
  readonly #slots: Slot[]
  readonly #zstd: boolean
  readonly #open = new Set<number>()
  #requested = 0
  #requestedBytes = 0
  #consumed = 0
  #consumedBytes = 0
  #failed: unknown = null
  /** Payload bytes received (as sent: compressed chunks count compressed). */
  wireBytes = 0

  constructor(conn: ChunkConnection, server: string, path: string, fileHash: Uint8Array, refs: readonly ChunkRef[]) {
    this.#conn = conn
    this.#server = server
    this.#path = path
    this.#fileHash = fileHash
    this.#zstd = conn.has('zstd')
    this.#slots = refs.map((ref) => {
      let resolve!: Slot['resolve']
      let reject!: Slot['reject']
      const data = new Promise<{ coding: number; data: Uint8Array }>((res, rej) => { resolve = res; reject = rej })
      data.catch(() => {}) // a failed batch rejects slots nobody may ever ask for
      return { ref, data, resolve, reject }
    })
    this.#pump()
  }

  /** Chunks left to hand out. */
  get remaining(): number { return this.#slots.length - this.#consumed }

  /** The hash of the next chunk `next` returns, or null when all were handed out. */
  peek(): Uint8Array | null { return this.#slots[this.#consumed]?.ref.hash ?? null }

  /** The next chunk's bytes, decoded (the caller checks the hash). */
  async next(): Promise<Uint8Array> {
    const slot = this.#slots[this.#consumed]
    if (!slot) throw new AssetSyncError('ERR_INTERNAL', 'no chunk left to fetch')
    this.#consumed++
    this.#consumedBytes += slot.ref.length
    this.#pump()
    const got = await slot.data
    return this.#decode(got.coding, got.data, slot.ref.length)
  }

  /** One chunk on its own (a local chunk that did not verify). */
  async one(ref: ChunkRef): Promise<Uint8Array> {
    let got: { coding: number; data: Uint8Array } | null = null
    await this.#conn.request((id) => ({ type: 'chunk-fetch', id, path: this.#path, hash: this.#fileHash, chunks: [ref] }), (r) => {
      if (r.type !== 'chunk-data') throw refusal(r, this.#server, this.#path)
      if (r.index !== 0) throw new AssetSyncError('ERR_INTEGRITY', `${this.#server} sent chunk ${r.index} of 1`)
      this.wireBytes += r.data.byteLength
      got = { coding: r.coding, data: Buffer.from(r.data) }
      return true
    }).done
    const g = got as { coding: number; data: Uint8Array } | null
    if (!g) throw new AssetSyncError('ERR_PROTOCOL', 'empty chunk reply')
    return this.#decode(g.coding, g.data, ref.length)
  }

  /** Stops every request still open (after a failure, or when the assembly ended early). */
  cancel(reason: Error): void {
    for (const id of [...this.#open]) this.#conn.cancel(id, reason)
    this.#open.clear()
  }

  #decode(coding: number, data: Uint8Array, length: number): Uint8Array {
    if (coding === CODING.ZSTD && !this.#zstd) throw new AssetSyncError('ERR_INTEGRITY', `${this.#server} sent a compressed chunk without agreeing on zstd`)
    try {
      return decompressChunk(coding, data, length)
    } catch (err) {
      throw integrity(err)
    }
  }

  /** Sends CHUNK_FETCH requests while fewer than DELTA_FETCH_AHEAD_BYTES are requested ahead. */
  #pump(): void {
    while (!this.#failed && this.#requested < this.#slots.length
      && this.#requestedBytes - this.#consumedBytes < DELTA_FETCH_AHEAD_BYTES) {
      const first = this.#requested
      let bytes = 0
      let k = first
      while (k < this.#slots.length && k - first < DELTA_FETCH_MAX_CHUNKS
        && (k === first || bytes + this.#slots[k]!.ref.length <= DELTA_FETCH_AHEAD_BYTES)) bytes += this.#slots[k++]!.ref.length
      this.#requested = k
      this.#requestedBytes += bytes
      this.#send(first, k)
    }
  }

  #send(first: number, end: number): void {
    const slots = this.#slots.slice(first, end)
    let next = 0
    const onReply = (r: ReplyMessage): boolean => {
      if (r.type !== 'chunk-data') throw refusal(r, this.#server, this.#path)
      if (r.index !== next) throw new AssetSyncError('ERR_INTEGRITY', `${this.#server} sent chunk ${r.index}, expected ${next}`)
      this.wireBytes += r.data.byteLength
      // A copy: the frame is not ours to keep; held here (at most DELTA_FETCH_AHEAD_BYTES ahead).
      slots[next++]!.resolve({ coding: r.coding, data: Buffer.from(r.data) })
      return next === slots.length
    }
    let req: { id: number; done: Promise<void> }
    try {
      req = this.#conn.request((id) => ({
        type: 'chunk-fetch', id, path: this.#path, hash: this.#fileHash, chunks: slots.map((s) => s.ref),
      }), onReply)
    } catch (err) {
      this.#fail(err, slots)
      return
    }
    this.#open.add(req.id)
    req.done.then(() => this.#open.delete(req.id), (err: unknown) => {
      this.#open.delete(req.id)
      this.#fail(err, slots.slice(next))
    })
  }

  #fail(err: unknown, slots: Slot[]): void {
    this.#failed ??= err
    for (const s of slots) s.reject(err)
    for (const s of this.#slots.slice(this.#requested)) s.reject(err)
  }
}
