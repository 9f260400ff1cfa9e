/**
 * The assetsync message set: one tagged, versioned discriminated union per direction.
 * Byte layouts are in docs/protocol.md and implemented only in ./codec.ts.
 */

/** Bumped on any incompatible change to a frame layout or the handshake. */
export const PROTOCOL_VERSION = 2

/**
 * Frame type byte. Client→server codes live in 0x01–0x3f, server→client codes in 0x41–0x7e, and
 * 0x7f is PING in both directions, so a frame sent the wrong way is a protocol error, never a
 * mis-decode (the seed's bug: untagged structs decoded as the wrong shape).
 */
export const MSG = {
  // client -> server
  auth: 0x01,
  request: 0x02,
  cancel: 0x03,
  subscribe: 0x04,
  manifest: 0x05,
  credit: 0x06,
  // server -> client
  'auth-ok': 0x41,
  response: 0x42,
  chunk: 0x43,
  update: 0x44,
  'manifest-reply': 0x45,
  error: 0x46,
  'subscribe-ack': 0x47,
  // both
  ping: 0x7f,
} as const

/** RESPONSE status byte. */
export const STATUS = { file: 0, 'up-to-date': 1, 'not-found': 2, refused: 3 } as const
export type ResponseStatus = keyof typeof STATUS

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
export interface AuthMsg { type: 'auth'; version: number; token: string }
export interface RequestMsg { type: 'request'; id: number; path: string; haveHash: Uint8Array | null }
export interface CancelMsg { type: 'cancel'; id: number }
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

// --- server -> client --------------------------------------------------------------------
export interface AuthOkMsg { type: 'auth-ok'; version: number }
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

// --- both --------------------------------------------------------------------------------
export interface PingMsg { type: 'ping' }

export type ClientMessage = AuthMsg | RequestMsg | CancelMsg | SubscribeMsg | ManifestMsg | CreditMsg | PingMsg
export type ServerMessage =
  | AuthOkMsg
  | ResponseMsg
  | ChunkMsg
  | UpdateMsg
  | ManifestReplyMsg
  | ErrorMsg
  | SubscribeAckMsg
  | PingMsg
export type Message = ClientMessage | ServerMessage
export type MessageType = Message['type']

/** Who sent a frame; the decoder accepts only that side's types. */
export type Sender = 'client' | 'server'

const CLIENT_TYPES: ReadonlySet<MessageType> = new Set(['auth', 'request', 'cancel', 'subscribe', 'manifest', 'credit', 'ping'])
const SERVER_TYPES: ReadonlySet<MessageType> = new Set([
  'auth-ok', 'response', 'chunk', 'update', 'manifest-reply', 'error', 'subscribe-ack', 'ping',
])

export function allowedFrom(sender: Sender, type: MessageType): boolean {
  return (sender === 'client' ? CLIENT_TYPES : SERVER_TYPES).has(type)
}

/** Server replies that answer a request id. */
export type ReplyMessage = ResponseMsg | ChunkMsg | ManifestReplyMsg | ErrorMsg | SubscribeAckMsg
