/**
 * The object-store seam of scale-out: what an origin, an edge and a `pull --direct` client need
 * of a bucket — get, exists, put, presign — and the retry policy every call goes through. The
 * S3 implementation is s3-store.ts; tests may wrap it (to count requests or cut the bucket off).
 *
 * Retries: network failures, timeouts, 429 and 5xx are retried with jittered exponential backoff
 * until SCALE_S3_RETRY_BUDGET_MS has passed since the first attempt; then the operation fails
 * with ERR_CONNECT ("object store unavailable"). 4xx answers other than 429 fail at once.
 * Messages never carry credentials (the SDK's errors do not; URLs are shown without a query).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { AssetSyncError } from '../../errors.js'
import { SCALE_S3_RETRY_BASE_MS, SCALE_S3_RETRY_BUDGET_MS, SCALE_S3_RETRY_MAX_MS } from '../../limits.js'
import type { BucketLocation } from './location.js'

/** A bucket and prefix, as the origin, the edges and direct clients use it. */
export interface ObjectStore {
  readonly location: BucketLocation
  /** `s3://bucket/prefix` (no credentials). */
  readonly description: string
  /** The object's bytes, or null if there is none. Refuses (ERR_LIMIT) an object over `maxBytes`. */
  get(key: string, maxBytes: number): Promise<Buffer | null>
  /** Whether the object exists (a HEAD request). */
  exists(key: string): Promise<boolean>
  /** Writes the object (whole). `immutable`: content-addressed, may be cached forever. */
  put(key: string, body: Uint8Array, opts?: { immutable?: boolean; contentType?: string }): Promise<void>
  /** A URL that GETs the object without credentials until it expires (`expiresS` seconds). */
  presign(key: string, expiresS: number): Promise<string>
  /** Releases sockets. */
  close(): void
}

/** Counts of what a store did (status, benchmarks, the cost model of docs/scale-out.md). */
export interface StoreStats {
  gets: number
  heads: number
  puts: number
  bytesDown: number
  bytesUp: number
  retries: number
}

/** Whether a failure may go away on its own: network errors, timeouts, throttling, 5xx. */
export function isTransientStoreError(err: unknown): boolean {
  if (err instanceof AssetSyncError) return err.code === 'ERR_CONNECT' || err.code === 'ERR_TIMEOUT'
  const e = err as { name?: string; code?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown; status?: number }
  const status = e?.$metadata?.httpStatusCode ?? e?.status
  if (typeof status === 'number') return status === 429 || status >= 500
  // Configuration, not the network: no credentials, no region, a malformed endpoint.
  if (e?.name === 'CredentialsProviderError' || e?.name === 'TypeError' || /Region is missing|Invalid URL/i.test(String((err as Error)?.message))) return false
  // No HTTP answer at all: refused, reset, timed out, DNS.
  return true
}

export interface RetryOptions {
  /** Total time for all attempts; default SCALE_S3_RETRY_BUDGET_MS. */
  budgetMs?: number
  /** Called before each retry (counts, logs). */
  onRetry?: (err: unknown, attempt: number) => void
  signal?: AbortSignal
}

/**
 * Runs `op` until it succeeds, fails for good, or the budget is spent. `what` names the
 * operation in the final error ("GET chunks/ab12…").
 */
export async function withRetry<T>(what: string, op: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const budget = opts.budgetMs ?? SCALE_S3_RETRY_BUDGET_MS
  const t0 = Date.now()
  for (let attempt = 1; ; attempt++) {
    try {
      return await op()
    } catch (err) {
      if (!isTransientStoreError(err)) throw err
      const base = Math.min(SCALE_S3_RETRY_MAX_MS, SCALE_S3_RETRY_BASE_MS * 2 ** (attempt - 1))
      const wait = base / 2 + Math.random() * base
      if (opts.signal?.aborted || Date.now() - t0 + wait > budget) {
        throw new AssetSyncError('ERR_CONNECT', `object store unavailable: ${what} failed ${attempt} time(s) in ${Math.round((Date.now() - t0) / 1000)} s: ${reasonOf(err)}`, { cause: err })
      }
      opts.onRetry?.(err, attempt)
      await sleep(wait, undefined, { signal: opts.signal }).catch(() => {})
    }
  }
}

/** One short line about a store failure, with no URL query (a presigned URL's signature) in it. */
export function reasonOf(err: unknown): string {
  const e = err as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } }
  const status = e?.$metadata?.httpStatusCode
  const msg = String(e?.message ?? err).replace(/\?[^\s"']*/g, '?…').split('\n')[0] ?? ''
  return `${e?.code ?? e?.name ?? 'error'}${status ? ` (HTTP ${status})` : ''}: ${msg}`.slice(0, 300)
}
