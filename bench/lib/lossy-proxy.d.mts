// Types of lossy-proxy.mjs (the implementation is plain JS so the bench runs it without a build
// step; test/helpers/lossy-proxy.ts re-exports both).

/** Which way a datagram travels through the proxy. */
export type Direction = 'to-target' | 'to-client'

/**
 * Decides the fate of single datagrams before the random faults apply: return false to drop it
 * (counted as `filtered`). For targeted faults, e.g. "lose the first three HELLOs".
 */
export type DatagramFilter = (datagram: Buffer, direction: Direction) => boolean

/** Fault settings. Probabilities are per datagram and apply to both directions. */
export interface Impairments {
  /** Probability (0..1) that a datagram is dropped. Default 0. */
  loss: number
  /** Fixed one-way delay added to every datagram, in ms. Default 0 (forward synchronously). */
  delayMs: number
  /** Extra uniform random delay in [0, jitterMs) per datagram; reorders datagrams by itself. Default 0. */
  jitterMs: number
  /**
   * Probability (0..1) that a datagram is held back and sent right after the next datagram of the
   * same direction (a swap). If no datagram follows within `reorderFlushMs` it is sent anyway.
   * Default 0.
   */
  reorder: number
  /** Probability (0..1) that a datagram is sent twice. Default 0. */
  duplicate: number
  /** Longest a reordered datagram waits for a successor before it is sent alone. Default 20 ms. */
  reorderFlushMs: number
  /** Runs first on every datagram; false drops it. Default none. */
  filter: DatagramFilter | null
}

export interface LossyProxyOptions extends Partial<Impairments> {
  /** Where datagrams from clients go; `host` must be an IP address. */
  target: { host: string; port: number }
  /** PRNG seed; the same seed reproduces the same fault pattern. Default 1. */
  seed?: number
  /** Address the proxy listens on. Default 127.0.0.1. */
  host?: string
}

/** What the proxy did, summed over all clients and both directions. */
export interface LossyProxyCounters {
  /** Datagrams that reached the proxy (from clients and from the target). */
  received: number
  /** Datagrams sent on (duplicates counted once per copy). */
  forwarded: number
  /** Datagrams dropped by `loss`. */
  dropped: number
  /** Datagrams dropped by `filter`. */
  filtered: number
  /** Extra copies sent by `duplicate`. */
  duplicated: number
  /** Datagrams held back and sent after their successor (or alone, after `reorderFlushMs`). */
  reordered: number
  /** Bytes sent on, both directions. */
  bytesForwarded: number
  /** Client source addresses seen (= upstream sockets opened). */
  clients: number
}

/** A running proxy. */
export interface LossyProxy {
  /** Address clients send to. */
  readonly host: string
  readonly port: number
  /** Live counters (the same object is updated in place). */
  readonly counters: LossyProxyCounters
  /** Current fault settings. */
  readonly impairments: Readonly<Impairments>
  /** Changes fault settings from now on, e.g. `{ loss: 1 }` to cut the path (a partition). */
  set(changes: Partial<Impairments>): void
  /** Closes every socket and cancels every pending delayed datagram. */
  close(): Promise<void>
}

/** mulberry32: a small, fast, seedable 32-bit PRNG; returns floats in [0, 1). */
export declare function mulberry32(seed: number): () => number

/**
 * Starts a lossy UDP proxy in front of `opts.target` and resolves once it listens. Point the client
 * at `proxy.host:proxy.port`; always `close()` it (afterEach) so the test process can exit.
 */
export declare function startLossyProxy(opts: LossyProxyOptions): Promise<LossyProxy>
