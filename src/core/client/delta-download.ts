/**
 * Getting one file to a local path while sending only what changed (issue 16, docs/delta.md): the
 * one download path of `pull`, `watch` and `get -o`. In this order:
 *
 * 1. **Local copy**: another local file already has the content (the mirror's hash cache knows
 *    it: a rename, a copy): copied and verified, nothing crosses the wire.
 * 2. **Delta**: the server agreed on `chunks`, the file is large (DELTA_MIN_FILE_BYTES) and a local
 *    version of it exists (the old file at its path, or a staged part of an interrupted
 *    download): CHUNK_LIST, plan against every local source of the sync (old versions, staged
 *    parts, cached lists of other local files, files assembled earlier in the sync), fetch only
 *    the missing chunks (each once), assemble and verify every chunk and the whole file.
 * 3. **Whole**: REQUEST through the receive loop (receive.ts), with CHUNK_Z when `zstd` was
 *    agreed. A protocol-2 server always gets this.
 *
 * Large downloads (DELTA_STAGE_MIN_BYTES) write to the path's staging name (delta/staging.ts)
 * instead of a fresh temp name, so an interrupted one, even by kill -9, leaves its bytes for the
 * next attempt, which offers them to the planner and fetches only the rest. Nothing becomes
 * visible before the whole-file BLAKE3 matches.
 */
import { type Stats, lstatSync } from 'node:fs'
import { open, rename } from 'node:fs/promises'
import { AssetSyncError, isRetryable } from '../../errors.js'
import {
  DELTA_LIST_SOURCE_CHUNKS, DELTA_MIN_CHUNK_BYTES, DELTA_MIN_FILE_BYTES, DELTA_READ_BYTES, DELTA_STAGE_MIN_BYTES, DOWNLOAD_ATTEMPTS,
} from '../../limits.js'
import type { ChunkRef, FileMeta } from '../../protocol/messages.js'
import { assemble, incomingFileIO } from '../delta/assemble.js'
import { type ChunkList, chunkFile } from '../delta/chunk-list.js'
import type { ChunkListCache } from '../delta/list-cache.js'
import { ChunkIndex, type ChunkSource, planFile } from '../delta/plan.js'
import { discardStaged, stagedSource, stagingPathFor } from '../delta/staging.js'
import { IncomingFile } from '../fs/atomic-file.js'
import { keepingParts } from '../fs/atomic-write.js'
import { equalHash } from '../fs/hash.js'
import { ChunkFetcher, type ChunkConnection, type ListedFile, requestChunkList } from './chunk-requests.js'
import type { ReceiveConnection, ReceiveOptions } from './receive.js'
import { receiveFile } from './receive.js'
import { aheadTemp, dropAhead, fileSink } from './temp-file-sink.js'

/** What a download needs of the client: its connection and the server's name (for messages). */
export interface DownloadClient {
  readonly conn: ChunkConnection & ReceiveConnection & { readonly closed: boolean }
  readonly server: string
}

/** A local file the planner may take chunks from, found by the context's owner (the mirror). */
export interface LocalFile {
  /** Its file-system path. */
  path: string
  /** Its wire path, to key the chunk-list cache (null: not in the mirror). */
  wire: string | null
  st: Stats
}

/** What one sync (a pull, a watch batch) shares between its downloads. */
export interface DeltaContextOptions {
  /** The mirror's chunk-list cache (wire path + stamp → list); null: lists are computed each time. */
  lists?: ChunkListCache | null
  /** A local file whose content has this BLAKE3 (a copy or a rename's source), or null. */
  copyOf?: (hash: Uint8Array, exceptWire: string) => LocalFile | null
  /** Other local files whose lists are cached, as extra chunk sources (at most DELTA_LIST_SOURCE_CHUNKS chunks). */
  cachedSources?: () => ChunkSource[]
}

/**
 * Shared by the downloads of one sync: one chunk index (so a chunk that a file assembled earlier
 * in the sync has is read locally, not fetched again: dedup), and a lock that runs the delta
 * assemblies one at a time (their prefetches then never wait on each other).
 */
export class DeltaContext {
  readonly index = new ChunkIndex()
  readonly opts: DeltaContextOptions
  #lock: Promise<unknown> = Promise.resolve()
  #cachedAdded = false
  /** A staged target's temp path → where it is now (installed). */
  readonly #moved = new Map<string, string>()

  constructor(opts: DeltaContextOptions = {}) { this.opts = opts }

  /** Runs `fn` after every delta assembly queued before it. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn)
    this.#lock = run.catch(() => {})
    return run
  }

  /** Adds the cached lists of other local files to the index, once. */
  addCachedSources(): void {
    if (this.#cachedAdded) return
    this.#cachedAdded = true
    let chunks = 0
    for (const s of this.opts.cachedSources?.() ?? []) {
      if ((chunks += s.list.count) > DELTA_LIST_SOURCE_CHUNKS) break
      this.index.add(s)
    }
  }

  /** A staged file was installed: later reads of it go to its final path. */
  installed(temp: string, final: string): void {
    this.#moved.set(temp, final)
  }

  /** Where a source's bytes are now. */
  resolve = (path: string): string => this.#moved.get(path) ?? path
}

/** One file to bring to `final`. */
export interface FetchTarget {
  wire: string
  /** The resolved, checked local path. */
  final: string
  /** What the file should become (a manifest or UPDATE entry); null: whatever the server has now. */
  meta: FileMeta | null
  /** The hash of the file at `final` if known (the server answers up-to-date to it). */
  have: Buffer | null
  /** Keep the verified file at its temp path (the caller installs it); else renamed into place. */
  stage: boolean
  /** Options of a whole-file REQUEST (its priority class, feature `priority`; see ReceiveOptions). */
  receive?: ReceiveOptions
}

/** A file brought in (verified). */
export interface FetchedFile {
  /** Where it is: the temp path if staged, else the final path. */
  temp: string
  final: string
  installed: boolean
  meta: FileMeta
  /** Payload bytes received on the wire (list and chunks as sent). */
  bytes: number
  /** Bytes taken from local files instead. */
  reused: number
  /** Its chunk list, when it was assembled from one (the mirror caches it). */
  list: ChunkList | null
  how: 'copy' | 'delta' | 'whole'
}

/**
 * The regular file at `path`, or null. Synchronous: an lstat is microseconds, while an async one
 * waits for the event loop to come round, which under a bulk download on the same connection
 * is ~0.5 ms a call, and a program's blocking `require` made three of them before it asked.
 */
const statFile = (path: string): Stats | null => {
  try {
    const st = lstatSync(path, { throwIfNoEntry: false })
    return st?.isFile() ? st : null
  } catch {
    return null
  }
}

/**
 * Brings `t` to its final path (or a verified temp file, staged): local copy, delta or whole, as
 * described above. Null when the server says the local file is current.
 */
export async function fetchFile(client: DownloadClient, t: FetchTarget, ctx: DeltaContext = new DeltaContext()): Promise<FetchedFile | null> {
  if (t.meta && ctx.opts.copyOf) {
    const src = ctx.opts.copyOf(t.meta.hash, t.wire)
    if (src) {
      const copied = await copyLocal(src.path, t, t.meta)
      if (copied) return copied
    }
  }
  const large = !t.meta || t.meta.size >= DELTA_STAGE_MIN_BYTES
  const staging = large ? stagingPathFor(t.final, t.wire) : null
  const previous = large ? stagingPathFor(t.final, t.wire, true) : null
  // An earlier attempt's part moves aside (replacing an older one): it is read while this attempt writes.
  if (staging && previous && statFile(staging)) await rename(staging, previous).catch(() => {})
  const delta = client.conn.has('chunks') && (!t.meta || t.meta.size >= DELTA_MIN_FILE_BYTES)
  // What is at the final path now: the old version for delta, or nothing (a temp file is made ahead).
  const old = delta || (!t.meta && !t.have) ? statFile(t.final) : null
  if (delta) {
    const part = previous ? statFile(previous) : null
    if ((old && old.size >= DELTA_MIN_CHUNK_BYTES && !equalHash(t.have, t.meta?.hash)) || part) {
      // The list and the old version's list are fetched and computed in parallel with other
      // files; planning and assembly then run one file at a time (see DeltaContext).
      const [listed, oldList, partList] = await Promise.all([
        requestChunkList(client.conn, client.server, t.wire, t.meta?.hash ?? null, t.meta?.size),
        oldSource(t, ctx, old),
        part && previous ? stagedSource(previous) : Promise.resolve(null),
      ])
      // Asked without a manifest entry (get -o, a program's fetch) while holding the current content.
      if (t.have && equalHash(listed.meta.hash, t.have)) {
        if (previous) await discardStaged(previous)
        return null
      }
      const done = listed.list ? await ctx.serial(() => fetchDelta(client, t, ctx, { ...listed, list: listed.list as ChunkList }, oldList, partList, staging, previous)) : null
      if (done) return done
    }
  }
  // Nothing local and no listing (get, a program's fetch): the file is all but sure to come, and
  // its temp file is made while the request is on the wire.
  const ahead = !t.meta && !t.have && !old ? aheadTemp(t.final) : null
  let r
  try {
    r = await receiveFile(client.conn, client.server, t.wire, t.have, fileSink(t.final, { stage: t.stage, stagingPath: staging, label: t.wire, ahead }), t.receive)
  } finally {
    await dropAhead(ahead)
  }
  if (r.status === 'up-to-date') return null
  if (previous) await discardStaged(previous)
  return {
    temp: r.result.tempPath, final: t.final, installed: r.result.installed, meta: r.meta, bytes: r.bytes, reused: 0, list: null, how: 'whole',
  }
}

/**
 * `fetchFile`, again on the same connection after ERR_CHANGED or ERR_INTEGRITY (the file changed
 * on the server mid-transfer, or bytes failed their hash), DOWNLOAD_ATTEMPTS in all, as
 * `AssetClient.download` does (see ERROR_RECOVERY).
 */
export async function fetchFileRetrying(client: DownloadClient, t: FetchTarget, ctx?: DeltaContext): Promise<FetchedFile | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetchFile(client, t, ctx)
    } catch (err) {
      if (!isRetryable(err) || attempt >= DOWNLOAD_ATTEMPTS || client.conn.closed) throw err
    }
  }
}

/** The old version at `final` as a chunk source: its list from the cache, or chunked now. */
async function oldSource(t: FetchTarget, ctx: DeltaContext, st: Stats | null): Promise<ChunkSource | null> {
  if (!st) return null
  const lists = ctx.opts.lists
  let list = lists?.lookup(t.wire, st) ?? null
  if (!list) {
    list = await chunkFile(t.final).catch(() => null)
    if (!list) return null
    if (list.size === st.size) lists?.set(t.wire, st, list)
  }
  return { path: t.final, list }
}

/** The delta path, once the file's list is here: plan against the context's sources, fetch, assemble. */
async function fetchDelta(client: DownloadClient, t: FetchTarget, ctx: DeltaContext, listed: ListedFile & { list: ChunkList },
  old: ChunkSource | null, part: ChunkSource | null, staging: string | null, previous: string | null): Promise<FetchedFile> {
  const target = listed.list
  const meta = listed.meta
  if (part) ctx.index.add(part)
  ctx.addCachedSources()
  const plan = planFile(target, ctx.index, old ?? undefined)
  const refs: ChunkRef[] = Array.from(plan.fetch, (i) => ({ hash: target.chunkHash(i), length: target.lengths[i]! }))
  // The temp file first: a full disk or a read-only folder fails before any chunk is asked for.
  const file = await IncomingFile.create(t.final, meta, t.wire, { tempPath: meta.size >= DELTA_STAGE_MIN_BYTES ? staging ?? undefined : undefined })
  const fetcher = new ChunkFetcher(client.conn, client.server, t.wire, meta.hash, refs)
  const io = incomingFileIO(file, ctx.resolve)
  let result
  try {
    result = await assemble(plan, io, (hash, length) => {
      const next = fetcher.peek()
      return next && equalHash(next, hash) ? fetcher.next() : fetcher.one({ hash, length })
    })
  } catch (err) {
    fetcher.cancel(err instanceof Error ? err : new Error(String(err)))
    await io.close()
    // A part written to the staging name is kept for the next attempt (it holds the earlier part's
    // chunks too), unless the user is stopping the process: then this part goes, the earlier stays.
    const keep = staging !== null && file.tempPath === staging && file.written >= DELTA_STAGE_MIN_BYTES && keepingParts()
    await file.discard(keep)
    if (keep && previous) await discardStaged(previous)
    throw err
  }
  await io.close()
  await file.commit(!t.stage)
  if (previous) await discardStaged(previous)
  const where = t.stage ? file.tempPath : t.final
  ctx.index.add({ path: where, list: target })
  return {
    temp: where, final: t.final, installed: !t.stage, meta,
    bytes: listed.wireBytes + fetcher.wireBytes, reused: result.copiedBytes + result.selfBytes, list: target, how: 'delta',
  }
}

/** Copies a local file with the wanted content (verified like a download); null if it did not match. */
async function copyLocal(src: string, t: FetchTarget, meta: FileMeta): Promise<FetchedFile | null> {
  const file = await IncomingFile.create(t.final, meta, t.wire)
  try {
    const fh = await open(src, 'r')
    try {
      const buf = Buffer.allocUnsafe(Math.min(DELTA_READ_BYTES, Math.max(1, meta.size)))
      for (let pos = 0; pos < meta.size;) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, meta.size - pos), pos)
        if (bytesRead === 0) break
        await file.write(buf.subarray(0, bytesRead))
        pos += bytesRead
      }
    } finally {
      await fh.close()
    }
    await file.commit(!t.stage)
  } catch (err) {
    await file.discard()
    if (err instanceof AssetSyncError && err.code === 'ERR_INTEGRITY') return null // it changed: download instead
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  return { temp: t.stage ? file.tempPath : t.final, final: t.final, installed: !t.stage, meta, bytes: 0, reused: meta.size, list: null, how: 'copy' }
}
