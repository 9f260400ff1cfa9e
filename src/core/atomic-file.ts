/**
 * Atomic file writes: bytes go to a temp file in the target's folder, are verified against the
 * announced BLAKE3 hash, then renamed over the final path. A killed client leaves at most a temp
 * file (ignored by default, cleaned on the next run), never a partial file at a final path.
 */
import { randomBytes } from 'node:crypto'
import type { FileHandle } from 'node:fs/promises'
import { chmod, open, rename, unlink, utimes } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { AssetSyncError, writeError } from '../errors.js'
import type { FileMeta } from '../protocol/messages.js'
import { type Hasher, createHasher, equalHash } from './hash.js'
import { TEMP_PREFIX, TEMP_SUFFIX } from './ignore.js'

export function tempPathFor(finalPath: string): string {
  return join(dirname(finalPath), `${TEMP_PREFIX}${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`)
}

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX)
}

/** One file being received: `write` chunks in order, then `commit` (verify + rename) or `discard`. */
export class IncomingFile {
  readonly finalPath: string
  readonly tempPath: string
  readonly meta: FileMeta
  readonly #fh: FileHandle
  readonly #hasher: Hasher = createHasher()
  #written = 0

  private constructor(finalPath: string, tempPath: string, fh: FileHandle, meta: FileMeta) {
    this.finalPath = finalPath
    this.tempPath = tempPath
    this.#fh = fh
    this.meta = meta
  }

  static async create(finalPath: string, meta: FileMeta): Promise<IncomingFile> {
    const tempPath = tempPathFor(finalPath)
    try {
      const fh = await open(tempPath, 'wx', 0o600)
      return new IncomingFile(finalPath, tempPath, fh, meta)
    } catch (err) {
      throw writeError(finalPath, err)
    }
  }

  get written(): number { return this.#written }

  async write(data: Uint8Array): Promise<void> {
    if (this.#written + data.byteLength > this.meta.size) {
      throw new AssetSyncError('ERR_INTEGRITY', `${basename(this.finalPath)}: server sent more bytes than announced`)
    }
    this.#hasher.update(data)
    let off = 0
    try {
      while (off < data.byteLength) {
        const { bytesWritten } = await this.#fh.write(data, off, data.byteLength - off, this.#written + off)
        off += bytesWritten
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
        await this.#fh.close()
        await chmod(this.tempPath, this.meta.mode & 0o777)
        const t = this.meta.mtime / 1000
        await utimes(this.tempPath, t, t)
        if (install) await rename(this.tempPath, this.finalPath)
      } catch (err) {
        throw writeError(this.finalPath, err)
      }
    } catch (err) {
      await this.discard()
      throw err
    }
  }

  async discard(): Promise<void> {
    this.#hasher.digest()
    await this.#fh.close().catch(() => {})
    await unlink(this.tempPath).catch(() => {})
  }
}
