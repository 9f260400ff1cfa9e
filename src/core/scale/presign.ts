/**
 * Presigned GET URLs (AWS Signature Version 4, query-string authentication), path-style. The
 * SDK's presigner is a separate package; this is the documented algorithm ("Authenticating
 * Requests: Using Query Parameters", AWS S3 API reference) over node:crypto, checked against a
 * real S3 API server in test/scale. A URL grants GET of one object until it expires; it carries
 * no secret, but it is a capability: it is handed out only inside an authenticated connection.
 */
import { createHash, createHmac } from 'node:crypto'

export interface PresignInput {
  /** http(s)://host[:port][/base], without a trailing slash. */
  endpoint: string
  bucket: string
  key: string
  region: string
  expiresS: number
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  /** The signing time (tests); default now. */
  now?: Date
}

/** RFC 3986 unreserved characters stay; everything else is %XX (S3: "/" kept in the path). */
function uriEncode(s: string, keepSlash: boolean): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(keepSlash ? /%2F/g : /$^/, '/')
}

const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest()

/** A URL that GETs `bucket/key` (path-style) without further credentials for `expiresS` seconds. */
export function presignGet(p: PresignInput): string {
  const url = new URL(p.endpoint)
  const base = url.pathname.replace(/\/+$/, '')
  const path = `${base}/${uriEncode(p.bucket, false)}/${uriEncode(p.key, true)}`
  return signedUrl({ protocol: url.protocol, host: url.host, path, region: p.region, expiresS: p.expiresS, credentials: p.credentials, now: p.now })
}

/** What `signedUrl` signs: a GET of `path` (already URI-encoded) on `host`. */
export interface SignInput {
  protocol: string
  /** host[:port] exactly as the Host header will carry it. */
  host: string
  path: string
  region: string
  expiresS: number
  credentials: PresignInput['credentials']
  now?: Date
}

/** SigV4 query authentication of a GET (signed header: host; payload: UNSIGNED-PAYLOAD). */
export function signedUrl(p: SignInput): string {
  const now = p.now ?? new Date()
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '') // 20260101T000000Z
  const day = amzDate.slice(0, 8)
  const scope = `${day}/${p.region}/s3/aws4_request`
  const query: [string, string][] = [
    ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
    ['X-Amz-Credential', `${p.credentials.accessKeyId}/${scope}`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(Math.max(1, Math.min(604_800, Math.floor(p.expiresS))))],
    ['X-Amz-SignedHeaders', 'host'],
  ]
  if (p.credentials.sessionToken) query.push(['X-Amz-Security-Token', p.credentials.sessionToken])
  const canonicalQuery = query
    .map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`).join('&')
  const canonicalRequest = ['GET', p.path, canonicalQuery, `host:${p.host}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n')
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n')
  const key = hmac(hmac(hmac(hmac(`AWS4${p.credentials.secretAccessKey}`, day), p.region), 's3'), 'aws4_request')
  const signature = createHmac('sha256', key).update(toSign).digest('hex')
  return `${p.protocol}//${p.host}${p.path}?${canonicalQuery}&X-Amz-Signature=${signature}`
}
