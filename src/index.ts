/**
 * The assetsync library API: the same protocol core the CLI uses.
 * @packageDocumentation
 */
export { AssetServer, type AssetServerOptions } from './core/server/server.js'
export type {
  AssetServerEvents, AssetServerEventName, BatchEvent, ClientConnectedEvent, ClientDisconnectedEvent, ClientRejectedEvent,
  PathRefusedEvent, ReloadReportEvent, SubscriptionsEvent, SkippedEvent, InternalErrorEvent, ReindexedEvent, IndexedEvent, FatalEvent,
  AuthFailuresEvent,
} from './core/server/server-events.js'
export type { RejectReason } from './protocol/endpoint.js'
export type { MatchStats } from './core/server/match-work.js'
export type { MemoryBudget } from './core/server/memory-budget.js'
export { Metrics, type MetricsOptions, type RequestStatus, type ByteCounters } from './core/server/metrics.js'
export {
  StatusTracker, errorLocation, type StatusProvider, type StatusTrackerOptions, type ClientProbe, type ReportInput,
} from './core/server/status.js'
export {
  HttpStatusServer, parseHttpAddress, isLoopback, type HttpStatusOptions, type MetricsSource,
} from './core/server/http-status.js'
export {
  parseStatusJson, fitStatus, type StatusJson, type ClientStatus, type BatchStatus, type ReloadReport, type ReloadError,
  type SubscriptionStatus,
} from './protocol/status-json.js'
export { VERSION } from './version.js'
export type { ChangeSummary } from './core/server/changes.js'
export type { AssetSource, SourceReader, ManifestPage, ScanResult, OpenOptions, SkippedPath, ChunkedEntry } from './core/server/source.js'
export type { ChangeFeed, ChangeBatch, ChangePublisher, FeedSink } from './core/server/feed.js'
export { FolderSource, type FolderSourceOptions, type RootState } from './core/server/folder-source.js'
export { MemorySource } from './core/server/memory-source.js'
export { FolderFeed, type FolderFeedOptions } from './core/server/folder-feed.js'
export { MemoryFeed } from './core/server/memory-feed.js'
export type { KeyPair } from './protocol/keypair.js'
export { DEFAULT_PORT } from './limits.js'
export {
  AssetClient, parseServer, type AssetClientOptions, type AssetClientEvents, type ClientReport, type DownloadResult, type DownloadStatus,
  type ReadOptions, type DownloadOptions,
} from './core/client/client.js'
export type { FileSink, SinkFactory } from './core/client/file-sink.js'
export { fileSink, type SavedFile, type FileSinkOptions } from './core/client/temp-file-sink.js'
export { MemorySink, memorySink } from './core/client/memory-sink.js'
export { Mirror, type MirrorOptions, type SyncOptions, type SyncSummary, type FileEvent } from './core/client/mirror.js'
export {
  LiveMirror, reconnectDelay, type LiveMirrorOptions, type LiveMirrorEvents, type SyncedEvent, type ReconnectingEvent, type AppliedStats,
} from './core/client/live-mirror.js'
export {
  ChunkList, ChunkListBuilder, chunkBytes, chunkFile, encodeChunkList, decodeChunkList, maxChunkListBytes, type ChunkListExpectation,
} from './core/delta/chunk-list.js'
export { ChunkListCache } from './core/delta/list-cache.js'
export { compressChunk, decompressChunk, isCompressedExtension, CODING, type Coding, type EncodedChunk } from './core/delta/compress.js'
export { HookRunner, hookFailure, type Change, type HookResult, type HookOptions, type HookRunnerEvents } from './core/client/hooks.js'
export {
  NetworkAssets, type NetworkAssetsOptions, type NetworkAssetsEvents, type AssetFetchOptions, type AssetFetchResult,
  type AssetFetchAction, type AssetPriority, type AssetReadOptions, type AssetChangeEvent, type AssetWarning,
} from './core/client/network-assets.js'
export {
  LuaHost, runScript, ScriptError, DEFAULT_LUA_PATH, FolderAssets, networkProvider,
  type RunOptions, type RuntimeEvent, type FolderAssetsOptions, type FolderAssetsStats,
  type AssetProvider, type AssetChange, type FetchAction, type FetchOptions, type FetchPriority, type FetchResult,
} from './runtime/index.js'
export {
  AssetSyncError, ProtocolError, ExitRequest, EXIT, ERROR_EXIT, ERROR_RECOVERY, exitCodeOf, recoveryOf, isTransient, isRetryable, needsReconnect, isFatal,
  type ErrorCode, type Recovery,
} from './errors.js'
export { ManualClock, type Clock } from './protocol/clock.js'
export {
  PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, FEATURES, PRIORITY, type RequestPriority, type FeatureName, type ManifestEntry, type UpdateEntry, type FileMeta,
} from './protocol/messages.js'
export { PatternSet, scanSelected, type PatternMode, type PatternBudget } from './core/fs/patterns.js'
export type { TransportName } from './protocol/transport.js'
export * as limits from './limits.js'
// Scale-out (docs/scale-out.md): an origin publishing to S3, edges serving from it, a NATS feed.
export { BucketPublisher, type BucketPublisherOptions, type BucketPublisherEvents, type PublishedEvent } from './core/server/bucket-publisher.js'
export { BucketSource } from './core/server/bucket-source.js'
export { EdgeFeed, diffManifests, type EdgeFeedOptions, type EdgeVersionEvent } from './core/server/edge-feed.js'
export { bucketDirect, type DirectProvider } from './core/server/direct.js'
export { S3Store, type S3StoreOptions } from './core/scale/s3-store.js'
export type { ObjectStore, StoreStats } from './core/scale/object-store.js'
export { NatsLink, type NatsLinkOptions } from './core/scale/nats-link.js'
export { ChunkStore, bucketObjects, type ChunkObjects, type ChunkStoreOptions } from './core/scale/chunk-store.js'
export { DiskCache, edgeCacheDir } from './core/scale/chunk-cache.js'
export { parseBucketUrl, parseFeedUrl, formatLocation, type BucketLocation, type FeedLocation } from './core/scale/location.js'
export { DirectFetcher, type DirectOptions } from './core/client/direct-fetch.js'
