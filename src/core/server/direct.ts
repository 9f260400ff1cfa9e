/**
 * The server's answer to DIRECT (`pull --direct`, docs/protocol.md §4.7): where a client may GET
 * chunk and list objects of the server's S3 origin itself. An edge or a publishing origin has a
 * DirectProvider; a plain folder server has none and answers ERR_NOT_FOUND.
 */
import { DIRECT_URL_EXPIRES_S } from '../../limits.js'
import type { DirectKey } from '../../protocol/messages.js'
import { keys as objectKeys } from '../scale/location.js'
import type { ObjectStore } from '../scale/object-store.js'

export interface DirectProvider {
  /** `s3://bucket/prefix`. */
  readonly store: string
  /** One presigned GET URL per key, in order, valid `expires` seconds; expires 0 and no URLs: clients use their own credentials. */
  urls(keys: readonly DirectKey[]): Promise<{ expires: number; urls: string[] }>
}

/** Hands out presigned URLs of `store`'s objects (or none when `presign` is false). */
export function bucketDirect(store: ObjectStore, opts: { presign?: boolean; expiresS?: number } = {}): DirectProvider {
  const expires = opts.expiresS ?? DIRECT_URL_EXPIRES_S
  return {
    store: store.description,
    async urls(keys) {
      if (opts.presign === false) return { expires: 0, urls: [] }
      const loc = store.location
      const urls = await Promise.all(keys.map((k) => store.presign(k.kind === 'chunk' ? objectKeys.chunk(loc, k.hash) : objectKeys.list(loc, k.hash), expires)))
      return { expires, urls }
    },
  }
}
