/**
 * The shapes of a mirror's work: what each file's sync did, the summary, warnings, staged files
 * and the options of Mirror and Mirror.sync (mirror.ts).
 */
import type { LocalLooks } from './local-looks.js'
import type { FileMeta } from '../../protocol/messages.js'
import type { ChunkList } from '../delta/chunk-list.js'
import type { AssetClient } from './client.js'
import type { PinnedDir, WriteRoot, WriteRootMode } from '../fs/write-root.js'

/**
 * 'vanished': in the manifest, but gone from the server by the time it was requested (deleted or
 * renamed mid-pull); nothing is written, and the pull goes on (rsync: "file has vanished").
 * 'mode': the content was current, only the permission bits differed: applied with chmod.
 */
export type FileAction = 'downloaded' | 'up-to-date' | 'mode' | 'deleted' | 'vanished'

export interface FileEvent {
  path: string
  action: FileAction
  /** File payload bytes received on the wire (0 for up-to-date, mode, deleted and dry runs). */
  bytes: number
  /** Bytes taken from local files instead of the wire (delta transfers, local copies). */
  reused: number
}

export interface SyncSummary {
  /** Files in the selection the server has (downloaded + upToDate). */
  files: number
  downloaded: number
  /** Files whose content was current (mode-only changes included). */
  upToDate: number
  /** Of upToDate: files whose permission bits were changed (no download). */
  modeChanged: number
  deleted: number
  /** Manifest files the server no longer had when they were requested. */
  vanished: number
  /** Payload bytes received on the wire (compressed chunks and chunk lists as sent). */
  bytesReceived: number
  /** Bytes taken from local files instead (chunks of old versions, copies of files already here). */
  bytesReused: number
  ms: number
}

/** Something the user should know that does not stop the sync. */
export interface MirrorWarning {
  /** NO_MATCH: a pattern selects no file on the server; RECORD_DAMAGED / RECORD_NOT_SAVED: see ListedRecord. */
  code: 'NO_MATCH' | 'RECORD_DAMAGED' | 'RECORD_NOT_SAVED'
  message: string
  pattern?: string
}

/** A verified download waiting beside its final path (in a folder held open until install or discard). */
export interface StagedFile {
  wire: string
  /** Names usable while the folder is held (see WriteRoot.at). */
  temp: string
  final: string
  hash: Buffer
  /** Payload bytes received on the wire for it. */
  bytes: number
  /** Bytes taken from local files instead. */
  reused: number
  /** Its chunk list, when it was assembled from one (cached once installed). */
  list?: ChunkList | null
  readonly dir: PinnedDir
  readonly session: WriteRoot
}

export interface MirrorOptions {
  /** The local folder. */
  out: string
  patterns?: string[]
  configDir?: string
  parallel?: number
  /** Force the write path's fallback ('path') instead of folder descriptors (tests). */
  writeMode?: WriteRootMode
  /**
   * Stages a file some other way than a REQUEST to the server (`pull --direct`: from its S3
   * origin), as a verified temp file beside `final` (a path through the pinned folder). Null, or
   * a null result: download through the server.
   */
  fetcher?: ((client: AssetClient, meta: FileMeta, final: string) => Promise<{ tempPath: string; bytes: number } | null>) | null
}

export interface SyncOptions {
  prune?: boolean
  dryRun?: boolean
  onFile?: (ev: FileEvent) => void
  /** Bytes received so far, for progress output. */
  onProgress?: (p: { bytes: number; done: number; total: number }) => void
  /** Warnings (each reported once per Mirror). */
  onWarning?: (w: MirrorWarning) => void
  /**
   * After a sync in which every listed file was verified (not a dry run, none vanished), save the
   * manifest as this folder's listing, with its digest (feature manifest-digest: the next pull
   * asks whether it still holds). Pass the manifest exactly as the server listed it.
   */
  saveListing?: boolean
  /**
   * The local copies, looked at already (Mirror.lookAhead, while connecting): paths found there
   * are not looked at again.
   */
  ahead?: LocalLooks | null
}
