/**
 * How the folder source reads a file the index vouches for (issue 12): opened with flags that never
 * follow a link put there since nor block on a FIFO, the path resolved again inside the root to
 * the very inode opened, the stamp compared with the one the index hashed. FolderReader is an
 * opened file (`open` + `read`); readWholeNow is the small-file fast path of feature
 * `batch-request` (issue 15): the same checks and the whole content, synchronously.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { AssetSyncError } from '../../errors.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import { diskPath, resolveForReadNow } from '../fs/paths.js'
import { type FileStamp, sameStamp, stampOf } from '../fs/stamp.js'
import type { SourceReader, WholeRead } from './source.js'
import type { Entry } from './store-entry.js'

/**
 * Read-only and non-blocking: a FIFO in the served folder would otherwise block open() in the
 * libuv threadpool until a writer appears — four such requests froze all file I/O of the server
 * (and its SIGTERM shutdown). O_NONBLOCK changes nothing for regular files; the isFile check
 * then answers not-found. (O_NONBLOCK is undefined on Windows, which has no FIFOs here.)
 */
export const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0)
/** A path indexed as a regular file must still be one: never follow a link put there since. */
export const NOFOLLOW = constants.O_NOFOLLOW ?? 0

/**
 * `open`'s checks, synchronously, for `entry` (indexed at `path` under `root`): open without
 * following a link, fstat against the index's stamp, the path resolved again inside the root to the
 * very inode opened, one read. 'slow' for anything else (a link, changed since, swapped, gone):
 * `open` refreshes the index and knows every answer. Per file a few syscalls instead of six
 * thread-pool round trips (docs/benchmarks.md, "Small files").
 */
export function readWholeNow(root: string, path: string, entry: Entry, maxBytes: number): WholeRead | 'slow' {
  if (entry.link) return 'slow'
  const pub = publicEntry(entry)
  if (entry.size > maxBytes) return { entry: pub, data: null }
  let fd: number
  try {
    fd = openSync(diskPath(root, path, entry.disk), OPEN_FLAGS | NOFOLLOW)
  } catch {
    return 'slow'
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile() || !sameStamp(entry, st)) return 'slow'
    const real = resolveForReadNow(root, path, entry.disk)
    if (real === null) return 'slow'
    const now = statSync(real)
    if (now.ino !== st.ino || now.dev !== st.dev) return 'slow'
    const data = Buffer.allocUnsafe(entry.size)
    for (let at = 0; at < data.length;) {
      const n = readSync(fd, data, at, data.length - at, at)
      if (n === 0) return 'slow' // shrank since the fstat
      at += n
    }
    return { entry: pub, data }
  } catch {
    return 'slow'
  } finally {
    closeSync(fd)
  }
}

/** An opened file of the folder, read by range; its stamp is checked again after the last read. */
export class FolderReader implements SourceReader {
  readonly entry: ManifestEntry
  readonly #fh: FileHandle
  readonly #path: string
  readonly #stamp: FileStamp
  #closed = false

  constructor(fh: FileHandle, path: string, entry: ManifestEntry & FileStamp) {
    this.#fh = fh
    this.#path = path
    this.entry = { path: entry.path, hash: entry.hash, size: entry.size, mode: entry.mode, mtime: entry.mtime }
    this.#stamp = stampOf(entry)
  }

  async read(into: Uint8Array, position: number, length: number): Promise<void> {
    if (length === 0) return
    const { bytesRead } = await this.#fh.read(into, 0, length, position)
    if (bytesRead < length) throw new AssetSyncError('ERR_CHANGED', `${this.#path} shrank during the transfer; try again`)
    if (position > 0 && position + length === this.entry.size) {
      // Written in place while we sent it? The client's BLAKE3 check already refuses a mix of
      // old and new bytes; this cheap stat lets it retry at once with a clear reason (re-hashing
      // every byte sent here cost 15-19 % of server CPU: docs/benchmarks.md). A file read in one
      // piece was read right after the stat taken when it was opened.
      if (!sameStamp(await this.#fh.stat(), this.#stamp)) {
        throw new AssetSyncError('ERR_CHANGED', `${this.#path} changed during the transfer; try again`)
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#fh.close().catch(() => {})
  }
}

/** Just the manifest fields of an index entry (not its stamp or disk name). */
export function publicEntry(e: ManifestEntry): ManifestEntry {
  return { path: e.path, hash: e.hash, size: e.size, mode: e.mode, mtime: e.mtime }
}
