// Connection-level attackers for bench/attacks.mjs (issue 12): idle handshake slots, token
// guessing, and authenticated connections that load the server's per-connection state. They speak
// the wire protocol through a BUILT assetsync (a dist/ folder: this branch's or another release's,
// so before/after figures come from the same attacker) and can bind any local address, so
// 127.0.0.x loopback addresses stand in for many source hosts.
import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { connect as tcpConnect } from 'node:net'
import { pathToFileURL } from 'node:url'
import SecretStream from '@hyperswarm/secret-stream'
import UDX from 'udx-native'

const udx = new UDX()

/** Loads the wire modules of the build at `dist` and returns attack helpers bound to them. */
export async function attackerKit(dist) {
  const load = (m) => import(pathToFileURL(`${dist}/${m}`).href)
  const hs = await load('protocol/handshake-packets.js')
  const codec = await load('protocol/codec.js')
  const messages = await load('protocol/messages.js')
  const version = messages.PROTOCOL_VERSION
  const hello = (clientId, nonce, cookie) => hs.encodeHandshake({ type: 'hello', version, clientId, nonce, cookie })

  /**
   * Runs the UDP cookie exchange from `sock` (a dgram or udx socket already bound) and resolves
   * with the server's stream id (WELCOME), or rejects with 'full' / 'timeout'.
   */
  function udpWelcome(sock, send, host, port, clientId, ms = 5000) {
    const nonce = randomBytes(hs.NONCE_BYTES)
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { sock.off('message', on); reject(new Error('timeout')) }, ms)
      const on = (buf) => {
        const p = hs.decodeHandshake(buf)
        if (!p || !p.nonce?.equals(nonce)) return
        if (p.type === 'cookie') send(hello(clientId, nonce, p.cookie))
        else if (p.type === 'welcome') { clearTimeout(t); sock.off('message', on); resolve(p.serverId) }
        else if (p.type === 'reject') { clearTimeout(t); sock.off('message', on); reject(new Error('full')) }
      }
      sock.on('message', on)
      send(hello(clientId, nonce, null))
    })
  }

  /** A dgram socket on `local` that opens UDP sessions and then never sends a byte on them. */
  async function idleUdpSource(local, host, port) {
    const sock = createSocket('udp4')
    sock.on('error', () => {})
    await new Promise((r) => sock.bind(0, local, r))
    const send = (b) => sock.send(b, port, host)
    return {
      open: (ms) => udpWelcome(sock, send, host, port, randomBytes(4).readUInt32BE(0) || 1, ms),
      close: () => new Promise((r) => sock.close(r)),
    }
  }

  /** A connected udx stream from `local` (its own socket), for Noise on top. */
  async function udpRaw(local, host, port, ms = 5000) {
    const sock = udx.createSocket()
    sock.bind(0, local)
    const clientId = randomBytes(4).readUInt32BE(0) || 1
    const stream = udx.createStream(clientId)
    try {
      const serverId = await udpWelcome(sock, (b) => sock.trySend(b, port, host), host, port, clientId, ms)
      stream.connect(sock, serverId, port, host)
      stream.once('close', () => { void sock.close() })
      return stream
    } catch (err) {
      stream.destroy()
      void sock.close()
      throw err
    }
  }

  /** A connected TCP socket from `local`. */
  function tcpRaw(local, host, port, ms = 5000) {
    return new Promise((resolve, reject) => {
      const s = tcpConnect({ host, port, localAddress: local })
      const t = setTimeout(() => { s.destroy(); reject(new Error('timeout')) }, ms)
      s.once('connect', () => { clearTimeout(t); s.setNoDelay(true); resolve(s) })
      s.once('error', (err) => { clearTimeout(t); reject(err) })
    })
  }

  /**
   * Noise, then AUTH with `token` on `raw`; resolves with the first answer frame ({type:'auth-ok'}
   * or {type:'error', code, message}) and the secure stream, or rejects ('noise', 'timeout',
   * 'closed'). The caller destroys `secure` unless it keeps the connection.
   */
  function authenticate(raw, token, ms = 10_000) {
    const secure = new SecretStream(true, raw)
    secure.on('error', () => {})
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { secure.destroy(); reject(new Error('timeout')) }, ms)
      const fail = (why) => { clearTimeout(t); secure.destroy(); reject(new Error(why)) }
      secure.once('close', () => fail('closed'))
      secure.on('data', (buf) => {
        let m
        try { m = codec.decode(buf, 'server') } catch { return fail('undecodable') }
        if (m.type === 'ping') return
        clearTimeout(t)
        secure.removeAllListeners('close')
        secure.removeAllListeners('data')
        resolve({ answer: m, secure })
      })
      secure.opened.then((ok) => {
        if (!ok) return fail('noise')
        secure.write(codec.encode({ type: 'auth', version, token, minVersion: messages.COMPAT_VERSION ?? version, features: 0 }))
      }, () => fail('noise'))
    })
  }

  /** One token guess over `transport` from `local`: 'rejected' | 'locked' | 'ok' | an error name. */
  async function guess(transport, local, host, port, token) {
    let raw
    try {
      raw = transport === 'udp' ? await udpRaw(local, host, port) : await tcpRaw(local, host, port)
    } catch (err) {
      return err.message
    }
    try {
      const { answer, secure } = await authenticate(raw, token)
      secure.destroy()
      if (answer.type === 'auth-ok') return 'ok'
      if (answer.code !== 'ERR_AUTH') return answer.code
      return answer.message === 'access token rejected by the server' ? 'rejected' : 'locked'
    } catch (err) {
      return err.message
    }
  }

  /** An authenticated connection from `local` that writes frames as given (no Connection rules). */
  async function session(transport, local, host, port, token = '') {
    const raw = transport === 'udp' ? await udpRaw(local, host, port) : await tcpRaw(local, host, port)
    const { answer, secure } = await authenticate(raw, token)
    if (answer.type !== 'auth-ok') { secure.destroy(); throw new Error(`auth: ${answer.code} ${answer.message}`) }
    const waiters = new Map()
    secure.on('data', (buf) => {
      let m
      try { m = codec.decode(buf, 'server') } catch { return }
      const w = m.id !== undefined && waiters.get(m.id)
      if (w) { waiters.delete(m.id); w(m) }
    })
    const closed = new Promise((r) => secure.once('close', r))
    secure.on('end', () => secure.end())
    return {
      secure,
      closed,
      /** Sends `msg` and resolves with the first frame answering its id. */
      ask(msg, ms = 30_000) {
        if (secure.destroyed) return Promise.reject(new Error('closed'))
        return new Promise((resolve, reject) => {
          const t = setTimeout(() => { waiters.delete(msg.id); reject(new Error(`no answer to ${msg.type} ${msg.id}`)) }, ms)
          waiters.set(msg.id, (m) => { clearTimeout(t); resolve(m) })
          closed.then(() => { clearTimeout(t); reject(new Error('closed')) })
          secure.write(codec.encode(msg))
        })
      },
      write: (msg) => !secure.destroyed && secure.write(codec.encode(msg)),
      destroy: () => secure.destroy(),
    }
  }

  return { idleUdpSource, udpRaw, tcpRaw, authenticate, guess, session, version }
}

/** Loopback source addresses 127.0.0.<first>..<first+n-1> (all usable on Linux). */
export function loopbackSources(n, first = 2) {
  return Array.from({ length: n }, (_, i) => `127.0.${Math.floor((first + i) / 250)}.${(first + i) % 250 + 1}`)
}
