/**
 * The assetsync library API: the same protocol core the CLI uses.
 * @packageDocumentation
 */
export { AssetServer, type AssetServerOptions } from './core/server/server.js'
export { DEFAULT_PORT } from './limits.js'
export { AssetClient, parseServer, type AssetClientOptions, type DownloadResult } from './core/client/client.js'
export { Mirror, type MirrorOptions, type SyncOptions, type SyncSummary, type FileEvent } from './core/client/mirror.js'
export { LiveMirror, type LiveMirrorOptions } from './core/client/live-mirror.js'
export { HookRunner, type Change, type HookResult } from './core/client/hooks.js'
export { PatternSet, scanSelected, type PatternMode, type PatternBudget } from './core/fs/patterns.js'
export { AssetSyncError, ProtocolError, EXIT, ERROR_EXIT, exitCodeOf, type ErrorCode } from './errors.js'
export { PROTOCOL_VERSION, type ManifestEntry, type UpdateEntry, type FileMeta } from './protocol/messages.js'
export type { TransportName } from './protocol/transport.js'
export * as limits from './limits.js'
