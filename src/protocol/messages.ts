/**
 * The assetsync message set: one tagged, versioned discriminated union per direction, the
 * protocol versions this build speaks, and the feature registry (which optional frames each
 * negotiated feature owns). Byte layouts are in docs/protocol.md and implemented only in
 * ./codec.ts; the negotiation rules are in ./negotiation.ts.
 */

/**
 * The highest protocol version this build speaks. Version 3 added version ranges and feature
 * negotiation (HELLO, WELCOME, REJECT, AUTH, AUTH_OK) and optional frames. Bump it for any
 * change a peer of the previous version could not decode.
 */
export const PROTOCOL_VERSION = 3

/** The lowest protocol version this build still speaks (to peers of the previous release). */
export const MIN_PROTOCOL_VERSION = 2

/**
 * The first version with features and optional frames. A connection that settles on an older
 * version has no features, so neither side ever sends an optional frame on it.
 */
export const FEATURES_SINCE_VERSION = 3

/**
 * The version byte of the handshake datagrams a protocol-2 peer compares exactly: the TCP
 * "server full" bytes (tcp.ts). Kept at 2 while protocol-2 clients are served.
 */
export const COMPAT_VERSION = 2

/**
 * Frame type byte. Client→server codes live in 0x01–0x3f, server→client codes in 0x41–0x7e, and
 * 0x7f is PING in both directions, so a frame sent the wrong way is a protocol error, never a
 * mis-decode (the seed's bug: untagged structs decoded as the wrong shape).
 *
 * Within each direction the upper part is OPTIONAL (OPTIONAL_CODES): such a frame belongs to a
 * feature (FEATURES) and is sent only when that feature was negotiated; a receiver that did not
 * negotiate it, or does not know the code, skips the frame instead of failing the connection.
 * Every other code is mandatory: unknown means ERR_PROTOCOL.
 */
export const MSG = {
  // client -> server
  auth: 0x01,
  request: 0x02,
  cancel: 0x03,
  subscribe: 0x04,
  manifest: 0x05,
  credit: 0x06,
  // client -> server, optional (FEATURES.priority, FEATURES.report, FEATURES.status; docs/protocol.md §4.2, §4.7)
  'priority-request': 0x20,
  reprioritize: 0x21,
  report: 0x24,
  // client -> server, optional: chunks (0x28–0x2b)
  'chunk-list': 0x28,
  'chunk-fetch': 0x29,
  // client -> server, optional (FEATURES['manifest-digest'], FEATURES['batch-request']; docs/protocol.md §4.10)
  'manifest-digest': 0x30,
  batch: 0x34,
  status: 0x38,
  // client -> server, optional: direct (0x3c–0x3f)
  direct: 0x3c,
  // server -> client
  'auth-ok': 0x41,
  response: 0x42,
  chunk: 0x43,
  update: 0x44,
  'manifest-reply': 0x45,
  error: 0x46,
  'subscribe-ack': 0x47,
  // server -> client, optional: chunks (0x68–0x6b), zstd (0x6c–0x6f)
  'chunk-list-reply': 0x68,
  'chunk-data': 0x69,
  'chunk-z': 0x6c,
  // server -> client, optional (FEATURES['manifest-digest'], FEATURES['batch-request'], FEATURES.status)
  'manifest-digest-reply': 0x70,
  'batch-data': 0x74,
  'status-reply': 0x78,
  // server -> client, optional: direct (0x7c–0x7e)
  'direct-reply': 0x7c,
  // both
  ping: 0x7f,
} as const

/** Who sent a frame; the decoder accepts only that side's types. */
export type Sender = 'client' | 'server'

/** An inclusive range of frame type codes. */
export interface CodeRange { readonly first: number; readonly last: number }

/** The optional frame codes of each direction (the rest of the direction's range is mandatory). */
export const OPTIONAL_CODES: Readonly<Record<Sender, CodeRange>> = {
  client: { first: 0x20, last: 0x3f },
  server: { first: 0x60, last: 0x7e },
}

/** What the feature registry records about one feature. */
export interface FeatureSpec {
  /** Its bit in the 32-bit feature set of HELLO, WELCOME, REJECT, AUTH and AUTH_OK. */
  readonly bit: number
  /**
   * Whether this build implements it, and so offers it by default. A reserved feature is never
   * offered, so it is never negotiated and its frames are skipped if a peer sends them anyway.
   */
  readonly implemented: boolean
  /** The optional frame codes it owns, per sender: only these may carry its frames. */
  readonly frames: Readonly<Record<Sender, CodeRange>>
  /** One line: what it is for. */
  readonly about: string
}

/** A feature's block: four client and four server codes, the `n`th block of each optional range. */
function block(n: number): Readonly<Record<Sender, CodeRange>> {
  const at = (r: CodeRange): CodeRange => ({ first: r.first + 4 * n, last: r.first + 4 * n + 3 })
  return { client: at(OPTIONAL_CODES.client), server: at(OPTIONAL_CODES.server) }
}

/**
 * The feature registry: name → bit, whether implemented, and the optional frame codes it owns.
 * Bits and code blocks are reserved here for wave 2 so that pieces built in parallel never
 * collide; the piece that implements a feature sets `implemented`, adds its frames to MSG within
 * its block, and documents them (docs/protocol.md §5). Bits 7–31 and the codes after the last
 * block were free; `direct` (scale-out) took bit 7 and them: bits 8–31 are free.
 */
export const FEATURES = {
  priority: { bit: 0, implemented: true, frames: block(0), about: 'request priority: a blocking require before bulk transfers' },
  report: { bit: 1, implemented: true, frames: block(1), about: 'client → server reload/hook report' },
  chunks: { bit: 2, implemented: true, frames: block(2), about: 'content-defined chunk lists and chunk fetch' },
  zstd: { bit: 3, implemented: true, frames: block(3), about: 'zstd-compressed chunks' },
  'manifest-digest': { bit: 4, implemented: true, frames: block(4), about: 'a digest of the manifest, to skip an unchanged listing' },
  'batch-request': { bit: 5, implemented: true, frames: block(5), about: 'many files per request' },
  status: { bit: 6, implemented: true, frames: block(6), about: 'status query over the protocol' },
  // The last block: server codes stop at 0x7e (0x7f is PING).
  direct: {
    bit: 7, implemented: true, frames: { client: { first: 0x3c, last: 0x3f }, server: { first: 0x7c, last: 0x7e } },
    about: 'pull --direct: URLs of chunk and list objects in the S3 origin',
  },
} as const satisfies Record<string, FeatureSpec>

/** The name of a feature in the registry (`FEATURES`). */
export type FeatureName = keyof typeof FEATURES

/** The feature set (bitset) with the given features. */
export function featureBits(names: Iterable<FeatureName>): number {
  let bits = 0
  for (const n of names) bits |= 1 << FEATURES[n].bit
  return bits >>> 0
}

/** The names of the features in `bits` (unknown bits are left out). */
export function featureNames(bits: number): FeatureName[] {
  return (Object.keys(FEATURES) as FeatureName[]).filter((n) => (bits >>> FEATURES[n].bit) & 1)
}

/** What this build offers by default: every implemented feature. */
export const IMPLEMENTED_FEATURES = featureBits(
  (Object.keys(FEATURES) as FeatureName[]).filter((n) => (FEATURES[n] as FeatureSpec).implemented),
)

/** Whether `code` is in the optional range of frames sent by `sender`. */
export function isOptionalCode(code: number, sender: Sender): boolean {
  const r = OPTIONAL_CODES[sender]
  return code >= r.first && code <= r.last
}

const OWNER = new Map<string, FeatureName>()
for (const name of Object.keys(FEATURES) as FeatureName[]) {
  for (const sender of ['client', 'server'] as const) {
    const r = FEATURES[name].frames[sender]
    for (let c = r.first; c <= r.last; c++) OWNER.set(`${sender}:${c}`, name)
  }
}

/** The feature that owns optional code `code` sent by `sender`, or null (a free code). */
export function featureOfCode(code: number, sender: Sender): FeatureName | null {
  return OWNER.get(`${sender}:${code}`) ?? null
}

const KNOWN_CODES: ReadonlySet<number> = new Set(Object.values(MSG))

/**
 * The ignore rule for optional frames (docs/protocol.md §5.3): true when a frame of type `code`
 * from `sender` is to be skipped on a connection that negotiated `features`. That is an optional
 * code whose feature was not negotiated, that no feature owns, or that this build does not know.
 * Mandatory codes are never skipped (an unknown one is ERR_PROTOCOL, from the decoder).
 */
export function skipsFrame(code: number, sender: Sender, features: number): boolean {
  if (!isOptionalCode(code, sender)) return false
  const owner = featureOfCode(code, sender)
  if (owner === null || ((features >>> FEATURES[owner].bit) & 1) === 0) return true
  return !KNOWN_CODES.has(code)
}

/**
 * The answer to one path of a BATCH (feature `batch-request`): RESPONSE's statuses, plus `alone`:
 * the server will not send this file in a batch (it is larger than BATCH_FILE_BYTES now, or it
 * could not be read at once); the client asks for it with a REQUEST, which has the full error
 * path (ERR_CHANGED, retries).
 */
export const BATCH_STATUS = { file: 0, 'up-to-date': 1, 'not-found': 2, refused: 3, alone: 4 } as const
export type BatchStatus = keyof typeof BATCH_STATUS

/** RESPONSE status byte. */
export const STATUS = { file: 0, 'up-to-date': 1, 'not-found': 2, refused: 3 } as const
export type ResponseStatus = keyof typeof STATUS

/**
 * Request priority classes (feature `priority`): the server gives every queued transfer of a
 * lower class its turns before any of a higher one (round robin within a class). A plain REQUEST
 * is `normal`. `blocking`: a program waits on it (a `require`); `background`: bulk that may wait
 * (`load_asset_async`).
 */
export const PRIORITY = { blocking: 0, normal: 1, background: 2 } as const
export type RequestPriority = keyof typeof PRIORITY

/** UPDATE entry kind byte. */
export const CHANGE_KIND = { change: 0, delete: 1, rename: 2 } as const
export type ChangeKind = keyof typeof CHANGE_KIND

/** BLAKE3-256 digest length. */
export const HASH_BYTES = 32

/** What a file is, as the server indexed it. */
export interface FileMeta {
  /** BLAKE3-256 of the content. */
  hash: Uint8Array
  size: number
  /** Permission bits (mode & 0o777). */
  mode: number
  /** Modification time, integer milliseconds since the epoch. */
  mtime: number
}

export interface ManifestEntry extends FileMeta {
  path: string
}

export type UpdateEntry =
  | ({ kind: 'change'; path: string } & FileMeta)
  | { kind: 'delete'; path: string }
  | ({ kind: 'rename'; path: string; from: string } & FileMeta)

// --- client -> server --------------------------------------------------------------------
/**
 * `version` is the highest version the client speaks. Protocol 3 clients add `minVersion` (the
 * lowest) and `features` (the set they offer); without them (protocol 2) the client speaks
 * `version` only, with no features. The codec writes both or neither.
 */
export interface AuthMsg { type: 'auth'; version: number; token: string; minVersion?: number; features?: number }
export interface RequestMsg { type: 'request'; id: number; path: string; haveHash: Uint8Array | null }
export interface CancelMsg { type: 'cancel'; id: number }
/** REQUEST with a priority class (optional frame of feature `priority`). */
export interface PriorityRequestMsg { type: 'priority-request'; id: number; priority: RequestPriority; path: string; haveHash: Uint8Array | null }
/** Moves open request `id` to another priority class (feature `priority`); unknown ids are ignored. */
export interface ReprioritizeMsg { type: 'reprioritize'; id: number; priority: RequestPriority }
export interface SubscribeMsg {
  type: 'subscribe'
  id: number
  instanceId: number
  subscribe: boolean
  patterns: string[]
}
/** Asks for one page of the manifest: entries with path > `after` (code-unit order). */
export interface ManifestMsg { type: 'manifest'; id: number; patterns: string[]; after: string }
/**
 * Flow control: the client has consumed `bytes` more CHUNK data (written it to disk or dropped
 * it), so the server may send that many more. The server starts with FLOW_WINDOW_BYTES of credit.
 */
export interface CreditMsg { type: 'credit'; bytes: number }
/**
 * Feature `report`, no reply: the device reloaded `paths` (ok), or failed to (`error`: a Lua
 * message, a hook's failure), taking `ms`. At most REPORT_MAX_PATHS paths and
 * REPORT_MAX_ERROR_BYTES of error; `error` is null when there is none (sent as "").
 */
export interface ReportMsg { type: 'report'; ok: boolean; ms: number; paths: string[]; error: string | null }
/** Feature `status`: asks for the server's StatusJson; answered by STATUS_REPLY (or ERROR). */
export interface StatusMsg { type: 'status'; id: number }
/**
 * `chunks`: asks for the chunk list of `path` (docs/delta.md), of the content with `hash`, or of
 * the current content when `hash` is null (`get -o`, which has no manifest entry).
 */
export interface ChunkListMsg { type: 'chunk-list'; id: number; path: string; hash: Uint8Array | null }
/** One chunk asked for by CHUNK_FETCH: its BLAKE3 hash and length, from the file's chunk list. */
export interface ChunkRef { hash: Uint8Array; length: number }
/**
 * `chunks`: asks for chunks of the content `hash` of `path` (at most DELTA_FETCH_MAX_CHUNKS), by
 * chunk hash. Answered by one CHUNK_DATA per chunk, in order.
 */
export interface ChunkFetchMsg { type: 'chunk-fetch'; id: number; path: string; hash: Uint8Array; chunks: ChunkRef[] }
/**
 * Feature `manifest-digest`: is the listing of `patterns` still the one whose digest is `digest`
 * (the scale-out manifest object's digest, core/scale/manifest-object.ts)? Answered by MANIFEST_DIGEST_REPLY.
 */
export interface ManifestDigestMsg { type: 'manifest-digest'; id: number; patterns: string[]; digest: Uint8Array }
/** One path of a BATCH, with the client's current hash of it (if any), as in REQUEST. */
export interface BatchItem { path: string; haveHash: Uint8Array | null }
/**
 * Feature `batch-request`: many small files in one request. Answered by BATCH_DATA frames, one
 * answer per item in this order (at most BATCH_MAX_FILES items).
 */
export interface BatchMsg { type: 'batch'; id: number; items: BatchItem[] }
/** An object of a published tree that `pull --direct` reads: a chunk, or a file's chunk list. */
export interface DirectKey { kind: 'chunk' | 'list'; hash: Uint8Array }
/**
 * `direct`: asks where to GET these objects (`chunks/<hash>`, `lists/<file hash>`) of the server's
 * S3 origin; an empty list asks only for the store. Answered by DIRECT_REPLY.
 */
export interface DirectMsg { type: 'direct'; id: number; keys: DirectKey[] }

// --- server -> client --------------------------------------------------------------------
/**
 * The version the server chose. `features` (the agreed set) is present exactly when the AUTH
 * carried `minVersion`/`features`: a protocol-2 client gets the 3-byte AUTH_OK it expects.
 */
export interface AuthOkMsg { type: 'auth-ok'; version: number; features?: number }
export type ResponseMsg =
  | ({ type: 'response'; id: number; status: 'file' } & FileMeta)
  | { type: 'response'; id: number; status: 'up-to-date' | 'not-found' | 'refused'; reason: string }
/** File bytes at `offset`; `final` marks the last chunk of the transfer. */
export interface ChunkMsg { type: 'chunk'; id: number; offset: number; final: boolean; data: Uint8Array }
export interface UpdateMsg { type: 'update'; entries: UpdateEntry[] }
export interface ManifestReplyMsg { type: 'manifest-reply'; id: number; done: boolean; entries: ManifestEntry[] }
/** `id` 0 is about the whole connection (then it closes); otherwise it ends that request. */
export interface ErrorMsg { type: 'error'; id: number; code: string; message: string }
export interface SubscribeAckMsg { type: 'subscribe-ack'; id: number }
/**
 * Feature `status`: the answer to STATUS, a StatusJson document as JSON text (at most
 * STATUS_MAX_JSON_BYTES; read it with parseStatusJson, never trust its shape).
 */
export interface StatusReplyMsg { type: 'status-reply'; id: number; json: string }
/**
 * `chunks`: one slice, at `offset`, of the `total`-byte encoded chunk list (docs/delta.md §3) of
 * the file described by the meta fields. `whole`: the server offers no list for this file (too
 * small, too many chunks, or its source cannot chunk): the client sends REQUEST instead; then
 * `total` is 0 and `data` empty.
 */
export type ChunkListReplyMsg = { type: 'chunk-list-reply'; id: number; whole: boolean; total: number; offset: number; data: Uint8Array } & FileMeta
/**
 * `chunks`: the chunk at `index` in the CHUNK_FETCH's list; `coding` 0 raw, 1 zstd (only when
 * `zstd` was agreed). Its data bytes (as sent) are charged to flow control.
 */
export interface ChunkDataMsg { type: 'chunk-data'; id: number; index: number; coding: number; data: Uint8Array }
/**
 * `zstd`: a CHUNK whose data is one zstd frame that decodes to `length` (≤ CHUNK_SIZE) bytes. The
 * compressed bytes are charged to flow control.
 */
export interface ChunkZMsg { type: 'chunk-z'; id: number; offset: number; final: boolean; length: number; data: Uint8Array }
/**
 * Feature `manifest-digest`: `unchanged` when the listing of the asked patterns has the asked
 * digest; `digest` is the server's digest of that listing either way.
 */
export interface ManifestDigestReplyMsg { type: 'manifest-digest-reply'; id: number; unchanged: boolean; digest: Uint8Array }
/** The answer to one item of a BATCH: a whole file (meta and content), or a status with a reason. */
export type BatchAnswer =
  | ({ status: 'file'; data: Uint8Array } & FileMeta)
  | { status: Exclude<BatchStatus, 'file'>; reason: string }
/**
 * Feature `batch-request`: the next answers of batch `id`, in the order of its items; `final` on
 * the frame with the last one. File content counts against flow control as CHUNK data does.
 */
export interface BatchDataMsg { type: 'batch-data'; id: number; final: boolean; answers: BatchAnswer[] }
/**
 * `direct`: the server's S3 origin (`s3://bucket/prefix`) and, when `expires` > 0, one presigned
 * GET URL per asked key, in order, valid for `expires` seconds; `expires` 0 and no URLs: read the
 * bucket with your own credentials. The client verifies every byte it GETs (BLAKE3).
 */
export interface DirectReplyMsg { type: 'direct-reply'; id: number; store: string; expires: number; urls: string[] }

// --- both --------------------------------------------------------------------------------
export interface PingMsg { type: 'ping' }

export type ClientMessage =
  | AuthMsg | RequestMsg | CancelMsg | SubscribeMsg | ManifestMsg | CreditMsg | PriorityRequestMsg | ReprioritizeMsg | ReportMsg | StatusMsg
  | ChunkListMsg | ChunkFetchMsg | ManifestDigestMsg | BatchMsg | DirectMsg | PingMsg
export type ServerMessage =
  | AuthOkMsg
  | ResponseMsg
  | ChunkMsg
  | UpdateMsg
  | ManifestReplyMsg
  | ErrorMsg
  | SubscribeAckMsg
  | StatusReplyMsg
  | ChunkListReplyMsg
  | ChunkDataMsg
  | ChunkZMsg
  | ManifestDigestReplyMsg
  | BatchDataMsg
  | DirectReplyMsg
  | PingMsg
export type Message = ClientMessage | ServerMessage
export type MessageType = Message['type']

const CLIENT_TYPES: ReadonlySet<MessageType> = new Set([
  'auth', 'request', 'cancel', 'subscribe', 'manifest', 'credit', 'priority-request', 'reprioritize', 'report', 'status', 'chunk-list',
  'chunk-fetch', 'manifest-digest', 'batch', 'direct', 'ping',
])
const SERVER_TYPES: ReadonlySet<MessageType> = new Set([
  'auth-ok', 'response', 'chunk', 'update', 'manifest-reply', 'error', 'subscribe-ack', 'status-reply', 'chunk-list-reply', 'chunk-data', 'chunk-z',
  'manifest-digest-reply', 'batch-data', 'direct-reply', 'ping',
])

export function allowedFrom(sender: Sender, type: MessageType): boolean {
  return (sender === 'client' ? CLIENT_TYPES : SERVER_TYPES).has(type)
}

/** Server replies that answer a request id. */
export type ReplyMessage =
  | ResponseMsg | ChunkMsg | ManifestReplyMsg | ErrorMsg | SubscribeAckMsg | StatusReplyMsg | ChunkListReplyMsg | ChunkDataMsg | ChunkZMsg
  | ManifestDigestReplyMsg | BatchDataMsg | DirectReplyMsg

/**
 * The server frame types the client routes to a pending request by `id` (an optional reply
 * frame joins this set and ReplyMessage). Every other server frame but AUTH_OK is a 'message'.
 */
export const REPLY_TYPES: ReadonlySet<ServerMessage['type']> = new Set([
  'response', 'chunk', 'manifest-reply', 'error', 'subscribe-ack', 'status-reply', 'chunk-list-reply', 'chunk-data', 'chunk-z',
  'manifest-digest-reply', 'batch-data', 'direct-reply',
])

export function isReply(msg: ServerMessage): msg is ReplyMessage {
  return REPLY_TYPES.has(msg.type)
}

/** Frames whose data is charged to flow control (docs/protocol.md §4.6): file bytes as sent. */
export type FlowMessage = ChunkMsg | ChunkZMsg | ChunkDataMsg | BatchDataMsg

/**
 * The flow-control cost of a server frame: its data bytes as sent for CHUNK, CHUNK_Z, CHUNK_DATA;
 * for BATCH_DATA the content bytes of its file answers; else 0.
 */
export function flowBytes(msg: Message): number {
  if (msg.type === 'chunk' || msg.type === 'chunk-z' || msg.type === 'chunk-data') return msg.data.byteLength
  if (msg.type !== 'batch-data') return 0
  let n = 0
  for (const a of msg.answers) if (a.status === 'file') n += a.data.byteLength
  return n
}
