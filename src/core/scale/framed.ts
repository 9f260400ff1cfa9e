/**
 * The body shared by the bucket's manifest objects and the feed's change messages: protocol
 * frames (as the server sends them), each behind its u32 length. Reading refuses a truncated
 * frame, and bytes after the last one, with ERR_PROTOCOL through `refuse`.
 */
import { decode } from '../../protocol/codec.js'
import type { Message } from '../../protocol/messages.js'

/** `head`, then each frame behind its u32 length, as one buffer. */
export function joinFrames(head: Buffer, frames: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [head]
  for (const f of frames) {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(f.length)
    parts.push(len, f)
  }
  return Buffer.concat(parts)
}

/** The `count` server frames of `buf` from offset `at`, which must end exactly at its end. */
export function* readFrames(buf: Buffer, at: number, count: number, refuse: (why: string) => never): Generator<Message> {
  for (let i = 0; i < count; i++) {
    if (at + 4 > buf.length) refuse('truncated')
    const len = buf.readUInt32BE(at)
    at += 4
    if (at + len > buf.length) refuse('truncated frame')
    const msg = decode(buf.subarray(at, at + len), 'server')
    at += len
    yield msg
  }
  if (at !== buf.length) refuse('bytes after the last frame')
}
