/**
 * Atomic file writes: bytes go to a temp file in the target's folder, are verified against the
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
import { randomBytes } from 'node:crypto'
import { closeSync, fchmodSync, futimesSync, open as openCb, renameSync, writeSync } from 'node:fs'
import { type FileHandle, open, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { AssetSyncError, writeError } from '../../errors.js'
import { SMALL_FILE_BYTES } from '../../limits.js'
import type { FileMeta } from '../../protocol/messages.js'
import { type Hasher, createHasher, equalHash } from './hash.js'
import { TEMP_PREFIX, TEMP_SUFFIX } from './ignore.js'

/** A plain descriptor for small files: every later call on it is synchronous (closeSync too). */
const openFd = promisify(openCb)

/** Random per process (48 bits), so two clients writing into one folder never pick the same name. */
let processTag: string | null = null
let tempCounter = 0
/** Attempts at a fresh temp name when one exists already (a leftover, or another process's). */
const TEMP_NAME_ATTEMPTS = 5

/**
 * A temp name beside `finalPath`: `.assetsync-<process tag><counter>.tmp` (hex). One random draw
 * per process instead of one per file; the file is created with O_EXCL, so a clash is an error
 * (and a retry with the next name), never a shared file.
 */
export function tempPathFor(finalPath: string): string {
  processTag ??= randomBytes(6).toString('hex')
  return join(dirname(finalPath), `${TEMP_PREFIX}${processTag}${(tempCounter++).toString(16).padStart(4, '0')}${TEMP_SUFFIX}`)
}

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX)
}

const isExists = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === 'EEXIST'

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
    const small = meta.size <= SMALL_FILE_BYTES
    for (let attempt = 1; ; attempt++) {
      const tempPath = tempPathFor(finalPath)
      try {
        if (small) return new IncomingFile(finalPath, tempPath, await openFd(tempPath, 'wx', 0o600), null, meta)
        return new IncomingFile(finalPath, tempPath, -1, await open(tempPath, 'wx', 0o600), meta)
      } catch (err) {
        if (isExists(err) && attempt < TEMP_NAME_ATTEMPTS) continue
        throw writeError(finalPath, err)
      }
    }
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
    await unlink(this.tempPath).catch(() => {})
  }
}
