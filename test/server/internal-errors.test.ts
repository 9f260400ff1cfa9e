// Issue 11, case 2 (second half): an internal error while handling a frame is reported by the
// server, once, with its cause ('internal' event; serve prints it as {"event":"internal-error"}),
// the client gets ERR_INTERNAL for that request, and everyone goes on being served. The failure
// cannot exist in a correct source, so the source here has a planted bug: a MemorySource whose
// listing and one file throw a TypeError. Real server, real UDP, real client.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import type { PathMatcher } from '../../src/core/fs/ignore.js'
import { MemorySource } from '../../src/core/server/memory-source.js'
import type { InternalErrorEvent } from '../../src/core/server/server-events.js'
import { AssetServer } from '../../src/core/server/server.js'
import type { ManifestPage, OpenOptions, SourceReader } from '../../src/core/server/source.js'
import { AssetSyncError } from '../../src/errors.js'
import { encode } from '../../src/protocol/codec.js'
import { LOOPBACK } from '../helpers/common.js'

/** A source with a bug: pages for the pattern "broken/**" and opens of "broken.txt" throw. */
class BuggySource extends MemorySource {
  override page(match: PathMatcher, after: string, maxBytes?: number): Promise<ManifestPage> {
    if (match('broken/x') && !match('fine.txt')) return Promise.reject(new TypeError('cannot read properties of undefined (reading "hash")'))
    return super.page(match, after, maxBytes)
  }

  override open(path: string, opts?: OpenOptions): Promise<SourceReader | null> {
    if (path === 'broken.txt') throw new RangeError('the planted bug in open')
    return super.open(path, opts)
  }
}

let work: string
let server: AssetServer
const internal: InternalErrorEvent[] = []

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'assetsync-internal-errors-'))
  const source = new BuggySource({ 'fine.txt': 'fine\n', 'broken.txt': 'never served\n' })
  server = await AssetServer.start({ source, feed: null, configDir: join(work, 'server'), host: LOOPBACK, port: 0 })
  server.on('internal', (e) => internal.push(e))
})
afterAll(async () => {
  await server.close()
  await rm(work, { recursive: true, force: true })
})

const codeOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p
    return 'ok'
  } catch (err) {
    return err instanceof AssetSyncError ? err.code : `not an AssetSyncError: ${String(err)}`
  }
}

describe('an internal error while handling a frame', () => {
  it('is reported once with its cause; the client gets ERR_INTERNAL; the connection and the server go on', async () => {
    const c = await AssetClient.connect({
      server: `${LOOPBACK}:${server.address().port}`, key: server.publicKey.toString('hex'), configDir: join(work, 'client'), connectTimeoutMs: 5000,
    })
    try {
      expect(await codeOf(c.manifest(['broken/**']))).toBe('ERR_INTERNAL')
      expect(internal).toHaveLength(1)
      expect(internal[0]?.message).toMatch(/manifest frame: cannot read properties of undefined/)
      expect(internal[0]?.cause).toBeInstanceOf(TypeError)
      expect(internal[0]?.remote).toMatch(/^127\.0\.0\.1:\d+$/)

      expect(await codeOf(c.read('broken.txt'))).toBe('ERR_INTERNAL')
      expect(internal).toHaveLength(2)
      expect(internal[1]?.message).toMatch(/request frame: the planted bug in open/)
      expect((internal[1]?.cause as Error).stack).toContain('BuggySource.open')

      // The same connection still works, and so does the server.
      expect((await c.read('fine.txt')).toString()).toBe('fine\n')
      expect((await c.manifest(['**'])).map((e) => e.path)).toEqual(['broken.txt', 'fine.txt'])
      expect(internal).toHaveLength(2)
    } finally {
      c.close()
    }
  })

  it('a negative mtime can never reach the codec: MemorySource announces it as 0; encode refuses it as a local bug', () => {
    const s = new MemorySource()
    expect(s.set('old.txt', 'x', { mtime: -1000 }).mtime).toBe(0)
    expect(() => encode({ type: 'response', id: 1, status: 'file', hash: Buffer.alloc(32), size: 1, mode: 0o644, mtime: -1 })).toThrow(RangeError)
  })
})
