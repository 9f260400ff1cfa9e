/**
 * AssetClient: one authenticated connection to an assetsync server, with the operations the
 * commands build on — manifest (paged), verified atomic downloads, subscriptions. Never prints.
 */
import { EventEmitter } from 'node:events'
import { AssetSyncError } from '../../errors.js'
import { DEFAULT_PORT, MAX_MANIFEST_FILES } from '../../limits.js'
import type { ClientConnection } from '../../protocol/connection.js'
import { type TimingOptions, dial } from '../../protocol/endpoint.js'
import type { FileMeta, ManifestEntry, ReplyMessage, UpdateMsg } from '../../protocol/messages.js'
import type { TransportName } from '../../protocol/transport.js'
import { IncomingFile } from '../fs/atomic-file.js'
import { KnownServers, configDir, parseKeyHex } from '../fs/keys.js'
import { assertWirePath, printable } from '../fs/paths.js'

/** Attempts for a file that changed on the server mid-transfer. */
export const DOWNLOAD_ATTEMPTS = 3

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

export type DownloadStatus = 'downloaded' | 'up-to-date'

export interface DownloadResult {
  status: DownloadStatus
  meta: FileMeta | null
  bytes: number
  /** With `stage`: the verified temp file beside the final path, not yet renamed. */
  tempPath?: string
}

/** Events: 'update' (UpdateMsg['entries']), 'close' (err | null). */
export class AssetClient extends EventEmitter {
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
   * Downloads `path` to `finalPath` atomically (temp file, BLAKE3 check, rename). With `haveHash`
   * the server answers up-to-date instead of sending bytes. Retries a file that changed on the
   * server mid-transfer. Throws ERR_NOT_FOUND / ERR_PATH_REFUSED for what the server refuses.
   */
  async download(path: string, finalPath: string, haveHash: Uint8Array | null = null, stage = false): Promise<DownloadResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#downloadOnce(path, finalPath, haveHash, stage)
      } catch (err) {
        const retry = err instanceof AssetSyncError && (err.code === 'ERR_CHANGED' || err.code === 'ERR_INTEGRITY')
        if (!retry || attempt >= DOWNLOAD_ATTEMPTS || this.conn.closed) throw err
      }
    }
  }

  #downloadOnce(path: string, finalPath: string, haveHash: Uint8Array | null, stage: boolean): Promise<DownloadResult> {
    let file: Promise<IncomingFile> | null = null
    let chain: Promise<unknown> = Promise.resolve()
    let status: DownloadStatus = 'up-to-date'
    let meta: FileMeta | null = null
    let expected = 0
    // A local failure (open or write: disk full, permissions) ends the request at once: the server
    // stops sending, and the error reaches the caller now, not after the last chunk. This also
    // handles the rejection right away; left alone until the transfer ended, it crashed the
    // process as an unhandled rejection (exit 1) whenever chunks were still arriving.
    const fail = (err: unknown): void => { this.conn.cancel(req.id, err instanceof Error ? err : new Error(String(err))) }
    const onReply = (r: ReplyMessage): boolean => {
      if (r.type === 'response') {
        if (meta) throw new AssetSyncError('ERR_PROTOCOL', 'second RESPONSE for one request')
        if (r.status !== 'file') {
          if (r.status === 'up-to-date') return true
          if (r.status === 'not-found') throw new AssetSyncError('ERR_NOT_FOUND', `not found on ${this.server}: ${printable(path)}`)
          throw new AssetSyncError('ERR_PATH_REFUSED', `${this.server} refused ${printable(path)}: ${r.reason}`)
        }
        meta = { hash: Buffer.from(r.hash), size: r.size, mode: r.mode, mtime: r.mtime }
        status = 'downloaded'
        file = IncomingFile.create(finalPath, meta)
        file.catch(fail)
        chain = file
        return false
      }
      if (r.type !== 'chunk' || !file) throw new AssetSyncError('ERR_PROTOCOL', `unexpected ${r.type} during a transfer`)
      if (r.offset !== expected) throw new AssetSyncError('ERR_PROTOCOL', `chunk at ${r.offset}, expected ${expected}`)
      expected += r.data.byteLength
      const data = r.data
      const f = file
      // The bytes stay charged to the flow-control window until they are on disk: the server
      // cannot run more than FLOW_WINDOW_BYTES ahead of a slow disk (bounded memory, UDP too).
      chain = chain.then(async () => (await f).write(data)).finally(() => this.conn.release(data.byteLength))
      chain.catch(fail)
      return r.final
    }
    const req = this.conn.request((id) => ({ type: 'request', id, path, haveHash }), onReply, { holdChunks: true })
    return req.done.then(
      async () => {
        if (!file) return { status, meta, bytes: 0 }
        const f = await file
        try {
          await chain
        } catch (err) {
          await f.discard()
          throw err
        }
        await f.commit(!stage)
        return { status, meta, bytes: f.written, ...(stage ? { tempPath: f.tempPath } : {}) }
      },
      async (err: unknown) => {
        // Wait for queued writes, then remove the temp file: nothing half-written survives.
        await chain.catch(() => {})
        if (file) await (await file.catch(() => null))?.discard()
        throw err
      },
    )
  }

  /** Subscribes (or unsubscribes) `instanceId` to `patterns`; updates arrive as 'update' events. */
  async subscribe(patterns: string[], instanceId: number, subscribe = true): Promise<void> {
    await this.conn.request((id) => ({ type: 'subscribe', id, instanceId, subscribe, patterns }), (r) => {
      if (r.type !== 'subscribe-ack') throw new AssetSyncError('ERR_PROTOCOL', `expected SUBSCRIBE_ACK, got ${r.type}`)
      return true
    }).done
  }
}
