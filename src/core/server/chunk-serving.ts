/**
 * What a session needs to serve the `chunks` feature (docs/delta.md, docs/protocol.md §4.7): the
 * answer to CHUNK_LIST (a list, or "whole" when the server offers none for a file) and the
 * lookup of the chunks a CHUNK_FETCH names (by chunk hash, in that file's list). The sending
 * itself is the session's round-robin pump, like any transfer.
 */
import { AssetSyncError } from '../../errors.js'
import { DELTA_MAX_LIST_CHUNKS, DELTA_MIN_CHUNK_BYTES, MAX_FRAME_BYTES } from '../../limits.js'
import type { ChunkRef, ManifestEntry } from '../../protocol/messages.js'
import { type ChunkList, encodeChunkList, hashKey } from '../delta/chunk-list.js'
import type { AssetSource } from './source.js'

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
