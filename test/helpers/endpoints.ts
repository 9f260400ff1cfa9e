/**
 * Shared pieces of the transport tests: a tiny blob server on top of ServerEndpoint (answers
 * REQUEST with RESPONSE + CHUNK frames, respecting backpressure), the matching client fetch,
 * event waits with deadlines, and a cleanup stack for afterEach.
 */
import SecretStream, { type KeyPair } from '@hyperswarm/secret-stream'
import { CHUNK_SIZE } from '../../src/limits.js'
import type { ClientConnection, ServerConnection } from '../../src/protocol/connection.js'
import { type DialOptions, ServerEndpoint, type ServeEndpointOptions, dial } from '../../src/protocol/endpoint.js'
import type { Message } from '../../src/protocol/messages.js'
import type { TransportName } from '../../src/protocol/transport.js'
import { type Cleanup, LOOPBACK, sha256 } from './common.js'

export function newKeyPair(): KeyPair {
  return SecretStream.keyPair()
}

/** Sends `data` as the reply to request `id`: RESPONSE(file) then CHUNK_SIZE chunks, waiting on backpressure. */
export async function sendBlob(conn: ServerConnection, id: number, data: Buffer): Promise<void> {
  conn.send({ type: 'response', id, status: 'file', hash: sha256(data), size: data.length, mode: 0o644, mtime: 0 })
  for (let off = 0; ; off += CHUNK_SIZE) {
    const end = Math.min(off + CHUNK_SIZE, data.length)
    const final = end === data.length
    await conn.sendChunk({ type: 'chunk', id, offset: off, final, data: data.subarray(off, end) })
    if (final) return
  }
}

/** Makes every authenticated connection of `server` answer REQUEST(path) with `blob(path)` or not-found. */
export function serveBlobs(server: ServerEndpoint, blob: (path: string) => Buffer | undefined): void {
  server.on('connection', (conn: ServerConnection) => {
    conn.on('message', (msg: Message) => {
      if (msg.type !== 'request') return
      const data = blob(msg.path)
      if (!data) {
        conn.send({ type: 'response', id: msg.id, status: 'not-found', reason: `${msg.path} not found` })
        return
      }
      sendBlob(conn, msg.id, data).catch(() => { /* connection closed mid-transfer */ })
    })
  })
}

/** Requests `path` and returns its bytes; checks offsets, size and hash against the RESPONSE. */
export async function fetchBlob(conn: ClientConnection, path: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let expected: { hash: Uint8Array; size: number } | null = null
  let offset = 0
  await conn.request((id) => ({ type: 'request', id, path, haveHash: null }), (reply) => {
    if (reply.type === 'response') {
      if (reply.status !== 'file') throw new Error(`${path}: ${reply.status}`)
      expected = { hash: reply.hash, size: reply.size }
      return false
    }
    if (reply.type !== 'chunk') throw new Error(`unexpected ${reply.type} reply`)
    if (!expected) throw new Error('chunk before response')
    if (reply.offset !== offset) throw new Error(`chunk at offset ${reply.offset}, expected ${offset}`)
    offset += reply.data.byteLength
    parts.push(Buffer.from(reply.data)) // the frame's buffer is not ours to keep
    return reply.final
  }).done
  const data = Buffer.concat(parts)
  const exp = expected as { hash: Uint8Array; size: number } | null
  if (!exp || data.length !== exp.size || !sha256(data).equals(exp.hash)) {
    throw new Error(`${path}: received ${data.length} bytes that do not match the announced size/hash`)
  }
  return data
}

/** Listens on 127.0.0.1:0 with a fresh keypair; `extra` overrides anything. */
export async function listen(transport: TransportName, extra: Partial<ServeEndpointOptions> = {}): Promise<ServerEndpoint> {
  return ServerEndpoint.listen({ transport, host: LOOPBACK, port: 0, keyPair: newKeyPair(), token: null, ...extra })
}

/** `listen`, closed by `cleanup`. */
export async function listenTracked(cleanup: Cleanup, transport: TransportName, extra: Partial<ServeEndpointOptions> = {}): Promise<ServerEndpoint> {
  const s = await listen(transport, extra)
  cleanup.add(() => s.close())
  return s
}

/** Dials `s` on loopback (5 s handshake budget unless overridden), destroyed by `cleanup`. */
export async function dialTracked(cleanup: Cleanup, s: ServerEndpoint, extra: Partial<DialOptions> = {}): Promise<ClientConnection> {
  const conn = await dial({ transport: s.transport, host: LOOPBACK, port: s.address().port, connectTimeoutMs: 5000, ...extra })
  cleanup.add(() => conn.destroy())
  return conn
}
