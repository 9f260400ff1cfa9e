/**
 * The server's side of feature `manifest-digest` (issue 15): the digest of the listing a set of
 * patterns selects, exactly as a client computes it from the MANIFEST pages it received
 * (the digest of the scale-out manifest object, core/scale/manifest-object.ts: one definition for
 * HEAD, the feed and this feature). A client that saved the digest of its last
 * sync asks whether it still holds; "unchanged" costs one small frame each way instead of the
 * whole listing (~72 bytes per file).
 *
 * The listing is read through `AssetSource.page`, the same bounded pages MANIFEST uses, with a
 * turn of the event loop between pages. The result is kept per source and pattern set while the
 * source's `version` has not moved, so many clients asking about an unchanged tree cost one
 * computation, and concurrent askers share it.
 */
import { setImmediate as yieldTurn } from 'node:timers/promises'
import type { ManifestEntry } from '../../protocol/messages.js'
import type { PathMatcher } from '../fs/ignore.js'
import { encodeManifest } from '../scale/manifest-object.js'
import type { AssetSource } from './source.js'

/** Pattern sets whose digest is kept per source (a few CI jobs' selections); the oldest goes first. */
const KEPT_PER_SOURCE = 16

interface Kept { version: number; digest: Promise<Buffer> }

const kept = new WeakMap<AssetSource, Map<string, Kept>>()

/**
 * The digest of the entries of `source` that `match` selects (`key` names the pattern set: equal
 * keys select equal entries). Rejects as `page` does (the source gone, a page over budget).
 */
export function listingDigest(source: AssetSource, match: PathMatcher, key: string): Promise<Buffer> {
  const version = source.version
  if (version === undefined) return compute(source, match)
  let byKey = kept.get(source)
  if (!byKey) kept.set(source, byKey = new Map())
  const k = byKey.get(key)
  if (k && k.version === version) return k.digest
  const digest = compute(source, match)
  byKey.delete(key)
  byKey.set(key, { version, digest })
  if (byKey.size > KEPT_PER_SOURCE) byKey.delete(byKey.keys().next().value as string)
  // A failed computation is not kept: the next asker tries again.
  digest.catch(() => { if (byKey.get(key)?.digest === digest) byKey.delete(key) })
  return digest
}

async function compute(source: AssetSource, match: PathMatcher): Promise<Buffer> {
  const entries: ManifestEntry[] = []
  let after = ''
  for (;;) {
    const page = await source.page(match, after)
    for (const e of page.entries) entries.push(e)
    const last = page.entries.at(-1)
    if (page.done || !last) break
    after = last.path
    await yieldTurn()
  }
  return encodeManifest(entries).digest
}
