/**
 * `pull --direct`: the manifest comes from the server, the bytes straight from its S3 origin (a
 * CI runner next to the bucket or its CDN need not pull 30 GB through one process). The server
 * hands out presigned URLs for the chunk and list objects (DIRECT, docs/protocol.md §4.7), or,
 * with `--s3-endpoint` (or a server that signs nothing), the runner reads the bucket with its own
 * AWS credentials. Nothing fetched is trusted: chunks are checked (length, BLAKE3) by the
 * ChunkStore, lists decode strictly against the file's size and hash, and the assembled file is
 * checked against its hash before it is renamed into place (docs/delta.md §4): a poisoned bucket,
 * CDN or cache ends in ERR_INTEGRITY (exit 6) with no file changed.
 *
 * A file already here in an older version is a local source: only the chunks that changed are
 * fetched.
 */
import type { Stats } from 'node:fs'
import { lstat } from 'node:fs/promises'
import { AssetSyncError } from '../../errors.js'
import { DELTA_MIN_CHUNK_BYTES, DIRECT_MAX_KEYS, DIRECT_PARALLEL_FETCHES, SCALE_S3_REQUEST_TIMEOUT_MS } from '../../limits.js'
import type { DirectKey, FileMeta } from '../../protocol/messages.js'
import { assemble, incomingFileIO } from '../delta/assemble.js'
import { chunkFile, hashKey } from '../delta/chunk-list.js'
import { ChunkIndex, planFile } from '../delta/plan.js'
import { IncomingFile } from '../fs/atomic-file.js'
import { type ChunkObjects, ChunkStore, bucketObjects } from '../scale/chunk-store.js'
import { hex, parseBucketUrl } from '../scale/location.js'
import { withRetry } from '../scale/object-store.js'
import { S3Store } from '../scale/s3-store.js'
import { Semaphore } from '../scale/semaphore.js'
import type { AssetClient } from './client.js'

export interface DirectOptions {
  /** Read the bucket with the runner's own credentials at this endpoint (--s3-endpoint). */
  s3Endpoint?: string
  /** Chunks fetched at once over all files; default DIRECT_PARALLEL_FETCHES. */
  parallel?: number
}

/** What a direct fetch did (for the summary). */
export interface DirectStats {
  /** Bytes of chunks and lists fetched from the bucket. */
  fetchedBytes: number
  /** Bytes copied from older local versions. */
  reusedBytes: number
  urlsAsked: number
}

/** A verified file staged beside its final path (Mirror installs it). */
export interface DirectStaged { tempPath: string; bytes: number }

/** Fetches files of one server's origin into place; one per pull (its caches span the pull). */
export class DirectFetcher {
  readonly stats: DirectStats = { fetchedBytes: 0, reusedBytes: 0, urlsAsked: 0 }
  readonly #opts: DirectOptions
  readonly #http: Semaphore
  /** Per connection: the store of that server, or null if it offers none. */
  #setup: { client: AssetClient; ready: Promise<ChunkStore | null> } | null = null

  constructor(opts: DirectOptions = {}) {
    this.#opts = opts
    this.#http = new Semaphore(opts.parallel ?? DIRECT_PARALLEL_FETCHES)
  }

  /** The chunk store for this connection's server, or null when it has no S3 origin (pull through it then). */
  #storeFor(client: AssetClient): Promise<ChunkStore | null> {
    if (this.#setup?.client !== client) this.#setup = { client, ready: this.#connect(client) }
    return this.#setup.ready
  }

  async #connect(client: AssetClient): Promise<ChunkStore | null> {
    if (!client.conn.has('direct')) return null
    let reply: { store: string; expires: number }
    try {
      reply = await askDirect(client, [])
    } catch (err) {
      if (err instanceof AssetSyncError && err.code === 'ERR_NOT_FOUND') return null
      throw err
    }
    let objects: ChunkObjects
    if (this.#opts.s3Endpoint !== undefined || reply.expires === 0) {
      const store = await S3Store.open(parseBucketUrl(reply.store, 'the server\'s store'), { endpoint: this.#opts.s3Endpoint })
      objects = bucketObjects(store)
    } else {
      objects = new UrlObjects(client, reply.store, this.#http, this.stats)
    }
    return new ChunkStore(objects, { memoryBytes: 16 * 1024 * 1024 })
  }

  /**
   * Fetches `meta`'s content for `wire` into a verified temp file beside `final` (not yet
   * renamed). Null: this server offers no direct path (the caller downloads through it).
   */
  async stage(client: AssetClient, meta: FileMeta, final: string): Promise<DirectStaged | null> {
    const chunks = await this.#storeFor(client)
    if (!chunks) return null
    const list = await chunks.list(meta)
    // The old version at the same path, if any, is a source of unchanged chunks.
    const index = new ChunkIndex()
    let old: Stats | null = null
    try {
      old = await lstat(final)
    } catch { /* absent */ }
    const preferred = old?.isFile() && old.size > DELTA_MIN_CHUNK_BYTES && list.size > DELTA_MIN_CHUNK_BYTES
      ? { path: final, list: await chunkFile(final).catch(() => null) } : null
    const plan = planFile(list, index, preferred?.list ? { path: final, list: preferred.list } : undefined)
    const file = await IncomingFile.create(final, meta)
    const io = incomingFileIO(file)
    // Fetch ahead of the assembler, which takes chunks in file order.
    const ahead = new Map<string, Promise<Uint8Array>>()
    const order = [...plan.fetch]
    let next = 0
    const start = (): void => {
      while (next < order.length && ahead.size < 8) {
        const i = order[next++] as number
        const key = list.chunkKey(i)
        if (!ahead.has(key)) {
          const p = chunks.chunk(list.chunkHash(i), list.lengths[i] as number)
          p.catch(() => {})
          ahead.set(key, p)
        }
      }
    }
    try {
      start()
      const result = await assemble(plan, io, async (hash, length) => {
        const key = hashKey(hash)
        const p = ahead.get(key) ?? chunks.chunk(hash, length)
        const bytes = await p
        ahead.delete(key)
        start()
        return bytes
      })
      await file.commit(false)
      this.stats.fetchedBytes += result.fetchedBytes
      this.stats.reusedBytes += result.copiedBytes + result.selfBytes
      return { tempPath: file.tempPath, bytes: result.fetchedBytes }
    } catch (err) {
      await file.discard()
      throw err
    } finally {
      await io.close()
    }
  }
}

/** Sends DIRECT for `keys` and returns the reply. */
async function askDirect(client: AssetClient, keys: DirectKey[]): Promise<{ store: string; expires: number; urls: string[] }> {
  let reply: { store: string; expires: number; urls: string[] } | null = null
  await client.conn.request((id) => ({ type: 'direct', id, keys }), (r) => {
    if (r.type !== 'direct-reply') throw new AssetSyncError('ERR_PROTOCOL', `expected DIRECT_REPLY, got ${r.type}`)
    if (r.urls.length !== 0 && r.urls.length !== keys.length) throw new AssetSyncError('ERR_PROTOCOL', `DIRECT_REPLY has ${r.urls.length} URLs for ${keys.length} keys`)
    reply = { store: r.store, expires: r.expires, urls: r.urls }
    return true
  }).done
  if (!reply) throw new AssetSyncError('ERR_PROTOCOL', 'no DIRECT_REPLY')
  return reply
}

/** Chunk and list objects read through presigned URLs the server hands out, asked for in batches. */
class UrlObjects implements ChunkObjects {
  readonly description: string
  readonly #client: AssetClient
  readonly #http: Semaphore
  readonly #stats: DirectStats
  #batch: { key: DirectKey; resolve: (url: string) => void; reject: (err: unknown) => void }[] = []
  #scheduled = false

  constructor(client: AssetClient, store: string, http: Semaphore, stats: DirectStats) {
    this.#client = client
    this.description = store
    this.#http = http
    this.#stats = stats
  }

  chunk(hash: Uint8Array, length: number): Promise<Buffer | null> {
    return this.#get({ kind: 'chunk', hash }, length)
  }

  list(fileHash: Uint8Array, maxBytes: number): Promise<Buffer | null> {
    return this.#get({ kind: 'list', hash: fileHash }, maxBytes)
  }

  /** A URL for `key`: DIRECTs go out in batches of up to DIRECT_MAX_KEYS, one per turn of the event loop. */
  #url(key: DirectKey): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#batch.push({ key, resolve, reject })
      if (this.#scheduled) return
      this.#scheduled = true
      setImmediate(() => {
        this.#scheduled = false
        while (this.#batch.length > 0) {
          const part = this.#batch.splice(0, DIRECT_MAX_KEYS)
          this.#stats.urlsAsked += part.length
          askDirect(this.#client, part.map((p) => p.key)).then((r) => {
            part.forEach((p, i) => {
              const url = r.urls[i]
              if (url) p.resolve(url)
              else p.reject(new AssetSyncError('ERR_PROTOCOL', 'the server handed out no URL'))
            })
          }, (err: unknown) => { for (const p of part) p.reject(err) })
        }
      })
    })
  }

  async #get(key: DirectKey, maxBytes: number): Promise<Buffer | null> {
    const what = `GET ${key.kind === 'chunk' ? 'chunks' : 'lists'}/${hex(key.hash)}`
    let url = await this.#url(key)
    let renewed = false
    return withRetry(what, () => this.#http.run(async () => {
      let res: Response
      try {
        res = await fetch(url, { signal: AbortSignal.timeout(SCALE_S3_REQUEST_TIMEOUT_MS) })
      } catch (err) {
        // No answer (refused, reset, timed out): worth another attempt. fetch says TypeError.
        const cause = (err as { cause?: { code?: string } })?.cause?.code ?? (err as Error)?.name
        throw Object.assign(new Error(`no answer from the store (${cause})`), { name: 'NetworkError' })
      }
      if (res.status === 404) { await res.body?.cancel(); return null }
      if (res.status === 403 && !renewed) {
        // Expired (a long pull): ask for a fresh URL once.
        await res.body?.cancel()
        renewed = true
        url = await this.#url(key)
        throw Object.assign(new Error('URL expired'), { status: 503 })
      }
      if (!res.ok) {
        await res.body?.cancel()
        throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status })
      }
      const len = Number(res.headers.get('content-length') ?? -1)
      if (len > maxBytes) {
        await res.body?.cancel()
        throw new AssetSyncError('ERR_INTEGRITY', `${what}: ${len} bytes, over ${maxBytes}`)
      }
      const bytes = Buffer.from(await res.arrayBuffer())
      if (bytes.length > maxBytes) throw new AssetSyncError('ERR_INTEGRITY', `${what}: over ${maxBytes} bytes`)
      return bytes
    }))
  }
}
