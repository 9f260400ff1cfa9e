// A real AssetServer over real UDP with no folder behind it: a MemorySource serves the entries and
// bytes, a MemoryFeed carries the change batches, and a real AssetClient pulls, gets refused,
// subscribes and receives pushed updates. Proves the session reads only through the AssetSource
// seam and the fan-out takes batches only from the ChangeFeed seam.
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { MemoryFeed } from '../../src/core/server/memory-feed.js'
import { MemorySource } from '../../src/core/server/memory-source.js'
import type { AssetServerEvents, BatchEvent } from '../../src/core/server/server-events.js'
import { AssetServer } from '../../src/core/server/server.js'
import { SERVER_READ_BYTES } from '../../src/limits.js'
import type { UpdateEntry } from '../../src/protocol/messages.js'
import { Cleanup, LOOPBACK, nextEvent, waitFor } from '../helpers/common.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

let work: string
let source: MemorySource
let feed: MemoryFeed
let bus: MemoryFeed
let server: AssetServer
const big = randomBytes(3 * SERVER_READ_BYTES + 12_345) // several read turns
const errors: unknown[] = []

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'assetsync-memory-server-'))
  source = new MemorySource({ 'readme.txt': 'hello from memory\n', 'levels/big.bin': big, 'empty.txt': '' })
  feed = new MemoryFeed()
  bus = new MemoryFeed() // a publisher: what the server forwards (NATS later)
  server = await AssetServer.start({
    source, feed, forward: [bus], configDir: join(work, 'server-config'), host: LOOPBACK, port: 0, transport: 'udp',
  })
  server.on('error', (err) => { errors.push(err) })
})

afterAll(async () => {
  await server.close()
  await rm(work, { recursive: true, force: true })
})

async function client(): Promise<AssetClient> {
  const c = await AssetClient.connect({
    server: `${LOOPBACK}:${server.address().port}`, transport: 'udp', key: server.publicKey.toString('hex'),
    configDir: join(work, 'client-config'), connectTimeoutMs: 5000,
  })
  cleanup.add(() => c.conn.destroy())
  return c
}

describe('AssetServer on a MemorySource and a MemoryFeed, over UDP', () => {
  it('serves no folder: root is null and the scan is the source listing', () => {
    expect(server.root).toBeNull()
    expect(server.scan.files).toBe(3)
    expect(server.feed).toBe(feed)
  })

  it('a client lists the manifest and pulls every entry, byte for byte', async () => {
    const c = await client()
    const manifest = await c.manifest(['**'])
    expect(manifest.map((e) => e.path)).toEqual(['empty.txt', 'levels/big.bin', 'readme.txt'])
    for (const e of manifest) {
      expect(Buffer.from(e.hash).equals(Buffer.from((await source.get(e.path))?.hash ?? []))).toBe(true)
    }
    const out = join(work, 'pull')
    await mkdir(join(out, 'levels'), { recursive: true })
    for (const e of manifest) {
      const r = await c.download(e.path, join(out, ...e.path.split('/')))
      expect(r.status).toBe('downloaded')
      expect(r.bytes).toBe(e.size)
    }
    expect((await readFile(join(out, 'levels', 'big.bin'))).equals(big)).toBe(true)
    expect(await readFile(join(out, 'readme.txt'), 'utf8')).toBe('hello from memory\n')
    expect((await readFile(join(out, 'empty.txt'))).length).toBe(0)
    // The hash it has: up to date, no bytes.
    const again = await c.download('readme.txt', join(out, 'readme-2.txt'), manifest[2]?.hash ?? null)
    expect(again.status).toBe('up-to-date')
    expect(again.bytes).toBe(0)
  })

  it('answers not-found for an absent entry, and refused for an unsafe path or one the source refuses', async () => {
    const c = await client()
    const out = join(work, 'refusals')
    await mkdir(out)
    await expect(c.download('nope.txt', join(out, 'a'))).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' })
    const refusedEvents: AssetServerEvents['refused'][] = []
    const onRefused = (e: AssetServerEvents['refused']): void => { refusedEvents.push(e) }
    server.on('refused', onRefused)
    cleanup.add(() => server.off('refused', onRefused))
    await expect(c.download('../outside.txt', join(out, 'b'))).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
    source.refused.add('readme.txt')
    cleanup.add(() => source.refused.delete('readme.txt'))
    await expect(c.download('readme.txt', join(out, 'c'))).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
    expect(refusedEvents.map((e) => e.path)).toEqual(['../outside.txt', 'readme.txt'])
  })

  it('a reader keeps the bytes it opened when the entry is replaced (what a transfer in flight sends)', async () => {
    const old = randomBytes(1000)
    source.set('swap.bin', old)
    const reader = await source.open('swap.bin')
    source.set('swap.bin', 'new')
    const buf = Buffer.alloc(old.length)
    await reader?.read(buf, 0, 600)
    await reader?.read(buf.subarray(600), 600, 400)
    expect(buf.equals(old)).toBe(true)
    expect(Buffer.from(reader?.entry.hash ?? []).equals(Buffer.from((await source.get('swap.bin'))?.hash ?? []))).toBe(false)
    await reader?.close()
    source.delete('swap.bin')
  })

  it('a pushed batch reaches exactly the subscribed clients, is forwarded, and the new version is served', async () => {
    const levels = await client()
    const other = await client()
    await levels.subscribe(['levels/**'], 7)
    await other.subscribe(['textures/**'], 1)
    const got: UpdateEntry[][] = []
    const gotOther: UpdateEntry[][] = []
    levels.on('update', (entries: UpdateEntry[]) => got.push(entries))
    other.on('update', (entries: UpdateEntry[]) => gotOther.push(entries))
    const level2 = Buffer.from('level two\n')
    const changed = source.set('levels/two.lvl', level2)
    source.delete('levels/big.bin')
    const batchEvent = nextEvent(server, 'batch', 5000)
    await feed.push([{ kind: 'change', ...changed }, { kind: 'delete', path: 'levels/big.bin' }])
    const [ev] = (await batchEvent) as [BatchEvent]
    expect(ev).toEqual({ changes: [{ path: 'levels/two.lvl', action: 'change' }, { path: 'levels/big.bin', action: 'delete' }], clients: 1 })
    await waitFor(() => got.length === 1, 5000, 'the update at the subscribed client')
    expect(got[0]?.map((e) => [e.kind, e.path])).toEqual([['change', 'levels/two.lvl'], ['delete', 'levels/big.bin']])
    expect(gotOther).toEqual([])
    // Forwarded as pushed (after the fan-out).
    expect(bus.published.at(-1)?.entries.map((e) => e.path)).toEqual(['levels/two.lvl', 'levels/big.bin'])
    const r = await levels.download('levels/two.lvl', join(work, 'two.lvl'))
    expect(r.status).toBe('downloaded')
    expect(await readFile(join(work, 'two.lvl'), 'utf8')).toBe('level two\n')
  })

  it('drops entries that break the wire rules with an error event, and pushes the rest', async () => {
    const c = await client()
    await c.subscribe(['**'], 1)
    const got: UpdateEntry[][] = []
    c.on('update', (entries: UpdateEntry[]) => got.push(entries))
    const before = errors.length
    const ok = source.set('ok.txt', 'fine')
    await feed.push([
      { kind: 'change', ...ok, path: '../escape.txt' },
      { kind: 'rename', ...ok, from: '/etc/passwd' },
      { kind: 'change', ...ok, hash: Buffer.alloc(5) },
      { kind: 'change', ...ok },
    ])
    await waitFor(() => got.length === 1, 5000, 'the update with the valid entry')
    expect(got[0]?.map((e) => e.path)).toEqual(['ok.txt'])
    expect(errors.slice(before).map((e) => (e as { code?: string }).code)).toEqual(['ERR_PROTOCOL', 'ERR_PROTOCOL', 'ERR_PROTOCOL'])
  })

  it('event payloads are typed: a misspelt field does not compile', () => {
    const check = (e: AssetServerEvents['disconnected']): string => {
      // @ts-expect-error -- `reasons` is not a field of the disconnected event
      const wrong: unknown = e.reasons
      return `${e.remote} ${e.reason} ${String(wrong)}`
    }
    expect(check({ remote: 'r', reason: 'closed' })).toBe('r closed undefined')
    // @ts-expect-error -- 'batches' is not an AssetServer event
    expect(() => server.on('batches', () => {})).not.toThrow()
    server.removeAllListeners('batches')
  })
})
