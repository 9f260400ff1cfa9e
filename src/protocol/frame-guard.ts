/**
 * Enforces MAX_FRAME_BYTES below the Noise layer. secret-stream frames every message with a
 * 3-byte little-endian length and allocates that much before decrypting (up to 16 MiB), so an
 * unauthenticated peer could make it reserve 16 MiB per connection. This watcher reads only
 * the length prefixes as raw bytes pass by and destroys the stream at the first oversize one.
 */
import type { Duplex } from 'node:stream'
import { AssetSyncError } from '../errors.js'
import { MAX_FRAME_BYTES } from '../limits.js'

/** Largest secret-stream message: a frame plus the secretstream tag byte and MAC (ABYTES = 17). */
export const MAX_WIRE_MESSAGE_BYTES = MAX_FRAME_BYTES + 64

/**
 * Attach BEFORE the secret stream is created on `raw`, so this listener runs first for every
 * chunk. Returns a function that tells whether the guard tripped.
 */
export function guardFrames(raw: Duplex, max = MAX_WIRE_MESSAGE_BYTES): () => boolean {
  let header = 0 // bytes of the current 3-byte length read so far
  let len = 0
  let left = 0 // payload bytes of the current message still to skip
  let tripped = false
  raw.on('data', (chunk: Uint8Array) => {
    if (tripped) return
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
        tripped = true
        raw.destroy(new AssetSyncError('ERR_PROTOCOL', `peer announced a ${len}-byte message (limit ${max})`))
        return
      }
      left = len
      header = 0
      len = 0
    }
  })
  return () => tripped
}
