// Minimal types for the parts of udx-native (1.x) that assetsync uses. No types ship upstream.
declare module 'udx-native' {
  import type { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'

  export interface UDXAddress { host: string; family: number; port: number }

  export class UDXSocket extends EventEmitter {
    readonly bound: boolean
    readonly closing: boolean
    readonly streams: Set<UDXStream>
    readonly bytesReceived: number
    readonly bytesTransmitted: number
    readonly packetsDroppedByKernel: number
    bind(port?: number, host?: string): void
    address(): UDXAddress | null
    close(): Promise<void>
    setRecvBufferSize(size: number): number
    setSendBufferSize(size: number): number
    getRecvBufferSize(): number
    trySend(buffer: Uint8Array, port: number, host: string, ttl?: number): void
    send(buffer: Uint8Array, port: number, host: string, ttl?: number): Promise<boolean>
    on(event: 'message', listener: (buf: Buffer, rinfo: UDXAddress) => void): this
    on(event: 'close' | 'listening' | 'idle' | 'busy', listener: () => void): this
  }

  export interface UDXStreamOptions {
    firewall?: (socket: UDXSocket, port: number, host: string, family: number) => boolean
  }

  /** A streamx Duplex; typed as node's Duplex for the members used. */
  export class UDXStream extends Duplex {
    readonly id: number
    readonly remoteId: number
    readonly remoteHost: string | null
    readonly remotePort: number
    readonly connected: boolean
    readonly rtt: number
    readonly cwnd: number
    readonly bytesTransmitted: number
    readonly bytesReceived: number
    /** Every packet addressed to this stream, ACKs and heartbeats included. */
    readonly packetsReceived: number
    readonly packetsRetransmitted: number
    connect(socket: UDXSocket, remoteId: number, port: number, host: string): void
    setKeepalive(ms: number): void
  }

  export default class UDX {
    createSocket(opts?: { ipv6Only?: boolean; reuseAddress?: boolean }): UDXSocket
    createStream(id: number, opts?: UDXStreamOptions): UDXStream
  }
}
