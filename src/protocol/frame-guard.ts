/**
 * Enforces MAX_FRAME_BYTES below the Noise layer. secret-stream frames every message with a
 * 3-byte little-endian length and allocates that much before decrypting (up to 16 MiB), so an
 * unauthenticated peer could make it reserve 16 MiB per connection. This watcher reads only
 * the length prefixes as raw bytes pass by and stops the stream at the first oversize one.
 */
import type { Duplex } from 'node:stream'
import { AssetSyncError } from '../errors.js'
import { MAX_FRAME_BYTES } from '../limits.js'

/** Largest secret-stream message: a frame plus the secretstream tag byte and MAC (ABYTES = 17). */
export const MAX_WIRE_MESSAGE_BYTES = MAX_FRAME_BYTES + 64

export interface FrameGuard {
  /** The error the guard stopped the stream with, or null while it has not tripped. */
  readonly error: AssetSyncError | null
  /**
   * Hands the guard the secret stream built on the raw stream. Required: destroying only the raw
   * stream is not enough, because secret-stream's own 'data' listener still gets the chunk that
   * carried the oversize length (the listeners of one 'data' event all run) and would allocate
   * the announced size before the raw stream's error reaches it on the next tick. A secret stream
   * destroyed synchronously stops parsing right after the length prefix.
   */
  protect(secure: Duplex): void
}

/**
 * Attach BEFORE the secret stream is created on `raw`, so this listener runs first for every
 * chunk, then call `protect(secure)`.
 */
export function guardFrames(raw: Duplex, max = MAX_WIRE_MESSAGE_BYTES): FrameGuard {
  let header = 0 // bytes of the current 3-byte length read so far
  let len = 0
  let left = 0 // payload bytes of the current message still to skip
  let error: AssetSyncError | null = null
  let secure: Duplex | null = null
  raw.on('data', (chunk: Uint8Array) => {
    if (error) return
    let i = 0
    while (i < chunk.byteLength) {
      if (left > 0) {
        const skip = Math.min(left, chunk.byteLength - i)
        left -= skip
        i += skip
        continue
      }
      len |= (chunk[i++] as number) << (8 * header)
      if (++header < 3) continue
      if (len > max) {
        error = new AssetSyncError('ERR_PROTOCOL', `peer announced a ${len}-byte message (limit ${max})`)
        // secret-stream destroys its raw stream with the same error.
        if (secure) secure.destroy(error)
        raw.destroy(error)
        return
      }
      left = len
      header = 0
      len = 0
    }
  })
  return {
    get error() { return error },
    protect(s: Duplex) { secure = s },
  }
}
