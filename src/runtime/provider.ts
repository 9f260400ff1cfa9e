/**
 * What the Lua host needs from the network, and nothing more: fetch one file by wire path (into
 * the local asset folder), hear about changed files, and forget an instance's subscriptions.
 *
 * FolderAssets (folder-assets.ts) is backed by a local folder; NetworkAssets
 * (core/client/network-assets.ts) by an assetsync server. The host never touches the network itself.
 */
import type { NetworkAssets } from '../core/client/network-assets.js'

/** How a fetch was satisfied: `downloaded` (bytes moved), `up-to-date` (the server confirmed the local hash), `local` (no network asked). */
export type FetchAction = 'downloaded' | 'up-to-date' | 'local'

/**
 * `blocking`: a Lua task is stopped until this file is written (`require`, `load_asset`).
 * `background`: a `require_async` / `load_asset_async`. A provider serves every blocking fetch
 * before any background one that has not started yet, so a blocking require never queues behind
 * a bulk of async downloads.
 */
export type FetchPriority = 'blocking' | 'background'

export interface FetchOptions {
  /** false: answer from the local folder only (`require(name, {network = false})`). */
  network: boolean
  /** true: subscribe `path` for `instance`; its later changes arrive as `change` events. */
  reload: boolean
  /** The script instance asking (one per host run); subscriptions belong to it. */
  instance: string
  priority: FetchPriority
}

export interface FetchResult {
  /** The wire path asked for. */
  path: string
  /** Absolute path of the local copy, inside the provider's local folder. */
  localPath: string
  /** BLAKE3-256 of the content, lower-case hex. */
  hash: string
  size: number
  action: FetchAction
  /** File payload bytes moved for this fetch (0 unless `downloaded`). */
  bytes: number
}

/** A subscribed file changed on the server and its new version is already written locally. */
export interface AssetChange {
  path: string
  localPath: string
  hash: string
  size: number
}

/**
 * The host's view of the network.
 *
 * Contract:
 * - `fetch` validates the wire path (core/fs/paths.ts) and rejects a bad one with
 *   ERR_PATH_REFUSED; it resolves `null` when the file does not exist (the Lua searcher then
 *   tries the next template); any other rejection (connection lost, integrity, write failure) is
 *   fatal for the run, and the host ends with that error's exit code.
 * - When `fetch` resolves, the file is complete at `localPath` (atomic write, hash verified).
 * - Two fetches of one path in flight share one transfer; a `blocking` one raises the priority
 *   of a queued `background` one.
 * - `change` listeners hear about paths some instance subscribed with `reload: true`.
 */
export interface AssetProvider {
  fetch(path: string, opts: FetchOptions): Promise<FetchResult | null>
  /** Adds a change listener; returns the function that removes it. */
  onChange(listener: (change: AssetChange) => void): () => void
  /** Drops every subscription of `instance` (the host calls it when a run ends). */
  release(instance: string): Promise<void>
}

/**
 * NetworkAssets (core/client) is the network's AssetProvider: hands it to the host as one. This
 * also fails to compile if the two ever drift apart.
 */
export const networkProvider = (assets: NetworkAssets): AssetProvider => assets
