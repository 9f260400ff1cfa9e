/**
 * What a mirror folder already holds, for delta transfers (docs/delta.md §7): files by content
 * hash (from the hash cache: a rename's or a copy's source is copied locally, not downloaded) and
 * the cached chunk lists of its files (old versions offered to the planner). Every answer is
 * checked against a fresh lstat and the stamp the cache recorded; a stale one is skipped, and
 * whatever is taken is verified again when it is copied or assembled.
 */
import type { Stats } from 'node:fs'
import { lstatSync } from 'node:fs'
import { join } from 'node:path'
import type { ChunkList } from '../delta/chunk-list.js'
import { ChunkListCache, listCacheFileFor } from '../delta/list-cache.js'
import type { ChunkSource } from '../delta/plan.js'
import type { HashCache } from '../fs/hash-cache.js'
import { equalHash } from '../fs/hash.js'
import { DeltaContext, type LocalFile } from './delta-download.js'

/** A regular file's lstat, or null (synchronous: one syscall, as the mirror's own lookups). */
function regularFile(path: string): Stats | null {
  try {
    const st = lstatSync(path, { throwIfNoEntry: false })
    return st?.isFile() ? st : null
  } catch {
    return null
  }
}

export class LocalContent {
  readonly #root: string
  readonly #hashes: HashCache
  readonly #lists: ChunkListCache
  /** Wire paths by content hash (hex), built from the hash cache when first needed. */
  #byHash: Map<string, string[]> | null = null

  constructor(root: string, hashes: HashCache, lists: ChunkListCache) {
    this.#root = root
    this.#hashes = hashes
    this.#lists = lists
  }

  /** The mirror folder `root`'s content, with its chunk-list cache loaded from `configDirectory`. */
  static async load(configDirectory: string, root: string, hashes: HashCache): Promise<LocalContent> {
    return new LocalContent(root, hashes, await ChunkListCache.load(listCacheFileFor(configDirectory, 'mirror', root)))
  }

  /** Saves the chunk-list cache (failures ignored: it is only a cache). */
  save(): Promise<void> { return this.#lists.save() }

  /** A new context for one sync or watch batch: these local sources, shared by its downloads. */
  context(): DeltaContext {
    return new DeltaContext({
      lists: this.#lists,
      copyOf: (hash, except) => this.copyOf(hash, except),
      cachedSources: () => this.cachedSources(),
    })
  }

  /** A local file (other than `except`) whose cached hash is `hash` and whose stamp still vouches for it. */
  copyOf(hash: Uint8Array, except: string): LocalFile | null {
    if (!this.#byHash) {
      this.#byHash = new Map()
      for (const [wire, h] of this.#hashes.entries()) this.#index(wire, h)
    }
    for (const wire of this.#byHash.get(Buffer.from(hash).toString('hex')) ?? []) {
      if (wire === except) continue
      const full = join(this.#root, ...wire.split('/'))
      const st = regularFile(full)
      if (st && equalHash(this.#hashes.lookup(wire, st), hash)) return { path: full, wire, st }
    }
    return null
  }

  /** Local files whose chunk lists are cached and still current, as planner sources. */
  cachedSources(): ChunkSource[] {
    const out: ChunkSource[] = []
    for (const wire of [...this.#lists.paths()]) {
      const full = join(this.#root, ...wire.split('/'))
      const st = regularFile(full)
      const list = st ? this.#lists.lookup(wire, st) : null
      if (list) out.push({ path: full, list })
    }
    return out
  }

  /** A file was installed with `hash` (and `list`, if it was assembled from one) and stamp `st`. */
  installed(wire: string, st: Stats, hash: Buffer, list: ChunkList | null | undefined): void {
    this.#index(wire, hash)
    if (list) this.#lists.set(wire, st, list)
  }

  #index(wire: string, hash: Buffer): void {
    if (!this.#byHash) return
    const key = hash.toString('hex')
    const wires = this.#byHash.get(key)
    if (!wires) this.#byHash.set(key, [wire])
    else if (!wires.includes(wire)) wires.push(wire)
  }
}
