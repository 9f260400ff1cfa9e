/**
 * Two connected in-memory message streams, standing in for a Noise secret stream in tests: each
 * write on one end is emitted as exactly one 'data' chunk on the other (object mode).
 */
import { Duplex } from 'node:stream'

export interface MemoryPair {
  a: Duplex
  b: Duplex
  /** From now on, silently drop everything in both directions (a vanished peer, a pulled cable). */
  cut(): void
}

export function memoryPair(): MemoryPair {
  let severed = false
  const end = (peer: () => Duplex): Duplex => new Duplex({
    objectMode: true,
    read() { /* data is pushed by the peer's writes */ },
    write(chunk: unknown, _encoding, cb) {
      const p = peer()
      if (!severed && !p.destroyed) p.push(chunk)
      cb()
    },
    final(cb) {
      const p = peer()
      if (!severed && !p.destroyed) p.push(null)
      cb()
    },
    destroy(err, cb) {
      // Like a reset: the peer sees its readable side end (unless the wire is already cut).
      const p = peer()
      if (!severed && !p.destroyed) p.push(null)
      cb(err)
    },
  })
  const a: Duplex = end(() => b)
  const b: Duplex = end(() => a)
  return { a, b, cut: () => { severed = true } }
}
