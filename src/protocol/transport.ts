/**
 * What the secure layer needs from a transport: a reliable, ordered byte stream per connection.
 * udp.ts (udx-native) and tcp.ts (node:net) both provide it.
 */
import type { Duplex } from 'node:stream'

export type TransportName = 'udp' | 'tcp'
export const TRANSPORTS: readonly TransportName[] = ['udp', 'tcp']

/** A connected byte stream (udx stream or TCP socket). */
export type RawStream = Duplex

/**
 * Asked by a listener before it allocates anything for a new connection from `host`: false
 * refuses it as "server full" (the endpoint's authenticated connections are all taken).
 */
export type AdmitFn = (host: string) => boolean

export interface ListenOptions {
  /** Raw connections (in their handshake or authenticated) held at once; more are refused as full. */
  maxClients?: number
  /** Refuses a new connection as full when it returns false (checked before maxClients). */
  admit?: AdmitFn
}

/** Counters every listener keeps (UDP adds its own). */
export interface ListenerStats {
  /** New connections from a source over HANDSHAKE_RATE_PER_ADDR, dropped unanswered. */
  rateLimited: number
  /** New connections refused as "server full". */
  refusedFull: number
}

/**
 * A bound server endpoint; emits ('connection', raw: RawStream, remote: string, host: string),
 * where `remote` is "host:port" for messages and `host` the source address alone.
 */
export interface Listener {
  readonly transport: TransportName
  address(): { host: string; port: number }
  readonly connections: number
  readonly stats: ListenerStats
  close(): Promise<void>
  on(event: 'connection', fn: (raw: RawStream, remote: string, host: string) => void): this
}
