/**
 * The Lua host (issue 13): what `assetsync run` (phase 2) and embedding programs use.
 * Not yet re-exported from src/index.ts; phase 2 adds NetworkAssets and the CLI command.
 */
export { DEFAULT_LUA_PATH, LuaHost, type RunOptions, type RuntimeEvent, ScriptError, runScript } from './host.js'
export { FolderAssets, type FolderAssetsOptions, type FolderAssetsStats } from './folder-assets.js'
export type { AssetChange, AssetProvider, FetchAction, FetchOptions, FetchPriority, FetchResult } from './provider.js'
export { TransferQueue, type TransferQueueOptions } from '../core/fs/transfer-queue.js'
