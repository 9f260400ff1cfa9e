/**
 * S3Store: the ObjectStore over the real `@aws-sdk/client-s3`. Endpoint, region and credentials
 * come from the standard AWS environment and config files (AWS_ENDPOINT_URL_S3 /
 * AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and
 * ~/.aws/{config,credentials}); `endpoint` (--s3-endpoint) overrides the endpoint. Addressing is
 * path-style (`endpoint/bucket/key`), which every S3-compatible store speaks.
 *
 * The SDK's own retries are off (maxAttempts 1): every call goes through `withRetry`, so the
 * policy (budget, backoff, which failures count) is one, and visible in `stats`.
 */
import type { S3Client } from '@aws-sdk/client-s3'
import { AssetSyncError } from '../../errors.js'
import { SCALE_S3_REQUEST_TIMEOUT_MS } from '../../limits.js'
import { type BucketLocation, formatLocation } from './location.js'
import { type ObjectStore, type RetryOptions, type StoreStats, withRetry } from './object-store.js'
import { presignGet } from './presign.js'

type Sdk = typeof import('@aws-sdk/client-s3')

export interface S3StoreOptions {
  /** --s3-endpoint: overrides AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. */
  endpoint?: string
  /** Overrides AWS_REGION and the profile's region. */
  region?: string
  /** Explicit credentials (tests); default the SDK's provider chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  /** Per-attempt timeout; default SCALE_S3_REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number
  /** Retry budget per operation (tests shorten it). */
  retryBudgetMs?: number
}

/** The endpoint the environment names, if any (the SDK reads the same variables). */
function envEndpoint(): string | undefined {
  return process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined
}

function checkEndpoint(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new AssetSyncError('ERR_USAGE', `--s3-endpoint must be a URL such as https://s3.example.com, got "${url}"`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new AssetSyncError('ERR_USAGE', `--s3-endpoint must be http(s)://…, got "${u.protocol}"`)
  if (u.username || u.password) throw new AssetSyncError('ERR_USAGE', '--s3-endpoint must not carry credentials: use the AWS environment or profile')
  return url.replace(/\/+$/, '')
}

/** The ObjectStore over `@aws-sdk/client-s3`, path-style, every call through one retry policy. Open with `S3Store.open`. */
export class S3Store implements ObjectStore {
  readonly location: BucketLocation
  readonly description: string
  readonly stats: StoreStats = { gets: 0, heads: 0, puts: 0, bytesDown: 0, bytesUp: 0, retries: 0 }
  readonly #client: S3Client
  readonly #sdk: Sdk
  readonly #endpoint: string | undefined
  readonly #timeoutMs: number
  readonly #retry: RetryOptions

  /**
   * A store for `location`. The region is the environment's or the profile's; with neither (many
   * S3-compatible stores ignore it) it is us-east-1.
   */
  static async open(location: BucketLocation, opts: S3StoreOptions = {}): Promise<S3Store> {
    // The SDK warns on every start under Node 20 (its next major needs 22); assetsync supports 20.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
    // Loaded on use: the SDK costs start-up time that the library's other users never need.
    const sdk = await import('@aws-sdk/client-s3')
    const store = new S3Store(sdk, location, opts, opts.region)
    if (opts.region) return store
    try {
      await store.#client.config.region()
      return store
    } catch {
      store.close()
      return new S3Store(sdk, location, opts, 'us-east-1')
    }
  }

  private constructor(sdk: Sdk, location: BucketLocation, opts: S3StoreOptions, region: string | undefined) {
    this.#sdk = sdk
    this.location = location
    this.description = formatLocation(location)
    const endpoint = opts.endpoint !== undefined ? checkEndpoint(opts.endpoint) : envEndpoint()
    this.#endpoint = endpoint
    this.#timeoutMs = opts.requestTimeoutMs ?? SCALE_S3_REQUEST_TIMEOUT_MS
    this.#retry = { budgetMs: opts.retryBudgetMs, onRetry: () => { this.stats.retries++ } }
    this.#client = new sdk.S3Client({
      forcePathStyle: true,
      maxAttempts: 1,
      // Every object is checked by BLAKE3 (chunks, lists) or its digest (manifests): the SDK's
      // own CRC over each body would be a second pass of CPU for nothing.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(endpoint ? { endpoint } : {}),
      ...(region ? { region } : {}),
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
    })
  }

  async get(key: string, maxBytes: number): Promise<Buffer | null> {
    return withRetry(`GET ${key}`, async () => {
      this.stats.gets++
      try {
        const res = await this.#client.send(new this.#sdk.GetObjectCommand({ Bucket: this.location.bucket, Key: key }), { abortSignal: AbortSignal.timeout(this.#timeoutMs) })
        const len = res.ContentLength
        if (len !== undefined && len > maxBytes) {
          await res.Body?.transformToByteArray().catch(() => {})
          throw new AssetSyncError('ERR_LIMIT', `${this.description}: ${key} is ${len} bytes, over ${maxBytes}`)
        }
        const body = (await res.Body?.transformToByteArray()) ?? new Uint8Array(0)
        const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength) // a view, not a copy
        if (bytes.length > maxBytes) throw new AssetSyncError('ERR_LIMIT', `${this.description}: ${key} is over ${maxBytes} bytes`)
        this.stats.bytesDown += bytes.length
        return bytes
      } catch (err) {
        if (isNotFound(err)) return null
        throw err
      }
    }, this.#retry)
  }

  async exists(key: string): Promise<boolean> {
    return withRetry(`HEAD ${key}`, async () => {
      this.stats.heads++
      try {
        await this.#client.send(new this.#sdk.HeadObjectCommand({ Bucket: this.location.bucket, Key: key }), { abortSignal: AbortSignal.timeout(this.#timeoutMs) })
        return true
      } catch (err) {
        if (isNotFound(err)) return false
        throw err
      }
    }, this.#retry)
  }

  async put(key: string, body: Uint8Array, opts: { immutable?: boolean; contentType?: string } = {}): Promise<void> {
    await withRetry(`PUT ${key}`, async () => {
      this.stats.puts++
      await this.#client.send(new this.#sdk.PutObjectCommand({
        Bucket: this.location.bucket, Key: key, Body: body, ContentLength: body.byteLength,
        ContentType: opts.contentType ?? 'application/octet-stream',
        // Content-addressed objects never change: a CDN may keep them forever.
        CacheControl: opts.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      }), { abortSignal: AbortSignal.timeout(this.#timeoutMs) })
      this.stats.bytesUp += body.byteLength
    }, this.#retry)
  }

  async presign(key: string, expiresS: number): Promise<string> {
    const creds = await this.#client.config.credentials()
    const region = await this.#client.config.region()
    const endpoint = this.#endpoint ?? `https://s3.${region}.amazonaws.com`
    return presignGet({ endpoint, bucket: this.location.bucket, key, region, expiresS, credentials: creds })
  }

  close(): void { this.#client.destroy() }
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } }
  return e?.$metadata?.httpStatusCode === 404 || e?.name === 'NoSuchKey' || e?.name === 'NotFound'
}
