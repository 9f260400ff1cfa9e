/**
 * Chunk planning for the client: given the chunk list a file should have and the local files
 * whose chunk lists are known (the old version of the same path, other files, a staged partial
 * download), decide for each chunk where its bytes come from. Pure logic: no I/O.
 *
 * Per chunk, in this order: (1) the next chunk of the source the previous chunk came from, when it
 * has the same hash (keeps reads sequential and coalescible); (2) the preferred source (the old
 * version of the same path); (3) the first source, in the order given, that has the hash;
 * (4) an earlier chunk of the same target with that hash that is fetched (read back, not fetched
 * twice); (5) fetch. Across a sync (`planSync`), each target becomes a source for the targets
 * after it, so a chunk needed by several files is fetched once, for the first of them.
 */
import { type ChunkList, CHUNK_HASH_BYTES } from './chunk-list.js'

/** A local file (or staged download, or earlier target) and its chunk list. */
export interface ChunkSource {
  /** What the assembler hands to `AssemblyIO.read`: the integration's name for the file. */
  readonly path: string
  readonly list: ChunkList
  /**
   * Set on a target of the same sync: it exists only once that target is assembled and
   * committed. Reading it earlier fails verification and falls back to a fetch.
   */
  readonly pending?: boolean
}

/** `FilePlan.from` values below zero. */
export const FROM_SELF = -1
export const FROM_FETCH = -2

/** Where each chunk of one target comes from. */
export interface FilePlan {
  readonly target: ChunkList
  /** The sources `from` indexes into (shared by all plans of one index). */
  readonly sources: readonly ChunkSource[]
  /** Per target chunk: a source index, FROM_SELF or FROM_FETCH. */
  readonly from: Int32Array
  /**
   * Per target chunk: the offset to read at, in the source (a source index) or in the target
   * itself (FROM_SELF: an earlier, fetched chunk with the same hash); -1 for FROM_FETCH.
   */
  readonly at: Float64Array
  /** Target chunk indices to fetch: each hash once, in file order. */
  readonly fetch: Uint32Array
  readonly copyBytes: number
  readonly selfBytes: number
  readonly fetchBytes: number
  /** Indices of `pending` sources this plan reads from: assemble those targets first. */
  readonly dependsOn: readonly number[]
}

const PACK = 2 ** 32

/** Every source's chunks by hash (the first occurrence in the order sources were added). */
export class ChunkIndex {
  readonly sources: ChunkSource[] = []
  readonly #ids = new Map<ChunkSource, number>()
  /** hash key → source index · 2^32 + chunk index. */
  readonly #first = new Map<string, number>()

  /** Adds a source (again: a no-op); returns its index. */
  add(source: ChunkSource): number {
    let id = this.#ids.get(source)
    if (id !== undefined) return id
    id = this.sources.length
    this.sources.push(source)
    this.#ids.set(source, id)
    const list = source.list
    for (let j = 0; j < list.count; j++) {
      const key = list.chunkKey(j)
      if (!this.#first.has(key)) this.#first.set(key, id * PACK + j)
    }
    return id
  }

  /** The first (source, chunk) with this hash, packed as source · 2^32 + chunk; -1 if none. */
  find(key: string): number {
    return this.#first.get(key) ?? -1
  }
}

/**
 * Plans one target. `preferred` (the old version of the same path) is added to the index if it
 * is not there and wins over other sources that have the same chunk.
 */
export function planFile(target: ChunkList, index: ChunkIndex, preferred?: ChunkSource): FilePlan {
  const n = target.count
  const from = new Int32Array(n)
  const at = new Float64Array(n)
  const fetch: number[] = []
  const sources = index.sources
  const pref = preferred ? index.add(preferred) : -1
  const prefChunks = new Map<string, number>()
  if (preferred) {
    for (let j = preferred.list.count - 1; j >= 0; j--) prefChunks.set(preferred.list.chunkKey(j), j)
  }
  const fetched = new Map<string, number>() // hash key → target offset of its fetched chunk
  const deps = new Set<number>()
  let copyBytes = 0
  let selfBytes = 0
  let fetchBytes = 0
  let prevSrc = -1
  let prevJ = -1
  for (let i = 0; i < n; i++) {
    const len = target.lengths[i]!
    let src = -1
    let j = -1
    if (prevSrc >= 0 && prevJ + 1 < sources[prevSrc]!.list.count && sameHash(target, i, sources[prevSrc]!.list, prevJ + 1)) {
      src = prevSrc
      j = prevJ + 1
    } else {
      const key = target.chunkKey(i)
      const p = pref >= 0 ? prefChunks.get(key) : undefined
      if (p !== undefined) {
        src = pref
        j = p
      } else {
        const found = index.find(key)
        if (found >= 0) {
          src = Math.floor(found / PACK)
          j = found % PACK
        } else {
          const earlier = fetched.get(key)
          if (earlier !== undefined) {
            from[i] = FROM_SELF
            at[i] = earlier
            selfBytes += len
          } else {
            fetched.set(key, target.offsets[i]!)
            from[i] = FROM_FETCH
            at[i] = -1
            fetch.push(i)
            fetchBytes += len
          }
        }
      }
    }
    if (src >= 0) {
      const source = sources[src]!
      from[i] = src
      at[i] = source.list.offsets[j]!
      copyBytes += len
      if (source.pending) deps.add(src)
    }
    prevSrc = src
    prevJ = j
  }
  return { target, sources, from, at, fetch: Uint32Array.from(fetch), copyBytes, selfBytes, fetchBytes, dependsOn: [...deps] }
}

function sameHash(a: ChunkList, i: number, b: ChunkList, j: number): boolean {
  return a.hashes.compare(b.hashes, j * CHUNK_HASH_BYTES, (j + 1) * CHUNK_HASH_BYTES, i * CHUNK_HASH_BYTES, (i + 1) * CHUNK_HASH_BYTES) === 0
}

/** One file of a sync: where it goes, what it should hold, and its old version if there is one. */
export interface SyncTarget {
  readonly path: string
  readonly list: ChunkList
  readonly previous?: ChunkSource
}

/** Plans of a whole sync, in target order (assemble them in that order: see `dependsOn`). */
export interface SyncPlan {
  readonly files: FilePlan[]
  readonly copyBytes: number
  readonly selfBytes: number
  readonly fetchBytes: number
  readonly fetchChunks: number
}

/**
 * Plans several targets against the same local sources. Each planned target is then added as a
 * `pending` source, so a chunk that several targets need is fetched only for the first one.
 */
export function planSync(targets: readonly SyncTarget[], sources: readonly ChunkSource[]): SyncPlan {
  const index = new ChunkIndex()
  for (const s of sources) index.add(s)
  const files: FilePlan[] = []
  let copyBytes = 0
  let selfBytes = 0
  let fetchBytes = 0
  let fetchChunks = 0
  for (const t of targets) {
    const plan = planFile(t.list, index, t.previous)
    files.push(plan)
    copyBytes += plan.copyBytes
    selfBytes += plan.selfBytes
    fetchBytes += plan.fetchBytes
    fetchChunks += plan.fetch.length
    index.add({ path: t.path, list: t.list, pending: true })
  }
  return { files, copyBytes, selfBytes, fetchBytes, fetchChunks }
}
