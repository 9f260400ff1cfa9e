/**
 * Regressions from the live fuzz (test/slow/fuzz.test.ts): frames that used to crash the whole
 * server process, and the containment that keeps any handler bug to one connection.
 */
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import type { AssetSyncError } from '../../src/errors.js'
import type { ClientConnection, ServerConnection } from '../../src/protocol/connection.js'
import { dial } from '../../src/protocol/endpoint.js'
import { type Message, PROTOCOL_VERSION } from '../../src/protocol/messages.js'
import { Cleanup, LOOPBACK, tempDir, withTimeout } from '../helpers/common.js'
import { fetchBlob, listen, serveBlobs } from '../helpers/endpoints.js'
import { type LocalServer, rawSecureClient, startLocalServer } from '../helpers/raw-peers.js'
import { writeTree } from '../helpers/trees.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())
let dir: string
let removeDir: () => Promise<void>
let s: LocalServer
beforeAll(async () => {
  ({ dir, remove: removeDir } = await tempDir('frames'))
  await writeTree(join(dir, 'src'), { 'a.txt': 'a\n' })
  s = await startLocalServer(join(dir, 'src'), join(dir, 'config'))
})
afterAll(async () => {
  await s.server.close()
  await removeDir()
})

describe('frames that crashed the server (found by the live fuzz), and a second AUTH', () => {
  it.each([
    ['an empty pattern in SUBSCRIBE', { type: 'subscribe', id: 5, instanceId: 1, subscribe: true, patterns: ['a/**', ''] }, 'empty pattern'],
    ['an empty pattern in MANIFEST', { type: 'manifest', id: 5, patterns: [''], after: '' }, 'empty pattern'],
    ['a second AUTH', { type: 'auth', version: PROTOCOL_VERSION, token: '' }, 'AUTH after authentication'],
  ] as const)('%s ends that connection with ERR_PROTOCOL and says why; the server serves on', async (_name, frame, why) => {
    const c = await rawSecureClient('udp', s.port)
    cleanup.add(() => c.destroy())
    c.write(frame as unknown as Message)
    const err = await c.next((m) => m.type === 'error')
    expect(err).toMatchObject({ type: 'error', id: 0, code: 'ERR_PROTOCOL', message: `protocol error: ${why}` })
    await withTimeout(c.closed, 3000, 'the server to close')
    const ok = await AssetClient.connect({ server: s.addr, key: s.key, configDir: join(dir, 'config'), connectTimeoutMs: 5000 })
    cleanup.add(() => ok.conn.destroy())
    expect((await ok.manifest(['**'])).map((e) => e.path)).toEqual(['a.txt'])
  })
})

describe('a handler that throws costs one connection, not the process', () => {
  it.each(['udp', 'tcp'] as const)('%s: the client gets ERR_INTERNAL, other connections go on', async (transport) => {
    const srv = await listen(transport)
    cleanup.add(() => srv.close())
    // First listener: throws (before the blob server below answers).
    srv.on('connection', (conn: ServerConnection) => conn.on('message', (m: Message) => {
      if (m.type === 'request' && m.path === 'boom') throw new TypeError('handler bug')
    }))
    serveBlobs(srv, () => Buffer.from('ok'))
    const connect = async (): Promise<ClientConnection> => {
      const c = await dial({ transport, host: LOOPBACK, port: srv.address().port, connectTimeoutMs: 5000 })
      cleanup.add(() => c.destroy())
      return c
    }
    const [victim, bystander] = [await connect(), await connect()]
    const err = await fetchBlob(victim, 'boom').then(() => null, (e: unknown) => e as AssetSyncError)
    expect(err?.code).toBe('ERR_INTERNAL')
    expect(victim.closed).toBe(true)
    expect((await fetchBlob(bystander, 'x')).toString()).toBe('ok')
    expect(srv.connections.size).toBe(1)
  })
})
