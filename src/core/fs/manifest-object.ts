/**
 * A listing as one object, and its digest: the manifest object of the scale-out design
 * (`manifests/<digest>` in a bucket, docs/scale-out.md on branch `scale`), here in a neutral room
 * because the protocol's `manifest-digest` feature uses the very same digest: a server (folder or
 * edge) answers "unchanged" when the listing a client asks about has the digest the client saved
 * after its last sync, and for the pattern `**` that digest is the one HEAD names.
 * Entries are written as codec MANIFEST_REPLY frames, so protocol/codec.ts stays the only place
 * bytes become entries, with its checks (path caps, strict UTF-8, u64 range); this module adds
 * the framing and the order and path rules.
 *
 * Manifest object (big-endian):
 *   0   4  magic "ASMF"
 *   4   1  format, 1
 *   5   1  chunker id of the lists/ objects it implies (CHUNKER_ID, docs/delta.md §3)
 *   6   4  entry count (u32)
 *   10  4  frame count F (u32)
 *   14  …  F × ([u32 length][MANIFEST_REPLY frame]): id 0, `done` on the last; entries in
 *          strictly increasing path order (UTF-16 code units, as the server's pages)
 *
 * Its digest is the BLAKE3 of these bytes: the encoding is a function of the sorted entries
 * (pages are cut at MANIFEST_PAGE_BYTES), so equal listings have equal digests, and a reader
 * checks what it fetched against the digest it was told (HEAD, a feed message, a saved listing).
 */
import { ProtocolError } from '../../errors.js'
import { MANIFEST_PAGE_BYTES, MAX_MANIFEST_FILES } from '../../limits.js'
import { MAX_MANIFEST_ENTRIES, decode, encode, manifestEntryBytes } from '../../protocol/codec.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import { hashBytes } from './hash.js'
import { checkWirePath, printable } from './paths.js'

const MAGIC = Buffer.from('ASMF')
const FORMAT = 1
const HEADER = 14
/**
 * The chunker id written at byte 5 (CHUNKER_ID of core/delta/chunk-list.ts on the delta and scale
 * branches: FastCDC with its parameters, version 1). Part of the digested bytes: keep them equal.
 */
export const MANIFEST_CHUNKER_ID = 1

/** A manifest version: its entries (sorted) and its digest. */
export interface Manifest {
  readonly digest: Buffer
  readonly entries: readonly ManifestEntry[]
}

/** Encodes sorted, unique entries; returns the object's bytes and digest. */
export function encodeManifest(entries: readonly ManifestEntry[]): { bytes: Buffer; digest: Buffer } {
  const frames: Buffer[] = []
  let page: ManifestEntry[] = []
  let bytes = 0
  const flush = (done: boolean): void => {
    frames.push(encode({ type: 'manifest-reply', id: 0, done, entries: page }))
    page = []
    bytes = 0
  }
  for (const e of entries) {
    const size = manifestEntryBytes(e.path)
    if (page.length > 0 && (page.length >= MAX_MANIFEST_ENTRIES || bytes + size > MANIFEST_PAGE_BYTES)) flush(false)
    page.push(e)
    bytes += size
  }
  if (page.length > 0 || frames.length === 0) flush(true)
  const head = Buffer.alloc(HEADER)
  MAGIC.copy(head, 0)
  head[4] = FORMAT
  head[5] = MANIFEST_CHUNKER_ID
  head.writeUInt32BE(entries.length, 6)
  head.writeUInt32BE(frames.length, 10)
  const parts: Buffer[] = [head]
  for (const f of frames) {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(f.length)
    parts.push(len, f)
  }
  const out = Buffer.concat(parts)
  return { bytes: out, digest: hashBytes(out) }
}

/** The digest of a listing (sorted, unique entries): BLAKE3 of its manifest object. */
export function manifestDigest(entries: readonly ManifestEntry[]): Buffer {
  return encodeManifest(entries).digest
}

const refuse = (why: string): never => {
  throw new ProtocolError(`manifest object refused: ${why}`)
}

/**
 * Decodes a manifest object, checking it against `digest` when given (a mismatch is
 * ERR_PROTOCOL: the bucket, a cache or a CDN handed over other bytes). Every path is a valid wire
 * path, in strictly increasing order; the counts agree.
 */
export function decodeManifest(bytes: Uint8Array, digest?: Uint8Array): Manifest {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const actual = hashBytes(buf)
  if (digest && Buffer.compare(actual, digest) !== 0) refuse('its BLAKE3 is not the digest it was named by')
  return { digest: actual, entries: manifestEntries(buf) }
}

/**
 * The entries of a manifest object, with every structural check of decodeManifest but without
 * hashing it: for an object this process wrote itself (a saved listing, whose digest is kept
 * beside it), where loading BLAKE3 would cost a no-op pull ~40 ms for nothing.
 */
export function manifestEntries(bytes: Uint8Array): ManifestEntry[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buf.length < HEADER || !buf.subarray(0, 4).equals(MAGIC)) refuse('not a manifest (bad magic)')
  if (buf[4] !== FORMAT) refuse(`unknown format ${buf[4]}`)
  if (buf[5] !== MANIFEST_CHUNKER_ID) refuse(`chunk lists of unknown chunker ${buf[5]}`)
  const count = buf.readUInt32BE(6)
  const frames = buf.readUInt32BE(10)
  if (count > MAX_MANIFEST_FILES) refuse(`${count} entries, over ${MAX_MANIFEST_FILES}`)
  const entries: ManifestEntry[] = []
  let at = HEADER
  let last: string | null = null
  for (let i = 0; i < frames; i++) {
    if (at + 4 > buf.length) refuse('truncated')
    const len = buf.readUInt32BE(at)
    at += 4
    if (at + len > buf.length) refuse('truncated frame')
    const msg = decode(buf.subarray(at, at + len), 'server')
    at += len
    if (msg.type !== 'manifest-reply') throw new ProtocolError(`manifest object refused: frame ${i} is ${msg.type}`)
    if (msg.done !== (i === frames - 1)) refuse('done flag out of place')
    for (const e of msg.entries) {
      const why = checkWirePath(e.path)
      if (why !== null) refuse(`path "${printable(e.path)}": ${why}`)
      if (last !== null && !(e.path > last)) refuse('paths not in strictly increasing order')
      last = e.path
      entries.push(e)
      if (entries.length > count) refuse('more entries than its count')
    }
  }
  if (at !== buf.length) refuse('bytes after the last frame')
  if (entries.length !== count) refuse(`${entries.length} entries, header says ${count}`)
  return entries
}
