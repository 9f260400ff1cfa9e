/**
 * A change message on the NATS feed: one published version, the version before it, and the batch
 * of changes between them as codec UPDATE frames (so protocol/codec.ts stays the only place bytes
 * become entries). Big-endian:
 *
 *   0   4   magic "ASNB"
 *   4   1   format, 1
 *   5   8   version (u64): HEAD's version after this publish
 *   13  32  digest of the manifest of this version (manifests/<hex>)
 *   45  32  digest of the previous version's manifest (zeros for none)
 *   77  1   flags: bit 0 = entries left out (the batch did not fit SCALE_FEED_MESSAGE_BYTES:
 *           a receiver diffs the two manifests itself)
 *   78  4   frame count F (u32)
 *   82  …   F × ([u32 length][UPDATE frame])
 *
 * The JetStream message id is the digest's hex, so a publish retried after a lost ack is stored
 * once. Receivers order and de-duplicate by version and check continuity by `previous`.
 */
import { ProtocolError } from '../../errors.js'
import { MAX_FRAME_BYTES, SCALE_FEED_MESSAGE_BYTES } from '../../limits.js'
import { encode, updateEntryBytes } from '../../protocol/codec.js'
import { HASH_BYTES, type UpdateEntry } from '../../protocol/messages.js'
import { joinFrames, readFrames } from './framed.js'

const MAGIC = Buffer.from('ASNB')
const HEADER = 82
const FLAG_NO_ENTRIES = 1
/** UPDATE frames in a feed message are cut well under a frame's cap. */
const FRAME_BUDGET = MAX_FRAME_BYTES / 4

export interface FeedMessage {
  version: number
  digest: Buffer
  /** null for the first version. */
  previous: Buffer | null
  /** null when left out (too many to carry): diff the manifests. */
  entries: UpdateEntry[] | null
}

/** Encodes a message; leaves the entries out if they would not fit `maxBytes`. */
export function encodeFeedMessage(m: FeedMessage, maxBytes = SCALE_FEED_MESSAGE_BYTES): Buffer {
  const frames: Buffer[] = []
  let total = HEADER
  let omitted = m.entries === null
  if (m.entries) {
    let cur: UpdateEntry[] = []
    let bytes = 0
    const flush = (): void => {
      const f = encode({ type: 'update', entries: cur })
      frames.push(f)
      total += 4 + f.length
      cur = []
      bytes = 0
    }
    for (const e of m.entries) {
      const size = updateEntryBytes(e)
      if (cur.length > 0 && (cur.length >= 1024 || bytes + size > FRAME_BUDGET)) flush()
      cur.push(e)
      bytes += size
      // A frame's own header is a few bytes: the + 16 keeps the estimate on the safe side.
      if (total + bytes + 16 > maxBytes) { omitted = true; break }
    }
    if (!omitted && cur.length > 0) flush()
    if (total > maxBytes) omitted = true
  }
  const head = Buffer.alloc(HEADER)
  MAGIC.copy(head, 0)
  head[4] = 1
  head.writeUInt32BE(Math.floor(m.version / 2 ** 32), 5)
  head.writeUInt32BE(m.version >>> 0, 9)
  m.digest.copy(head, 13)
  if (m.previous) m.previous.copy(head, 45)
  head[77] = omitted ? FLAG_NO_ENTRIES : 0
  if (omitted) return head
  head.writeUInt32BE(frames.length, 78)
  return joinFrames(head, frames)
}

/** Decodes a message strictly (ERR_PROTOCOL for anything off). */
export function decodeFeedMessage(bytes: Uint8Array): FeedMessage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const refuse = (why: string): never => { throw new ProtocolError(`feed message refused: ${why}`) }
  if (buf.length < HEADER || !buf.subarray(0, 4).equals(MAGIC)) refuse('bad magic or too short')
  if (buf[4] !== 1) refuse(`unknown format ${buf[4]}`)
  const hi = buf.readUInt32BE(5)
  if (hi >= 2 ** 21) refuse('version over 2^53')
  const version = hi * 2 ** 32 + buf.readUInt32BE(9)
  const digest = Buffer.from(buf.subarray(13, 13 + HASH_BYTES))
  const prev = Buffer.from(buf.subarray(45, 45 + HASH_BYTES))
  const previous = prev.every((b) => b === 0) ? null : prev
  const flags = buf[77] as number
  if (flags & ~FLAG_NO_ENTRIES) refuse(`unknown flags ${flags}`)
  if (flags & FLAG_NO_ENTRIES) {
    if (buf.length !== HEADER) refuse('bytes after a header without entries')
    return { version, digest, previous, entries: null }
  }
  const entries: UpdateEntry[] = []
  let i = 0
  for (const msg of readFrames(buf, HEADER, buf.readUInt32BE(78), refuse)) {
    if (msg.type !== 'update') return refuse(`frame ${i} is ${msg.type}`)
    entries.push(...msg.entries)
    i++
  }
  return { version, digest, previous, entries }
}
