/**
 * Every connection-facing limit of src/limits.ts at its boundary, against a live server: at the
 * limit it works, one over it is refused the documented way, and the server goes on serving.
 * (HANDSHAKE_RATE_PER_ADDR is covered by test/transport/handshake.test.ts, the codec caps byte by
 * byte by test/protocol/codec.test.ts, MAX_MANIFEST_FILES by ./manifest-cap.test.ts, the timers by
 * test/protocol/clock.test.ts.)
 */
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { type Socket, connect as tcpConnect } from 'node:net'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { checkWirePath } from '../../src/core/fs/paths.js'
import { AssetSyncError, exitCodeOf } from '../../src/errors.js'
import {
  MANIFEST_PAGE_BYTES, MAX_CLIENTS, MAX_FRAME_BYTES, MAX_INFLIGHT_PER_CLIENT, MAX_PATH_BYTES, MAX_PATH_DEPTH,
  MAX_PATTERN_BYTES, MAX_PATTERNS, MAX_SUBSCRIPTIONS_PER_CLIENT, MAX_TOKEN_BYTES,
} from '../../src/limits.js'
import type { ClientConnection } from '../../src/protocol/connection.js'
import { type DialOptions, type ServerEndpoint, dial } from '../../src/protocol/endpoint.js'
import { MAX_WIRE_MESSAGE_BYTES } from '../../src/protocol/frame-guard.js'
import { MSG } from '../../src/protocol/messages.js'
import type { TransportName } from '../../src/protocol/transport.js'
import { Cleanup, KiB, LOOPBACK, MiB, mib, tempDir, waitFor, withTimeout } from '../helpers/common.js'
import { dialTracked, fetchBlob, listen, listenTracked, serveBlobs } from '../helpers/endpoints.js'
import { type LocalServer, rawConnect, rawSecureClient, startLocalServer } from '../helpers/raw-peers.js'
import { writeTree } from '../helpers/trees.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

/** Suite-wide resources (servers shared by several tests), closed in afterAll. */
const suite = new Cleanup()
afterAll(() => suite.run())

let work: string
let config: string
beforeAll(async () => {
  const t = await tempDir('limits')
  suite.add(t.remove)
  work = t.dir
  config = join(work, 'config')
})

const endpoint = (transport: TransportName, extra: Parameters<typeof listen>[1] = {}): Promise<ServerEndpoint> => listenTracked(cleanup, transport, extra)
const connect = (s: ServerEndpoint, extra: Partial<DialOptions> = {}): Promise<ClientConnection> => dialTracked(cleanup, s, extra)

async function client(srv: LocalServer, transport: TransportName = 'udp', token?: string): Promise<AssetClient> {
  const c = await AssetClient.connect({ server: srv.addr, transport, key: srv.key, configDir: config, connectTimeoutMs: 5000, token })
  cleanup.add(() => c.conn.destroy())
  return c
}

/** The AssetSyncError `p` rejects with; fails the test if it resolves. */
async function rejection(p: Promise<unknown>): Promise<AssetSyncError> {
  const err = await p.then(
    (v) => { (v as { destroy?: () => void } | null)?.destroy?.(); return new Error('expected a rejection, got a value') },
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(AssetSyncError)
  return err as AssetSyncError
}

let seq = 0
/** Downloads `path` with `c` into a fresh file and returns its bytes. */
async function get(c: AssetClient, path: string): Promise<Buffer> {
  const out = join(work, `dl-${++seq}`)
  await c.download(path, out)
  return readFile(out)
}

// --- MAX_CLIENTS ---------------------------------------------------------------------------------

describe.each(['udp', 'tcp'] as const)('MAX_CLIENTS (%s, maxClients: 3)', (transport) => {
  it('the 4th client gets ERR_LIMIT "server full" (exit 3) while the first 3 keep working; a freed slot is reusable', async () => {
    expect(MAX_CLIENTS).toBeGreaterThan(3) // the option lowers the real cap for the test
    const s = await endpoint(transport, { maxClients: 3 })
    serveBlobs(s, (path) => Buffer.from(`blob ${path}`))
    const conns = [await connect(s), await connect(s), await connect(s)]
    expect(s.listener.connections).toBe(3)

    const t0 = performance.now()
    const err = await rejection(connect(s))
    const ms = performance.now() - t0
    expect(err.code).toBe('ERR_LIMIT')
    expect(err.message).toBe(`${transport}://${LOOPBACK}:${s.address().port} refused the connection: server full`)
    expect(exitCodeOf(err)).toBe(3)
    expect(ms).toBeLessThan(1000) // refused at once, not a timeout

    for (const [i, c] of conns.entries()) expect((await fetchBlob(c, `f${i}`)).toString()).toBe(`blob f${i}`)
    expect(s.listener.connections).toBe(3)

    conns[0]?.close()
    await waitFor(() => s.listener.connections === 2, 5000, 'the server to release the closed connection')
    const fourth = await connect(s)
    expect((await fetchBlob(fourth, 'again')).toString()).toBe('blob again')
    console.log(`MAX_CLIENTS ${transport}: 4th refused in ${ms.toFixed(0)} ms with "${err.message}"`)
  })
})

// --- MAX_INFLIGHT_PER_CLIENT ---------------------------------------------------------------------

describe('MAX_INFLIGHT_PER_CLIENT', () => {
  const BIG = 8 * MiB
  let srv: { udp: LocalServer; tcp: LocalServer }
  let bigData: Buffer
  beforeAll(async () => {
    const root = join(work, 'inflight')
    bigData = randomBytes(BIG)
    await writeTree(root, { 'big.bin': bigData, 'small.txt': 'small\n' })
    const udp = await startLocalServer(root, config)
    suite.add(() => udp.server.close())
    const tcp = await startLocalServer(root, config, { transport: 'tcp' })
    suite.add(() => tcp.server.close())
    srv = { udp, tcp }
  })

  // Over TCP the raw client really stops reading (the server blocks on backpressure). udx has no
  // receive window wired to pause(), so over UDP the raw client keeps reading and drops the data.
  it.each(['tcp', 'udp'] as const)('%s: a client with MAX+1 requests for a big file open gets ERR_LIMIT for the extra only; others are unaffected', async (transport) => {
    const s = srv[transport]
    const conn = await dial({ transport, host: LOOPBACK, port: s.port, connectTimeoutMs: 5000 })
    cleanup.add(() => conn.destroy())
    if (transport === 'tcp') conn.pause()
    const responded = new Set<number>()
    const limited: number[] = []
    let finished = 0
    const ask = (): number => {
      const req = conn.request((id) => ({ type: 'request', id, path: 'big.bin', haveHash: null }), (r) => {
        if (r.type === 'response') responded.add(req.id)
        return r.type === 'chunk' && r.final
      })
      req.done.then(() => { finished++ }, (e: unknown) => { if ((e as AssetSyncError).code === 'ERR_LIMIT') limited.push(req.id) })
      return req.id
    }
    const ids = Array.from({ length: MAX_INFLIGHT_PER_CLIENT + 1 }, ask)

    // Meanwhile another client gets its files, whole.
    const t0 = performance.now()
    const other = await client(s, transport)
    expect((await get(other, 'small.txt')).toString()).toBe('small\n')
    expect((await get(other, 'big.bin')).equals(bigData)).toBe(true)
    const otherMs = performance.now() - t0

    if (transport === 'tcp') conn.resume()
    await waitFor(() => limited.length === 1 && responded.size === MAX_INFLIGHT_PER_CLIENT, 10_000, 'the ERR_LIMIT and 256 RESPONSEs')
    expect(limited).toEqual([ids.at(-1)])
    expect(responded.has(ids.at(-1) as number)).toBe(false)

    // The 256 transfers are live (2 GiB in all, interleaved 64 KiB at a time): a new request is
    // refused too, since open transfers count, not only requests waiting for their RESPONSE.
    expect(finished).toBe(0)
    const extra = ask()
    await waitFor(() => limited.length === 2, 5000, 'a second ERR_LIMIT')
    expect(limited[1]).toBe(extra)

    // Cancelling one transfer frees one slot (CANCEL and REQUEST are handled in order).
    conn.cancel(ids[0] as number, new Error('test cancel'))
    const after = ask()
    await waitFor(() => responded.has(after), 5000, 'a RESPONSE to the request after the cancel')
    expect(limited).toHaveLength(2)
    console.log(`MAX_INFLIGHT ${transport}: ${MAX_INFLIGHT_PER_CLIENT} transfers open, extras refused; the other client got small + ${BIG / MiB} MiB in ${otherMs.toFixed(0)} ms`)
    conn.destroy()
  })
})

// --- MAX_PATH_BYTES / MAX_PATH_DEPTH --------------------------------------------------------------

describe('MAX_PATH_BYTES and MAX_PATH_DEPTH', () => {
  const deep = (segments: number): string => [...Array<string>(segments - 1).fill('d'), `leaf${segments}`].join('/')
  /** A path of exactly `bytes` bytes, in 200-byte segments (NAME_MAX is 255). */
  const long = (bytes: number): string => {
    const segs: string[] = []
    let left = bytes
    for (let i = 0; left > 201; i++, left -= 201) segs.push(String.fromCharCode(97 + i).repeat(200))
    return [...segs, 'z'.repeat(left)].join('/')
  }
  const atDepth = deep(MAX_PATH_DEPTH)
  const overDepth = deep(MAX_PATH_DEPTH + 1)
  const atBytes = long(MAX_PATH_BYTES)
  const overBytes = long(MAX_PATH_BYTES + 1)
  let s: LocalServer

  beforeAll(async () => {
    expect(atDepth.split('/')).toHaveLength(MAX_PATH_DEPTH)
    expect(Buffer.byteLength(atBytes)).toBe(MAX_PATH_BYTES)
    expect(Buffer.byteLength(overBytes)).toBe(MAX_PATH_BYTES + 1)
    const root = join(work, 'paths')
    // The over-limit files exist on disk too: a refusal must not be a mere "not found".
    await writeTree(root, { [atDepth]: 'at depth\n', [overDepth]: 'over depth\n', [atBytes]: 'at bytes\n', [overBytes]: 'over bytes\n', 'ok.txt': 'ok\n' })
    s = await startLocalServer(root, config)
    suite.add(() => s.server.close())
  })

  it('paths at the limits are listed and served; one segment deeper is refused and the connection stays usable', async () => {
    const c = await client(s)
    const listed = (await c.manifest(['**'])).map((e) => e.path)
    expect(listed).toEqual([atBytes, atDepth, 'ok.txt'].sort())
    expect((await get(c, atDepth)).toString()).toBe('at depth\n')
    expect((await get(c, atBytes)).toString()).toBe('at bytes\n')
    const err = await rejection(get(c, overDepth))
    expect(err.code).toBe('ERR_PATH_REFUSED')
    expect(err.message).toContain(`deeper than ${MAX_PATH_DEPTH} segments`)
    expect(c.conn.isOpen).toBe(true)
    expect((await get(c, 'ok.txt')).toString()).toBe('ok\n')
  })

  it('a missing path of MAX_PATH_BYTES gets a readable not-found (its reason clipped to MAX_TEXT_BYTES); the connection stays open', async () => {
    const c = await client(s)
    const missing = long(MAX_PATH_BYTES).replace(/z+$/, (z) => 'y'.repeat(z.length))
    const err = await rejection(get(c, missing))
    expect(err.code).toBe('ERR_NOT_FOUND')
    expect(c.conn.isOpen).toBe(true)
    expect((await get(c, 'ok.txt')).toString()).toBe('ok\n')
  })

  it('a path one byte over MAX_PATH_BYTES is a protocol error (docs/protocol.md §4.4): that connection ends, the server serves on', async () => {
    // Clients never send one: the same rule is checked before anything goes on the wire.
    expect(checkWirePath(overBytes)).toBe(`path longer than ${MAX_PATH_BYTES} bytes`)
    const c = await client(s)
    const err = await rejection(get(c, overBytes))
    expect(err.code).toBe('ERR_PROTOCOL')
    expect(err.message).toContain(`path is ${MAX_PATH_BYTES + 1} bytes, limit ${MAX_PATH_BYTES}`)
    await waitFor(() => c.conn.closed, 2000, 'the connection to close')
    expect(c.conn.closeError?.code).toBe('ERR_PROTOCOL')
    const fresh = await client(s)
    expect((await get(fresh, atBytes)).toString()).toBe('at bytes\n')
  })
})

// --- MAX_PATTERNS / MAX_PATTERN_BYTES / MAX_TOKEN_BYTES ---------------------------------------------

describe('MAX_PATTERNS, MAX_PATTERN_BYTES and MAX_TOKEN_BYTES on a live server', () => {
  const TOKEN = 't'.repeat(MAX_TOKEN_BYTES)
  let s: LocalServer
  beforeAll(async () => {
    const root = join(work, 'patterns')
    await writeTree(root, { 'a/1.txt': '1', 'b/2.txt': '2', 'c/3.txt': '3' })
    s = await startLocalServer(root, config, { token: TOKEN })
    suite.add(() => s.server.close())
  })

  const patterns = (n: number): string[] => Array.from({ length: n }, (_, i) => (i === 0 ? 'a/**' : `nothing-${i}/**`))

  it(`${MAX_PATTERNS} patterns work in MANIFEST and SUBSCRIBE; ${MAX_PATTERNS + 1} make the server close with ERR_PROTOCOL`, async () => {
    const c = await client(s, 'udp', TOKEN)
    expect((await c.manifest(patterns(MAX_PATTERNS))).map((e) => e.path)).toEqual(['a/1.txt'])
    await c.subscribe(patterns(MAX_PATTERNS), 1)

    for (const op of ['manifest', 'subscribe'] as const) {
      const victim = await client(s, 'udp', TOKEN)
      const p = op === 'manifest' ? victim.manifest(patterns(MAX_PATTERNS + 1)) : victim.subscribe(patterns(MAX_PATTERNS + 1), 1)
      const err = await rejection(p)
      expect(err.code).toBe('ERR_PROTOCOL')
      expect(err.message).toContain(`limit ${MAX_PATTERNS}`)
      await waitFor(() => victim.conn.closed, 2000, 'the peer to close')
    }
    expect(c.conn.isOpen).toBe(true) // others are untouched
    expect((await c.manifest(['**'])).length).toBe(3)
  })

  it(`MAX_SUBSCRIPTIONS_PER_CLIENT: ${MAX_SUBSCRIPTIONS_PER_CLIENT} (pattern, instance) pairs work; one more is ERR_LIMIT, changes nothing, the connection stays open`, async () => {
    const c = await client(s, 'udp', TOKEN)
    const batch = (from: number): string[] => Array.from({ length: MAX_PATTERNS }, (_, i) => `sub-${from + i}/**`)
    for (let from = 0; from < MAX_SUBSCRIPTIONS_PER_CLIENT; from += MAX_PATTERNS) await c.subscribe(batch(from), 1)
    await c.subscribe(batch(0), 1) // already held: adds nothing, still fine
    const before = s.server.subscriptions.patternCount
    for (const [patterns, instance] of [[['one-more/**'], 1], [['sub-0/**'], 2]] as const) {
      const err = await rejection(c.subscribe([...patterns], instance))
      expect(err.code).toBe('ERR_LIMIT')
      expect(err.message).toBe(`more than ${MAX_SUBSCRIPTIONS_PER_CLIENT} subscriptions on one connection`)
    }
    expect(s.server.subscriptions.patternCount).toBe(before)
    expect(c.conn.isOpen).toBe(true)
    await c.subscribe(['sub-0/**'], 1, false) // unsubscribing frees a slot
    await c.subscribe(['one-more/**'], 1)
    // Another connection has its own allowance.
    await (await client(s, 'udp', TOKEN)).subscribe(batch(1000), 1)
  })

  it(`a ${MAX_PATTERN_BYTES}-byte pattern works; ${MAX_PATTERN_BYTES + 1} bytes is ERR_PROTOCOL`, async () => {
    const c = await client(s, 'udp', TOKEN)
    const pat = (n: number): string => `b/${'*'.repeat(n - 2)}`
    expect((await c.manifest([pat(MAX_PATTERN_BYTES)])).map((e) => e.path)).toEqual(['b/2.txt'])
    const err = await rejection(c.manifest([pat(MAX_PATTERN_BYTES + 1)]))
    expect(err.code).toBe('ERR_PROTOCOL')
    expect(err.message).toContain(`limit ${MAX_PATTERN_BYTES}`)
  })

  it(`a ${MAX_TOKEN_BYTES}-byte token authenticates; ${MAX_TOKEN_BYTES + 1} bytes is ERR_PROTOCOL, not a crash`, async () => {
    expect((await client(s, 'udp', TOKEN)).conn.isOpen).toBe(true)
    const err = await rejection(client(s, 'udp', `${TOKEN}x`))
    expect(err.code).toBe('ERR_PROTOCOL')
    expect(err.message).toContain(`limit ${MAX_TOKEN_BYTES}`)
    expect((await rejection(client(s, 'udp', TOKEN.slice(1)))).code).toBe('ERR_AUTH')
  })
})

// --- MAX_FRAME_BYTES and the frame guard -------------------------------------------------------------

describe('MAX_FRAME_BYTES through the Noise stream', () => {
  // A Noise message is the frame plus 17 bytes (secretstream tag + MAC); the guard allows
  // MAX_WIRE_MESSAGE_BYTES = MAX_FRAME_BYTES + 64, so frames up to MAX + 47 reach the decoder.
  it.each(['udp', 'tcp'] as const)('%s: a frame of MAX+1 is refused by the decoder (ERROR, then close); MAX+47 too; MAX+48 trips the guard (cut, no ERROR)', async (transport) => {
    const s = await endpoint(transport)
    serveBlobs(s, () => Buffer.from('still here'))
    const frame = (n: number): Buffer => {
      const b = Buffer.alloc(n)
      b[0] = MSG.manifest
      return b
    }
    for (const extra of [1, MAX_WIRE_MESSAGE_BYTES - MAX_FRAME_BYTES - 17]) {
      const c = await rawSecureClient(transport, s.address().port)
      cleanup.add(() => c.destroy())
      c.write(frame(MAX_FRAME_BYTES + extra))
      const e = await c.next((m) => m.type === 'error')
      expect(e).toMatchObject({ type: 'error', id: 0, code: 'ERR_PROTOCOL' })
      expect(e.type === 'error' && e.message).toContain(`frame of ${MAX_FRAME_BYTES + extra} bytes exceeds ${MAX_FRAME_BYTES}`)
      await withTimeout(c.closed, 3000, 'the server to close')
    }
    const cut = await rawSecureClient(transport, s.address().port)
    cleanup.add(() => cut.destroy())
    cut.write(frame(MAX_FRAME_BYTES + (MAX_WIRE_MESSAGE_BYTES - MAX_FRAME_BYTES - 17) + 1))
    await withTimeout(cut.closed, 3000, 'the guard to cut the connection')
    expect(cut.frames.some((m) => m.type === 'error')).toBe(false)
    const ok = await connect(s)
    expect((await fetchBlob(ok, 'x')).toString()).toBe('still here')
  })
})

describe('frame guard: an unauthenticated peer announcing a 16 MiB secret-stream message', () => {
  const b4a = createRequire(import.meta.url)('b4a') as { allocUnsafe: (n: number) => Buffer }
  const ATTACKS = 8

  it.each(['udp', 'tcp'] as const)('%s: dropped at the length prefix, nothing of that size is allocated', async (transport) => {
    const s = await endpoint(transport, { connectTimeoutMs: 10_000 })
    serveBlobs(s, () => Buffer.from('fine'))
    const rejected: AssetSyncError[] = []
    s.on('rejected', (_r: string, err: AssetSyncError) => rejected.push(err))
    // secret-stream allocates a message buffer with b4a.allocUnsafe(announced length): watch it.
    const big: number[] = []
    const alloc = b4a.allocUnsafe
    b4a.allocUnsafe = (n: number) => { if (n >= MiB) big.push(n); return alloc(n) }
    cleanup.add(() => { b4a.allocUnsafe = alloc })
    // The length prefix (little-endian 0xffffff = 16 MiB - 1) and payload in ONE write: the case
    // where secret-stream sees the same chunk right after the guard.
    const attack = Buffer.alloc(3 + 64 * KiB, 0xab)
    attack.writeUIntLE(0xffffff, 0, 3)
    const before = process.memoryUsage()
    const t0 = performance.now()
    await Promise.all(Array.from({ length: ATTACKS }, async () => {
      const raw = transport === 'udp'
        ? await rawConnect('udp', s.address().port)
        : await new Promise<Socket>((resolve, reject) => {
          const sock = tcpConnect(s.address().port, LOOPBACK, () => resolve(sock))
          sock.once('error', reject)
        })
      raw.on('error', () => {})
      cleanup.add(() => raw.destroy())
      const closed = new Promise((resolve) => raw.once('close', resolve))
      raw.write(attack)
      await withTimeout(closed, 3000, 'the server to drop the attacker')
    }))
    const ms = performance.now() - t0
    const after = process.memoryUsage()
    await waitFor(() => rejected.length === ATTACKS, 3000, 'a rejected event per attacker')
    expect(big).toEqual([])
    for (const err of rejected) {
      expect(err.code).toBe('ERR_PROTOCOL')
      expect(err.message).toBe(`peer announced a 16777215-byte message (limit ${MAX_WIRE_MESSAGE_BYTES})`)
    }
    // Without the guard each attacker would hold a 16 MiB buffer (ArrayBuffer memory).
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(16 * MiB)
    expect(s.connections.size).toBe(0)
    const ok = await connect(s)
    expect((await fetchBlob(ok, 'x')).toString()).toBe('fine')
    console.log(`frame guard ${transport}: ${ATTACKS} attackers dropped in ${ms.toFixed(0)} ms; allocations >= 1 MiB: ${big.length};`
      + ` rss ${mib(before.rss)} -> ${mib(after.rss)}, arrayBuffers ${mib(before.arrayBuffers)} -> ${mib(after.arrayBuffers)}`)
  })
})

// --- MANIFEST_PAGE_BYTES ----------------------------------------------------------------------------

describe('manifest pagination (MANIFEST_PAGE_BYTES)', () => {
  it('a manifest needing >= 3 pages comes back whole, in path order, one MANIFEST request per page', async () => {
    const root = join(work, 'pages')
    // ~200-byte paths: 254 wire bytes per entry, ~1032 entries per 256 KiB page.
    const files = 2200
    const dir = 'p'.repeat(100)
    const spec: Record<string, string> = {}
    for (let i = 0; i < files; i++) spec[`${dir}/${String(i).padStart(5, '0')}${'n'.repeat(94)}`] = `${i}`
    await writeTree(root, spec)
    const s = await startLocalServer(root, config)
    cleanup.add(() => s.server.close())
    const entryBytes = 2 + 52 + Buffer.byteLength(Object.keys(spec)[0] as string)
    const perPage = Math.floor(MANIFEST_PAGE_BYTES / entryBytes)
    const expectedPages = Math.ceil(files / perPage)
    expect(expectedPages).toBeGreaterThanOrEqual(3)

    const c = await client(s)
    let pages = 0
    const request = c.conn.request.bind(c.conn)
    c.conn.request = (build, onReply) => request(build, (r) => {
      if (r.type === 'manifest-reply') pages++
      return onReply(r)
    })
    const list = await c.manifest(['**'])
    expect(pages).toBe(expectedPages)
    expect(list.map((e) => e.path)).toEqual(Object.keys(spec).sort())
    for (const e of list.slice(0, 5)) expect(e.size).toBe(Buffer.byteLength(spec[e.path] as string))
    console.log(`manifest: ${files} entries of ${entryBytes} wire bytes in ${pages} pages (${perPage} per page)`)
  })
})
