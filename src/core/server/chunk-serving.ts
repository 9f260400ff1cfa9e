/**
 * What a session needs to serve the `chunks` and `zstd` features (docs/delta.md, docs/protocol.md
 * §4.9): the answer to CHUNK_LIST (a list in slices, or "whole" when the server offers none for a
 * file), the lookup of the chunks a CHUNK_FETCH names (by chunk hash, in that file's list), one
 * turn of CHUNK_DATA frames, and a REQUEST's piece as CHUNK or CHUNK_Z. The order of turns is the
 * session's pump, like any transfer's.
 */
import { AssetSyncError } from '../../errors.js'
import { DELTA_MAX_LIST_CHUNKS, DELTA_MIN_CHUNK_BYTES, MAX_FRAME_BYTES, SERVER_READ_BYTES, ZSTD_RETRY_BYTES } from '../../limits.js'
import type { ChunkFetchMsg, ChunkListMsg, ChunkRef, ManifestEntry, ServerMessage } from '../../protocol/messages.js'
import { type ChunkList, encodeChunkList, hashKey } from '../delta/chunk-list.js'
import { CODING, compressChunk } from '../delta/compress.js'
import { equalHash } from '../fs/hash.js'
import type { BufferPool } from '../fs/pool.js'
import type { SessionConnection } from './session-types.js'
import type { AssetSource, SourceReader } from './source.js'

/**
 * Encoded list bytes per CHUNK_LIST_REPLY frame. Half a frame: the reply's fixed fields are 66
 * bytes, and a 64 MiB file's whole list (~30 KiB) fits in one frame anyway.
 */
export const LIST_SLICE_BYTES = MAX_FRAME_BYTES / 2

/** The answer to a CHUNK_LIST, before it is sliced into frames. */
export type ListAnswer =
  | { kind: 'not-found' }
  | { kind: 'whole'; entry: ManifestEntry }
  | { kind: 'list'; entry: ManifestEntry; bytes: Buffer }

/**
 * Files the server sends whole instead of listing: one chunk at most (nothing to reuse), or so
 * large that their list could exceed DELTA_MAX_LIST_CHUNKS (whatever their content).
 */
export function listDeclined(size: number): boolean {
  return size <= DELTA_MIN_CHUNK_BYTES || size > DELTA_MAX_LIST_CHUNKS * DELTA_MIN_CHUNK_BYTES
}

/** Answers CHUNK_LIST for `path` (a checked wire path) from `source`. */
export async function answerChunkList(source: AssetSource, path: string, hash: Uint8Array | null): Promise<ListAnswer> {
  if (!source.chunkList) {
    const entry = await source.get(path)
    return entry ? { kind: 'whole', entry } : { kind: 'not-found' }
  }
  if (hash === null) {
    // Decide "whole" before chunking anything (no entry: chunkList says not-found or refused).
    const entry = await source.get(path)
    if (entry && listDeclined(entry.size)) return { kind: 'whole', entry }
  }
  const chunked = await source.chunkList(path, hash)
  if (!chunked) return { kind: 'not-found' }
  if (listDeclined(chunked.entry.size) || chunked.list.count > DELTA_MAX_LIST_CHUNKS) return { kind: 'whole', entry: chunked.entry }
  return { kind: 'list', entry: chunked.entry, bytes: encodeChunkList(chunked.list) }
}

/** Where the chunks of one CHUNK_FETCH are in the file: offsets and lengths, in request order. */
export interface ChunkPlacement {
  offsets: number[]
  lengths: number[]
  hashes: Uint8Array[]
  bytes: number
}

/** Chunk hash → index maps of recently served lists (one per file content), per session. */
export class ChunkLocator {
  readonly #maps = new Map<ChunkList, Map<string, number>>()

  /**
   * Finds each requested chunk in `list`: ERR_NOT_FOUND for a hash the list does not have or a
   * length that is not that chunk's (a client bug or a stale list: it refetches the file).
   */
  place(list: ChunkList, chunks: readonly ChunkRef[]): ChunkPlacement {
    let map = this.#maps.get(list)
    if (!map) {
      map = new Map()
      for (let i = list.count - 1; i >= 0; i--) map.set(list.chunkKey(i), i)
      if (this.#maps.size >= 4) this.#maps.delete(this.#maps.keys().next().value as ChunkList)
      this.#maps.set(list, map)
    }
    const out: ChunkPlacement = { offsets: [], lengths: [], hashes: [], bytes: 0 }
    for (const c of chunks) {
      const i = map.get(hashKey(c.hash))
      if (i === undefined || list.lengths[i] !== c.length) {
        throw new AssetSyncError('ERR_NOT_FOUND', `no chunk of ${c.length} bytes with that hash in this file`)
      }
      out.offsets.push(list.offsets[i]!)
      out.lengths.push(c.length)
      out.hashes.push(c.hash)
      out.bytes += c.length
    }
    return out
  }
}

/** The chunks of one CHUNK_FETCH still to send (the session's transfer holds one). */
export class ChunkTransfer {
  readonly placed: ChunkPlacement
  /** Index of the next chunk to send. */
  next = 0

  constructor(placed: ChunkPlacement) { this.placed = placed }

  /** Bytes of the next turn: whole chunks up to SERVER_READ_BYTES, at least one (≤ DELTA_MAX_CHUNK_BYTES). */
  turnBytes(): number {
    const { lengths } = this.placed
    let want = lengths[this.next]!
    for (let k = this.next + 1; k < lengths.length && want + lengths[k]! <= SERVER_READ_BYTES; k++) want += lengths[k]!
    return want
  }
}

const notFound = (conn: SessionConnection, id: number, path: string): null => {
  conn.send({ type: 'response', id, status: 'not-found', reason: `not found: ${path}` })
  return null
}

/** Answers CHUNK_LIST (a checked wire path): RESPONSE not-found, "whole", or the list in slices. */
export async function sendChunkList(conn: SessionConnection, source: AssetSource, msg: ChunkListMsg): Promise<void> {
  const { id, path } = msg
  const answer = await answerChunkList(source, path, msg.hash)
  if (conn.closed) return
  if (answer.kind === 'not-found') return void notFound(conn, id, path)
  const { hash, size, mode, mtime } = answer.entry
  const meta = { type: 'chunk-list-reply', id, hash, size, mode, mtime } as const
  if (answer.kind === 'whole') {
    conn.send({ ...meta, whole: true, total: 0, offset: 0, data: new Uint8Array(0) })
    return
  }
  const bytes = answer.bytes
  for (let at = 0; at < bytes.length && !conn.closed; at += LIST_SLICE_BYTES) {
    const data = bytes.subarray(at, Math.min(at + LIST_SLICE_BYTES, bytes.length))
    if (!conn.send({ ...meta, whole: false, total: bytes.length, offset: at, data })) await conn.drained()
  }
}

/**
 * Opens a CHUNK_FETCH (a checked wire path): finds its chunks in the file's list and opens the
 * file, or answers (not-found; ERR_CHANGED and ERR_NOT_FOUND are thrown) and returns null.
 */
export async function openChunkFetch(conn: SessionConnection, source: AssetSource, locator: ChunkLocator, msg: ChunkFetchMsg):
  Promise<{ reader: SourceReader; size: number; chunks: ChunkTransfer } | null> {
  const { id, path } = msg
  if (!source.chunkList) throw new AssetSyncError('ERR_NOT_FOUND', `${source.description} serves no chunk lists`)
  const chunked = await source.chunkList(path, msg.hash)
  if (!chunked) return notFound(conn, id, path)
  const placed = locator.place(chunked.list, msg.chunks)
  const reader = await source.open(path)
  if (!reader) return notFound(conn, id, path)
  if (conn.closed || !equalHash(reader.entry.hash, msg.hash)) {
    void reader.close()
    if (conn.closed) return null
    throw new AssetSyncError('ERR_CHANGED', `${path} changed; try again`)
  }
  return { reader, size: placed.bytes, chunks: new ChunkTransfer(placed) }
}

/** What a chunk turn needs of the session's transfer. */
export interface ChunkTurnOwner {
  id: number
  path: string
  reader: SourceReader
  cancelled(): boolean
}

/**
 * Sends the next chunks of a CHUNK_FETCH (`want` bytes of them, read into one shared buffer: from
 * the source's chunk store if it has one, else the file's range) as CHUNK_DATA, compressed when
 * `zstd` was agreed and it pays. Returns send()'s verdict.
 */
export async function sendChunkTurn(conn: SessionConnection, source: AssetSource, buffers: BufferPool, t: ChunkTurnOwner, c: ChunkTransfer, want: number): Promise<boolean> {
  const { offsets, lengths, hashes } = c.placed
  const buf = await buffers.acquire()
  try {
    const first = c.next
    let k = first
    for (let at = 0; at < want; k++) {
      const len = lengths[k]!
      const stored = source.readChunk ? await source.readChunk(hashes[k]!, len) : null
      if (stored && stored.byteLength === len) buf.set(stored, at)
      else await t.reader.read(buf.subarray(at, at + len), offsets[k]!, len)
      at += len
    }
    c.next = k
    if (t.cancelled()) return true
    // The credit was there before the reads, but a BATCH answered meanwhile may have spent it:
    // wait again, with no await between this check and the sends (compression only shrinks).
    while (conn.credit < want) await conn.credited(want)
    if (t.cancelled()) return true
    const zstd = conn.has?.('zstd') ?? false
    let ok = true
    for (let i = first, off = 0; i < k; i++) {
      const data = buf.subarray(off, off + lengths[i]!)
      off += lengths[i]!
      const enc = zstd ? compressChunk(data, t.path) : { coding: CODING.RAW, data }
      ok = conn.send({ type: 'chunk-data', id: t.id, index: i, coding: enc.coding, data: enc.data })
    }
    return ok
  } finally {
    buffers.release(buf)
  }
}

/** Per transfer: bytes left to send raw without trying (see ZSTD_RETRY_BYTES). */
export interface PieceState { skip: number }

/** A REQUEST's piece at `offset`: CHUNK_Z when `zstd` was agreed and it compresses, else CHUNK. */
export function pieceFrame(id: number, path: string, offset: number, final: boolean, data: Uint8Array, zstd: boolean, state: PieceState): ServerMessage {
  let enc = null
  if (zstd && state.skip > 0) state.skip -= data.byteLength
  else if (zstd) {
    enc = compressChunk(data, path)
    if (enc.coding !== CODING.ZSTD) state.skip = ZSTD_RETRY_BYTES - data.byteLength
  }
  return enc && enc.coding === CODING.ZSTD
    ? { type: 'chunk-z', id, offset, final, length: data.byteLength, data: enc.data }
    : { type: 'chunk', id, offset, final, data }
}
