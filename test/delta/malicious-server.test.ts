/**
 * A malicious server speaking `chunks` and `zstd` (issue 16): every lie in a chunk list, a chunk
 * or a compressed frame is refused with exit 6 (ERR_INTEGRITY) and nothing is written — the old
 * version stays as it was and no other file appears. The fake server is built from the real
 * protocol pieces (ServerEndpoint, the codec) in this process; the client is the built CLI.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import SecretStream from '@hyperswarm/secret-stream'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { type ChunkList, chunkBytes, encodeChunkList } from '../../src/core/delta/chunk-list.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import { CHUNK_SIZE, DELTA_MAX_CHUNK_BYTES } from '../../src/limits.js'
import type { ServerConnection } from '../../src/protocol/connection.js'
import { ServerEndpoint } from '../../src/protocol/endpoint.js'
import type { ChunkFetchMsg, ClientMessage, ManifestEntry, ServerMessage } from '../../src/protocol/messages.js'
import { ensureBuilt, lines, Sandbox } from '../helpers/cli.js'
import { LOOPBACK, MiB } from '../helpers/common.js'
import { listFiles } from '../helpers/trees.js'
import { seededBytes } from './support.js'

const SIZE = 2 * MiB
const OLD = Buffer.from(seededBytes(SIZE, 1))
const NEW = Buffer.from(OLD)
NEW.fill(0x55, MiB, MiB + 100) // one chunk differs
const NEW_LIST = chunkBytes(NEW)
const META: ManifestEntry = { path: 'f.bin', hash: hashBytes(NEW), size: SIZE, mode: 0o644, mtime: 1_700_000_000_000 }

/**
 * A zstd frame of RLE blocks that would decode to ~375 MiB from ~12 KiB (3000 blocks of 128 KiB),
 * with no content size declared: the kind of frame the library would expand without a limit.
 */
function bomb(blocks = 3000): Buffer {
  const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]) // magic, no FCS, 2 MiB window
  const body = Buffer.alloc(blocks * 4)
  for (let i = 0; i < blocks; i++) {
    const last = i === blocks - 1 ? 1 : 0
    const h = ((128 * 1024) << 3) | (1 << 1) | last // RLE block of 128 KiB
    body.writeUIntLE(h, i * 4, 3)
    body[i * 4 + 3] = 0x41
  }
  return Buffer.concat([header, body])
}

/** A chunk list encoding with its lengths replaced (its hashes are kept). */
function withLengths(list: ChunkList, lengths: number[]): Buffer {
  const enc = encodeChunkList(list)
  for (let i = 0; i < lengths.length; i++) enc.writeUInt32BE(lengths[i]!, 46 + 4 * i)
  return enc
}

interface Lies {
  /** CHUNK_LIST_REPLY frames for a CHUNK_LIST (default: the honest list in one slice). */
  list?: (id: number) => ServerMessage[]
  /** CHUNK_DATA frames for a CHUNK_FETCH (default: honest raw chunks). */
  chunks?: (msg: ChunkFetchMsg) => ServerMessage[]
  /** Frames for a REQUEST (default: the honest file as CHUNKs). */
  request?: (id: number) => ServerMessage[]
}

interface FakeServer { port: number; key: string; asked: string[]; close(): Promise<void> }
const keyPair = SecretStream.keyPair()

const honestList = (id: number): ServerMessage[] => {
  const data = encodeChunkList(NEW_LIST)
  return [{ type: 'chunk-list-reply', id, whole: false, ...META, total: data.length, offset: 0, data }]
}
const honestChunks = (msg: ChunkFetchMsg): ServerMessage[] => msg.chunks.map((c, index) => {
  const i = NEW_LIST.hashes.indexOf(Buffer.from(c.hash)) / 32
  const at = NEW_LIST.offsets[i]!
  return { type: 'chunk-data', id: msg.id, index, coding: 0, data: NEW.subarray(at, at + c.length) }
})
const honestRequest = (id: number): ServerMessage[] => {
  const out: ServerMessage[] = [{ type: 'response', id, status: 'file', ...META }]
  for (let at = 0; at < SIZE; at += CHUNK_SIZE) out.push({ type: 'chunk', id, offset: at, final: at + CHUNK_SIZE >= SIZE, data: NEW.subarray(at, at + CHUNK_SIZE) })
  return out
}

async function fakeServer(lies: Lies): Promise<FakeServer> {
  const ep = await ServerEndpoint.listen({ transport: 'udp', host: LOOPBACK, port: 0, keyPair, token: null })
  const asked: string[] = []
  ep.on('connection', (conn: ServerConnection) => {
    const sendAll = async (frames: ServerMessage[]): Promise<void> => {
      for (const f of frames) {
        if (f.type === 'chunk' || f.type === 'chunk-data' || f.type === 'chunk-z') await conn.sendChunk(f)
        else conn.send(f)
      }
    }
    conn.on('message', (msg: ClientMessage) => {
      if (msg.type !== 'credit' && msg.type !== 'ping' && msg.type !== 'cancel') asked.push(msg.type)
      let frames: ServerMessage[] = []
      if (msg.type === 'manifest') frames = [{ type: 'manifest-reply', id: msg.id, done: true, entries: msg.after < META.path ? [META] : [] }]
      else if (msg.type === 'chunk-list') frames = (lies.list ?? honestList)(msg.id)
      else if (msg.type === 'chunk-fetch') frames = (lies.chunks ?? honestChunks)(msg)
      else if (msg.type === 'request') frames = (lies.request ?? honestRequest)(msg.id)
      sendAll(frames).catch(() => { /* the client hung up */ })
    })
  })
  return { port: ep.address().port, key: keyPair.publicKey.toString('hex'), asked, close: () => ep.close() }
}

let sb: Sandbox
let servers: FakeServer[] = []

beforeAll(() => {
  ensureBuilt()
  return Sandbox.create('delta-malicious').then((s) => { sb = s })
})
afterEach(async () => {
  for (const s of servers) await s.close()
  servers = []
})
afterAll(async () => { await sb?.cleanup() })

/** Pulls from a fake server into a folder holding the old version; returns the exit code, stderr and what is left. */
async function pullWith(lies: Lies, withOld = true): Promise<{ code: number | null; stderr: string; files: string[]; old: Buffer | null; asked: string[] }> {
  const server = await fakeServer(lies)
  servers.push(server)
  const out = await sb.mkdir('out')
  if (withOld) await writeFile(join(out, 'f.bin'), OLD)
  const r = await sb.run(['pull', '--server', `${LOOPBACK}:${server.port}`, '--key', server.key, '--out', out, '--timeout', '10'])
  const files = await listFiles(out)
  const old = withOld ? await readFile(join(out, 'f.bin')) : null
  return { code: r.code, stderr: r.stderr, files, old, asked: server.asked }
}

function refused(r: Awaited<ReturnType<typeof pullWith>>, why: RegExp, withOld = true): void {
  expect(r.code, r.stderr).toBe(6)
  expect(lines(r.stderr)).toHaveLength(1)
  expect(r.stderr).toMatch(why)
  // Nothing written: the old version as it was, no other file (no temp file either).
  expect(r.files).toEqual(withOld ? ['f.bin'] : [])
  if (withOld) expect(r.old?.equals(OLD)).toBe(true)
}

describe('a malicious server is refused with exit 6 and nothing written', () => {
  test('an honest fake server: the delta path works (the control case)', async () => {
    const r = await pullWith({})
    expect(r.code, r.stderr).toBe(0)
    expect(r.old?.equals(NEW)).toBe(true)
    expect(r.asked).toEqual(['manifest', 'chunk-list', 'chunk-fetch'])
  })

  test('a chunk whose bytes do not match its hash', async () => {
    const r = await pullWith({
      chunks: (msg) => honestChunks(msg).map((f) => (f.type === 'chunk-data' ? { ...f, data: Buffer.alloc(f.data.length, 0x66) } : f)),
    })
    refused(r, /does not match its BLAKE3 hash/)
  })

  test('overlapping chunks: lengths that run past the size', async () => {
    const lengths = Array.from(NEW_LIST.lengths)
    lengths[0] = lengths[0]! + 4096
    const data = withLengths(NEW_LIST, lengths)
    const r = await pullWith({ list: (id) => [{ type: 'chunk-list-reply', id, whole: false, ...META, total: data.length, offset: 0, data }] })
    refused(r, /chunk list refused/)
  })

  test('out-of-range chunks: a chunk longer than the maximum, an empty one', async () => {
    for (const bad of [DELTA_MAX_CHUNK_BYTES + 1, 0]) {
      const lengths = Array.from(NEW_LIST.lengths)
      lengths[1] = bad
      const data = withLengths(NEW_LIST, lengths)
      const r = await pullWith({ list: (id) => [{ type: 'chunk-list-reply', id, whole: false, ...META, total: data.length, offset: 0, data }] })
      refused(r, /chunk list refused: chunk 1 has length/)
    }
  })

  test('a lying size: a list of another size than the manifest, and a chunk shorter than announced', async () => {
    const other = chunkBytes(NEW.subarray(0, SIZE - 1000))
    const data = encodeChunkList(other)
    const lying = await pullWith({ list: (id) => [{ type: 'chunk-list-reply', id, whole: false, ...META, size: SIZE - 1000, total: data.length, offset: 0, data }] })
    refused(lying, /announced \d+ bytes for f\.bin, its manifest said/)
    const short = await pullWith({
      chunks: (msg) => honestChunks(msg).map((f) => (f.type === 'chunk-data' ? { ...f, data: f.data.subarray(1) } : f)),
    })
    refused(short, /raw chunk of \d+ bytes, \d+ announced/)
  })

  test('too many chunks: a list announced longer than the size allows, and a count over it', async () => {
    const huge = await pullWith({ list: (id) => [{ type: 'chunk-list-reply', id, whole: false, ...META, total: 64 * MiB, offset: 0, data: Buffer.alloc(16) }] })
    refused(huge, /announced a chunk list of \d+ bytes/)
    // A 2 MiB file has at most 128 chunks (all but the last ≥ 16 KiB): a header counting 200, in
    // a buffer within the announced bound, is refused before any length is read.
    const enc = encodeChunkList(NEW_LIST)
    enc.writeUInt32BE(200, 42)
    const data = Buffer.concat([enc.subarray(0, 46), Buffer.alloc(100 * 36)])
    const counted = await pullWith({ list: (id) => [{ type: 'chunk-list-reply', id, whole: false, ...META, total: data.length, offset: 0, data }] })
    refused(counted, /chunk list refused: 200 chunks/)
  })

  test('a decompression bomb as a chunk (CHUNK_DATA, zstd)', async () => {
    const r = await pullWith({
      chunks: (msg) => honestChunks(msg).map((f) => (f.type === 'chunk-data' ? { ...f, coding: 1, data: bomb() } : f)),
    })
    refused(r, /zstd chunk refused/)
  })

  test('a decompression bomb in a whole-file transfer (CHUNK_Z)', async () => {
    const r = await pullWith({
      request: (id) => [
        { type: 'response', id, status: 'file', ...META },
        { type: 'chunk-z', id, offset: 0, final: false, length: CHUNK_SIZE, data: bomb(200) },
      ],
    }, false)
    refused(r, /zstd chunk refused/, false)
  })
})
