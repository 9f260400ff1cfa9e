/**
 * The last listing a mirror applied in full, kept with its digest (feature `manifest-digest`,
 * issue 15): the next `pull` asks the server whether its listing still has that digest, and on
 * "unchanged" checks the local files against this one instead of receiving the whole listing
 * again (~72 bytes per file on the wire). One file per mirror folder, in the config folder's
 * cache (never in the mirror). The digest is the BLAKE3 of the listing's manifest object
 * (core/scale/manifest-object.ts: the digest HEAD names for `**`), computed when it is saved; the file itself is laid out to load
 * fast (decoding the manifest object's frames took 60-130 ms of a 20,000-file no-op): "ASYNCLS"
 * and a version byte, the digest (32), the entry count (u32), then per entry the path (u16 byte
 * length, UTF-8), hash (32), size and mtime (float64) and mode (u32), big-endian.
 *
 * Like the hash cache it is only a shortcut: a missing, damaged or foreign file reads as none
 * (the pull then receives the listing), and it is written atomically after a sync in which every
 * listed file was verified.
 */
import { readFile } from 'node:fs/promises'
import { HASH_BYTES, type ManifestEntry } from '../../protocol/messages.js'
import { writeFileAtomic } from '../fs/atomic-write.js'
import { cacheFileFor } from '../fs/hash-cache.js'

const HEADER = Buffer.from('ASYNCLS\x02', 'latin1')
const FIXED = HASH_BYTES + 8 + 8 + 4

/** A listing applied in full, and its digest. */
export interface Listing {
  readonly digest: Buffer
  readonly entries: readonly ManifestEntry[]
}

/** The saved-listing file of the mirror folder at `realRoot`. */
export function listingFileFor(configDirectory: string, realRoot: string): string {
  return cacheFileFor(configDirectory, 'listing', realRoot)
}

/**
 * The listing saved in `file`, or null (none, or unreadable: damaged, another format). The
 * digest is the one saved beside it, not recomputed: the file is ours, and hashing it would load
 * BLAKE3 (~40 ms) on a no-op pull that needs it for nothing else.
 */
export async function loadListing(file: string): Promise<Listing | null> {
  let buf: Buffer
  try {
    buf = await readFile(file)
  } catch {
    return null
  }
  let at = HEADER.length + HASH_BYTES + 4
  if (buf.length < at || !buf.subarray(0, HEADER.length).equals(HEADER)) return null
  const count = buf.readUInt32BE(at - 4)
  const entries: ManifestEntry[] = []
  for (let i = 0; i < count; i++) {
    const n = at + 2 <= buf.length ? buf.readUInt16BE(at) : -1
    const f = at + 2 + n
    if (n < 0 || f + FIXED > buf.length) return null // truncated: trust none of it
    const path = buf.toString('utf8', at + 2, f)
    entries.push({ path, hash: buf.subarray(f, f + HASH_BYTES), size: buf.readDoubleBE(f + 32), mtime: buf.readDoubleBE(f + 40), mode: buf.readUInt32BE(f + 48) })
    at = f + FIXED
  }
  if (at !== buf.length) return null
  return { digest: Buffer.from(buf.subarray(HEADER.length, HEADER.length + HASH_BYTES)), entries }
}

/**
 * Saves `entries` (a listing in path order, as the server sent it) and returns its digest.
 * Failures are ignored (the next pull receives the listing); the digest is returned either way.
 */
export async function saveListing(file: string, entries: readonly ManifestEntry[]): Promise<Buffer> {
  // Loaded here, not with the pull: a no-op whose listing is unchanged never saves one.
  const { encodeManifest } = await import('../scale/manifest-object.js')
  const { digest } = encodeManifest(entries)
  let size = HEADER.length + HASH_BYTES + 4
  for (const e of entries) size += 2 + Buffer.byteLength(e.path, 'utf8') + FIXED
  const buf = Buffer.allocUnsafe(size)
  let at = HEADER.copy(buf, 0)
  at += digest.copy(buf, at)
  at = buf.writeUInt32BE(entries.length, at)
  for (const e of entries) {
    const n = buf.write(e.path, at + 2, 'utf8')
    buf.writeUInt16BE(n, at)
    at += 2 + n
    buf.set(e.hash, at)
    at = buf.writeDoubleBE(e.size, at + HASH_BYTES)
    at = buf.writeDoubleBE(e.mtime, at)
    at = buf.writeUInt32BE(e.mode, at)
  }
  try {
    await writeFileAtomic(file, buf, { mkdir: true, fsync: false })
  } catch { /* only a shortcut */ }
  return digest
}
