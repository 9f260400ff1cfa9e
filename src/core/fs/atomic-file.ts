/**
 * Atomic file writes, streaming (the whole-buffer variant and the temp naming are in
 * atomic-write.ts): bytes go to a temp file in the target's folder, are verified against the
 * announced BLAKE3 hash, then renamed over the final path. A killed client leaves at most a temp
 * file (ignored by default, cleaned on the next run), never a partial file at a final path.
 *
 * Per file: the temp file is created asynchronously (O_CREAT|O_EXCL can wait on the disk: ~0.4 ms
 * each here, so it belongs on the thread pool, where creates overlap each other and the network);
 * the rest are single syscalls of microseconds done synchronously — fchmod and futimes on the
 * open descriptor (not by path), close and rename — where each async call was a thread-pool round
 * trip: about a dozen per file were the client's whole CPU on a pull of small files
 * (docs/benchmarks.md, "Cold pull"). A small file (≤ SMALL_FILE_BYTES, one CHUNK) is also written
 * synchronously; a larger one streams through async writes, so a slow disk never blocks the loop.
 */
import { closeSync, fchmodSync, futimesSync, open as openCb, renameSync, unlinkSync, writeSync } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import { basename } from 'node:path'
import { promisify } from 'node:util'
import { AssetSyncError, writeError } from '../../errors.js'
import { SMALL_FILE_BYTES } from '../../limits.js'
import type { FileMeta } from '../../protocol/messages.js'
import { createTemp, keepingParts, removeTemp, tempInstalled } from './atomic-write.js'
import { type Hasher, createHasher, equalHash } from './hash.js'

export { isTempName, tempPathFor } from './atomic-write.js'

/** A plain descriptor for small files: every later call on it is synchronous (closeSync too). */
const openFd = promisify(openCb)

/** One file being received: `write` chunks in order, then `commit` (verify + rename) or `discard`. */
export class IncomingFile {
  readonly finalPath: string
  readonly tempPath: string
  readonly meta: FileMeta
  /** What messages call the file: the wire path of a mirrored file, else the final path's name. */
  readonly label: string
  /** What write errors name: the label if given, else the final path. */
  readonly #what: string
  /** Small files: the temp file's descriptor, written synchronously; -1 when closed. */
  #fd: number
  /** Large files: the temp file, written through the thread pool; null when closed. */
  #fh: FileHandle | null
  readonly #hasher: Hasher = createHasher()
  #written = 0
  /** The temp file is ours to remove on discard (false once committed: then it is the caller's). */
  #owned = true

  private constructor(finalPath: string, tempPath: string, fd: number, fh: FileHandle | null, meta: FileMeta, label?: string) {
    this.finalPath = finalPath
    this.label = label ?? basename(finalPath)
    this.#what = label ?? finalPath
    this.tempPath = tempPath
    this.#fd = fd
    this.#fh = fh
    this.meta = meta
  }

  /**
   * Creates the temp file beside `finalPath` (so a full disk or a read-only folder fails early).
   * `finalPath` may name the file through its folder's descriptor (`/proc/self/fd/N/name`, see
   * write-root.ts): the temp file is then created in that very folder. `label` names it in messages.
   * `opts.tempPath`, a temp name beside it (a resume staging name: delta/staging.ts), is used
   * instead of a fresh name when it does not exist yet; otherwise a fresh name is.
   */
  static async create(finalPath: string, meta: FileMeta, label?: string, opts: { tempPath?: string } = {}): Promise<IncomingFile> {
    if (opts.tempPath && meta.size > SMALL_FILE_BYTES) {
      const tempPath = opts.tempPath
      const fh = await open(tempPath, 'wx', 0o600).catch(() => null)
      if (fh) return new IncomingFile(finalPath, tempPath, -1, fh, meta, label)
    }
    if (meta.size <= SMALL_FILE_BYTES) {
      const { tempPath, handle } = await createTemp(finalPath, (p) => openFd(p, 'wx', 0o600), label ?? finalPath)
      return new IncomingFile(finalPath, tempPath, handle, null, meta, label)
    }
    const { tempPath, handle } = await createTemp(finalPath, (p) => open(p, 'wx', 0o600), label ?? finalPath)
    return new IncomingFile(finalPath, tempPath, -1, handle, meta, label)
  }

  /**
   * A small file (≤ SMALL_FILE_BYTES) into a temp file made ahead by createTempFd, whose
   * descriptor it takes over (written synchronously, as `create`'s small files are).
   */
  static fromTemp(finalPath: string, t: TempFd, meta: FileMeta, label?: string): IncomingFile {
    if (t.fd < 0 || meta.size > SMALL_FILE_BYTES) throw new AssetSyncError('ERR_INTERNAL', `${label ?? finalPath}: temp file used twice, or too big for it`)
    const fd = t.fd
    t.fd = -1
    return new IncomingFile(finalPath, t.tempPath, fd, null, meta, label)
  }

  get written(): number { return this.#written }

  async write(data: Uint8Array): Promise<void> {
    if (this.#written + data.byteLength > this.meta.size) {
      throw new AssetSyncError('ERR_INTEGRITY', `${this.label}: server sent more bytes than announced`)
    }
    const fh = this.#fh
    if (this.#fd < 0 && !fh) throw new AssetSyncError('ERR_INTERNAL', `${this.label}: write after commit or discard`)
    this.#hasher.update(data)
    let off = 0
    try {
      while (off < data.byteLength) {
        const pos = this.#written + off
        const len = data.byteLength - off
        off += fh ? (await fh.write(data, off, len, pos)).bytesWritten : writeSync(this.#fd, data, off, len, pos)
      }
    } catch (err) {
      throw writeError(this.#what, err)
    }
    this.#written += data.byteLength
  }

  /**
   * Verifies size and hash, sets mode and mtime, and (unless `install` is false, for a caller that
   * installs a whole batch later) renames into place. Discards on any failure.
   */
  async commit(install = true): Promise<void> {
    try {
      const digest = this.#hasher.digest()
      if (this.#written !== this.meta.size || !equalHash(digest, this.meta.hash)) {
        throw new AssetSyncError('ERR_INTEGRITY',
          `${this.label}: received content does not match its BLAKE3 hash (${this.#written}/${this.meta.size} bytes)`)
      }
      try {
        const fh = this.#fh
        const fd = fh ? fh.fd : this.#fd
        fchmodSync(fd, this.meta.mode & 0o777)
        const t = this.meta.mtime / 1000
        futimesSync(fd, t, t)
        if (fh) {
          this.#fh = null
          await fh.close()
        } else {
          this.#fd = -1
          closeSync(fd)
        }
        if (install) {
          renameSync(this.tempPath, this.finalPath)
          tempInstalled(this.tempPath)
        }
        this.#owned = false
      } catch (err) {
        throw writeError(this.#what, err)
      }
    } catch (err) {
      await this.discard()
      throw err
    }
  }

  /**
   * Drops the file: closes and removes the temp file. With `keep`, closes it and leaves it where
   * it is (a resume staging file: the caller owns it now), unless the user is stopping the
   * process (keepNoParts). Safe to call more than once.
   */
  async discard(keep = false): Promise<void> {
    this.#hasher.digest()
    const fd = this.#fd
    const fh = this.#fh
    this.#fd = -1
    this.#fh = null
    if (fd >= 0) {
      try {
        closeSync(fd)
      } catch { /* already closed */ }
    }
    if (fh) await fh.close().catch(() => {})
    if (!this.#owned) return
    this.#owned = false
    if (!keep || !keepingParts()) await removeTemp(this.tempPath)
  }
}

/** A temp file made ahead of its content (feature `batch-request`): see createTempFd. */
export interface TempFd {
  readonly tempPath: string
  /** Its descriptor, open for writing; -1 once finished or dropped. */
  fd: number
}

/**
 * Creates the temp file beside `finalPath` ahead of its content, through the thread pool: the
 * O_CREAT|O_EXCL create is the one per-file step that can wait on the disk (0.4-0.8 ms each on a
 * busy disk here), so batched files have theirs made, several at once, while their batch is on
 * the wire; the rest (finishWholeSync) are syscalls of microseconds. ERR_WRITE naming `label`.
 */
export async function createTempFd(finalPath: string): Promise<TempFd> {
  const { tempPath, handle } = await createTemp(finalPath, (p) => openFd(p, 'wx', 0o600))
  return { tempPath, fd: handle }
}

/**
 * Fills a temp file from createTempFd with a whole, verified file (a BATCH_DATA answer) and makes
 * it visible, synchronously: write, fchmod and futimes on the descriptor, close, rename over
 * `finalPath` (unless `install` is false: the caller renames `tempPath`). On failure the temp file
 * is removed: ERR_WRITE naming `label`.
 */
export function finishWholeSync(t: TempFd, finalPath: string, meta: FileMeta, data: Uint8Array, install = true, label = finalPath): void {
  const fd = t.fd
  if (fd < 0) throw new AssetSyncError('ERR_INTERNAL', `${label}: temp file used twice`)
  t.fd = -1
  try {
    for (let off = 0; off < data.byteLength;) off += writeSync(fd, data, off, data.byteLength - off, off)
    fchmodSync(fd, meta.mode & 0o777)
    const time = meta.mtime / 1000
    futimesSync(fd, time, time)
  } catch (err) {
    closeQuietly(fd)
    removeQuietly(t.tempPath)
    throw writeError(label, err)
  }
  try {
    closeSync(fd)
    if (install) {
      renameSync(t.tempPath, finalPath)
      tempInstalled(t.tempPath)
    }
  } catch (err) {
    removeQuietly(t.tempPath)
    throw writeError(label, err)
  }
}

/** Drops a temp file from createTempFd that will not be filled (closed and removed; never throws). */
export function dropTempSync(t: TempFd): void {
  if (t.fd < 0) return
  closeQuietly(t.fd)
  t.fd = -1
  removeQuietly(t.tempPath)
}

function closeQuietly(fd: number): void {
  try { closeSync(fd) } catch { /* closed */ }
}

function removeQuietly(path: string): void {
  tempInstalled(path) // no longer for the exit cleanup to remove
  try { unlinkSync(path) } catch { /* gone */ }
}
