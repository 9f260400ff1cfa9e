/**
 * The client's receive loop for one file: REQUEST → RESPONSE (the sink is opened with the file's
 * meta) → CHUNKs in order (each handed to the sink; its flow-control credit released once the
 * sink has consumed it) → the sink's commit, which verifies the BLAKE3 hash. Any failure, local
 * (open, write: disk full) or remote, discards the sink and cancels the request, so the server
 * stops sending and nothing half-received survives. What happens to the bytes is the sink's
 * business (file-sink.ts); this loop only moves them.
 */
import { AssetSyncError, ProtocolError } from '../../errors.js'
import { CHUNK_SIZE } from '../../limits.js'
import type { ClientConnection } from '../../protocol/connection.js'
import type { FileMeta, ReplyMessage, RequestPriority } from '../../protocol/messages.js'
import { CODING, decompressChunk } from '../delta/compress.js'
import { printable } from '../fs/paths.js'
import type { FileSink, SinkFactory } from './file-sink.js'

/** The connection operations the loop needs. */
export type ReceiveConnection = Pick<ClientConnection, 'request' | 'cancel' | 'release' | 'has'>

/** Options of one request. */
export interface ReceiveOptions {
  /**
   * Its priority class, sent when the server agreed to the `priority` feature (docs/protocol.md
   * §4.2, PRIORITY_REQUEST); otherwise a plain REQUEST, which the server serves as `normal`.
   */
  priority?: RequestPriority
  /** Called with the request id once the request is sent (to reprioritize it later). */
  onRequest?: (id: number) => void
}

/**
 * How one request ended: the server said the local copy is current, or the file was received.
 * `bytes`: payload bytes received on the wire (compressed chunks count as sent); `reused`: bytes
 * taken from local files instead (delta transfers: delta-download.ts; 0 here).
 */
export type Received<T> =
  | { status: 'up-to-date'; meta: null; bytes: 0; reused: 0 }
  | { status: 'downloaded'; meta: FileMeta; bytes: number; reused: number; result: T }

/** A received zstd frame that is not what it claims (a bomb, garbage): the server's bytes are bad. */
export function decodeZ(data: Uint8Array, length: number, maxBytes = CHUNK_SIZE): Uint8Array {
  try {
    return decompressChunk(CODING.ZSTD, data, length, maxBytes)
  } catch (err) {
    if (err instanceof ProtocolError) throw new AssetSyncError('ERR_INTEGRITY', err.message)
    throw err
  }
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)))

/**
 * Requests `path` on `conn` and feeds the file to a sink from `open`. With `haveHash` the server
 * answers up-to-date instead of sending the bytes. Throws ERR_NOT_FOUND / ERR_PATH_REFUSED for
 * what the server refuses (naming `server`), ERR_INTEGRITY for bytes that fail their hash, and
 * whatever the sink or the connection fails with.
 */
export function receiveFile<T>(
  conn: ReceiveConnection, server: string, path: string, haveHash: Uint8Array | null, open: SinkFactory<T>, opts: ReceiveOptions = {},
): Promise<Received<T>> {
  let sink: Promise<FileSink<T>> | null = null
  /** The sink's pending work (open, then each write in order): one link per CHUNK. */
  let chain: Promise<unknown> = Promise.resolve()
  let meta: FileMeta | null = null
  let received = 0
  let wire = 0
  // A local failure (open or write: disk full, permissions, a size cap) ends the request at once:
  // the server stops sending, and the error reaches the caller now, not after the last chunk.
  // This also handles the rejection right away; left alone until the transfer ended, it crashed
  // the process as an unhandled rejection (exit 1) whenever chunks were still arriving.
  const fail = (err: unknown): void => { conn.cancel(req.id, asError(err)) }
  const onReply = (r: ReplyMessage): boolean => {
    if (r.type === 'response') {
      if (meta) throw new AssetSyncError('ERR_PROTOCOL', 'second RESPONSE for one request')
      if (r.status !== 'file') {
        if (r.status === 'up-to-date') return true
        if (r.status === 'not-found') throw new AssetSyncError('ERR_NOT_FOUND', `not found on ${server}: ${printable(path)}`)
        throw new AssetSyncError('ERR_PATH_REFUSED', `${server} refused ${printable(path)}: ${r.reason}`)
      }
      const m: FileMeta = { hash: Buffer.from(r.hash), size: r.size, mode: r.mode, mtime: r.mtime }
      meta = m
      // A factory that throws at once (a size cap) fails this reply: the connection cancels.
      sink = Promise.resolve(open(m, path))
      sink.catch(fail)
      chain = sink
      return false
    }
    if ((r.type !== 'chunk' && r.type !== 'chunk-z') || !sink) throw new AssetSyncError('ERR_PROTOCOL', `unexpected ${r.type} during a transfer`)
    if (r.offset !== received) throw new AssetSyncError('ERR_PROTOCOL', `chunk at ${r.offset}, expected ${received}`)
    const offset = received
    const data = r.data
    // CHUNK_Z: `length` bytes once decoded (checked before decoding: no bombs, docs/delta.md §5).
    const length = r.type === 'chunk-z' ? r.length : data.byteLength
    const z = r.type === 'chunk-z'
    received += length
    wire += data.byteLength
    const s = sink
    // The bytes stay charged to the flow-control window until the sink has them (on disk, in the
    // buffer): the server cannot run more than FLOW_WINDOW_BYTES ahead of a slow disk.
    chain = chain.then(async () => (await s).write(z ? decodeZ(data, length) : data, offset)).finally(() => conn.release(data.byteLength))
    chain.catch(fail)
    return r.final
  }
  const priority = opts.priority !== undefined && opts.priority !== 'normal' && conn.has('priority') ? opts.priority : null
  const req = conn.request((id) => (priority === null
    ? { type: 'request', id, path, haveHash }
    : { type: 'priority-request', id, priority, path, haveHash }), onReply, { holdChunks: true })
  opts.onRequest?.(req.id)
  return req.done.then(
    async (): Promise<Received<T>> => {
      if (!sink || !meta) return { status: 'up-to-date', meta: null, bytes: 0, reused: 0 }
      const s = await sink
      try {
        await chain
      } catch (err) {
        await s.discard()
        throw err
      }
      return { status: 'downloaded', meta, bytes: wire, reused: 0, result: await s.commit() }
    },
    async (err: unknown) => {
      // Wait for queued writes, then drop what the sink holds: nothing half-written survives.
      await chain.catch(() => {})
      if (sink) await (await (sink as Promise<FileSink<T>>).catch(() => null))?.discard()
      throw err
    },
  )
}
