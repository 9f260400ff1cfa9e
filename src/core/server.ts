/**
 * AssetServer: indexes a folder and serves it to authenticated clients (requests, manifests,
 * subscriptions with pushed updates). Never prints: it emits events the commands render.
 */
import { EventEmitter } from 'node:events'
import { realpath, stat } from 'node:fs/promises'
import type { KeyPair } from '@hyperswarm/secret-stream'
import { AssetSyncError } from '../errors.js'
import type { Connection } from '../protocol/connection.js'
import { ServerEndpoint, type TimingOptions } from '../protocol/endpoint.js'
import type { TransportName } from '../protocol/transport.js'
import { HashCache, cacheFileFor } from './hash-cache.js'
import { ignoreMatcher } from './ignore.js'
import { configDir, loadIdentity } from './keys.js'
import { ClientSession } from './session.js'
import { type ScanResult, Store } from './store.js'

export interface AssetServerOptions extends TimingOptions {
  /** Folder to serve. */
  root: string
  /** Address to bind; default 0.0.0.0. */
  host?: string
  /** Port; default 7420, 0 picks a free one. */
  port?: number
  transport?: TransportName
  /** Access token clients must present; null/undefined for none. */
  token?: string | null
  /** Globs to ignore on top of the defaults. */
  ignore?: string[]
  /** Where the identity and hash cache live; default configDir(). */
  configDir?: string
  /** Use this identity instead of the one in the config dir. */
  keyPair?: KeyPair
  maxClients?: number
  /** Quiet time before a changed file is announced; default SETTLE_MS. */
  settleMs?: number
  /** Watch the folder and push changes to subscribers (default true). */
  watch?: boolean
}

export const DEFAULT_PORT = 7420

/**
 * Events: 'connected' ({remote}), 'disconnected' ({remote, reason}), 'rejected' ({remote, code,
 * message}) for clients that failed the handshake or auth, 'refused' ({remote, path, reason}).
 */
export class AssetServer extends EventEmitter {
  readonly root: string
  readonly store: Store
  readonly publicKey: Buffer
  readonly scan: ScanResult
  readonly #endpoint: ServerEndpoint
  readonly #sessions = new Set<ClientSession>()

  private constructor(root: string, store: Store, endpoint: ServerEndpoint, publicKey: Buffer, scan: ScanResult) {
    super()
    this.root = root
    this.store = store
    this.#endpoint = endpoint
    this.publicKey = publicKey
    this.scan = scan
    endpoint.on('connection', (conn: Connection) => this.#onConnection(conn))
    endpoint.on('rejected', (remote: string, err: AssetSyncError) => {
      this.emit('rejected', { remote, code: err.code ?? 'ERR_INTERNAL', message: err.message })
    })
  }

  /** Indexes `opts.root`, then listens. Resolves once clients can connect. */
  static async start(opts: AssetServerOptions): Promise<AssetServer> {
    let root: string
    try {
      root = await realpath(opts.root)
      if (!(await stat(root)).isDirectory()) throw new Error('not a directory')
    } catch (err) {
      throw new AssetSyncError('ERR_NOT_FOUND', `cannot serve ${opts.root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
    }
    const dir = opts.configDir ?? configDir()
    const keyPair = opts.keyPair ?? (await loadIdentity(dir))
    const cache = await HashCache.load(cacheFileFor(dir, 'serve', root))
    const store = new Store(root, ignoreMatcher(opts.ignore ?? []), cache)
    const scan = await store.scan()
    const endpoint = await ServerEndpoint.listen({
      ...opts,
      transport: opts.transport ?? 'udp',
      host: opts.host ?? '0.0.0.0',
      port: opts.port ?? DEFAULT_PORT,
      keyPair,
      token: opts.token ?? null,
    })
    return new AssetServer(root, store, endpoint, keyPair.publicKey, scan)
  }

  get transport(): TransportName { return this.#endpoint.transport }
  address(): { host: string; port: number } { return this.#endpoint.address() }
  get clients(): number { return this.#sessions.size }

  async close(): Promise<void> {
    await this.#endpoint.close()
    await this.store.saveCache()
  }

  #onConnection(conn: Connection): void {
    const session = new ClientSession(conn, this.store)
    this.#sessions.add(session)
    session.on('refused', (r: { path: string; reason: string }) => this.emit('refused', { remote: conn.remote, ...r }))
    this.emit('connected', { remote: conn.remote })
    conn.once('close', (err: AssetSyncError | null) => {
      this.#sessions.delete(session)
      this.emit('disconnected', { remote: conn.remote, reason: err?.message ?? 'closed' })
    })
  }
}
