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
import { closeSync, fchmodSync, futimesSync, open as openCb, openSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import { basename } from 'node:path'
import { promisify } from 'node:util'
import { AssetSyncError, writeError } from '../../errors.js'
import { SMALL_FILE_BYTES } from '../../limits.js'
import type { FileMeta } from '../../protocol/messages.js'
import { createTemp, removeTemp, tempPathFor } from './atomic-write.js'
import { type Hasher, createHasher, equalHash } from './hash.js'

export { isTempName, tempPathFor } from './atomic-write.js'

/** A plain descriptor for small files: every later call on it is synchronous (closeSync too). */
const openFd = promisify(openCb)

/** One file being received: `write` chunks in order, then `commit` (verify + rename) or `discard`. */
export class IncomingFile {
  readonly finalPath: string
  readonly tempPath: string
  readonly meta: FileMeta
  /** Small files: the temp file's descriptor, written synchronously; -1 when closed. */
  #fd: number
  /** Large files: the temp file, written through the thread pool; null when closed. */
  #fh: FileHandle | null
  readonly #hasher: Hasher = createHasher()
  #written = 0
  /** The temp file is ours to remove on discard (false once committed: then it is the caller's). */
  #owned = true

  private constructor(finalPath: string, tempPath: string, fd: number, fh: FileHandle | null, meta: FileMeta) {
    this.finalPath = finalPath
    this.tempPath = tempPath
    this.#fd = fd
    this.#fh = fh
    this.meta = meta
  }

  /** Creates the temp file beside `finalPath` (so a full disk or a read-only folder fails early). */
  static async create(finalPath: string, meta: FileMeta): Promise<IncomingFile> {
    if (meta.size <= SMALL_FILE_BYTES) {
      const { tempPath, handle } = await createTemp(finalPath, (p) => openFd(p, 'wx', 0o600))
      return new IncomingFile(finalPath, tempPath, handle, null, meta)
    }
    const { tempPath, handle } = await createTemp(finalPath, (p) => open(p, 'wx', 0o600))
    return new IncomingFile(finalPath, tempPath, -1, handle, meta)
  }

  get written(): number { return this.#written }

  async write(data: Uint8Array): Promise<void> {
    if (this.#written + data.byteLength > this.meta.size) {
      throw new AssetSyncError('ERR_INTEGRITY', `${basename(this.finalPath)}: server sent more bytes than announced`)
    }
    const fh = this.#fh
    if (this.#fd < 0 && !fh) throw new AssetSyncError('ERR_INTERNAL', `${basename(this.finalPath)}: write after commit or discard`)
    this.#hasher.update(data)
    let off = 0
    try {
      while (off < data.byteLength) {
        const pos = this.#written + off
        const len = data.byteLength - off
        off += fh ? (await fh.write(data, off, len, pos)).bytesWritten : writeSync(this.#fd, data, off, len, pos)
      }
    } catch (err) {
      throw writeError(this.finalPath, err)
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
          `${basename(this.finalPath)}: received content does not match its BLAKE3 hash (${this.#written}/${this.meta.size} bytes)`)
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
        if (install) renameSync(this.tempPath, this.finalPath)
        this.#owned = false
      } catch (err) {
        throw writeError(this.finalPath, err)
      }
    } catch (err) {
      await this.discard()
      throw err
    }
  }

  /** Drops the file: closes and removes the temp file. Safe to call more than once. */
  async discard(): Promise<void> {
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
    await removeTemp(this.tempPath)
  }
}

/** Fresh temp names tried when one exists already (as createTemp). */
const WHOLE_TEMP_ATTEMPTS = 5

/**
 * Writes a whole file that is already in memory and verified (a BATCH_DATA answer: feature
 * `batch-request`) atomically, synchronously: temp file beside `finalPath` (O_EXCL, 0600), write,
 * fchmod and futimes on the descriptor, close, rename (unless `install` is false: the caller
 * renames the returned temp file). Six syscalls and no thread-pool round trip; a small write
 * blocks the loop for microseconds. On failure the temp file is removed: ERR_WRITE naming
 * `label` (default the final path). Returns the temp path.
 */
export function writeWholeSync(finalPath: string, meta: FileMeta, data: Uint8Array, install = true, label = finalPath): string {
  let tempPath = ''
  let fd = -1
  for (let attempt = 1; fd < 0; attempt++) {
    tempPath = tempPathFor(finalPath)
    try {
      fd = openSync(tempPath, 'wx', 0o600)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && attempt < WHOLE_TEMP_ATTEMPTS) continue
      throw writeError(label, err)
    }
  }
  try {
    for (let off = 0; off < data.byteLength;) off += writeSync(fd, data, off, data.byteLength - off, off)
    fchmodSync(fd, meta.mode & 0o777)
    const t = meta.mtime / 1000
    futimesSync(fd, t, t)
    const closing = fd
    fd = -1
    closeSync(closing)
    if (install) renameSync(tempPath, finalPath)
    return tempPath
  } catch (err) {
    if (fd >= 0) {
      try { closeSync(fd) } catch { /* closed */ }
    }
    try { unlinkSync(tempPath) } catch { /* gone */ }
    throw writeError(label, err)
  }
}
