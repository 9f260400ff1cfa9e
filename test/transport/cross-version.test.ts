/**
 * Protocol 3 against the protocol-2 release, in process, over real UDP and TCP sockets: this
 * build's endpoints against the endpoints of the vendored release (test/fixtures/release-v2,
 * commit e05baf5), both ways, and two protocol-3 ends against each other. Checks what each end
 * agreed on, that a file crosses intact, and that the TCP fallback costs exactly one refused
 * connection and only against a protocol-2 server. (The CLI-level pull/watch runs are in
 * test/e2e/cross-version.test.ts.)
 */
import type { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { ClientConnection, ServerConnection } from '../../src/protocol/connection.js'
import { dial } from '../../src/protocol/endpoint.js'
import { featureBits, type Message } from '../../src/protocol/messages.js'
import type { TransportName } from '../../src/protocol/transport.js'
import { Cleanup, LOOPBACK } from '../helpers/common.js'
import { fetchBlob, listenTracked, newKeyPair, sendBlob, serveBlobs } from '../helpers/endpoints.js'

/** The parts of the protocol-2 release's endpoint module these tests use. */
interface V2Conn extends EventEmitter {
  send(msg: Message): boolean
  destroy(): void
}
interface V2Server extends EventEmitter {
  address(): { host: string; port: number }
  close(): Promise<void>
}
interface V2Endpoint {
  dial(opts: { transport: TransportName; host: string; port: number; connectTimeoutMs: number }): Promise<V2Conn>
  ServerEndpoint: { listen(opts: Record<string, unknown>): Promise<V2Server> }
}

const V2_ENDPOINT = new URL('../fixtures/release-v2/dist/protocol/endpoint.js', import.meta.url).href
const v2 = (): Promise<V2Endpoint> => import(V2_ENDPOINT) as Promise<V2Endpoint>

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const TRANSPORTS: readonly TransportName[] = ['udp', 'tcp']
const BLOB = randomBytes(200_000) // a few CHUNKs, under the flow-control window

describe.each(TRANSPORTS)('%s: this build against the protocol-2 release', (transport) => {
  it('a new client dials a protocol-2 server: protocol 2, no features, the file arrives intact', async () => {
    const { ServerEndpoint } = await v2()
    const server = await ServerEndpoint.listen({ transport, host: LOOPBACK, port: 0, keyPair: newKeyPair(), token: 'tok' })
    cleanup.add(() => server.close())
    const rejected: { code?: string }[] = []
    server.on('rejected', (_remote: string, err: { code?: string }) => rejected.push(err))
    // The protocol-2 Connection has the same send/sendChunk/'message' surface as ServerConnection.
    serveBlobs(server as unknown as Parameters<typeof serveBlobs>[0], () => BLOB)

    const conn = await dial({ transport, host: LOOPBACK, port: server.address().port, token: 'tok', connectTimeoutMs: 5000, protocol: { features: 0xff } })
    cleanup.add(() => conn.destroy())
    expect([conn.version, conn.features]).toEqual([2, 0])
    expect((await fetchBlob(conn, 'x')).equals(BLOB)).toBe(true)
    // UDP: the plain WELCOME said "protocol 2", so the first AUTH was already the protocol-2 one.
    // TCP: nothing says so before AUTH; the protocol-2 server refused the protocol-3 AUTH once.
    expect(rejected.map((e) => e.code)).toEqual(transport === 'tcp' ? ['ERR_PROTOCOL'] : [])
  })

  it('a new client presents its token to a protocol-2 server only after the key check, and a wrong one still fails with ERR_AUTH', async () => {
    const { ServerEndpoint } = await v2()
    const server = await ServerEndpoint.listen({ transport, host: LOOPBACK, port: 0, keyPair: newKeyPair(), token: 'right' })
    cleanup.add(() => server.close())
    const err = await dial({ transport, host: LOOPBACK, port: server.address().port, token: 'wrong', connectTimeoutMs: 5000 })
      .then((c) => { c.destroy(); return null }, (e: unknown) => e as { code?: string })
    expect(err?.code).toBe('ERR_AUTH')
  })

  it('a protocol-2 client dials a new server: the server settles on protocol 2 and serves it', async () => {
    const { dial: dialV2 } = await v2()
    const server = await listenTracked(cleanup, transport, { protocol: { features: 0xff } })
    const accepted: ServerConnection[] = []
    server.on('connection', (c: ServerConnection) => accepted.push(c))
    server.on('connection', (c: ServerConnection) => c.on('message', (m: Message) => {
      if (m.type === 'request') void sendBlob(c, m.id, BLOB).catch(() => {})
    }))
    const conn = await dialV2({ transport, host: LOOPBACK, port: server.address().port, connectTimeoutMs: 5000 })
    cleanup.add(() => conn.destroy())
    expect(accepted.map((c) => [c.version, c.features])).toEqual([[2, 0]])
    // The protocol-2 Connection's request() has the same shape as ClientConnection's.
    expect((await fetchBlob(conn as unknown as ClientConnection, 'x')).equals(BLOB)).toBe(true)
  })
})

describe.each(TRANSPORTS)('%s: two protocol-3 ends', (transport) => {
  it('agree on protocol 3 and the common features in one AUTH round trip, with no refused attempt', async () => {
    const server = await listenTracked(cleanup, transport, { protocol: { features: featureBits(['status', 'zstd']) } })
    const rejected: unknown[] = []
    server.on('rejected', (_r: string, err: unknown) => rejected.push(err))
    const accepted: ServerConnection[] = []
    server.on('connection', (c: ServerConnection) => accepted.push(c))
    const conn = await dial({
      transport, host: LOOPBACK, port: server.address().port, connectTimeoutMs: 5000, protocol: { features: featureBits(['status', 'chunks']) },
    })
    cleanup.add(() => conn.destroy())
    expect([conn.version, conn.features]).toEqual([3, featureBits(['status'])])
    expect(accepted.map((c) => [c.version, c.features])).toEqual([[3, featureBits(['status'])]])
    expect(conn.has('status') && !conn.has('zstd') && !conn.has('chunks')).toBe(true)
    expect(rejected).toEqual([])
  })

  it('a client limited to protocol 2 gets protocol 2 from a new server, without a fallback', async () => {
    const server = await listenTracked(cleanup, transport)
    const rejected: unknown[] = []
    server.on('rejected', (_r: string, err: unknown) => rejected.push(err))
    const conn = await dial({ transport, host: LOOPBACK, port: server.address().port, connectTimeoutMs: 5000, protocol: { maxVersion: 2 } })
    cleanup.add(() => conn.destroy())
    expect(conn.version).toBe(2)
    expect(rejected).toEqual([])
  })

  it('fails with ERR_VERSION (exit 3) when the ranges do not overlap', async () => {
    const server = await listenTracked(cleanup, transport, { protocol: { minVersion: 3 } })
    const err = await dial({ transport, host: LOOPBACK, port: server.address().port, connectTimeoutMs: 5000, protocol: { maxVersion: 2 } })
      .then((c) => { c.destroy(); return null }, (e: unknown) => e as { code?: string; message?: string })
    expect(err?.code).toBe('ERR_VERSION')
    expect(err?.message).toMatch(/version 3.*versions? 2|version 2.*version 3/)
  })
})
