/**
 * The only importer of the BLAKE3 package (blake3@2.1.7, wasm). Files are hashed streaming in
 * HASH_READ_BYTES pieces, never read whole.
 */
import { readSync } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import { createRequire } from 'node:module'

type Blake3 = typeof import('blake3')
let blake3: Blake3 | null = null
/**
 * The package, loaded on first use: compiling its wasm costs ~40 ms of start-up, which a no-op
 * pull (every local hash cached) or a `get` of an up-to-date file never needs.
 */
function lib(): Blake3 {
  blake3 ??= createRequire(import.meta.url)('blake3') as Blake3
  return blake3
}

/** Read size while hashing (≤ 1 MiB keeps the wasm copy cheap and memory flat). */
export const HASH_READ_BYTES = 1024 * 1024

/** An incremental BLAKE3-256 hasher. */
export interface Hasher {
  update(data: Uint8Array): void
  /** The 32-byte digest. Releases the wasm state; later calls return the same digest. */
  digest(): Buffer
}

export function createHasher(): Hasher {
  const h = lib().createHash()
  let result: Buffer | null = null
  return {
    update(data) {
      if (result) throw new Error('hasher already finished')
      h.update(data)
    },
    digest() {
      if (!result) {
        result = h.digest() as Buffer
        h.dispose()
      }
      return result
    },
  }
}

export function hashBytes(data: Uint8Array): Buffer {
  const h = createHasher()
  h.update(data)
  return h.digest()
}

/**
 * BLAKE3 of a file's content, with the byte count read. `sizeHint` (the size a stat just gave)
 * sizes the read buffer: a fresh 1 MiB per small file made indexing 100,000 files 2-3× slower.
 */
export async function hashFile(path: string, sizeHint = HASH_READ_BYTES): Promise<{ hash: Buffer; size: number }> {
  const fh = await open(path, 'r')
  try {
    return await hashHandle(fh, sizeHint)
  } finally {
    await fh.close()
  }
}

/**
 * BLAKE3 of the content of an open file (read from offset 0 to its end; the handle stays open),
 * with the byte count read. For a caller that must know which inode it hashed (fstat the handle
 * before and after). `sizeHint` as in hashFile.
 */
export async function hashHandle(fh: FileHandle, sizeHint = HASH_READ_BYTES): Promise<{ hash: Buffer; size: number }> {
  const h = createHasher()
  let size = 0
  try {
    // One byte more than the hint: the whole file in one read; the next read then sees the end.
    // A file bigger than its hint (it grew, or the hint was wrong) goes on with full-size reads.
    let buf = Buffer.allocUnsafe(Math.max(1, Math.min(HASH_READ_BYTES, sizeHint + 1)))
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, size)
      if (bytesRead === 0) break
      h.update(buf.subarray(0, bytesRead))
      size += bytesRead
      if (bytesRead === buf.length && buf.length < HASH_READ_BYTES) buf = Buffer.allocUnsafe(HASH_READ_BYTES)
    }
    return { hash: h.digest(), size }
  } catch (err) {
    h.digest()
    throw err
  }
}

/**
 * BLAKE3 of the content of an open file descriptor, read synchronously from offset 0 to its end
 * into `scratch`, with the byte count read. For small files in bulk (the server's background
 * index): a few synchronous reads cost less than the promises and thread-pool round trips of
 * `hashHandle`. Blocks the thread: callers keep the files small and yield between slices.
 */
export function hashFdSync(fd: number, scratch: Buffer): { hash: Buffer; size: number } {
  const h = createHasher()
  let size = 0
  try {
    for (;;) {
      const n = readSync(fd, scratch, 0, scratch.length, size)
      if (n === 0) break
      h.update(scratch.subarray(0, n))
      size += n
    }
    return { hash: h.digest(), size }
  } catch (err) {
    h.digest()
    throw err
  }
}

export function equalHash(a: Uint8Array | null | undefined, b: Uint8Array | null | undefined): boolean {
  return !!a && !!b && Buffer.compare(a, b) === 0
}
