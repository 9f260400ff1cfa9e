/**
 * MAX_MANIFEST_FILES: a (malicious) server that keeps sending manifest pages is cut off once the
 * client holds more than the cap, and one that sends exactly the cap is fine. The real cap is
 * 5,000,000 files (~260 pages of 1 MiB); this file lowers it to 1000 with vi.mock so the same
 * client code is exercised in milliseconds. The fake server is the real ServerEndpoint + codec.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { AssetSyncError, exitCodeOf } from '../../src/errors.js'
import { MAX_MANIFEST_FILES } from '../../src/limits.js'
import type { Connection } from '../../src/protocol/connection.js'
import type { ClientMessage, ManifestEntry } from '../../src/protocol/messages.js'
import { Cleanup, tempDir } from '../helpers/common.js'
import { listen, newKeyPair } from '../helpers/endpoints.js'

const CAP = 1000
vi.mock('../../src/limits.js', async (importOriginal) => ({ ...(await importOriginal<object>()), MAX_MANIFEST_FILES: 1000 }))

const cleanup = new Cleanup()
afterEach(() => cleanup.run())
let config: string
let removeConfig: () => Promise<void>
beforeAll(async () => {
  const t = await tempDir('mcap')
  config = t.dir
  removeConfig = t.remove
})
afterAll(() => removeConfig())

const entry = (i: number): ManifestEntry => ({ path: `f/${String(i).padStart(9, '0')}`, hash: new Uint8Array(32), size: 0, mode: 0o644, mtime: 0 })

/** A server that answers MANIFEST with pages of `pageSize` entries, `total` in all (Infinity: never done). */
async function fakeServer(pageSize: number, total: number): Promise<{ addr: string; key: string; requests: () => number }> {
  const keyPair = newKeyPair()
  const s = await listen('udp', { keyPair })
  cleanup.add(() => s.close())
  let requests = 0
  s.on('connection', (conn: Connection) => {
    let sent = 0
    conn.on('message', (msg: ClientMessage) => {
      if (msg.type !== 'manifest') return
      requests++
      const n = Math.min(pageSize, total - sent)
      const entries = Array.from({ length: n }, (_, i) => entry(sent + i))
      sent += n
      conn.send({ type: 'manifest-reply', id: msg.id, done: sent >= total, entries })
    })
  })
  return { addr: `127.0.0.1:${s.address().port}`, key: keyPair.publicKey.toString('hex'), requests: () => requests }
}

async function manifestFrom(srv: { addr: string; key: string }): Promise<ManifestEntry[]> {
  const c = await AssetClient.connect({ server: srv.addr, key: srv.key, configDir: config, connectTimeoutMs: 5000 })
  cleanup.add(() => c.conn.destroy())
  return c.manifest(['**'])
}

describe(`MAX_MANIFEST_FILES (lowered to ${CAP} for this file)`, () => {
  it('the mock is in place for the client code', () => {
    expect(MAX_MANIFEST_FILES).toBe(CAP)
  })

  it('exactly the cap, over several pages, is accepted', async () => {
    const srv = await fakeServer(300, CAP)
    const list = await manifestFrom(srv)
    expect(list).toHaveLength(CAP)
    expect(srv.requests()).toBe(4)
  })

  it('a server that never stops is cut off with ERR_LIMIT (exit 3) after the page that crosses the cap', async () => {
    const srv = await fakeServer(300, Number.POSITIVE_INFINITY)
    const err = await manifestFrom(srv).then(() => null, (e: unknown) => e)
    expect(err).toBeInstanceOf(AssetSyncError)
    expect((err as AssetSyncError).code).toBe('ERR_LIMIT')
    expect((err as AssetSyncError).message).toContain(`more than ${CAP} files`)
    expect(exitCodeOf(err)).toBe(3)
    // 300, 600, 900, 1200 > cap: the client asked for 4 pages and no more.
    expect(srv.requests()).toBe(4)
  })

  it('one file over the cap is refused', async () => {
    const srv = await fakeServer(CAP + 1, CAP + 1)
    const err = await manifestFrom(srv).then(() => null, (e: unknown) => e)
    expect((err as AssetSyncError).code).toBe('ERR_LIMIT')
  })
})
