/**
 * Connection-level attackers for the issue-12 tests (handshake slots, token guessing): they speak
 * the wire protocol from any local address, so 127.0.0.x loopback addresses stand in for many
 * source hosts (all usable on Linux). bench/attacks.mjs has the same attackers against a build.
 */
import { randomBytes } from 'node:crypto'
import { type Socket as DgramSocket, createSocket } from 'node:dgram'
import { type Socket, connect as tcpConnect } from 'node:net'
import SecretStream from '@hyperswarm/secret-stream'
import UDX from 'udx-native'
import { decode, encode } from '../../src/protocol/codec.js'
import { NONCE_BYTES, decodeHandshake, encodeHandshake } from '../../src/protocol/handshake-packets.js'
import { COMPAT_VERSION, PROTOCOL_VERSION, type ServerMessage } from '../../src/protocol/messages.js'
import type { RawStream, TransportName } from '../../src/protocol/transport.js'
import { LOOPBACK } from './common.js'

const udx = new UDX()

/** Loopback source addresses other than 127.0.0.1: 127.0.0.2, 127.0.0.3, … (n ≤ 250). */
export function sources(n: number, first = 2): string[] {
  return Array.from({ length: n }, (_, i) => `127.0.0.${first + i}`)
}

const hello = (clientId: number, nonce: Buffer, cookie: Buffer | null): Buffer =>
  encodeHandshake({ type: 'hello', version: PROTOCOL_VERSION, clientId, nonce, cookie })

/** Runs the cookie exchange on `on`/`send`; resolves with the server stream id of the WELCOME. */
function welcome(
  sock: { on(e: 'message', f: (b: Buffer) => void): unknown; off(e: 'message', f: (b: Buffer) => void): unknown },
  send: (b: Buffer) => void, clientId: number, ms: number,
): Promise<number> {
  const nonce = randomBytes(NONCE_BYTES)
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { sock.off('message', on); reject(new Error('timeout')) }, ms)
    const on = (buf: Buffer): void => {
      const p = decodeHandshake(buf)
      if (!p || p.type === 'hello' || !p.nonce.equals(nonce)) return
      if (p.type === 'cookie') return send(hello(clientId, nonce, p.cookie))
      clearTimeout(t)
      sock.off('message', on)
      if (p.type === 'welcome') resolve(p.serverId)
      else reject(new Error('full'))
    }
    sock.on('message', on)
    send(hello(clientId, nonce, null))
  })
}

/** A UDP source on `local` that opens sessions (cookie echoed, WELCOME received) and then says nothing. */
export interface IdleUdpSource {
  open(ms?: number): Promise<number>
  close(): Promise<void>
}

export async function idleUdpSource(local: string, port: number): Promise<IdleUdpSource> {
  const sock: DgramSocket = createSocket('udp4')
  sock.on('error', () => {})
  await new Promise<void>((r) => sock.bind(0, local, r))
  const send = (b: Buffer): void => { sock.send(b, port, LOOPBACK) }
  return {
    open: (ms = 5000) => welcome(sock, send, randomBytes(4).readUInt32BE(0) || 1, ms),
    close: () => new Promise<void>((r) => sock.close(() => r())),
  }
}

/** A TCP connection from `local`, not yet read from. */
function tcpFrom(local: string, port: number, ms: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: LOOPBACK, port, localAddress: local })
    const t = setTimeout(() => { s.destroy(); reject(new Error('timeout')) }, ms)
    s.once('connect', () => {
      clearTimeout(t)
      s.on('error', () => {})
      resolve(s)
    })
    s.once('error', (err) => { clearTimeout(t); reject(err) })
  })
}

/** A TCP connection from `local` that sends nothing (the caller destroys it). */
export async function idleTcp(local: string, port: number, ms = 5000): Promise<Socket> {
  const s = await tcpFrom(local, port, ms)
  s.resume() // read and drop whatever the server says
  return s
}

/** A raw connected stream from `local`: a TCP socket, or a udx stream on its own socket. */
export async function rawFrom(transport: TransportName, local: string, port: number, ms = 5000): Promise<RawStream> {
  if (transport === 'tcp') return tcpFrom(local, port, ms)
  const sock = udx.createSocket()
  sock.bind(0, local)
  const clientId = randomBytes(4).readUInt32BE(0) || 1
  const stream = udx.createStream(clientId)
  try {
    const serverId = await welcome(sock, (b) => sock.trySend(b, port, LOOPBACK), clientId, ms)
    stream.connect(sock, serverId, port, LOOPBACK)
    stream.once('close', () => { void sock.close() })
    return stream
  } catch (err) {
    stream.destroy()
    void sock.close()
    throw err
  }
}

/** The outcome of one AUTH: the server's answer, or why there was none ('noise', 'closed', 'timeout', 'full', …). */
export type GuessResult =
  | { answer: 'auth-ok' }
  | { answer: 'error'; code: string; message: string }
  | { answer: 'none'; why: string }

/**
 * Noise, then AUTH with `token`, from `local`; the server's first answer. Keeps the connection
 * alive with PINGs while the server makes it wait (as a real client's keepalive would).
 */
export async function guess(transport: TransportName, local: string, port: number, token: string, ms = 10_000): Promise<GuessResult> {
  let raw: RawStream
  try {
    raw = await rawFrom(transport, local, port, ms)
  } catch (err) {
    return { answer: 'none', why: (err as Error).message }
  }
  const secure = new SecretStream(true, raw)
  secure.on('error', () => {})
  return new Promise<GuessResult>((resolve) => {
    let ping: NodeJS.Timeout | undefined
    const done = (r: GuessResult): void => {
      clearTimeout(t)
      clearInterval(ping)
      secure.removeAllListeners('data')
      secure.removeAllListeners('close')
      secure.destroy()
      resolve(r)
    }
    const t = setTimeout(() => done({ answer: 'none', why: 'timeout' }), ms)
    secure.once('close', () => done({ answer: 'none', why: 'closed' }))
    secure.on('data', (buf: Buffer) => {
      let m: ServerMessage
      try {
        m = decode(buf, 'server') as ServerMessage
      } catch {
        return done({ answer: 'none', why: 'undecodable' })
      }
      if (m.type === 'auth-ok') done({ answer: 'auth-ok' })
      else if (m.type === 'error') done({ answer: 'error', code: m.code, message: m.message })
    })
    secure.opened.then((ok: boolean) => {
      if (!ok) return done({ answer: 'none', why: 'noise' })
      secure.write(encode({ type: 'auth', version: PROTOCOL_VERSION, token, minVersion: COMPAT_VERSION, features: 0 }))
      ping = setInterval(() => secure.write(encode({ type: 'ping' })), 500)
    }, () => done({ answer: 'none', why: 'noise' }))
  })
}
