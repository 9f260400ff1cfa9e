/**
 * AssetClient: one authenticated connection to an assetsync server, with the operations the
 * commands build on — manifest (paged), verified downloads into a FileSink (a file, atomically;
 * memory; a staged temp file), subscriptions. Never prints.
 */
import { EventEmitter } from 'node:events'
import { AssetSyncError, isRetryable } from '../../errors.js'
import { DEFAULT_PORT, DOWNLOAD_ATTEMPTS, MAX_MANIFEST_FILES } from '../../limits.js'
import type { ClientConnection } from '../../protocol/connection.js'
import { type TimingOptions, dial } from '../../protocol/endpoint.js'
import type { BatchItem, ManifestEntry, ReplyMessage, RequestPriority, UpdateEntry, UpdateMsg } from '../../protocol/messages.js'
import { type StatusJson, parseStatusJson } from '../../protocol/status-json.js'
import type { TransportName } from '../../protocol/transport.js'
import { KnownServers, configDir, parseKeyHex } from '../fs/keys.js'
import { assertWirePath } from '../fs/paths.js'
import { fetchFile } from './delta-download.js'
import type { SinkFactory } from './file-sink.js'
import { memorySink } from './memory-sink.js'
import { type ReceiveOptions, type Received, receiveFile } from './receive.js'
import { type BatchResult, receiveBatch } from './receive-batch.js'
import type { SavedFile } from './temp-file-sink.js'

/** Attempts of one download on one connection (now in limits.ts; kept here for callers). */
export { DOWNLOAD_ATTEMPTS }

/** Parses "host:port", "[v6]:port" or "host" (default port). */
export function parseServer(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s)
  const port = m?.[2] === undefined ? DEFAULT_PORT : Number(m[2])
  if (!m || !m[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new AssetSyncError('ERR_USAGE', `--server must be host:port (e.g. 192.168.1.20:7420), got "${s}"`)
  }
  return { host: m[1], port }
}

export interface AssetClientOptions extends TimingOptions {
  /** "host:port" of the server. */
  server: string
  transport?: TransportName
  token?: string
  /** The server's public key (hex); without it the key is pinned on first use. */
  key?: string | null
  /** Where known-servers lives; default configDir(). */
  configDir?: string
  connectTimeoutMs?: number
}

/** Whether a download sent bytes, or the local copy (`haveHash`) was current. */
export type DownloadStatus = 'downloaded' | 'up-to-date'

/**
 * How a download ended: `up-to-date` (the server vouched for `haveHash`; nothing was sent) or
 * `downloaded`, with the sink's result (for a path: the SavedFile), the announced meta and the
 * payload bytes received.
 */
export type DownloadResult<T = SavedFile> = Received<T>

/** Options of `AssetClient.download`: the request's priority class (feature `priority`). */
export type DownloadOptions = ReceiveOptions

/** Options of `AssetClient.read`. */
export interface ReadOptions extends DownloadOptions {
  /** Largest file taken into memory; default MAX_READ_BYTES. */
  maxBytes?: number
}

/**
 * How a reload (or a hook run) went on this device, for `AssetClient.report`. The server shows it
 * in `serve`'s output, `/status`, the live page and `assetsync status`.
 */
export interface ClientReport {
  /** The wire paths reloaded (or tried); the first REPORT_MAX_PATHS are sent. */
  paths: string[]
  ok: boolean
  /**
   * What went wrong, when not ok: a Lua message as Lua gives it ("scripts/main.lua:12: attempt
   * to …", traceback welcome; the server finds the file:line in it) or a hook's failure text.
   * Cut to REPORT_MAX_ERROR_BYTES. Null or absent when ok.
   */
  error?: string | null
  /** How long the reload took, in milliseconds. */
  ms: number
}

/** The events of an AssetClient, by name: the listener's arguments. */
export type AssetClientEvents = {
  /** The server pushed a batch of changes to subscribed paths (UPDATE). */
  update: [entries: UpdateEntry[]]
  /** The connection closed (once): null when closed by us, else why. */
  close: [err: AssetSyncError | null]
}

/** One connection to a server. Events: AssetClientEvents. */
export class AssetClient extends EventEmitter<AssetClientEvents> {
  readonly conn: ClientConnection
  readonly server: string

  private constructor(conn: ClientConnection, server: string) {
    super()
    this.conn = conn
    this.server = server
    conn.on('message', (m: UpdateMsg) => { if (m.type === 'update') this.emit('update', m.entries) })
    conn.once('close', (err: AssetSyncError | null) => this.emit('close', err))
  }

  static async connect(opts: AssetClientOptions): Promise<AssetClient> {
    const { host, port } = parseServer(opts.server)
    const explicit = opts.key ? parseKeyHex(opts.key) : null
    const known = new KnownServers(opts.configDir ?? configDir())
    const transport = opts.transport ?? 'udp'
    const { verify, commit } = await known.verifier(`${transport}://${host}:${port}`, explicit)
    const conn = await dial({ ...opts, transport, host, port, verifyServerKey: verify })
    await commit()
    return new AssetClient(conn, `${host}:${port}`)
  }

  close(): void { this.conn.close() }

  /**
   * Tells the server how a reload went (feature `report`; no answer is awaited). Returns false,
   * sending nothing, when the server did not agree to the feature (a protocol-2 server, or one
   * that turned it off) or the connection is closed: a report is news, never worth failing for.
   */
  report(r: ClientReport): boolean {
    if (this.conn.closed || !this.conn.has('report')) return false
    this.conn.send({ type: 'report', ok: r.ok, ms: r.ms, paths: r.paths, error: r.error ?? null })
    return true
  }

  /**
   * The server's status (feature `status`): its connected clients with their subscriptions and
   * last reports, and its recent change batches. A server that does not offer the feature (a
   * protocol-2 server) is ERR_VERSION, saying so; a reply of any other shape is ERR_PROTOCOL.
   */
  async status(): Promise<StatusJson> {
    if (!this.conn.has('status')) {
      throw new AssetSyncError('ERR_VERSION', `${this.server} does not answer status queries (it speaks protocol ${this.conn.version}${this.conn.version >= 3 ? ' without the status feature' : ''}): upgrade the server to this assetsync, or open its --http /status`)
    }
    let json: string | null = null
    await this.conn.request((id) => ({ type: 'status', id }), (r) => {
      if (r.type !== 'status-reply') throw new AssetSyncError('ERR_PROTOCOL', `expected STATUS_REPLY, got ${r.type}`)
      json = r.json
      return true
    }).done
    if (json === null) throw new AssetSyncError('ERR_PROTOCOL', 'empty status reply')
    return parseStatusJson(json)
  }

  /** The server's files matching `patterns`, all pages, in path order. Paths are validated. */
  async manifest(patterns: string[]): Promise<ManifestEntry[]> {
    const all: ManifestEntry[] = []
    let after = ''
    for (;;) {
      let page: Extract<ReplyMessage, { type: 'manifest-reply' }> | null = null
      await this.conn.request((id) => ({ type: 'manifest', id, patterns, after }), (r) => {
        if (r.type !== 'manifest-reply') throw new AssetSyncError('ERR_PROTOCOL', `expected MANIFEST_REPLY, got ${r.type}`)
        page = r
        return true
      }).done
      const p = page as Extract<ReplyMessage, { type: 'manifest-reply' }> | null
      if (!p) throw new AssetSyncError('ERR_PROTOCOL', 'empty manifest reply')
      for (const e of p.entries) {
        // A malicious server must not steer writes: every path is checked before anything else.
        assertWirePath(e.path)
        if (e.path <= after) throw new AssetSyncError('ERR_PROTOCOL', 'manifest pages out of order')
        after = e.path
        all.push(e)
      }
      if (all.length > MAX_MANIFEST_FILES) {
        throw new AssetSyncError('ERR_LIMIT', `${this.server} sent a manifest of more than ${MAX_MANIFEST_FILES} files`)
      }
      if (p.done || p.entries.length === 0) return all
    }
  }

  /**
   * Whether the server's listing of `patterns` is still the one whose digest is `digest` (feature
   * `manifest-digest`; the digest of encodeManifest in core/scale/manifest-object.ts). Null, asking nothing,
   * when the server did not agree to the feature (protocol 2, or turned off).
   */
  async manifestDigest(patterns: string[], digest: Uint8Array): Promise<{ unchanged: boolean; digest: Buffer } | null> {
    if (!this.conn.has('manifest-digest')) return null
    let answer: { unchanged: boolean; digest: Buffer } | null = null
    await this.conn.request((id) => ({ type: 'manifest-digest', id, patterns, digest }), (r) => {
      if (r.type !== 'manifest-digest-reply') throw new AssetSyncError('ERR_PROTOCOL', `expected MANIFEST_DIGEST_REPLY, got ${r.type}`)
      answer = { unchanged: r.unchanged, digest: Buffer.from(r.digest) }
      return true
    }).done
    if (!answer) throw new AssetSyncError('ERR_PROTOCOL', 'empty manifest digest reply')
    return answer
  }

  /** Whether `batch` may be used: the server agreed to feature `batch-request`. */
  get batches(): boolean { return this.conn.has('batch-request') }

  /**
   * Fetches many small files in one request (feature `batch-request`; check `batches` first):
   * `onItem(index, result)` gets each item's answer in order, file content verified (see
   * receiveBatch). Items answered `alone` are for `download`.
   */
  batch(items: BatchItem[], onItem: (index: number, result: BatchResult) => void): Promise<void> {
    return receiveBatch(this.conn, items, onItem)
  }

  /**
   * Downloads `path` into a sink: a local path (temp file beside it, BLAKE3 check, rename; see
   * `fileSink`) or a `SinkFactory` (memory, staged temp file, ...). With `haveHash` the server
   * answers up-to-date instead of sending bytes. A file that changed on the server mid-transfer,
   * or failed its hash, is fetched again on this connection (DOWNLOAD_ATTEMPTS in all; see
   * ERROR_RECOVERY). Throws ERR_NOT_FOUND / ERR_PATH_REFUSED for what the server refuses.
   * `opts.priority` is sent when the server agreed to the `priority` feature.
   *
   * To a local path that already holds a version of the file, only the chunks that changed cross
   * the wire when the server agreed on `chunks` (docs/delta.md); a large download interrupted
   * even by kill -9 resumes from what it wrote. `bytes` counts what crossed the wire, `reused`
   * what was taken from the local file.
   */
  download(path: string, target: string, haveHash?: Uint8Array | null, opts?: DownloadOptions): Promise<DownloadResult<SavedFile>>
  download<T>(path: string, target: SinkFactory<T>, haveHash?: Uint8Array | null, opts?: DownloadOptions): Promise<DownloadResult<T>>
  async download<T>(
    path: string, target: string | SinkFactory<T>, haveHash: Uint8Array | null = null, opts: DownloadOptions = {},
  ): Promise<DownloadResult<T | SavedFile>> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (typeof target !== 'string') return await receiveFile(this.conn, this.server, path, haveHash, target, opts)
        const have = haveHash ? Buffer.from(haveHash) : null
        const r = await fetchFile(this, { wire: path, final: target, meta: null, have, stage: false, receive: opts })
        if (!r) return { status: 'up-to-date', meta: null, bytes: 0, reused: 0 }
        return { status: 'downloaded', meta: r.meta, bytes: r.bytes, reused: r.reused, result: { finalPath: target, tempPath: r.temp, installed: true } }
      } catch (err) {
        if (!isRetryable(err) || attempt >= DOWNLOAD_ATTEMPTS || this.conn.closed) throw err
      }
    }
  }

  /**
   * The verified content of `path`, in memory (at most `maxBytes`, default MAX_READ_BYTES: a
   * larger file is refused with ERR_LIMIT before any byte arrives). With `haveHash`, null when
   * the server says that content is current.
   */
  read(path: string, haveHash?: null, opts?: ReadOptions): Promise<Buffer>
  read(path: string, haveHash: Uint8Array | null, opts?: ReadOptions): Promise<Buffer | null>
  async read(path: string, haveHash: Uint8Array | null = null, opts: ReadOptions = {}): Promise<Buffer | null> {
    const r = await this.download(path, memorySink(opts.maxBytes), haveHash, opts)
    return r.status === 'downloaded' ? r.result : null
  }

  /**
   * Moves open request `id` (see DownloadOptions.onRequest) to another priority class. A no-op
   * when the server did not agree to the `priority` feature or the request has ended.
   */
  reprioritize(id: number, priority: RequestPriority): void {
    if (this.conn.has('priority')) this.conn.reprioritize(id, priority)
  }

  /** Subscribes (or unsubscribes) `instanceId` to `patterns`; updates arrive as 'update' events. */
  async subscribe(patterns: string[], instanceId: number, subscribe = true): Promise<void> {
    await this.conn.request((id) => ({ type: 'subscribe', id, instanceId, subscribe, patterns }), (r) => {
      if (r.type !== 'subscribe-ack') throw new AssetSyncError('ERR_PROTOCOL', `expected SUBSCRIBE_ACK, got ${r.type}`)
      return true
    }).done
  }
}
