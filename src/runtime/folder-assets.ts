/**
 * An AssetProvider backed by folders: `source` plays the server (files are hashed there and
 * copied into `out` when the local copy is missing or differs), or, without `source`, `out` alone
 * answers every fetch (offline mode). Used by the unit tests and as `run`'s offline mode; phase 2
 * puts NetworkAssets, on the real client, behind the same interface.
 *
 * Writes are atomic (temp file beside the target, then rename) and every path goes through
 * core/fs/paths.ts, so a hostile wire path can neither read outside `source` nor write outside
 * `out`.
 */
import { copyFile, mkdir, realpath, rename, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { AssetSyncError, writeError } from '../errors.js'
import { tempPathFor } from '../core/fs/atomic-file.js'
import { hashFile } from '../core/fs/hash.js'
import { assertWirePath, resolveForRead, resolveForWrite } from '../core/fs/paths.js'
import { RUNTIME_PARALLEL_FETCHES } from '../limits.js'
import type { AssetChange, AssetProvider, FetchOptions, FetchResult } from './provider.js'
import { TransferQueue } from '../core/fs/transfer-queue.js'

export interface FolderAssetsOptions {
  /** The local asset folder (`--out`); created if missing. */
  out: string
  /** The folder that plays the server; absent: offline, `out` answers everything as `local`. */
  source?: string
  /** Fetches at once (default RUNTIME_PARALLEL_FETCHES). */
  parallel?: number
  /**
   * Called before each copy from `source` starts (tests use it to hold transfers and watch the
   * order in which the lanes are served).
   */
  beforeTransfer?: (path: string) => Promise<void> | void
}

/** Totals since the provider was made. */
export interface FolderAssetsStats {
  /** Files copied from `source` into `out`. */
  downloaded: number
  /** File bytes copied. */
  bytes: number
  /** Fetches answered without a copy (`up-to-date` or `local`). */
  unchanged: number
}

const isMissing = (err: unknown): boolean => err instanceof AssetSyncError && err.code === 'ERR_NOT_FOUND'

export class FolderAssets implements AssetProvider {
  readonly #outDir: string
  readonly #sourceDir: string | undefined
  readonly #queue: TransferQueue<FetchResult | null>
  readonly #beforeTransfer: FolderAssetsOptions['beforeTransfer']
  readonly #listeners = new Set<(c: AssetChange) => void>()
  /** wire path -> instances subscribed to it. */
  readonly #subs = new Map<string, Set<string>>()
  #roots: Promise<{ out: string; source: string | undefined }> | null = null
  readonly stats: FolderAssetsStats = { downloaded: 0, bytes: 0, unchanged: 0 }

  constructor(opts: FolderAssetsOptions) {
    this.#outDir = opts.out
    this.#sourceDir = opts.source
    this.#queue = new TransferQueue(opts.parallel ?? RUNTIME_PARALLEL_FETCHES)
    this.#beforeTransfer = opts.beforeTransfer
  }

  /** The real paths of both folders (`out` created on first use). */
  #resolveRoots(): Promise<{ out: string; source: string | undefined }> {
    this.#roots ??= (async () => {
      await mkdir(this.#outDir, { recursive: true })
      return { out: await realpath(this.#outDir), source: this.#sourceDir === undefined ? undefined : await realpath(this.#sourceDir) }
    })()
    return this.#roots
  }

  async fetch(path: string, opts: FetchOptions): Promise<FetchResult | null> {
    assertWirePath(path)
    if (opts.reload) {
      let set = this.#subs.get(path)
      if (!set) this.#subs.set(path, (set = new Set()))
      set.add(opts.instance)
    }
    const key = `${opts.network && this.#sourceDir !== undefined ? 'n' : 'l'}:${path}`
    return this.#queue.add(key, opts.priority, () => this.#fetchNow(path, opts.network))
  }

  async #fetchNow(path: string, network: boolean): Promise<FetchResult | null> {
    const roots = await this.#resolveRoots()
    if (!network || roots.source === undefined) return this.#local(roots.out, path)
    let src: string
    try {
      src = await resolveForRead(roots.source, path)
    } catch (err) {
      if (isMissing(err)) return null
      throw err
    }
    const remote = await hashFile(src)
    const hash = remote.hash.toString('hex')
    const localPath = await resolveForWrite(roots.out, path)
    const here = await hashFile(localPath).catch(() => null)
    if (here && here.hash.equals(remote.hash)) {
      this.stats.unchanged++
      return { path, localPath, hash, size: here.size, action: 'up-to-date', bytes: 0 }
    }
    await this.#beforeTransfer?.(path)
    await this.#copy(roots.out, src, path)
    this.stats.downloaded++
    this.stats.bytes += remote.size
    return { path, localPath, hash, size: remote.size, action: 'downloaded', bytes: remote.size }
  }

  async #local(out: string, path: string): Promise<FetchResult | null> {
    let localPath: string
    try {
      localPath = await resolveForRead(out, path)
    } catch (err) {
      if (isMissing(err)) return null
      throw err
    }
    const { hash, size } = await hashFile(localPath).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EISDIR') throw new AssetSyncError('ERR_NOT_FOUND', `not a file: ${path}`)
      throw err
    })
    this.stats.unchanged++
    return { path, localPath, hash: hash.toString('hex'), size, action: 'local', bytes: 0 }
  }

  /** Copies `src` to `out/path` through a temp file, so the final path never holds a partial file. */
  async #copy(out: string, src: string, path: string): Promise<void> {
    let target = await resolveForWrite(out, path)
    try {
      await mkdir(dirname(target), { recursive: true })
    } catch (err) {
      throw writeError(path, err)
    }
    target = await resolveForWrite(out, path) // again, now that the parents exist
    const temp = tempPathFor(target)
    try {
      await copyFile(src, temp)
      await rename(temp, target)
    } catch (err) {
      await unlink(temp).catch(() => {})
      throw writeError(path, err)
    }
  }

  onChange(listener: (change: AssetChange) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  async release(instance: string): Promise<void> {
    for (const [path, set] of this.#subs) {
      set.delete(instance)
      if (set.size === 0) this.#subs.delete(path)
    }
  }

  /** Instances subscribed to `path`. */
  subscribers(path: string): string[] {
    return [...(this.#subs.get(path) ?? [])]
  }

  /**
   * `path` changed in `source` (a watcher or a test calls this): if anyone subscribed to it, the
   * new version is copied into `out` and the listeners hear about it. Returns the change, or null
   * when nobody listens for the path, it is gone from `source` or its content did not change.
   */
  async publish(path: string): Promise<AssetChange | null> {
    assertWirePath(path)
    if (!this.#subs.has(path)) return null
    const res = await this.#queue.add(`n:${path}`, 'background', () => this.#fetchNow(path, true))
    if (!res || res.action !== 'downloaded') return null // gone, or saved without a change
    const change: AssetChange = { path, localPath: res.localPath, hash: res.hash, size: res.size }
    for (const l of this.#listeners) l(change)
    return change
  }
}
