/**
 * The server's side of feature `manifest-digest` (issue 15): the digest of the listing a set of
 * patterns selects, exactly as a client computes it from the MANIFEST pages it received
 * (the digest of the scale-out manifest object, core/scale/manifest-object.ts: one definition for
 * HEAD, the feed and this feature). A client that saved the digest of its last
 * sync asks whether it still holds; "unchanged" costs one small frame each way instead of the
 * whole listing (~72 bytes per file).
 *
 * The listing is read through the pages MANIFEST itself is answered with (the session's
 * ManifestScanner: the compiled set charged to the connection's memory budget, matching in slices
 * of the server's MatchScheduler, the cost rule; issue 12), so a digest costs the server no more
 * than the listing it replaces, and an asker can make it do no more. The result is kept per source
 * and pattern set while the source's `version` has not moved, so many clients asking about an
 * unchanged tree cost one computation, and concurrent askers share it.
 */
import type { ManifestEntry } from '../../protocol/messages.js'
import { encodeManifest } from '../scale/manifest-object.js'
import type { AssetSource } from './source.js'

/** Pattern sets whose digest is kept per source (a few CI jobs' selections); the oldest goes first. */
const KEPT_PER_SOURCE = 16

/** One page of a listing: MANIFEST_REPLY's entries and `done`. */
export interface ListingPage { entries: ManifestEntry[]; done: boolean }

/** The page of the listing after `after`; null once the asker's connection is gone. */
export type PageFn = (after: string) => Promise<ListingPage | null>

interface Kept { version: number; digest: Promise<Buffer | null> }

const kept = new WeakMap<AssetSource, Map<string, Kept>>()

/**
 * The digest of the listing `page` reads from `source` (`key` names the pattern set: equal keys
 * select equal entries); null when the asker's connection closed meanwhile. Rejects as `page`
 * does (ERR_LIMIT: patterns too costly or over the memory budget; the source gone).
 */
export async function listingDigest(source: AssetSource, key: string, page: PageFn): Promise<Buffer | null> {
  const version = source.version
  if (version === undefined) return compute(page)
  let byKey = kept.get(source)
  if (!byKey) kept.set(source, byKey = new Map())
  const k = byKey.get(key)
  if (k && k.version === version) {
    // Another asker's computation: if it failed or its connection went, this asker computes its own.
    const shared = await k.digest.catch(() => null)
    if (shared) return shared
    return compute(page)
  }
  const digest = compute(page)
  const mine: Kept = { version, digest }
  byKey.delete(key)
  byKey.set(key, mine)
  if (byKey.size > KEPT_PER_SOURCE) byKey.delete(byKey.keys().next().value as string)
  // A failed or abandoned computation is not kept: the next asker tries again.
  const forget = (): void => { if (byKey.get(key) === mine) byKey.delete(key) }
  digest.then((d) => { if (!d) forget() }, forget)
  return digest
}

async function compute(page: PageFn): Promise<Buffer | null> {
  const entries: ManifestEntry[] = []
  let after = ''
  for (;;) {
    const p = await page(after)
    if (!p) return null
    for (const e of p.entries) entries.push(e)
    const last = p.entries.at(-1)
    // An empty page ends a listing, as it does for a client.
    if (p.done || !last) break
    after = last.path
  }
  return encodeManifest(entries).digest
}
