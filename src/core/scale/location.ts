/**
 * Where a published tree lives: an S3 bucket and key prefix (`s3://bucket/prefix`), the object
 * keys inside it, and the NATS feed's URL, subject and stream names. Parsing is strict (bad input
 * is ERR_USAGE with the flag's name) and nothing here ever returns credentials for printing.
 *
 * Objects under the prefix (docs/scale-out.md):
 *   chunks/<hex>      one content-defined chunk, named by its BLAKE3 (immutable, cache forever)
 *   lists/<hex>       the chunk list (docs/delta.md §3) of the file content with that BLAKE3
 *   manifests/<hex>   one manifest version, named by the BLAKE3 of its bytes (immutable)
 *   HEAD              the current manifest: written last, after every object it names
 */
import { AssetSyncError } from '../../errors.js'

/** A bucket and a key prefix ("" or ending in "/"). */
export interface BucketLocation {
  readonly bucket: string
  readonly prefix: string
}

/** `s3://bucket[/prefix]` as written (for messages and events; carries no credentials). */
export function formatLocation(loc: BucketLocation): string {
  return `s3://${loc.bucket}${loc.prefix ? `/${loc.prefix.replace(/\/$/, '')}` : ''}`
}

/** Bucket names as S3 allows them (3–63 of a-z 0-9 . -), so a typo fails here, not at the first request. */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/

/** Parses `s3://bucket/prefix` (the prefix may be empty); `flag` names the option in errors. */
export function parseBucketUrl(url: string, flag: string): BucketLocation {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url)
  if (!m || !BUCKET.test(m[1] as string)) {
    throw new AssetSyncError('ERR_USAGE', `${flag} must be s3://bucket/prefix (a bucket of 3-63 characters a-z 0-9 . -), got "${url}"`)
  }
  const raw = (m[2] ?? '').replace(/^\/+|\/+$/g, '')
  if (raw.split('/').some((s) => s === '.' || s === '..') || /[^\x21-\x7e]|\\/.test(raw) || raw.includes('//')) {
    throw new AssetSyncError('ERR_USAGE', `${flag}: the prefix "${raw}" must be printable ASCII without spaces, backslashes, or empty, "." or ".." segments`)
  }
  return { bucket: m[1] as string, prefix: raw ? `${raw}/` : '' }
}

/** The object keys of a location. */
export const keys = {
  chunk: (loc: BucketLocation, hash: Uint8Array): string => `${loc.prefix}chunks/${hex(hash)}`,
  list: (loc: BucketLocation, fileHash: Uint8Array): string => `${loc.prefix}lists/${hex(fileHash)}`,
  manifest: (loc: BucketLocation, digest: Uint8Array): string => `${loc.prefix}manifests/${hex(digest)}`,
  head: (loc: BucketLocation): string => `${loc.prefix}HEAD`,
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

/** A NATS feed: its servers (credentials kept for the client, never shown) and its names. */
export interface FeedLocation {
  /** Server URLs as given (may hold user:password; use `display` in messages). */
  readonly servers: string[]
  /** The same URLs with any user info removed. */
  readonly display: string
}

/** Parses `nats://host:port[,nats://host2:port…]`. */
export function parseFeedUrl(url: string, flag = '--feed'): FeedLocation {
  const servers = url.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  if (servers.length === 0) throw new AssetSyncError('ERR_USAGE', `${flag} must be nats://host:port, got "${url}"`)
  const shown: string[] = []
  for (const s of servers) {
    let u: URL
    try {
      u = new URL(s)
    } catch {
      throw new AssetSyncError('ERR_USAGE', `${flag} must be nats://host:port, got "${redact(s)}"`)
    }
    if ((u.protocol !== 'nats:' && u.protocol !== 'tls:') || !u.hostname) {
      throw new AssetSyncError('ERR_USAGE', `${flag} must be nats://host:port, got "${redact(s)}"`)
    }
    shown.push(`${u.protocol}//${u.host}`)
  }
  return { servers, display: shown.join(',') }
}

/** A URL with its user info (user:password@) removed. */
export function redact(url: string): string {
  return url.replace(/^([a-z0-9+.-]+:\/\/)[^@/]*@/i, '$1')
}

/**
 * The feed's name for a location: bucket and prefix with every character outside [A-Za-z0-9-]
 * written as `_` + two hex digits, so distinct locations never share a subject or a stream.
 */
export function feedName(loc: BucketLocation): string {
  const s = `${loc.bucket}/${loc.prefix.replace(/\/$/, '')}`.replace(/\/$/, '')
  return s.replace(/[^A-Za-z0-9-]/g, (c) => `_${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/** NATS subject of a location's change batches: `assetsync.<name>.changes`. */
export function feedSubject(loc: BucketLocation): string {
  return `assetsync.${feedName(loc)}.changes`
}

/** JetStream stream holding that subject. */
export function feedStream(loc: BucketLocation): string {
  return `ASSETSYNC_${feedName(loc)}`
}
