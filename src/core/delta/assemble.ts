/**
 * The assembler: writes a target file, in order, from local reads (copies from sources and read
 * back from the target's own earlier bytes) and fetched chunks, following a `FilePlan`. Every
 * chunk is verified against its BLAKE3 hash before it is written, and the whole file against its
 * hash at the end. A local chunk that does not verify (the file changed since its list was made,
 * or a pending target is not there yet) is fetched instead; a fetched chunk that does not verify
 * is ERR_INTEGRITY. Writing goes through `AssemblyIO.write` only (a temp file): nothing becomes
 * visible unless the caller commits after `assemble` resolves.
 *
 * Writes are sequential, so the integration can wrap an `IncomingFile` (src/core/fs/atomic-file.ts)
 * and prefetch `plan.fetch` in order: `fetch` is then mostly a lookup of a chunk already arriving.
 */
import { type FileHandle, open } from 'node:fs/promises'
import { AssetSyncError } from '../../errors.js'
import { DELTA_READ_BYTES } from '../../limits.js'
import type { IncomingFile } from '../fs/atomic-file.js'
import { createHasher, equalHash, hashBytes } from '../fs/hash.js'
import { FROM_FETCH, FROM_SELF, type FilePlan } from './plan.js'

/** The assembler's only contact with files. */
export interface AssemblyIO {
  /**
   * Up to `length` bytes of a local source at `offset`; fewer (or null) if it is shorter or
   * gone. The bytes are verified, so a stale or missing source only costs a fetch.
   */
  read(source: string, offset: number, length: number): Promise<Uint8Array | null>
  /** Writes target bytes; `offset` is always the number of bytes written so far. */
  write(offset: number, bytes: Uint8Array): Promise<void>
  /** Reads back target bytes already written (for a chunk the target holds twice). */
  readBack(offset: number, length: number): Promise<Uint8Array>
}

/** Fetches one chunk by hash from the server; the assembler verifies what it returns. */
export type FetchChunk = (hash: Buffer, length: number) => Promise<Uint8Array>

export interface AssemblyResult {
  /** Bytes copied from local sources. */
  copiedBytes: number
  /** Bytes read back from earlier in the target. */
  selfBytes: number
  /** Bytes fetched, including fallbacks. */
  fetchedBytes: number
  /** Local chunks that did not verify and were fetched instead. */
  fallbacks: number
}

/** Assembles `plan.target` through `io`; throws ERR_INTEGRITY if a fetched chunk or the whole file is wrong. */
export async function assemble(plan: FilePlan, io: AssemblyIO, fetch: FetchChunk): Promise<AssemblyResult> {
  const { target, from, at, sources } = plan
  const result: AssemblyResult = { copiedBytes: 0, selfBytes: 0, fetchedBytes: 0, fallbacks: 0 }
  const whole = createHasher()
  let written = 0
  const put = async (bytes: Uint8Array): Promise<void> => {
    whole.update(bytes)
    await io.write(written, bytes)
    written += bytes.length
  }
  const fetchVerified = async (i: number): Promise<Uint8Array> => {
    const hash = target.chunkHash(i)
    const len = target.lengths[i]!
    const bytes = await fetch(hash, len)
    if (bytes.length !== len || !equalHash(hashBytes(bytes), hash)) {
      throw new AssetSyncError('ERR_INTEGRITY', `chunk ${i} of ${len} bytes at ${target.offsets[i]} does not match its BLAKE3 hash`)
    }
    result.fetchedBytes += len
    return bytes
  }
  /** A local chunk if it verifies, else the fetched one. */
  const local = async (i: number, bytes: Uint8Array | null): Promise<Uint8Array> => {
    const len = target.lengths[i]!
    if (bytes && bytes.length === len && equalHash(hashBytes(bytes), target.chunkHash(i))) return bytes
    result.fallbacks++
    return fetchVerified(i)
  }
  try {
    const n = target.count
    for (let i = 0; i < n;) {
      const src = from[i]!
      if (src === FROM_FETCH) {
        await put(await fetchVerified(i++))
      } else if (src === FROM_SELF) {
        const len = target.lengths[i]!
        const before = result.fallbacks
        await put(await local(i, await io.readBack(at[i]!, len)))
        if (result.fallbacks === before) result.selfBytes += len
        i++
      } else {
        // A run of chunks contiguous in one source: one read of up to DELTA_READ_BYTES.
        let k = i + 1
        let runBytes = target.lengths[i]!
        while (k < n && from[k] === src && at[k] === at[k - 1]! + target.lengths[k - 1]!
          && runBytes + target.lengths[k]! <= DELTA_READ_BYTES) runBytes += target.lengths[k++]!
        const got = await io.read(sources[src]!.path, at[i]!, runBytes)
        for (let off = 0; i < k; i++) {
          const len = target.lengths[i]!
          const slice = got && got.length >= off + len ? got.subarray(off, off + len) : null
          const before = result.fallbacks
          await put(await local(i, slice))
          if (result.fallbacks === before) result.copiedBytes += len
          off += len
        }
      }
    }
    if (written !== target.size || !equalHash(whole.digest(), target.hash)) {
      throw new AssetSyncError('ERR_INTEGRITY', `assembled file (${written}/${target.size} bytes) does not match its BLAKE3 hash`)
    }
    return result
  } finally {
    whole.digest()
  }
}

/**
 * An `AssemblyIO` over real files: writes go to `file` (an `IncomingFile`: a temp file, verified
 * again and renamed by its `commit`), reads open each source once (`resolve` maps a source name
 * to a file-system path). Call `close` when done, whatever the outcome.
 */
export function incomingFileIO(file: IncomingFile, resolve: (source: string) => string = (s) => s): AssemblyIO & { close(): Promise<void> } {
  const handles = new Map<string, Promise<FileHandle | null>>()
  const readAt = async (path: string, offset: number, length: number): Promise<Uint8Array | null> => {
    let h = handles.get(path)
    if (!h) handles.set(path, (h = open(path, 'r').catch(() => null)))
    const fh = await h
    if (!fh) return null
    const buf = Buffer.allocUnsafe(length)
    let got = 0
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got)
      if (bytesRead === 0) break
      got += bytesRead
    }
    return buf.subarray(0, got)
  }
  return {
    read: (source, offset, length) => readAt(resolve(source), offset, length).catch(() => null),
    async write(offset, bytes) {
      if (offset !== file.written) throw new AssetSyncError('ERR_INTERNAL', `out-of-order write at ${offset} (${file.written} written)`)
      await file.write(bytes)
    },
    async readBack(offset, length) {
      return (await readAt(file.tempPath, offset, length)) ?? new Uint8Array(0)
    },
    async close() {
      const all = [...handles.values()]
      handles.clear()
      for (const h of all) await (await h)?.close().catch(() => {})
    },
  }
}
