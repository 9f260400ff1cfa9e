/**
 * The identity keypair type of assetsync's public API. Our own, not @hyperswarm/secret-stream's:
 * that package ships no types, so a signature naming its KeyPair would fail a user's
 * `tsc --strict` with TS7016. Structurally the same (Noise static keypair, Ed25519/X25519 bytes).
 */

/** A Noise static keypair: the server's persistent identity. */
export interface KeyPair {
  /** 32 bytes; clients pin it (hex) as the server key. */
  publicKey: Buffer
  /** 64 bytes; never leaves the machine. */
  secretKey: Buffer
}
