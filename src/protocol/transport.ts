/**
 * What the secure layer needs from a transport: a reliable, ordered byte stream per connection.
 * udp.ts (udx-native) and tcp.ts (node:net) both provide it.
 */
import type { Duplex } from 'node:stream'

export type TransportName = 'udp' | 'tcp'
export const TRANSPORTS: readonly TransportName[] = ['udp', 'tcp']

/** A connected byte stream (udx stream or TCP socket). */
export type RawStream = Duplex

/** A bound server endpoint; emits ('connection', raw: RawStream, remote: string). */
export interface Listener {
  readonly transport: TransportName
  address(): { host: string; port: number }
  readonly connections: number
  close(): Promise<void>
  on(event: 'connection', fn: (raw: RawStream, remote: string) => void): this
}
