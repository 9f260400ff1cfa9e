/**
 * Spoofed udx packets (docs/security.md, "Blind stream reset"). udx's own headers are not
 * authenticated and libudx looks a stream up by its 32-bit id alone, whatever the source address
 * (src/udx.c process_packet). So an attacker who learnt (or guessed) a live stream's ids can send
 * it packets from anywhere. These tests show what that buys: no data (udx only ever sends to the
 * stream's connected peer), no injection (the Noise layer refuses the bytes and the connection
 * ends), a reset at most; and that `pull` and `watch` recover from a reset by themselves.
 */
import { type Socket as DgramSocket, createSocket } from 'node:dgram'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { UDXStream } from 'udx-native'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { LiveMirror } from '../../src/core/client/live-mirror.js'
import type { AssetSyncError } from '../../src/errors.js'
import { encode } from '../../src/protocol/codec.js'
import type { ClientConnection, ServerConnection } from '../../src/protocol/connection.js'
import { dial } from '../../src/protocol/endpoint.js'
import type { Message } from '../../src/protocol/messages.js'
import { RESET_BYTES } from '../../src/protocol/handshake-packets.js'
import type { UdpListener } from '../../src/protocol/udp.js'
import { ensureBuilt, parseEvents, Sandbox } from '../helpers/cli.js'
import { Cleanup, LOOPBACK, MiB, nextEvent, tempDir, waitFor, withTimeout } from '../helpers/common.js'
import { fetchBlob, listen, serveBlobs } from '../helpers/endpoints.js'
import { startLocalServer, UDX_HEADER, udxPacket } from '../helpers/raw-peers.js'
import { diffTrees, writeAssetTree, writeRandomFile, writeTree } from '../helpers/trees.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

/** A DESTROY is processed when its seq is not behind the stream's ack (seq - ack in [0, 2^31)). */
const FUTURE_SEQ = 0x4000_0000

/** An attacker's UDP socket on its own port; counts what it receives. */
async function attacker(): Promise<{ sock: DgramSocket; received: () => number; send: (b: Buffer, port: number) => Promise<void> }> {
  const sock = createSocket('udp4')
  cleanup.add(() => new Promise<void>((resolve) => sock.close(() => resolve())))
  await new Promise<void>((resolve) => sock.bind(0, LOOPBACK, () => resolve()))
  let received = 0
  sock.on('message', (b) => { received += b.length })
  return {
    sock,
    received: () => received,
    send: (b, port) => new Promise<void>((resolve, reject) => sock.send(b, port, LOOPBACK, (err) => (err ? reject(err) : resolve()))),
  }
}

describe('spoofed packets carrying a live stream\'s ids, from another address/port', () => {
  async function setup(): Promise<{ port: number; conn: ClientConnection; stream: UDXStream; seen: string[] }> {
    const s = await listen('udp')
    cleanup.add(() => s.close())
    const seen: string[] = []
    s.on('connection', (c: ServerConnection) => c.on('message', (m: Message) => { if (m.type === 'request') seen.push(m.path) }))
    serveBlobs(s, (path) => Buffer.from(`blob ${path}`))
    const streams: UDXStream[] = []
    ;(s.listener as UdpListener).on('connection', (st: UDXStream) => streams.push(st))
    const conn = await dial({ transport: 'udp', host: LOOPBACK, port: s.address().port, connectTimeoutMs: 5000 })
    cleanup.add(() => conn.destroy())
    expect((await fetchBlob(conn, 'warm-up')).toString()).toBe('blob warm-up')
    expect(streams).toHaveLength(1)
    return { port: s.address().port, conn, stream: streams[0] as UDXStream, seen }
  }

  it('cannot read: ACK, SACK and state packets for the server stream get the attacker nothing; the client is served on', async () => {
    const { port, conn, stream } = await setup()
    const evil = await attacker()
    // Ask for retransmits / acknowledge nothing; the ids are right, the address is not the peer's.
    for (let i = 0; i < 200; i++) {
      await evil.send(udxPacket(0, stream.id, FUTURE_SEQ + i, 0), port)
      await evil.send(udxPacket(UDX_HEADER.SACK, stream.id, FUTURE_SEQ + i, 0, Buffer.alloc(8)), port)
    }
    expect((await fetchBlob(conn, 'after')).toString()).toBe('blob after')
    expect(evil.received()).toBe(0)
  })

  it('cannot inject: plaintext frames in DATA packets never reach the server as messages; Noise refuses them and only that connection ends', async () => {
    const { port, conn, stream, seen } = await setup()
    const evil = await attacker()
    const frame = encode({ type: 'request', id: 7, path: 'injected.txt', haveHash: null })
    const wire = Buffer.concat([Buffer.from([frame.length & 0xff, (frame.length >> 8) & 0xff, frame.length >> 16]), frame])
    const lost = nextEvent(conn, 'close', 8000)
    // Every seq the server stream could expect next (it has received only a few packets so far).
    for (let seqNo = 0; seqNo < 256; seqNo++) await evil.send(udxPacket(UDX_HEADER.DATA, stream.id, seqNo, 0, wire), port)
    const [err] = await lost
    expect((err as AssetSyncError).code).toBe('ERR_CONNECTION_LOST')
    expect(seen).not.toContain('injected.txt')
    expect(seen).toEqual(['warm-up'])
    expect(evil.received()).toBe(0)
    // The server is fine; a new connection is served.
    const again = await dial({ transport: 'udp', host: LOOPBACK, port, connectTimeoutMs: 5000 })
    cleanup.add(() => again.destroy())
    expect((await fetchBlob(again, 'x')).toString()).toBe('blob x')
  })

  it('packets for stream ids that are not live change nothing; each but a DESTROY gets a smaller RESET naming its id', async () => {
    const { port, conn, stream } = await setup()
    const evil = await attacker()
    let sentBytes = 0
    let answerable = 0
    for (let i = 0; i < 500; i++) {
      let id = (Math.random() * 2 ** 32) >>> 0 || 1
      if (id === stream.id) id ^= 1
      const type = [0, UDX_HEADER.DATA, UDX_HEADER.DESTROY, UDX_HEADER.END][i % 4] as number
      const pkt = udxPacket(type, id, FUTURE_SEQ, 0, Buffer.alloc(i % 64, 1))
      sentBytes += pkt.length
      if (type !== UDX_HEADER.DESTROY) answerable++
      await evil.send(pkt, port)
    }
    expect((await fetchBlob(conn, 'still')).toString()).toBe('blob still')
    expect(conn.isOpen).toBe(true)
    // RESET (docs/protocol.md §1.5) tells a stale client to reconnect; it is 8 bytes, never more than it answers.
    await waitFor(() => evil.received() === answerable * RESET_BYTES, 3000, 'one RESET per answerable packet')
    expect(evil.received()).toBeLessThan(sentBytes)
  })
})

describe('a blind DESTROY mid-transfer: clients recover', () => {
  let sb: Sandbox
  beforeAll(async () => {
    ensureBuilt()
    sb = await Sandbox.create('hard-spoof')
  }, 120_000)
  afterAll(async () => { await sb?.cleanup() })

  it('pull: the reset connection is retried ({"event":"retry"}) and the tree arrives whole (exit 0)', async () => {
    const src = await sb.mkdir('src')
    await writeAssetTree(src, { small: 40, bigBytes: 1 * MiB })
    await writeRandomFile(join(src, 'huge.bin'), 48 * MiB)
    const s = await startLocalServer(src, sb.config)
    cleanup.add(() => s.server.close())
    const evil = await attacker()
    const out = sb.path('out')
    const pull = sb.spawn(['pull', '--server', s.addr, '--key', s.key, '--out', out, '--json'])
    // Reset once the first connection has sent a few MiB (mid-transfer).
    await waitFor(() => (s.streams[0]?.bytesTransmitted ?? 0) > 4 * MiB || pull.proc.exitCode !== null, 20_000, 'the transfer to start')
    const st = s.streams[0] as UDXStream
    expect(pull.proc.exitCode).toBeNull()
    // Both ends, as a blind attacker would: DESTROY to the server's stream and to the client's.
    await evil.send(udxPacket(UDX_HEADER.DESTROY, st.id, FUTURE_SEQ, 0), s.port)
    await evil.send(udxPacket(UDX_HEADER.DESTROY, st.remoteId, FUTURE_SEQ, 0), st.remotePort)
    const r = await pull.result
    expect(r.stderr).toContain('reconnecting to resume')
    expect(r.code, r.stderr).toBe(0)
    const events = parseEvents(r.stdout)
    expect(events.filter((e) => e.event === 'retry')).toHaveLength(1)
    expect(String(events.find((e) => e.event === 'retry')?.reason)).toMatch(/lost/)
    expect(s.streams.length).toBe(2) // one reconnect
    expect(await diffTrees(src, out)).toEqual([])
    expect(evil.received()).toBe(0)
  })

  it('watch (LiveMirror): a reset server stream is noticed at the next keepalive (RESET), the mirror reconnects, resyncs and applies later changes', async () => {
    const { dir, remove } = await tempDir('spoof-watch')
    cleanup.add(remove)
    const src = join(dir, 'src')
    const out = join(dir, 'out')
    await writeTree(src, { 'a.txt': 'a1\n', 'b/c.txt': 'c1\n' })
    const s = await startLocalServer(src, join(dir, 'config'), { watch: true })
    cleanup.add(() => s.server.close())
    const mirror = new LiveMirror({ client: { server: s.addr, key: s.key, transport: 'udp', connectTimeoutMs: 5000 }, out, configDir: join(dir, 'config') })
    cleanup.add(() => mirror.stop())
    await mirror.start()
    const evil = await attacker()
    const st = s.streams[0] as UDXStream
    const disconnected = nextEvent(mirror, 'disconnected', 8000)
    const resynced = new Promise<void>((resolve) => mirror.on('synced', (e: { initial: boolean }) => { if (!e.initial) resolve() }))
    const t0 = performance.now()
    // Only the server's side: the client learns it from the RESET its next packet draws.
    await evil.send(udxPacket(UDX_HEADER.DESTROY, st.id, FUTURE_SEQ, 0), s.port)
    // A change made while the mirror is cut off arrives with the resync.
    await writeFile(join(src, 'a.txt'), 'a2\n')
    const [why] = await disconnected
    const noticedMs = performance.now() - t0
    expect((why as AssetSyncError | null)?.code).toBe('ERR_CONNECTION_LOST')
    await withTimeout(resynced, 8000, 'the resync after reconnecting')
    await waitFor(() => s.server.clients === 1, 3000, 'one client on the server again')
    // A change after the reconnect is pushed as usual.
    const applied = new Promise<void>((resolve) => mirror.on('applied', (ch: { path: string }[]) => { if (ch.some((c) => c.path === 'b/new.txt')) resolve() }))
    await writeFile(join(src, 'b', 'new.txt'), 'new\n')
    await withTimeout(applied, 8000, 'b/new.txt to be applied')
    await mirror.idle()
    expect(await diffTrees(src, out)).toEqual([])
    console.log(`watch: server stream reset, client noticed in ${noticedMs.toFixed(0)} ms, resynced and applied later changes`)
  })
})
