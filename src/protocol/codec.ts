/**
 * The one codec: pure `encode(msg)` / `decode(bytes, sender)`. A frame is [type u8][body];
 * integers are big-endian. Every length is checked against the bytes left and a named cap, and
 * anything undecodable raises ProtocolError (never another exception, never a hang).
 * Encoding computes the size first and writes once (compact-encoding's preencode/encode).
 */
import { ProtocolError } from '../errors.js'
import {
  BATCH_FILE_BYTES, BATCH_MAX_FILES, CHUNK_SIZE, DELTA_FETCH_MAX_CHUNKS, DELTA_MAX_CHUNK_BYTES, DIRECT_MAX_KEYS, DIRECT_MAX_URL_BYTES,
  MAX_ERROR_CODE_BYTES, MAX_FRAME_BYTES, MAX_PATH_BYTES, MAX_PATTERN_BYTES, MAX_PATTERNS, MAX_TEXT_BYTES, MAX_TOKEN_BYTES,
  MAX_UPDATE_ENTRIES, REPORT_MAX_ERROR_BYTES, REPORT_MAX_PATHS, STATUS_MAX_JSON_BYTES,
} from '../limits.js'
import {
  BATCH_STATUS, CHANGE_KIND, HASH_BYTES, MSG, PRIORITY, STATUS, allowedFrom,
  type BatchAnswer, type BatchItem, type BatchStatus, type ChangeKind, type ChunkRef, type DirectKey, type FileMeta, type ManifestEntry,
  type Message, type MessageType, type RequestPriority, type ResponseStatus, type Sender, type UpdateEntry,
} from './messages.js'
import { type Out, Reader, Sizer, Writer } from './codec-io.js'

/** FileMeta on the wire: hash, size u64, mode u32, mtime u64. */
const META_BYTES = HASH_BYTES + 8 + 4 + 8

/** Bytes one entry takes in a MANIFEST_REPLY (path str16 + meta). */
export function manifestEntryBytes(path: string): number {
  return 2 + Buffer.byteLength(path, 'utf8') + META_BYTES
}

/** Bytes one entry takes in an UPDATE frame (kind, path, rename source, meta). */
export function updateEntryBytes(e: UpdateEntry): number {
  const from = e.kind === 'rename' ? 2 + Buffer.byteLength(e.from, 'utf8') : 0
  return 1 + 2 + Buffer.byteLength(e.path, 'utf8') + from + (e.kind === 'delete' ? 0 : META_BYTES)
}

/** Manifest entries one frame may hold (each has at least 2 + META_BYTES bytes). */
export const MAX_MANIFEST_ENTRIES = Math.floor(MAX_FRAME_BYTES / manifestEntryBytes(''))

const TYPE_BY_CODE = new Map<number, MessageType>(
  Object.entries(MSG).map(([type, code]) => [code, type as MessageType]),
)
const STATUS_BY_CODE = new Map<number, ResponseStatus>(
  Object.entries(STATUS).map(([s, code]) => [code, s as ResponseStatus]),
)
const KIND_BY_CODE = new Map<number, ChangeKind>(
  Object.entries(CHANGE_KIND).map(([k, code]) => [code, k as ChangeKind]),
)
const BATCH_STATUS_BY_CODE = new Map<number, BatchStatus>(
  Object.entries(BATCH_STATUS).map(([s, code]) => [code, s as BatchStatus]),
)
const PRIORITY_BY_CODE = new Map<number, RequestPriority>(
  Object.entries(PRIORITY).map(([p, code]) => [code, p as RequestPriority]),
)
function writeMeta(o: Out, m: FileMeta): void {
  o.raw(m.hash); o.u64(m.size); o.u32(m.mode); o.u64(m.mtime)
}

function readMeta(r: Reader): FileMeta {
  const hash = r.raw(HASH_BYTES, 'hash')
  return { hash, size: r.u64('size'), mode: r.u32('mode'), mtime: r.u64('mtime') }
}

function writePatterns(o: Out, patterns: string[]): void {
  o.u16(patterns.length)
  for (const p of patterns) o.str16(p)
}

function readPatterns(r: Reader): string[] {
  const n = r.count(MAX_PATTERNS, 'pattern count')
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    const p = r.str16(MAX_PATTERN_BYTES, 'pattern')
    // An empty pattern is no pattern: one such frame crashed the server in wave 1 (fuzz).
    if (p.length === 0) throw new ProtocolError('empty pattern')
    out.push(p)
  }
  return out
}

function writeBody(o: Out, m: Message): void {
  switch (m.type) {
    case 'auth':
      o.u16(m.version); o.str16(m.token)
      // Protocol 3's tail; a protocol-2 AUTH ends after the token (v2 servers refuse more).
      if (m.minVersion !== undefined) { o.u16(m.minVersion); o.u32(m.features ?? 0) }
      return
    case 'request':
      o.u32(m.id); o.str16(m.path)
      if (m.haveHash) { o.u8(1); o.raw(m.haveHash) } else o.u8(0)
      return
    case 'cancel': o.u32(m.id); return
    case 'priority-request':
      o.u32(m.id); o.u8(PRIORITY[m.priority]); o.str16(m.path)
      if (m.haveHash) { o.u8(1); o.raw(m.haveHash) } else o.u8(0)
      return
    case 'reprioritize': o.u32(m.id); o.u8(PRIORITY[m.priority]); return
    case 'subscribe':
      o.u32(m.id); o.u32(m.instanceId); o.u8(m.subscribe ? 1 : 0); writePatterns(o, m.patterns)
      return
    case 'manifest': o.u32(m.id); writePatterns(o, m.patterns); o.str16(m.after); return
    case 'credit': o.u32(m.bytes); return
    case 'report':
      o.u8(m.ok ? 1 : 0); o.u32(m.ms); o.u16(m.paths.length)
      for (const p of m.paths) o.str16(p)
      o.str16(m.error ?? '')
      return
    case 'status': o.u32(m.id); return
    case 'chunk-list':
      o.u32(m.id); o.str16(m.path)
      if (m.hash) { o.u8(1); o.raw(m.hash) } else o.u8(0)
      return
    case 'chunk-fetch':
      o.u32(m.id); o.str16(m.path); o.raw(m.hash); o.u16(m.chunks.length)
      for (const c of m.chunks) { o.raw(c.hash); o.u32(c.length) }
      return
    case 'chunk-list-reply':
      o.u32(m.id); o.u8(m.whole ? 1 : 0); writeMeta(o, m); o.u32(m.total); o.u32(m.offset); o.raw(m.data)
      return
    case 'chunk-data': o.u32(m.id); o.u16(m.index); o.u8(m.coding); o.raw(m.data); return
    case 'chunk-z': o.u32(m.id); o.u64(m.offset); o.u8(m.final ? 1 : 0); o.u32(m.length); o.raw(m.data); return
    case 'manifest-digest': o.u32(m.id); writePatterns(o, m.patterns); o.raw(m.digest); return
    case 'batch':
      o.u32(m.id); o.u16(m.items.length)
      for (const it of m.items) {
        o.str16(it.path)
        if (it.haveHash) { o.u8(1); o.raw(it.haveHash) } else o.u8(0)
      }
      return
    case 'auth-ok':
      o.u16(m.version)
      if (m.features !== undefined) o.u32(m.features)
      return
    case 'response':
      o.u32(m.id); o.u8(STATUS[m.status])
      if (m.status === 'file') writeMeta(o, m)
      else o.str16(m.reason)
      return
    case 'chunk': o.u32(m.id); o.u64(m.offset); o.u8(m.final ? 1 : 0); o.raw(m.data); return
    case 'update':
      o.u16(m.entries.length)
      for (const e of m.entries) {
        o.u8(CHANGE_KIND[e.kind]); o.str16(e.path)
        if (e.kind === 'rename') o.str16(e.from)
        if (e.kind !== 'delete') writeMeta(o, e)
      }
      return
    case 'manifest-reply':
      o.u32(m.id); o.u8(m.done ? 1 : 0); o.u32(m.entries.length)
      for (const e of m.entries) { o.str16(e.path); writeMeta(o, e) }
      return
    case 'error': o.u32(m.id); o.str16(m.code); o.str16(m.message); return
    case 'subscribe-ack': o.u32(m.id); return
    case 'status-reply': o.u32(m.id); o.str32(m.json); return
    case 'manifest-digest-reply': o.u32(m.id); o.u8(m.unchanged ? 1 : 0); o.raw(m.digest); return
    case 'batch-data':
      o.u32(m.id); o.u8(m.final ? 1 : 0); o.u16(m.answers.length)
      for (const a of m.answers) {
        o.u8(BATCH_STATUS[a.status])
        if (a.status === 'file') { writeMeta(o, a); o.raw(a.data) } else o.str16(a.reason)
      }
      return
    case 'direct':
      o.u32(m.id); o.u16(m.keys.length)
      for (const k of m.keys) { o.u8(DIRECT_KIND[k.kind]); o.raw(k.hash) }
      return
    case 'direct-reply':
      o.u32(m.id); o.str16(m.store); o.u32(m.expires); o.u16(m.urls.length)
      for (const u of m.urls) o.str16(u)
      return
    case 'ping': return
  }
}

function readBatchItem(r: Reader): BatchItem {
  const path = r.str16(MAX_PATH_BYTES, 'path')
  return { path, haveHash: r.bool('hash flag') ? r.raw(HASH_BYTES, 'have-hash') : null }
}

function readBatchAnswer(r: Reader): BatchAnswer {
  const code = r.u8('batch status')
  const status = BATCH_STATUS_BY_CODE.get(code)
  if (status === undefined) throw new ProtocolError(`unknown batch status ${code}`)
  if (status !== 'file') return { status, reason: r.str16(MAX_TEXT_BYTES, 'reason') }
  const meta = readMeta(r)
  // A file in a batch is whole: its size is its byte count, capped before the bytes are looked for.
  if (meta.size > BATCH_FILE_BYTES) throw new ProtocolError(`batch file of ${meta.size} bytes exceeds ${BATCH_FILE_BYTES}`)
  return { status, ...meta, data: r.raw(meta.size, 'batch file data') }
}

/** DIRECT key kind byte. */
const DIRECT_KIND = { chunk: 0, list: 1 } as const

/**
 * Encodes one frame. Throws RangeError (a local bug) for a frame over MAX_FRAME_BYTES or a string
 * over 65,535 bytes. The per-field caps (MAX_PATH_BYTES, MAX_UPDATE_ENTRIES, CHUNK_SIZE, ...) are
 * enforced by the decoder only: a sender must respect them or the peer ends the connection.
 */
export function encode(msg: Message): Buffer {
  const sizer = new Sizer()
  sizer.u8(0)
  writeBody(sizer, msg)
  if (sizer.size > MAX_FRAME_BYTES) throw new RangeError(`${msg.type} frame of ${sizer.size} bytes exceeds ${MAX_FRAME_BYTES}`)
  const w = new Writer(sizer.size)
  w.u8(MSG[msg.type])
  writeBody(w, msg)
  return w.buf
}

/** Bytes `encode` would produce for this message, without producing them. */
export function encodedSize(msg: Message): number {
  const sizer = new Sizer()
  sizer.u8(0)
  writeBody(sizer, msg)
  return sizer.size
}

function readUpdateEntry(r: Reader): UpdateEntry {
  const code = r.u8('change kind')
  const kind = KIND_BY_CODE.get(code)
  if (kind === undefined) throw new ProtocolError(`unknown change kind ${code}`)
  const path = r.str16(MAX_PATH_BYTES, 'path')
  if (kind === 'delete') return { kind, path }
  if (kind === 'rename') {
    const from = r.str16(MAX_PATH_BYTES, 'rename source')
    return { kind, path, from, ...readMeta(r) }
  }
  return { kind, path, ...readMeta(r) }
}

function readPriority(r: Reader): RequestPriority {
  const code = r.u8('priority')
  const p = PRIORITY_BY_CODE.get(code)
  if (p === undefined) throw new ProtocolError(`unknown priority ${code}`)
  return p
}

function readBody(r: Reader, type: MessageType): Message {
  switch (type) {
    case 'auth': {
      const version = r.u16('version')
      const token = r.str16(MAX_TOKEN_BYTES, 'token')
      if (r.left === 0) return { type, version, token }
      const minVersion = r.u16('lowest version')
      if (minVersion > version) throw new ProtocolError(`lowest version ${minVersion} is above the highest, ${version}`)
      return { type, version, token, minVersion, features: r.u32('features') }
    }
    case 'request': {
      const id = r.u32('id')
      const path = r.str16(MAX_PATH_BYTES, 'path')
      const haveHash = r.bool('hash flag') ? r.raw(HASH_BYTES, 'have-hash') : null
      return { type, id, path, haveHash }
    }
    case 'cancel': return { type, id: r.u32('id') }
    case 'priority-request': {
      const id = r.u32('id')
      const priority = readPriority(r)
      const path = r.str16(MAX_PATH_BYTES, 'path')
      const haveHash = r.bool('hash flag') ? r.raw(HASH_BYTES, 'have-hash') : null
      return { type, id, priority, path, haveHash }
    }
    case 'reprioritize': {
      const id = r.u32('id')
      return { type, id, priority: readPriority(r) }
    }
    case 'subscribe': {
      const id = r.u32('id')
      const instanceId = r.u32('instance id')
      const subscribe = r.bool('subscribe flag')
      return { type, id, instanceId, subscribe, patterns: readPatterns(r) }
    }
    case 'manifest': {
      const id = r.u32('id')
      const patterns = readPatterns(r)
      return { type, id, patterns, after: r.str16(MAX_PATH_BYTES, 'cursor') }
    }
    case 'credit': return { type, bytes: r.u32('credit bytes') }
    case 'report': {
      const ok = r.bool('ok flag')
      const ms = r.u32('ms')
      const n = r.count(REPORT_MAX_PATHS, 'report path count')
      const paths: string[] = []
      for (let i = 0; i < n; i++) paths.push(r.str16(MAX_PATH_BYTES, 'path'))
      const error = r.str16(REPORT_MAX_ERROR_BYTES, 'report error')
      return { type, ok, ms, paths, error: error === '' ? null : error }
    }
    case 'status': return { type, id: r.u32('id') }
    case 'chunk-list': {
      const id = r.u32('id')
      const path = r.str16(MAX_PATH_BYTES, 'path')
      const hash = r.bool('hash flag') ? r.raw(HASH_BYTES, 'file hash') : null
      return { type, id, path, hash }
    }
    case 'chunk-fetch': {
      const id = r.u32('id')
      const path = r.str16(MAX_PATH_BYTES, 'path')
      const hash = r.raw(HASH_BYTES, 'file hash')
      const n = r.count(DELTA_FETCH_MAX_CHUNKS, 'chunk count')
      if (n === 0) throw new ProtocolError('chunk fetch of no chunks')
      const chunks: ChunkRef[] = []
      for (let i = 0; i < n; i++) {
        const h = r.raw(HASH_BYTES, 'chunk hash')
        const length = r.u32('chunk length')
        if (length === 0 || length > DELTA_MAX_CHUNK_BYTES) throw new ProtocolError(`chunk length ${length} out of range`)
        chunks.push({ hash: h, length })
      }
      return { type, id, path, hash, chunks }
    }
    case 'chunk-list-reply': {
      const id = r.u32('id')
      const whole = r.bool('whole flag')
      const meta = readMeta(r)
      const total = r.u32('list bytes')
      const offset = r.u32('list offset')
      const data = r.rest()
      if (offset + data.byteLength > total) throw new ProtocolError(`chunk list slice ends at ${offset + data.byteLength}, past its ${total} bytes`)
      if (whole && total !== 0) throw new ProtocolError('a "whole" chunk list reply carries list bytes')
      return { type, id, whole, ...meta, total, offset, data }
    }
    case 'chunk-data': {
      const id = r.u32('id')
      const index = r.u16('chunk index')
      const coding = r.u8('coding')
      if (coding > 1) throw new ProtocolError(`unknown chunk coding ${coding}`)
      if (r.left > DELTA_MAX_CHUNK_BYTES) throw new ProtocolError(`chunk data of ${r.left} bytes exceeds ${DELTA_MAX_CHUNK_BYTES}`)
      return { type, id, index, coding, data: r.rest() }
    }
    case 'chunk-z': {
      const id = r.u32('id')
      const offset = r.u64('offset')
      const final = r.bool('final flag')
      const length = r.u32('decoded length')
      if (length > CHUNK_SIZE) throw new ProtocolError(`compressed chunk decodes to ${length} bytes, over ${CHUNK_SIZE}`)
      if (r.left > CHUNK_SIZE) throw new ProtocolError(`compressed chunk of ${r.left} bytes exceeds ${CHUNK_SIZE}`)
      return { type, id, offset, final, length, data: r.rest() }
    }
    case 'auth-ok': {
      const version = r.u16('version')
      return r.left === 0 ? { type, version } : { type, version, features: r.u32('features') }
    }
    case 'response': {
      const id = r.u32('id')
      const code = r.u8('status')
      const status = STATUS_BY_CODE.get(code)
      if (status === undefined) throw new ProtocolError(`unknown response status ${code}`)
      if (status === 'file') return { type, id, status, ...readMeta(r) }
      return { type, id, status, reason: r.str16(MAX_TEXT_BYTES, 'reason') }
    }
    case 'chunk': {
      const id = r.u32('id')
      const offset = r.u64('offset')
      const final = r.bool('final flag')
      if (r.left > CHUNK_SIZE) throw new ProtocolError(`chunk of ${r.left} bytes exceeds ${CHUNK_SIZE}`)
      return { type, id, offset, final, data: r.rest() }
    }
    case 'update': {
      const n = r.count(MAX_UPDATE_ENTRIES, 'update entry count')
      const entries: UpdateEntry[] = []
      for (let i = 0; i < n; i++) entries.push(readUpdateEntry(r))
      return { type, entries }
    }
    case 'manifest-reply': {
      const id = r.u32('id')
      const done = r.bool('done flag')
      const n = r.count(MAX_MANIFEST_ENTRIES, 'manifest entry count', true)
      const entries: ManifestEntry[] = []
      for (let i = 0; i < n; i++) {
        const path = r.str16(MAX_PATH_BYTES, 'path')
        entries.push({ path, ...readMeta(r) })
      }
      return { type, id, done, entries }
    }
    case 'error': {
      const id = r.u32('id')
      return { type, id, code: r.str16(MAX_ERROR_CODE_BYTES, 'error code'), message: r.str16(MAX_TEXT_BYTES, 'message') }
    }
    case 'subscribe-ack': return { type, id: r.u32('id') }
    case 'status-reply': {
      const id = r.u32('id')
      return { type, id, json: r.str32(STATUS_MAX_JSON_BYTES, 'status JSON') }
    }
    case 'manifest-digest': {
      const id = r.u32('id')
      const patterns = readPatterns(r)
      return { type, id, patterns, digest: r.raw(HASH_BYTES, 'digest') }
    }
    case 'manifest-digest-reply': {
      const id = r.u32('id')
      const unchanged = r.bool('unchanged flag')
      return { type, id, unchanged, digest: r.raw(HASH_BYTES, 'digest') }
    }
    case 'batch': {
      const id = r.u32('id')
      const n = r.count(BATCH_MAX_FILES, 'batch item count')
      if (n === 0) throw new ProtocolError('empty batch')
      const items: BatchItem[] = []
      for (let i = 0; i < n; i++) items.push(readBatchItem(r))
      return { type, id, items }
    }
    case 'batch-data': {
      const id = r.u32('id')
      const final = r.bool('final flag')
      const n = r.count(BATCH_MAX_FILES, 'batch answer count')
      if (n === 0) throw new ProtocolError('batch data without answers')
      const answers: BatchAnswer[] = []
      for (let i = 0; i < n; i++) answers.push(readBatchAnswer(r))
      return { type, id, final, answers }
    }
    case 'direct': {
      const id = r.u32('id')
      const n = r.count(DIRECT_MAX_KEYS, 'direct key count')
      const keys: DirectKey[] = []
      for (let i = 0; i < n; i++) {
        const code = r.u8('direct key kind')
        if (code > 1) throw new ProtocolError(`unknown direct key kind ${code}`)
        keys.push({ kind: code === 0 ? 'chunk' : 'list', hash: r.raw(HASH_BYTES, 'hash') })
      }
      return { type, id, keys }
    }
    case 'direct-reply': {
      const id = r.u32('id')
      const store = r.str16(MAX_TEXT_BYTES, 'store')
      const expires = r.u32('expires')
      const n = r.count(DIRECT_MAX_KEYS, 'direct url count')
      const urls: string[] = []
      for (let i = 0; i < n; i++) urls.push(r.str16(DIRECT_MAX_URL_BYTES, 'url'))
      return { type, id, store, expires, urls }
    }
    case 'ping': return { type }
  }
}

/**
 * Decodes one frame sent by `sender`. Returned byte fields (hash, chunk data) are views into
 * `bytes`: copy them if `bytes` will be reused.
 */
export function decode(bytes: Uint8Array, sender: Sender): Message {
  if (bytes.byteLength === 0) throw new ProtocolError('empty frame')
  if (bytes.byteLength > MAX_FRAME_BYTES) {
    throw new ProtocolError(`frame of ${bytes.byteLength} bytes exceeds ${MAX_FRAME_BYTES}`)
  }
  const code = bytes[0] as number
  const type = TYPE_BY_CODE.get(code)
  if (type === undefined) throw new ProtocolError(`unknown frame type 0x${code.toString(16).padStart(2, '0')}`)
  if (!allowedFrom(sender, type)) throw new ProtocolError(`${type} frame is not valid from the ${sender}`)
  const r = new Reader(bytes, 1)
  const msg = readBody(r, type)
  r.end(type)
  // Id 0 is the connection's own (ERROR id 0 ends it); clients number requests from 1 (§4.1).
  if (sender === 'client' && 'id' in msg && msg.id === 0) throw new ProtocolError(`${type} frame with id 0 (reserved for the connection)`)
  return msg
}
