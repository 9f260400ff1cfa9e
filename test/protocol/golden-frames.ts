/**
 * Golden frames for the codec tests and the fuzzer: every message type, written out byte by byte
 * from the layout in docs/protocol.md. Nothing here calls the codec. Type, status and kind bytes
 * come from the real tables (MSG, STATUS, CHANGE_KIND); every other byte is a hex literal.
 */
import { BATCH_STATUS, CHANGE_KIND, HASH_BYTES, MSG, PRIORITY, STATUS, featureBits, type FileMeta, type Message, type Sender } from '../../src/protocol/messages.js'

/** Hex of a constant, big-endian, `bytes` wide (test-side formatting, independent of the codec). */
export function hexOf(n: number, bytes: number): string {
  const s = n.toString(16)
  if (s.length > bytes * 2) throw new RangeError(`${n} does not fit in ${bytes} bytes`)
  return s.padStart(bytes * 2, '0')
}
export const h8 = (n: number): string => hexOf(n, 1)
export const h16 = (n: number): string => hexOf(n, 2)
export const h32 = (n: number): string => hexOf(n, 4)

/** A length or count field, marked so the fuzzer can corrupt it on purpose. */
interface LenPart { len: string }
export const len = (hex: string): LenPart => ({ len: hex })

export interface Golden {
  name: string
  sender: Sender
  msg: Message
  bytes: Buffer
  /** Offset and width of every length/count field. */
  lengths: { at: number; size: number }[]
}

/** Joins hex parts (spaces allowed) into a frame, recording where the length fields are. */
export function frame(...parts: (string | LenPart)[]): { bytes: Buffer; lengths: { at: number; size: number }[] } {
  let hex = ''
  const lengths: { at: number; size: number }[] = []
  for (const p of parts) {
    const h = (typeof p === 'string' ? p : p.len).replace(/\s+/g, '')
    if (!/^(?:[0-9a-f]{2})*$/.test(h)) throw new Error(`bad hex part "${h}"`)
    if (typeof p !== 'string') lengths.push({ at: hex.length / 2, size: h.length / 2 })
    hex += h
  }
  return { bytes: Buffer.from(hex, 'hex'), lengths }
}

export function bytesOf(...parts: (string | LenPart)[]): Buffer {
  return frame(...parts).bytes
}

// --- file metadata ------------------------------------------------------------------------------
export const HASH_HEX = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'
export const HASH = Buffer.from(HASH_HEX, 'hex')
export const META: FileMeta = { hash: HASH, size: 0x1_0000_0000, mode: 0o644, mtime: 1_700_000_000_000 }
export const META_HEX =
  HASH_HEX +
  '0000000100000000' + // size u64 = 2^32 (exercises the high word)
  '000001a4' + //         mode u32 = 0o644
  '0000018bcfe56800' //   mtime u64 = 1_700_000_000_000
export const HASH2_HEX = 'ee'.repeat(HASH_BYTES)
export const META2: FileMeta = { hash: Buffer.from(HASH2_HEX, 'hex'), size: 0, mode: 0o755, mtime: Number.MAX_SAFE_INTEGER }
export const META2_HEX =
  HASH2_HEX +
  '0000000000000000' + // size 0
  '000001ed' + //         mode 0o755
  '001fffffffffffff' //   mtime 2^53 - 1, the largest u64 the codec accepts

function g(name: string, sender: Sender, msg: Message, ...parts: (string | LenPart)[]): Golden {
  return { name, sender, msg, ...frame(...parts) }
}

export const GOLDEN: readonly Golden[] = [
  // --- client -> server -------------------------------------------------------------------------
  // AUTH as protocol 3 sends it: highest version, token, lowest version, offered features.
  g('auth, protocol 3 (range and features)', 'client',
    { type: 'auth', version: 3, token: 'hunter2', minVersion: 2, features: featureBits(['priority', 'zstd']) },
    h8(MSG.auth), '0003', len('0007'), '68756e74657232', '0002', '00000009'),
  g('auth, protocol 3, highest bit', 'client', { type: 'auth', version: 0xffff, token: '', minVersion: 0xffff, features: 0x80000000 },
    h8(MSG.auth), 'ffff', len('0000'), 'ffff', '80000000'),
  // AUTH as protocol 2 sends it (and protocol 3 to a protocol-2 server): no tail.
  g('auth, protocol 2', 'client', { type: 'auth', version: 2, token: 'hunter2' },
    h8(MSG.auth), '0002', len('0007'), '68756e74657232'),
  g('auth, protocol 2, empty token', 'client', { type: 'auth', version: 2, token: '' },
    h8(MSG.auth), '0002', len('0000')),
  g('request, no hash, non-ASCII path', 'client', { type: 'request', id: 0x01020304, path: 'a/ü.png', haveHash: null },
    h8(MSG.request), '01020304', len('0008'), '612f c3bc 2e706e67', '00'),
  g('request with have-hash', 'client', { type: 'request', id: 7, path: 'x', haveHash: HASH },
    h8(MSG.request), '00000007', len('0001'), '78', '01', HASH_HEX),
  g('cancel', 'client', { type: 'cancel', id: 0xfffffffe },
    h8(MSG.cancel), 'fffffffe'),
  g('subscribe', 'client', { type: 'subscribe', id: 9, instanceId: 0xdeadbeef, subscribe: true, patterns: ['**/*.png', 'cfg/*'] },
    h8(MSG.subscribe), '00000009', 'deadbeef', '01', len('0002'), len('0008'), '2a2a2f2a2e706e67', len('0005'), '6366672f2a'),
  g('unsubscribe, no patterns', 'client', { type: 'subscribe', id: 10, instanceId: 1, subscribe: false, patterns: [] },
    h8(MSG.subscribe), '0000000a', '00000001', '00', len('0000')),
  g('manifest, first page', 'client', { type: 'manifest', id: 3, patterns: ['**'], after: '' },
    h8(MSG.manifest), '00000003', len('0001'), len('0002'), '2a2a', len('0000')),
  g('manifest, with cursor', 'client', { type: 'manifest', id: 0x100, patterns: [], after: 'b/c' },
    h8(MSG.manifest), '00000100', len('0000'), len('0003'), '622f63'),
  g('credit', 'client', { type: 'credit', bytes: 0x00100000 },
    h8(MSG.credit), '00100000'),
  // Feature `priority`: a REQUEST with a priority class, and a change of class.
  g('priority-request, blocking, with have-hash', 'client', { type: 'priority-request', id: 8, priority: 'blocking', path: 'm.lua', haveHash: HASH },
    h8(MSG['priority-request']), '00000008', h8(PRIORITY.blocking), len('0005'), '6d2e6c7561', '01', HASH_HEX),
  g('priority-request, background, no hash', 'client', { type: 'priority-request', id: 0x01020304, priority: 'background', path: 'a/ü.png', haveHash: null },
    h8(MSG['priority-request']), '01020304', h8(PRIORITY.background), len('0008'), '612f c3bc 2e706e67', '00'),
  g('reprioritize', 'client', { type: 'reprioritize', id: 0xfffffffe, priority: 'normal' },
    h8(MSG.reprioritize), 'fffffffe', h8(PRIORITY.normal)),
  // chunks (optional, 0x28–0x2b)
  g('chunk-list of a given content', 'client', { type: 'chunk-list', id: 7, path: 'a.bin', hash: HASH },
    h8(MSG['chunk-list']), '00000007', len('0005'), '612e62696e', '01', HASH_HEX),
  g('chunk-list of the current content', 'client', { type: 'chunk-list', id: 7, path: 'a.bin', hash: null },
    h8(MSG['chunk-list']), '00000007', len('0005'), '612e62696e', '00'),
  g('chunk-fetch', 'client', {
    type: 'chunk-fetch', id: 8, path: 'a.bin', hash: HASH,
    chunks: [{ hash: Buffer.from(HASH2_HEX, 'hex'), length: 0x10000 }, { hash: HASH, length: 0x4000 }],
  },
  h8(MSG['chunk-fetch']), '00000008', len('0005'), '612e62696e', HASH_HEX, len('0002'), HASH2_HEX, '00010000', HASH_HEX, '00004000'),
  g('direct', 'client', { type: 'direct', id: 3, keys: [{ kind: 'list', hash: HASH }, { kind: 'chunk', hash: Buffer.from(HASH2_HEX, 'hex') }] },
    h8(MSG.direct), '00000003', len('0002'), '01', HASH_HEX, '00', HASH2_HEX),
  g('ping from the client', 'client', { type: 'ping' },
    h8(MSG.ping)),

  // --- server -> client -------------------------------------------------------------------------
  g('auth-ok, protocol 3 (agreed features)', 'server', { type: 'auth-ok', version: 3, features: featureBits(['zstd']) },
    h8(MSG['auth-ok']), '0003', '00000008'),
  g('auth-ok, protocol 3, no features', 'server', { type: 'auth-ok', version: 3, features: 0 },
    h8(MSG['auth-ok']), '0003', '00000000'),
  g('auth-ok, protocol 2 (to an AUTH without a tail)', 'server', { type: 'auth-ok', version: 2 },
    h8(MSG['auth-ok']), '0002'),
  g('response file', 'server', { type: 'response', id: 2, status: 'file', ...META },
    h8(MSG.response), '00000002', h8(STATUS.file), META_HEX),
  g('response up-to-date', 'server', { type: 'response', id: 2, status: 'up-to-date', reason: '' },
    h8(MSG.response), '00000002', h8(STATUS['up-to-date']), len('0000')),
  g('response not-found', 'server', { type: 'response', id: 0x7fffffff, status: 'not-found', reason: 'gone' },
    h8(MSG.response), '7fffffff', h8(STATUS['not-found']), len('0004'), '676f6e65'),
  g('response refused', 'server', { type: 'response', id: 3, status: 'refused', reason: 'outside root' },
    h8(MSG.response), '00000003', h8(STATUS.refused), len('000c'), '6f75747369646520 726f6f74'),
  g('chunk', 'server', { type: 'chunk', id: 5, offset: 0, final: false, data: Buffer.from('abc') },
    h8(MSG.chunk), '00000005', '0000000000000000', '00', '616263'),
  g('chunk, final, empty', 'server', { type: 'chunk', id: 5, offset: 2 ** 40, final: true, data: Buffer.alloc(0) },
    h8(MSG.chunk), '00000005', '0000010000000000', '01'),
  g('update, every kind', 'server', {
    type: 'update',
    entries: [
      { kind: 'change', path: 'a.txt', ...META },
      { kind: 'delete', path: 'old.bin' },
      { kind: 'rename', path: 'new.png', from: 'tmp.png', ...META2 },
    ],
  },
  h8(MSG.update), len('0003'),
  h8(CHANGE_KIND.change), len('0005'), '612e747874', META_HEX,
  h8(CHANGE_KIND.delete), len('0007'), '6f6c642e62696e',
  h8(CHANGE_KIND.rename), len('0007'), '6e65772e706e67', len('0007'), '746d702e706e67', META2_HEX),
  g('update, empty', 'server', { type: 'update', entries: [] },
    h8(MSG.update), len('0000')),
  g('manifest-reply', 'server', {
    type: 'manifest-reply', id: 4, done: true,
    entries: [{ path: 'a.txt', ...META }, { path: 'd/e.bin', ...META2 }],
  },
  h8(MSG['manifest-reply']), '00000004', '01', len('00000002'),
  len('0005'), '612e747874', META_HEX,
  len('0007'), '642f652e62696e', META2_HEX),
  g('manifest-reply, empty page', 'server', { type: 'manifest-reply', id: 4, done: false, entries: [] },
    h8(MSG['manifest-reply']), '00000004', '00', len('00000000')),
  g('error for the connection', 'server', { type: 'error', id: 0, code: 'ERR_AUTH', message: 'bad token' },
    h8(MSG.error), '00000000', len('0008'), '4552525f41555448', len('0009'), '62616420746f6b656e'),
  g('error for a request', 'server', { type: 'error', id: 12, code: 'ERR_LIMIT', message: '' },
    h8(MSG.error), '0000000c', len('0009'), '4552525f4c494d4954', len('0000')),
  g('subscribe-ack', 'server', { type: 'subscribe-ack', id: 9 },
    h8(MSG['subscribe-ack']), '00000009'),
  // chunks (optional, 0x68–0x6b)
  g('chunk-list-reply, a slice', 'server', {
    type: 'chunk-list-reply', id: 7, whole: false, ...META, total: 0x100, offset: 0x80, data: Buffer.from('abc'),
  },
  h8(MSG['chunk-list-reply']), '00000007', '00', META_HEX, '00000100', '00000080', '616263'),
  g('chunk-list-reply, whole', 'server', {
    type: 'chunk-list-reply', id: 7, whole: true, ...META2, total: 0, offset: 0, data: Buffer.alloc(0),
  },
  h8(MSG['chunk-list-reply']), '00000007', '01', META2_HEX, '00000000', '00000000'),
  g('chunk-data, raw', 'server', { type: 'chunk-data', id: 8, index: 1, coding: 0, data: Buffer.from('abc') },
    h8(MSG['chunk-data']), '00000008', '0001', '00', '616263'),
  g('chunk-data, zstd', 'server', { type: 'chunk-data', id: 8, index: 0xffff, coding: 1, data: Buffer.from('28b52ffd', 'hex') },
    h8(MSG['chunk-data']), '00000008', 'ffff', '01', '28b52ffd'),
  // zstd (optional, 0x6c–0x6f)
  g('chunk-z', 'server', { type: 'chunk-z', id: 5, offset: 0x10000, final: true, length: 0x10000, data: Buffer.from('28b52ffd00', 'hex') },
    h8(MSG['chunk-z']), '00000005', '0000000000010000', '01', '00010000', '28b52ffd00'),
  g('direct-reply', 'server', { type: 'direct-reply', id: 5, store: 's3://b/p', expires: 60, urls: ['http://h/b/p/x'] },
    h8(MSG['direct-reply']), '00000005', len('0008'), '73333a2f2f622f70', '0000003c', len('0001'), len('000e'), '687474703a2f2f682f622f702f78'),
  g('ping from the server', 'server', { type: 'ping' },
    h8(MSG.ping)),

  // --- optional frames: feature `report` (client -> server) -------------------------------------
  g('report, reloaded', 'client', { type: 'report', ok: true, ms: 3, paths: ['ai/enemy.lua'], error: null },
    h8(MSG.report), '01', '00000003', len('0001'), len('000c'), '61692f656e656d792e6c7561', len('0000')),
  g('report, failed, two paths', 'client',
    { type: 'report', ok: false, ms: 0x01020304, paths: ['a.lua', 'b/c.lua'], error: 'a.lua:1: x' },
    h8(MSG.report), '00', '01020304', len('0002'), len('0005'), '612e6c7561', len('0007'), '622f632e6c7561',
    len('000a'), '612e6c75613a313a2078'),
  g('report, no paths', 'client', { type: 'report', ok: false, ms: 0xffffffff, paths: [], error: 'hook exited 1' },
    h8(MSG.report), '00', 'ffffffff', len('0000'), len('000d'), '686f6f6b206578697465642031'),
  // --- optional frames: feature `status` ---------------------------------------------------------
  g('status', 'client', { type: 'status', id: 5 },
    h8(MSG.status), '00000005'),
  g('status-reply', 'server', { type: 'status-reply', id: 5, json: '{"a":"ü"}' },
    h8(MSG['status-reply']), '00000005', len('0000000a'), '7b2261223a22c3bc227d'),
  g('status-reply, empty', 'server', { type: 'status-reply', id: 0xffffffff, json: '' },
    h8(MSG['status-reply']), 'ffffffff', len('00000000')),
  // --- optional frames: feature `manifest-digest` --------------------------------------------------
  g('manifest-digest', 'client', { type: 'manifest-digest', id: 6, patterns: ['**'], digest: HASH },
    h8(MSG['manifest-digest']), '00000006', len('0001'), len('0002'), '2a2a', HASH_HEX),
  g('manifest-digest-reply, unchanged', 'server', { type: 'manifest-digest-reply', id: 6, unchanged: true, digest: HASH },
    h8(MSG['manifest-digest-reply']), '00000006', '01', HASH_HEX),
  g('manifest-digest-reply, changed', 'server',
    { type: 'manifest-digest-reply', id: 0xffffffff, unchanged: false, digest: Buffer.from(HASH2_HEX, 'hex') },
    h8(MSG['manifest-digest-reply']), 'ffffffff', '00', HASH2_HEX),
  // --- optional frames: feature `batch-request` ----------------------------------------------------
  g('batch, two items', 'client',
    { type: 'batch', id: 7, items: [{ path: 'a', haveHash: null }, { path: 'b/c', haveHash: HASH }] },
    h8(MSG.batch), '00000007', len('0002'), len('0001'), '61', '00', len('0003'), '622f63', '01', HASH_HEX),
  g('batch-data, every status', 'server', {
    type: 'batch-data', id: 7, final: true, answers: [
      { status: 'file', hash: HASH, size: 3, mode: 0o644, mtime: 1_700_000_000_000, data: Buffer.from('xyz') },
      { status: 'file', ...META2, data: Buffer.alloc(0) },
      { status: 'up-to-date', reason: '' },
      { status: 'not-found', reason: 'x' },
      { status: 'refused', reason: '' },
      { status: 'alone', reason: '' },
    ],
  },
  h8(MSG['batch-data']), '00000007', '01', len('0006'),
  h8(BATCH_STATUS.file), HASH_HEX, '0000000000000003', '000001a4', '0000018bcfe56800', '78797a',
  h8(BATCH_STATUS.file), META2_HEX,
  h8(BATCH_STATUS['up-to-date']), len('0000'),
  h8(BATCH_STATUS['not-found']), len('0001'), '78',
  h8(BATCH_STATUS.refused), len('0000'),
  h8(BATCH_STATUS.alone), len('0000')),
  g('batch-data, more to come', 'server',
    { type: 'batch-data', id: 1, final: false, answers: [{ status: 'alone', reason: 'big' }] },
    h8(MSG['batch-data']), '00000001', '00', len('0001'), h8(BATCH_STATUS.alone), len('0003'), '626967'),
]

/** Byte offset where a CHUNK frame's data starts: type, id u32, offset u64, final u8. */
export const CHUNK_HEADER_BYTES = 1 + 4 + 8 + 1

/**
 * Where the data of a frame whose data runs to the end of the frame starts (CHUNK, CHUNK_Z,
 * CHUNK_DATA, a CHUNK_LIST_REPLY slice), or null for any other frame. A "whole" CHUNK_LIST_REPLY
 * has no data (total 0), so more bytes are refused.
 */
export function dataHeaderBytes(msg: Message): number | null {
  switch (msg.type) {
    case 'chunk': return CHUNK_HEADER_BYTES
    case 'chunk-z': return 1 + 4 + 8 + 1 + 4
    case 'chunk-data': return 1 + 4 + 2 + 1
    case 'chunk-list-reply': return msg.whole ? null : 1 + 4 + 1 + 52 + 4 + 4
    default: return null
  }
}
