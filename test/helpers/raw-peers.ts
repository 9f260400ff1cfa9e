/**
 * Shared pieces of the hardening tests (test/hardening, test/slow): an in-process AssetServer in a
 * temp folder, a "raw" authenticated client that writes frames straight into the Noise stream
 * (so it can send what `encode` or `Connection` would refuse), and udx packet builders for
 * spoofing. Temp folders, sizes and memory readings are in common.ts.
 */
import { join } from 'node:path'
import SecretStream from '@hyperswarm/secret-stream'
import type { UDXStream } from 'udx-native'
import { afterAll, afterEach, beforeAll, vi } from 'vitest'
import { AssetServer, type AssetServerOptions } from '../../src/core/server/server.js'
import { decode, encode } from '../../src/protocol/codec.js'
import { guardFrames } from '../../src/protocol/frame-guard.js'
import { type Message, PROTOCOL_VERSION, type ServerMessage } from '../../src/protocol/messages.js'
import { connectTcp } from '../../src/protocol/tcp.js'
import type { RawStream, TransportName } from '../../src/protocol/transport.js'
import { UdpListener, connectUdp } from '../../src/protocol/udp.js'
import { Cleanup, LOOPBACK, MiB, tempDir } from './common.js'
import { writeTree } from './trees.js'

export interface LocalServer {
  server: AssetServer
  /** "127.0.0.1:<port>" */
  addr: string
  port: number
  /** The server key as hex (clients pass it as `key`, so nothing is pinned). */
  key: string
  /** The UDP listener (udp servers only): raw udx streams, stats. */
  udp: UdpListener | null
  /** Every raw udx stream the listener handed up, newest last (udp servers only). */
  streams: UDXStream[]
}

/**
 * Starts an AssetServer on 127.0.0.1:0 serving `root`, with its identity and hash cache under
 * `configDir`. For UDP it also captures the listener (a spy on UdpListener.listen), so tests can
 * reach the live udx streams the way an attacker who guessed their ids could.
 */
export async function startLocalServer(root: string, configDir: string, opts: Partial<AssetServerOptions> = {}): Promise<LocalServer> {
  const spy = vi.spyOn(UdpListener, 'listen')
  let server: AssetServer
  let udp: UdpListener | null = null
  try {
    server = await AssetServer.start({ root, configDir, host: LOOPBACK, port: 0, transport: 'udp', watch: false, ...opts })
    udp = (spy.mock.results.at(-1)?.value as UdpListener | undefined) ?? null // (mockRestore clears results)
  } finally {
    spy.mockRestore()
  }
  const streams: UDXStream[] = []
  udp?.on('connection', (stream: UDXStream) => streams.push(stream))
  const { port } = server.address()
  return { server, addr: `${LOOPBACK}:${port}`, port, key: server.publicKey.toString('hex'), udp, streams }
}

/** A raw connected byte stream to the server (the transport below Noise). */
export function rawConnect(transport: TransportName, port: number, timeoutMs = 5000): Promise<RawStream> {
  return transport === 'udp'
    ? connectUdp(LOOPBACK, port, { timeoutMs })
    : connectTcp(LOOPBACK, port, { timeoutMs })
}

/**
 * An authenticated client that bypasses Connection: every `write` is one Noise message (one
 * frame), whatever its bytes. Incoming frames are decoded as server frames.
 */
export interface RawSecureClient {
  secure: SecretStream
  raw: RawStream
  /** Decoded server frames received so far (PINGs dropped). */
  frames: ServerMessage[]
  /** Writes one frame: a message (encoded) or raw bytes. */
  write(frame: Message | Uint8Array): boolean
  /** Resolves with the first received frame matching `pred` (or rejects after `ms`). */
  next(pred: (m: ServerMessage) => boolean, ms?: number): Promise<ServerMessage>
  /** Server frames that did not decode (a server must never send one). */
  undecodable(): number
  /** Settles when the stream has closed. */
  closed: Promise<void>
  isClosed(): boolean
  destroy(): void
}

export async function rawSecureClient(transport: TransportName, port: number, token = '', timeoutMs = 5000): Promise<RawSecureClient> {
  const raw = await rawConnect(transport, port, timeoutMs)
  const guard = guardFrames(raw)
  const secure = new SecretStream(true, raw)
  guard.protect(secure)
  secure.on('error', () => { /* the test looks at `closed` */ })
  secure.on('end', () => secure.end()) // no half-open streams: answer the server's FIN at once
  let isClosed = false
  const closed = new Promise<void>((resolve) => secure.once('close', () => { isClosed = true; resolve() }))
  const frames: ServerMessage[] = []
  const waiters = new Set<() => void>()
  let undecodable = 0
  secure.on('data', (buf: Buffer) => {
    let m: ServerMessage
    try {
      m = decode(buf, 'server') as ServerMessage
    } catch (err) {
      if (undecodable++ < 5) process.stderr.write(`undecodable server frame: ${(err as Error).message} ${buf.subarray(0, 64).toString('hex')}\n`)
      return
    }
    if (m.type === 'ping') return
    frames.push(m)
    for (const w of [...waiters]) w()
  })
  const next = (pred: (m: ServerMessage) => boolean, ms = 5000): Promise<ServerMessage> => new Promise((resolve, reject) => {
    let seen = 0
    const check = (): void => {
      for (; seen < frames.length; seen++) {
        const m = frames[seen] as ServerMessage
        if (pred(m)) { done(); resolve(m); return }
      }
      if (isClosed) { done(); reject(new Error('closed before the expected frame arrived')) }
    }
    const t = setTimeout(() => { done(); reject(new Error(`no matching frame within ${ms} ms`)) }, ms)
    const done = (): void => { clearTimeout(t); waiters.delete(check) }
    waiters.add(check)
    void closed.then(() => check())
    check()
  })
  const opened = await Promise.race([secure.opened, new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs))])
  if (!opened) {
    secure.destroy()
    throw new Error('Noise handshake failed')
  }
  const write = (frame: Message | Uint8Array): boolean => {
    if (isClosed || secure.destroyed) return false
    return secure.write(frame instanceof Uint8Array ? frame : encode(frame))
  }
  write({ type: 'auth', version: PROTOCOL_VERSION, token })
  const ok = await next((m) => m.type === 'auth-ok' || m.type === 'error', timeoutMs)
  if (ok.type !== 'auth-ok') {
    secure.destroy()
    throw new Error(`auth refused: ${JSON.stringify(ok)}`)
  }
  return { secure, raw, frames, write, next, closed, undecodable: () => undecodable, isClosed: () => isClosed, destroy: () => secure.destroy() }
}

// --- udx packets -------------------------------------------------------------------------------
// libudx's 20-byte header (src/udx.c init_stream_packet): magic 0xff, version 1, type flags,
// data offset, then little-endian u32 remote stream id, receive window, seq, ack.

export const UDX_HEADER = { DATA: 0b00001, END: 0b00010, SACK: 0b00100, MESSAGE: 0b01000, DESTROY: 0b10000 } as const

export function udxPacket(type: number, streamId: number, seq: number, ack: number, payload: Uint8Array = new Uint8Array(0), rwnd = 4 * MiB): Buffer {
  const b = Buffer.alloc(20 + payload.byteLength)
  b[0] = 0xff
  b[1] = 1
  b[2] = type
  b[3] = 0
  b.writeUInt32LE(streamId >>> 0, 4)
  b.writeUInt32LE(rwnd >>> 0, 8)
  b.writeUInt32LE(seq >>> 0, 12)
  b.writeUInt32LE(ack >>> 0, 16)
  b.set(payload, 20)
  return b
}

/**
 * For a test file: a temp folder holding `hello.txt`, and `start(transport, extra)`, which starts
 * a startLocalServer on it with `defaults` (each closed after its test). `config()` is the config
 * folder, for clients; `cleanup` runs after each test (servers first added, so closed last).
 */
export function localServers(name: string, defaults: Partial<AssetServerOptions>): {
  start: (transport: TransportName, extra?: Partial<AssetServerOptions>) => Promise<LocalServer>
  config: () => string
  cleanup: Cleanup
} {
  const perTest = new Cleanup()
  afterEach(() => perTest.run())
  const suite = new Cleanup()
  afterAll(() => suite.run())
  let root = ''
  let config = ''
  beforeAll(async () => {
    const t = await tempDir(name)
    suite.add(t.remove)
    root = join(t.dir, 'root')
    config = join(t.dir, 'config')
    await writeTree(root, { 'hello.txt': 'hello\n' })
  })
  return {
    config: () => config,
    cleanup: perTest,
    start: async (transport, extra = {}) => {
      const s = await startLocalServer(root, config, { transport, ...defaults, ...extra })
      perTest.add(() => s.server.close())
      return s
    },
  }
}
