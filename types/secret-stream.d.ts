// Minimal types for @hyperswarm/secret-stream (6.x): Noise XX over a byte stream, message-framed.
declare module '@hyperswarm/secret-stream' {
  import { Duplex } from 'node:stream'

  export interface KeyPair { publicKey: Buffer; secretKey: Buffer }

  export interface SecretStreamOptions {
    keyPair?: KeyPair
    /** Only for IK-style patterns; with XX the remote key is learnt in the handshake. */
    remotePublicKey?: Buffer
    pattern?: string
    keepAlive?: number
  }

  /** Each write is one encrypted message; each 'data' event delivers one whole message. */
  export default class NoiseSecretStream extends Duplex {
    constructor(isInitiator: boolean, rawStream: Duplex | null, opts?: SecretStreamOptions)
    static keyPair(seed?: Buffer): KeyPair
    readonly isInitiator: boolean
    readonly rawStream: Duplex
    readonly publicKey: Buffer | null
    readonly remotePublicKey: Buffer | null
    readonly handshakeHash: Buffer | null
    readonly opened: Promise<boolean>
    readonly rawBytesWritten: number
    readonly rawBytesRead: number
    setTimeout(ms: number): void
    setKeepAlive(ms: number): void
  }
}
