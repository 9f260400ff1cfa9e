/**
 * The client's BATCH receive loop against a lying server (feature `batch-request`): answers must
 * come one per item, in order, ending with the final frame; a file whose bytes fail their hash is
 * never handed over as a file (it becomes `alone`: fetched again by REQUEST); anything else in
 * the reply stream is ERR_PROTOCOL. The connection is a stand-in that replays the server's frames
 * into the loop exactly as ClientConnection does (the handler's return ends the request, a throw
 * fails it).
 */
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { type BatchResult, receiveBatch } from '../../src/core/client/receive-batch.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import type { BatchAnswer, BatchItem, ClientMessage, ReplyMessage } from '../../src/protocol/messages.js'

/** Runs receiveBatch over `frames` (as the server would send them); returns what the handler saw, or the error. */
async function run(items: BatchItem[], frames: ReplyMessage[]): Promise<{ got: BatchResult[]; error: unknown; sent: ClientMessage | null }> {
  const got: BatchResult[] = []
  let sent: ClientMessage | null = null
  const conn = {
    request(build: (id: number) => ClientMessage, onReply: (r: ReplyMessage) => boolean) {
      sent = build(9)
      const done = (async () => {
        for (const f of frames) if (onReply(f)) return
        throw new Error('the request never completed')
      })()
      return { id: 9, done }
    },
  }
  let error: unknown = null
  try {
    await receiveBatch(conn as never, items, (i, r) => {
      expect(i).toBe(got.length)
      got.push(r)
    })
  } catch (err) {
    error = err
  }
  return { got, error, sent }
}

const data = randomBytes(300)
const file = (bytes: Buffer, hash = hashBytes(bytes)): BatchAnswer => ({ status: 'file', hash, size: bytes.length, mode: 0o644, mtime: 1, data: bytes })
const items = (n: number): BatchItem[] => Array.from({ length: n }, (_, i) => ({ path: `f${i}`, haveHash: null }))
const frame = (final: boolean, answers: BatchAnswer[]): ReplyMessage => ({ type: 'batch-data', id: 9, final, answers })

describe('receiveBatch', () => {
  it('sends one BATCH of the items and hands each answer over in order, across frames', async () => {
    const r = await run(items(3), [frame(false, [file(data)]), frame(true, [{ status: 'not-found', reason: 'x' }, file(Buffer.alloc(0))])])
    expect(r.error).toBeNull()
    expect(r.sent).toMatchObject({ type: 'batch', id: 9, items: items(3) })
    expect(r.got.map((g) => g.status)).toEqual(['file', 'not-found', 'file'])
    expect(r.got[0]?.status === 'file' && Buffer.from(r.got[0].data).equals(data)).toBe(true)
  })

  it('a file whose bytes do not match its hash is handed over as alone, never as a file', async () => {
    const r = await run(items(2), [frame(true, [file(data, hashBytes(randomBytes(8))), file(data)])])
    expect(r.error).toBeNull()
    expect(r.got.map((g) => g.status)).toEqual(['alone', 'file'])
  })

  it('more answers than items, a final frame too early, or another reply are ERR_PROTOCOL', async () => {
    const more = await run(items(1), [frame(true, [file(data), file(data)])])
    expect(more.error).toMatchObject({ code: 'ERR_PROTOCOL' })
    expect(more.got).toEqual([])
    const early = await run(items(3), [frame(true, [file(data)])])
    expect(early.error).toMatchObject({ code: 'ERR_PROTOCOL' })
    const other = await run(items(1), [{ type: 'response', id: 9, status: 'up-to-date', reason: '' }])
    expect(other.error).toMatchObject({ code: 'ERR_PROTOCOL' })
  })

  it('a handler that throws (a write failing) ends the batch with its error', async () => {
    const conn = {
      request(_build: (id: number) => ClientMessage, onReply: (r: ReplyMessage) => boolean) {
        return { id: 9, done: (async () => { onReply(frame(true, [file(data)])) })() }
      },
    }
    const failing = receiveBatch(conn as never, items(1), () => { throw Object.assign(new Error('disk full'), { code: 'ERR_WRITE' }) })
    await expect(failing).rejects.toMatchObject({ code: 'ERR_WRITE' })
  })
})
