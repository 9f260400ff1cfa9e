/**
 * The objects that describe a published tree: a manifest version (`manifests/<digest>`) and the
 * pointer to the current one (`HEAD`). Entries are written as codec MANIFEST_REPLY frames, so
 * protocol/codec.ts stays the only place bytes become entries, with its checks (path caps, strict
 * UTF-8, u64 range); this module adds the framing and the order and path rules.
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
 * checks what it fetched against the digest it was told (HEAD, a feed message).
 *
 * HEAD is JSON: {"format":1,"digest":"<64 hex>","version":N,"files":N,"at":"<ISO time>"}. The
 * version counts publishes (the origin takes HEAD's + 1), so edges order and de-duplicate them.
 */
import { ProtocolError } from '../../errors.js'
import { MANIFEST_PAGE_BYTES, MAX_MANIFEST_FILES, SCALE_MAX_HEAD_BYTES } from '../../limits.js'
import { MAX_MANIFEST_ENTRIES, encode, manifestEntryBytes } from '../../protocol/codec.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import { CHUNKER_ID } from '../delta/chunk-list.js'
import { hashBytes } from '../fs/hash.js'
import { checkWirePath, printable } from '../fs/paths.js'
import { joinFrames, readFrames } from './framed.js'

const MAGIC = Buffer.from('ASMF')
const FORMAT = 1
const HEADER = 14

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
  head[5] = CHUNKER_ID
  head.writeUInt32BE(entries.length, 6)
  head.writeUInt32BE(frames.length, 10)
  const out = joinFrames(head, frames)
  return { bytes: out, digest: hashBytes(out) }
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
  if (buf.length < HEADER || !buf.subarray(0, 4).equals(MAGIC)) refuse('not a manifest (bad magic)')
  if (buf[4] !== FORMAT) refuse(`unknown format ${buf[4]}`)
  if (buf[5] !== CHUNKER_ID) refuse(`chunk lists of unknown chunker ${buf[5]}`)
  const count = buf.readUInt32BE(6)
  const frames = buf.readUInt32BE(10)
  if (count > MAX_MANIFEST_FILES) refuse(`${count} entries, over ${MAX_MANIFEST_FILES}`)
  const entries: ManifestEntry[] = []
  let last: string | null = null
  let i = 0
  for (const msg of readFrames(buf, HEADER, frames, refuse)) {
    if (msg.type !== 'manifest-reply') return refuse(`frame ${i} is ${msg.type}`)
    if (msg.done !== (i++ === frames - 1)) refuse('done flag out of place')
    for (const e of msg.entries) {
      const why = checkWirePath(e.path)
      if (why !== null) refuse(`path "${printable(e.path)}": ${why}`)
      if (last !== null && !(e.path > last)) refuse('paths not in strictly increasing order')
      last = e.path
      entries.push(e)
      if (entries.length > count) refuse('more entries than its count')
    }
  }
  if (entries.length !== count) refuse(`${entries.length} entries, header says ${count}`)
  return { digest: actual, entries }
}

/** What HEAD says. */
export interface HeadRecord {
  digest: Buffer
  /** Publishes so far (1 for the first). */
  version: number
  files: number
  at: string
}

export function encodeHead(h: HeadRecord): Buffer {
  return Buffer.from(`${JSON.stringify({ format: 1, digest: h.digest.toString('hex'), version: h.version, files: h.files, at: h.at })}\n`)
}

/** Parses HEAD strictly (ERR_PROTOCOL otherwise). */
export function decodeHead(bytes: Uint8Array): HeadRecord {
  if (bytes.byteLength > SCALE_MAX_HEAD_BYTES) throw new ProtocolError('HEAD refused: too long')
  let v: unknown
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    throw new ProtocolError('HEAD refused: not JSON')
  }
  const o = v as Record<string, unknown>
  const count = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
  if (!o || typeof o !== 'object' || o.format !== 1 || typeof o.digest !== 'string' || !/^[0-9a-f]{64}$/.test(o.digest)
    || !count(o.version) || !count(o.files) || typeof o.at !== 'string') {
    throw new ProtocolError('HEAD refused: not {format 1, digest, version, files, at}')
  }
  return { digest: Buffer.from(o.digest, 'hex'), version: o.version as number, files: o.files as number, at: o.at }
}
