/**
 * The memory sink: a file's bytes into one Buffer, hash-verified, size-capped. For callers that
 * want content, not a file (a network `require` of a script, `load_asset`): nothing touches the
 * disk, and nothing unverified is ever returned.
 */
import { AssetSyncError } from '../../errors.js'
import { MAX_READ_BYTES } from '../../limits.js'
import type { FileMeta } from '../../protocol/messages.js'
import { type Hasher, createHasher, equalHash } from '../fs/hash.js'
import { printable } from '../fs/paths.js'
import type { FileSink, SinkFactory } from './file-sink.js'

/** A sink holding one file in memory; `commit` returns the verified bytes. */
export class MemorySink implements FileSink<Buffer> {
  readonly meta: FileMeta
  readonly #path: string
  #buf: Buffer | null
  readonly #hasher: Hasher = createHasher()
  #written = 0

  /** Refuses (ERR_LIMIT) a file announced larger than `maxBytes` before any byte is held. */
  constructor(meta: FileMeta, path: string, maxBytes: number = MAX_READ_BYTES) {
    if (meta.size > maxBytes) {
      throw new AssetSyncError('ERR_LIMIT', `${printable(path)} is ${meta.size} bytes, more than the ${maxBytes} a read takes into memory`)
    }
    this.meta = meta
    this.#path = path
    // The announced size is capped above, so one allocation holds the file: no copies to join.
    this.#buf = Buffer.allocUnsafe(meta.size)
  }

  get written(): number { return this.#written }

  write(data: Uint8Array, offset: number): void {
    const buf = this.#buf
    if (!buf) throw new AssetSyncError('ERR_INTERNAL', `${printable(this.#path)}: write after commit or discard`)
    if (offset !== this.#written) throw new AssetSyncError('ERR_PROTOCOL', `${printable(this.#path)}: bytes at ${offset}, expected ${this.#written}`)
    if (offset + data.byteLength > this.meta.size) {
      throw new AssetSyncError('ERR_INTEGRITY', `${printable(this.#path)}: server sent more bytes than announced`)
    }
    buf.set(data, offset)
    this.#hasher.update(data)
    this.#written += data.byteLength
  }

  async commit(): Promise<Buffer> {
    const buf = this.#buf
    if (!buf) throw new AssetSyncError('ERR_INTERNAL', `${printable(this.#path)}: commit after commit or discard`)
    this.#buf = null
    const digest = this.#hasher.digest()
    if (this.#written !== this.meta.size || !equalHash(digest, this.meta.hash)) {
      throw new AssetSyncError('ERR_INTEGRITY',
        `${printable(this.#path)}: received content does not match its BLAKE3 hash (${this.#written}/${this.meta.size} bytes)`)
    }
    return buf
  }

  async discard(): Promise<void> {
    if (!this.#buf) return
    this.#buf = null
    this.#hasher.digest() // frees the hasher's state
  }
}

/** A factory of memory sinks holding at most `maxBytes` (default MAX_READ_BYTES). */
export function memorySink(maxBytes: number = MAX_READ_BYTES): SinkFactory<Buffer> {
  return (meta, path) => new MemorySink(meta, path, maxBytes)
}
