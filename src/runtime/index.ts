/**
 * The Lua host (issue 13): what `assetsync run` and embedding programs use; re-exported from
 * src/index.ts. Over the network its provider is NetworkAssets (core/client).
 */
export { DEFAULT_LUA_PATH, LuaHost, type RunOptions, type RuntimeEvent, ScriptError, runScript } from './host.js'
export { FolderAssets, type FolderAssetsOptions, type FolderAssetsStats } from './folder-assets.js'
export { type AssetChange, type AssetProvider, type FetchAction, type FetchOptions, type FetchPriority, type FetchResult, networkProvider } from './provider.js'
export { TransferQueue, type TransferQueueOptions } from '../core/fs/transfer-queue.js'
