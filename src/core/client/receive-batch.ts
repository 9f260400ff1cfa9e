/**
 * The client's receive loop for one BATCH (feature `batch-request`, issue 15): one request for
 * many small files, answered by BATCH_DATA frames whose answers come in the order asked, each file
 * whole. Every file is checked (size and BLAKE3) before the handler sees it, so a handler only
 * ever gets verified bytes; one that fails its hash is handed over as `alone` (the caller fetches
 * it with a REQUEST, which retries, and the server re-hashes it: docs/protocol.md §4.5).
 *
 * The handler runs inside the frame's delivery and should be synchronous (write the file at once):
 * its bytes stay charged to flow control until it returns. A handler that throws ends the batch:
 * the request is cancelled (the server stops) and the batch rejects with that error.
 */
import { AssetSyncError } from '../../errors.js'
import type { ClientConnection } from '../../protocol/connection.js'
import type { BatchItem, FileMeta, ReplyMessage } from '../../protocol/messages.js'
import { equalHash, hashBytes } from '../fs/hash.js'

/** What became of one item of a batch. */
export type BatchResult =
  | { status: 'file'; meta: FileMeta; data: Uint8Array }
  | { status: 'up-to-date' | 'not-found' | 'refused' | 'alone'; reason: string }

/** The connection operations the loop needs. */
export type BatchConnection = Pick<ClientConnection, 'request'>

/**
 * Sends one BATCH of `items` (at most BATCH_MAX_FILES) and calls `onItem(index, result)` for each
 * item, in order, as its answer arrives. Resolves once every item was answered; rejects with
 * ERR_PROTOCOL for a server that answers out of turn, and with whatever `onItem` throws.
 */
export function receiveBatch(
  conn: BatchConnection, items: BatchItem[], onItem: (index: number, result: BatchResult) => void,
): Promise<void> {
  let next = 0
  const onReply = (r: ReplyMessage): boolean => {
    if (r.type !== 'batch-data') throw new AssetSyncError('ERR_PROTOCOL', `unexpected ${r.type} during a batch`)
    if (next + r.answers.length > items.length) throw new AssetSyncError('ERR_PROTOCOL', `batch of ${items.length} got more answers`)
    for (const a of r.answers) {
      const i = next++
      if (a.status !== 'file') {
        onItem(i, { status: a.status, reason: a.reason })
        continue
      }
      const meta: FileMeta = { hash: Buffer.from(a.hash), size: a.size, mode: a.mode, mtime: a.mtime }
      if (a.data.byteLength !== a.size || !equalHash(hashBytes(a.data), a.hash)) {
        onItem(i, { status: 'alone', reason: 'received content does not match its BLAKE3 hash' })
        continue
      }
      onItem(i, { status: 'file', meta, data: a.data })
    }
    if (r.final && next !== items.length) throw new AssetSyncError('ERR_PROTOCOL', `batch of ${items.length} ended after ${next} answers`)
    return r.final
  }
  return conn.request((id) => ({ type: 'batch', id, items }), onReply).done
}
