/** The planner (sources, dedup) and the assembler (verification, nothing visible on failure), on real files. */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type FetchChunk, assemble, incomingFileIO } from '../../src/core/delta/assemble.js'
import { CHUNK_HASH_BYTES, ChunkList, chunkBytes, hashKey } from '../../src/core/delta/chunk-list.js'
import { ChunkIndex, FROM_FETCH, FROM_SELF, type FilePlan, planFile, planSync } from '../../src/core/delta/plan.js'
import { IncomingFile } from '../../src/core/fs/atomic-file.js'
import { AssetSyncError } from '../../src/errors.js'
import { concat, seededBytes } from './support.js'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'assetsync-plan-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

/** A synthetic list: chunk i has hash byte `ids[i]` repeated and length 16 KiB. */
function synthetic(ids: number[]): ChunkList {
  const hashes = Buffer.alloc(ids.length * CHUNK_HASH_BYTES)
  ids.forEach((id, i) => hashes.fill(id, i * CHUNK_HASH_BYTES, (i + 1) * CHUNK_HASH_BYTES))
  const lengths = Uint32Array.from(ids, () => 16384)
  return new ChunkList(ids.length * 16384, Buffer.alloc(32, 0xee), lengths, hashes)
}

/** A fake server: hands out chunks of the given contents by hash, counting requests. */
function server(...contents: Uint8Array[]): { fetch: FetchChunk; requests: number; bytes: number } {
  const byHash = new Map<string, Uint8Array>()
  for (const c of contents) {
    const list = chunkBytes(c)
    for (let i = 0; i < list.count; i++) byHash.set(list.chunkKey(i), c.subarray(list.offsets[i], list.offsets[i]! + list.lengths[i]!))
  }
  const s = {
    requests: 0,
    bytes: 0,
    fetch: async (hash: Buffer) => {
      const b = byHash.get(hashKey(hash))
      if (!b) throw new Error('server has no such chunk')
      s.requests++
      s.bytes += b.length
      return b
    },
  }
  return s
}

const meta = (content: Uint8Array, list: ChunkList) => ({ hash: list.hash, size: content.length, mode: 0o644, mtime: 1_700_000_000_000 })

/** Assembles `plan` into `final` through an IncomingFile; commits on success, discards on failure. */
async function assembleTo(final: string, content: Uint8Array, plan: FilePlan, fetch: FetchChunk, resolve?: (s: string) => string) {
  const file = await IncomingFile.create(final, meta(content, plan.target))
  const io = incomingFileIO(file, resolve)
  try {
    const result = await assemble(plan, io, fetch)
    await io.close()
    await file.commit()
    return result
  } catch (err) {
    await io.close()
    await file.discard()
    throw err
  }
}

describe('planFile', () => {
  it('copies everything from an identical old version and fetches nothing', () => {
    const list = chunkBytes(seededBytes(1024 * 1024, 1))
    const plan = planFile(list, new ChunkIndex(), { path: 'old', list })
    expect(plan.fetch.length).toBe(0)
    expect(plan.copyBytes).toBe(list.size)
    expect([...plan.at]).toEqual([...list.offsets])
  })

  it('fetches a chunk needed several times once, then reads it back from the target', () => {
    const plan = planFile(synthetic([1, 2, 1, 3, 2, 1]), new ChunkIndex())
    expect([...plan.fetch]).toEqual([0, 1, 3])
    expect([...plan.from]).toEqual([FROM_FETCH, FROM_FETCH, FROM_SELF, FROM_FETCH, FROM_SELF, FROM_SELF])
    expect([...plan.at]).toEqual([-1, -1, 0, -1, 16384, 0])
    expect(plan.fetchBytes).toBe(3 * 16384)
    expect(plan.selfBytes).toBe(3 * 16384)
  })

  it('prefers the old version of the same path, then sources in the order given, and keeps runs going', () => {
    const index = new ChunkIndex()
    const a = { path: 'a', list: synthetic([1, 2, 3, 4]) }
    const b = { path: 'b', list: synthetic([9, 3, 4, 5]) }
    index.add(a)
    index.add(b)
    const byOrder = planFile(synthetic([3, 4, 5]), index)
    expect(byOrder.from[0]).toBe(0) // a has 3 first
    expect(byOrder.from[1]).toBe(0) // ... and 4 right after it
    expect(byOrder.from[2]).toBe(1) // only b has 5
    const preferred = planFile(synthetic([3, 4, 5]), index, b)
    expect([...preferred.from]).toEqual([1, 1, 1])
    expect([...preferred.at]).toEqual([16384, 32768, 49152])
    // After a chunk from b, its next chunk continues the run even though a has it too.
    const run = planFile(synthetic([9, 3]), index)
    expect([...run.from]).toEqual([1, 1])
  })

  it('plans a sync so that a chunk several targets need is fetched once', () => {
    const shared = seededBytes(1024 * 1024, 3)
    const x = concat(seededBytes(100 * 1024, 4), shared)
    const y = concat(shared, seededBytes(50 * 1024, 5))
    const lx = chunkBytes(x)
    const ly = chunkBytes(y)
    const sync = planSync([{ path: 'x', list: lx }, { path: 'y', list: ly }, { path: 'x2', list: lx }], [])
    const [px, py, px2] = sync.files
    expect(px!.fetch.length).toBe(lx.count)
    expect(py!.copyBytes).toBeGreaterThan(700 * 1024) // y's middle chunks come from x
    expect(py!.dependsOn).toEqual([0])
    expect(px2!.fetch.length).toBe(0) // a copy of x is all local
    expect(sync.fetchBytes).toBe(px!.fetchBytes + py!.fetchBytes)
    expect(sync.fetchBytes).toBeLessThan(x.length + y.length - 700 * 1024)
  })
})

describe('assemble', () => {
  const old = concat(seededBytes(2 * 1024 * 1024, 10), new Uint8Array(1024 * 1024), seededBytes(300 * 1024, 11))

  it('writes a new version from the old one plus the changed chunks, verified', async () => {
    const oldPath = join(dir, 'pack-old.bin')
    await writeFile(oldPath, old)
    const edited = old.slice()
    edited[1_500_000] = edited[1_500_000]! ^ 1
    const next = concat(seededBytes(5000, 12), edited) // and 5000 bytes inserted at the front
    const list = chunkBytes(next)
    const plan = planFile(list, new ChunkIndex(), { path: oldPath, list: chunkBytes(old) })
    const s = server(next)
    const final = join(dir, 'pack.bin')
    const result = await assembleTo(final, next, plan, s.fetch)
    expect(Buffer.compare(await readFile(final), next)).toBe(0)
    expect(result.fallbacks).toBe(0)
    expect(result.fetchedBytes).toBe(s.bytes)
    expect(s.requests).toBe(plan.fetch.length)
    expect(s.requests).toBeLessThanOrEqual(4) // the front chunk, the edited one, and a boundary or two
    expect(s.bytes).toBeLessThan(600 * 1024)
    expect(result.copiedBytes + result.selfBytes + result.fetchedBytes).toBe(next.length)
  })

  it('reads back repeated chunks (a run of zeros) instead of fetching them again', async () => {
    const list = chunkBytes(old)
    const plan = planFile(list, new ChunkIndex())
    const s = server(old)
    const result = await assembleTo(join(dir, 'zeros.bin'), old, plan, s.fetch)
    expect(result.selfBytes).toBeGreaterThanOrEqual(3 * 192 * 1024)
    expect(result.fetchedBytes).toBe(old.length - result.selfBytes)
    expect(Buffer.compare(await readFile(join(dir, 'zeros.bin')), old)).toBe(0)
  })

  it('fetches a local chunk whose source changed since its list was made', async () => {
    const src = join(dir, 'changing.bin')
    await writeFile(src, old)
    const plan = planFile(chunkBytes(old), new ChunkIndex(), { path: src, list: chunkBytes(old) })
    const changed = old.slice()
    changed[100] = changed[100]! ^ 0xff
    await writeFile(src, changed.subarray(0, old.length - 1000)) // changed and shorter
    const s = server(old)
    const result = await assembleTo(join(dir, 'from-changing.bin'), old, plan, s.fetch)
    expect(result.fallbacks).toBe(2) // the first chunk and the cut-off last one
    expect(s.requests).toBe(2)
    expect(Buffer.compare(await readFile(join(dir, 'from-changing.bin')), old)).toBe(0)
  })

  it('refuses a fetched chunk with the wrong hash and leaves nothing visible', async () => {
    const sub = await mkdtemp(join(dir, 'bad-chunk-'))
    const next = seededBytes(700 * 1024, 20)
    const list = chunkBytes(next)
    const s = server(next)
    let n = 0
    const lying: FetchChunk = async (hash, length) => {
      const b = Buffer.from(await s.fetch(hash, length))
      if (++n === 3) b[10] = b[10]! ^ 1
      return b
    }
    const err = await assembleTo(join(sub, 'x.bin'), next, planFile(list, new ChunkIndex()), lying).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AssetSyncError)
    expect((err as AssetSyncError).code).toBe('ERR_INTEGRITY')
    expect((err as Error).message).toMatch(/chunk 2 .* does not match/)
    expect(await readdir(sub)).toEqual([])
  })

  it('refuses a list whose whole-file hash is wrong and leaves the old version in place', async () => {
    const sub = await mkdtemp(join(dir, 'bad-whole-'))
    const final = join(sub, 'x.bin')
    await writeFile(final, 'old version')
    const next = seededBytes(500 * 1024, 21)
    const good = chunkBytes(next)
    const wrong = new ChunkList(good.size, Buffer.alloc(32, 7), good.lengths, good.hashes)
    const err = await assembleTo(final, next, planFile(wrong, new ChunkIndex()), server(next).fetch).catch((e: unknown) => e)
    expect((err as AssetSyncError).code).toBe('ERR_INTEGRITY')
    expect((err as Error).message).toMatch(/assembled file .* does not match/)
    expect(await readdir(sub)).toEqual(['x.bin'])
    expect(await readFile(final, 'utf8')).toBe('old version')
  })

  it('falls back to fetching from a pending target that is not there yet', async () => {
    const a = seededBytes(300 * 1024, 30)
    const la = chunkBytes(a)
    const sync = planSync([{ path: join(dir, 'not-yet-a'), list: la }, { path: join(dir, 'b-copy'), list: la }], [])
    const s = server(a)
    const result = await assembleTo(join(dir, 'b-copy'), a, sync.files[1]!, s.fetch)
    expect(result.fallbacks).toBe(la.count)
    expect(s.bytes).toBe(a.length)
  })
})
