// A userspace UDP fault injector (the kernel here has no netem): a proxy on 127.0.0.1:<ephemeral>
// that forwards datagrams between its clients and one target, and can drop, delay, jitter, reorder
// and duplicate them in both directions. The one implementation, for the bench (plain JS, no build
// step) and the tests (test/helpers/lossy-proxy.ts re-exports it; types in lossy-proxy.d.mts).
//
//   client ──► proxy (127.0.0.1:port) ──► upstream socket (one per client source) ──► target
//   client ◄── proxy ◄──────────────────── upstream socket ◄────────────────────────── target
//
// The target sees the upstream socket's address, never the client's, exactly like a NAT. Every
// random decision comes from a seeded PRNG (one stream per client and direction), so the same
// seed gives the same drop/duplicate/reorder pattern for the same datagram sequence. Arrival
// timing still varies between runs, so a run is reproducible in its faults, not in its timing.
//
//   const proxy = await startLossyProxy({ target: { host: '127.0.0.1', port }, loss: 0.1, seed: 7 })
//   dial({ host: proxy.host, port: proxy.port, ... }); ...; proxy.counters; await proxy.close()
//
// As a child process (with the TCP delay proxy): bench/lib/proxy-main.mjs.
import { createSocket } from 'node:dgram'
import { isIP, isIPv6 } from 'node:net'

/**
 * Kernel buffers for every proxy socket: with the ~200 KiB default a burst overflows them and the
 * kernel drops datagrams the counters never see (uncontrolled extra loss). Capped at rmem_max.
 */
const SOCKET_BUFFERS = { recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 4 * 1024 * 1024 }

/** mulberry32: a small, fast, seedable 32-bit PRNG; returns floats in [0, 1). Also used by tree.mjs and the fuzz tests. */
export function mulberry32(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function checkProbability(name, v) {
  if (!(v >= 0 && v <= 1)) throw new RangeError(`lossy proxy: ${name} must be within 0..1, got ${v}`)
}

function checkImpairments(i) {
  checkProbability('loss', i.loss)
  checkProbability('reorder', i.reorder)
  checkProbability('duplicate', i.duplicate)
  for (const k of ['delayMs', 'jitterMs', 'reorderFlushMs']) {
    if (!(i[k] >= 0)) throw new RangeError(`lossy proxy: ${k} must be >= 0, got ${i[k]}`)
  }
}

/** One direction of one client: its PRNG, the reorder slot, and how to send. */
class Lane {
  #rand
  /** Reorder decisions happen at send time, so they get their own stream (timing-independent). */
  #randReorder
  #proxy
  #send
  #direction
  #held = null
  #heldTimer = null

  constructor(proxy, direction, seed, send) {
    this.#proxy = proxy
    this.#direction = direction
    this.#rand = mulberry32(seed)
    this.#randReorder = mulberry32(seed ^ 0x5bd1e995)
    this.#send = send
  }

  /** Applies loss, duplication and delay to one datagram. */
  push(buf) {
    const p = this.#proxy
    const imp = p.impairments
    p.counters.received++
    if (imp.filter && !imp.filter(buf, this.#direction)) {
      p.counters.filtered++
      return
    }
    // Draw every random number for this datagram up front, in a fixed order, so the fault pattern
    // depends only on the seed and the datagram's position in the lane.
    const rLoss = this.#rand()
    const rDup = this.#rand()
    const rDelay1 = this.#rand()
    const rDelay2 = this.#rand()
    if (rLoss < imp.loss) {
      p.counters.dropped++
      return
    }
    const copies = rDup < imp.duplicate ? 2 : 1
    if (copies === 2) p.counters.duplicated++
    for (let i = 0; i < copies; i++) {
      const d = imp.delayMs + imp.jitterMs * (i === 0 ? rDelay1 : rDelay2)
      if (d <= 0) this.#emit(buf)
      else p.later(d, () => this.#emit(buf))
    }
  }

  /** The reorder stage, after the delay: hold one datagram back and release it after the next. */
  #emit(buf) {
    const p = this.#proxy
    if (p.closed) return
    const held = this.#held
    if (held) {
      this.#clearHeld()
      this.#out(buf)
      this.#out(held)
      return
    }
    if (this.#randReorder() < p.impairments.reorder) {
      p.counters.reordered++
      this.#held = buf
      this.#heldTimer = setTimeout(() => {
        const h = this.#held
        this.#clearHeld()
        if (h && !p.closed) this.#out(h)
      }, p.impairments.reorderFlushMs)
      return
    }
    this.#out(buf)
  }

  #clearHeld() {
    this.#held = null
    if (this.#heldTimer) clearTimeout(this.#heldTimer)
    this.#heldTimer = null
  }

  #out(buf) {
    this.#proxy.counters.forwarded++
    this.#proxy.counters.bytesForwarded += buf.length
    this.#send(buf)
  }

  dispose() { this.#clearHeld() }
}

class ProxyImpl {
  port = 0
  counters = {
    received: 0, forwarded: 0, dropped: 0, filtered: 0, duplicated: 0, reordered: 0, bytesForwarded: 0, clients: 0,
  }

  closed = false
  #front
  #target
  #seed
  #clients = new Map()
  #timers = new Set()

  constructor(opts) {
    this.host = opts.host ?? '127.0.0.1'
    this.#target = opts.target
    this.#seed = opts.seed ?? 1
    this.impairments = {
      loss: opts.loss ?? 0,
      delayMs: opts.delayMs ?? 0,
      jitterMs: opts.jitterMs ?? 0,
      reorder: opts.reorder ?? 0,
      duplicate: opts.duplicate ?? 0,
      reorderFlushMs: opts.reorderFlushMs ?? 20,
      filter: opts.filter ?? null,
    }
    checkImpairments(this.impairments)
    if (!isIP(this.#target.host)) throw new TypeError(`lossy proxy: target.host must be an IP address, got ${this.#target.host}`)
    this.#front = createSocket({ type: isIPv6(this.host) ? 'udp6' : 'udp4', ...SOCKET_BUFFERS })
    this.#front.on('message', (buf, rinfo) => this.#fromClient(buf, rinfo))
    this.#front.on('error', () => { /* a test proxy never dies of an ICMP error */ })
  }

  async start() {
    await new Promise((resolve, reject) => {
      this.#front.once('error', reject)
      this.#front.bind(0, this.host, () => {
        this.#front.off('error', reject)
        resolve()
      })
    })
    this.port = this.#front.address().port
  }

  set(changes) {
    const next = { ...this.impairments, ...changes }
    checkImpairments(next)
    this.impairments = next
  }

  /** Runs fn after ms unless the proxy closes first. */
  later(ms, fn) {
    const t = setTimeout(() => {
      this.#timers.delete(t)
      fn()
    }, ms)
    this.#timers.add(t)
  }

  #fromClient(buf, rinfo) {
    if (this.closed) return
    const key = `${rinfo.address}|${rinfo.port}`
    let c = this.#clients.get(key)
    if (!c) c = this.#addClient(key, rinfo)
    c.toTarget.push(buf)
  }

  #addClient(key, rinfo) {
    const upstream = createSocket({ type: isIPv6(this.#target.host) ? 'udp6' : 'udp4', ...SOCKET_BUFFERS })
    upstream.on('error', () => { /* ICMP port unreachable etc.: the datagram is simply lost */ })
    // Unbound sockets are bound implicitly on first send, so datagrams queued before then are fine.
    const n = this.counters.clients++
    const seed = (this.#seed * 0x9e3779b1 + n * 2) >>> 0
    const client = {
      upstream,
      toTarget: new Lane(this, 'to-target', seed, (b) => upstream.send(b, this.#target.port, this.#target.host)),
      toClient: new Lane(this, 'to-client', seed + 1, (b) => this.#front.send(b, rinfo.port, rinfo.address)),
    }
    upstream.on('message', (buf, from) => {
      if (this.closed) return
      // Only the target may talk back through this client's mapping.
      if (from.port !== this.#target.port || from.address !== this.#target.host) return
      client.toClient.push(buf)
    })
    this.#clients.set(key, client)
    return client
  }

  async close() {
    if (this.closed) return
    this.closed = true
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    const sockets = [this.#front]
    for (const c of this.#clients.values()) {
      c.toTarget.dispose()
      c.toClient.dispose()
      sockets.push(c.upstream)
    }
    this.#clients.clear()
    await Promise.all(sockets.map((s) => new Promise((resolve) => {
      try {
        s.close(() => resolve())
      } catch {
        resolve() // already closed
      }
    })))
  }
}

/**
 * Starts a lossy UDP proxy in front of `opts.target` and resolves once it listens. Point the client
 * at `proxy.host:proxy.port`; always `close()` it (afterEach) so the test process can exit.
 */
export async function startLossyProxy(opts) {
  const proxy = new ProxyImpl(opts)
  await proxy.start()
  return proxy
}
