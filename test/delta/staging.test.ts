/** Resume staging: an interrupted download's written part is kept, reused for the rest, and bounded. */
import { mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { assemble, incomingFileIO } from '../../src/core/delta/assemble.js'
import { chunkBytes, hashKey } from '../../src/core/delta/chunk-list.js'
import { ChunkIndex, planFile } from '../../src/core/delta/plan.js'
import {
  STAGE_PREFIX, discardStaged, isStagingName, stagedSource, stagingPathFor, stashPartial, sweepStaging,
} from '../../src/core/delta/staging.js'
import { IncomingFile, isTempName } from '../../src/core/fs/atomic-file.js'
import { DELTA_STAGE_MAX_AGE_MS, DELTA_STAGE_MAX_FILES, DELTA_STAGE_MIN_BYTES } from '../../src/limits.js'
import { seededBytes } from './support.js'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'assetsync-stage-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

describe('staging names', () => {
  it('are temp names beside the target, one per wire path', () => {
    const p = stagingPathFor('/out/levels/pack.bin', 'levels/pack.bin')
    expect(p).toMatch(/^\/out\/levels\/\.assetsync-stage-[0-9a-f]{16}\.tmp$/)
    const name = p.slice('/out/levels/'.length)
    expect(isStagingName(name)).toBe(true)
    expect(isTempName(name)).toBe(true)
    expect(stagingPathFor('/out/levels/pack.bin', 'levels/pack.bin')).toBe(p)
    expect(stagingPathFor('/out/levels/pack.bin', 'levels/other.bin')).not.toBe(p)
    expect(isStagingName('.assetsync-0123456789ab0001.tmp')).toBe(false)
    expect(isStagingName(`${STAGE_PREFIX}../x.tmp`)).toBe(false)
  })
})

describe('an interrupted download', () => {
  const content = seededBytes(DELTA_STAGE_MIN_BYTES + 3 * 1024 * 1024, 40)
  const list = chunkBytes(content)
  const meta = { hash: list.hash, size: content.length, mode: 0o644, mtime: 1_700_000_000_000 }

  it('is staged and only the rest is fetched on the next attempt', async () => {
    const final = join(dir, 'pack.bin')
    const stage = stagingPathFor(final, 'pack.bin')
    // First attempt: the connection drops after 5 MiB of chunks.
    const byHash = new Map<string, Uint8Array>()
    for (let i = 0; i < list.count; i++) byHash.set(list.chunkKey(i), content.subarray(list.offsets[i], list.offsets[i]! + list.lengths[i]!))
    let served = 0
    const dropping = async (hash: Buffer): Promise<Uint8Array> => {
      if (served >= 5 * 1024 * 1024) throw new Error('connection lost')
      const b = byHash.get(hashKey(hash))!
      served += b.length
      return b
    }
    const first = await IncomingFile.create(final, meta)
    const io = incomingFileIO(first)
    await expect(assemble(planFile(list, new ChunkIndex()), io, dropping)).rejects.toThrow(/connection lost/)
    await io.close()
    const written = first.written
    expect(written).toBeGreaterThanOrEqual(5 * 1024 * 1024)
    // The integration stashes the temp file, then discards the IncomingFile (its unlink of the
    // old temp name finds nothing: the file was renamed).
    expect(await stashPartial(first.tempPath, written, stage)).toBe(true)
    await first.discard()
    expect(await readdir(dir)).toEqual([stage.slice(dir.length + 1)])
    expect((await stat(stage)).size).toBe(written)

    // Second attempt: the staged file is one more source; only the rest is fetched.
    const source = await stagedSource(stage)
    expect(source).not.toBeNull()
    const plan = planFile(list, new ChunkIndex(), source!)
    let fetched = 0
    const second = await IncomingFile.create(final, meta)
    const io2 = incomingFileIO(second)
    const result = await assemble(plan, io2, async (hash) => {
      const b = byHash.get(hashKey(hash))!
      fetched += b.length
      return b
    })
    await io2.close()
    await second.commit()
    await discardStaged(stage)
    expect(Buffer.compare(await readFile(final), content)).toBe(0)
    expect(result.copiedBytes).toBeGreaterThan(written - 256 * 1024) // all but the cut-off last chunk
    expect(fetched).toBeLessThan(content.length - written + 256 * 1024)
    expect(await readdir(dir)).toEqual(['pack.bin'])
  })

  it('is not staged below the minimum size, and a failed stash removes the temp file', async () => {
    const sub = await mkdtemp(join(dir, 'small-'))
    const temp = join(sub, '.assetsync-00000000000b0001.tmp')
    await writeFile(temp, content.subarray(0, 1024 * 1024))
    expect(await stashPartial(temp, 1024 * 1024, stagingPathFor(join(sub, 'x'), 'x'))).toBe(false)
    await writeFile(temp, content.subarray(0, 1024))
    expect(await stashPartial(temp, DELTA_STAGE_MIN_BYTES, stagingPathFor(join(sub, 'x'), 'x'))).toBe(false) // shorter than claimed
    expect(await readdir(sub)).toEqual([])
    await expect(stashPartial(temp, DELTA_STAGE_MIN_BYTES, join(sub, 'not-a-stage-name'))).rejects.toThrow(/not a staging path/)
    await expect(stashPartial(temp, DELTA_STAGE_MIN_BYTES, stagingPathFor(join(dir, 'elsewhere'), 'x'))).rejects.toThrow(/not a staging path/)
  })

  it('is not offered when it is a symlink, empty or too old (then it is removed)', async () => {
    const sub = await mkdtemp(join(dir, 'offer-'))
    const stage = stagingPathFor(join(sub, 'x'), 'x')
    expect(await stagedSource(stage)).toBeNull()
    await writeFile(join(sub, 'target'), 'secret')
    await symlink(join(sub, 'target'), stage)
    expect(await stagedSource(stage)).toBeNull()
    await rm(stage)
    await writeFile(stage, '')
    expect(await stagedSource(stage)).toBeNull()
    await writeFile(stage, 'partial bytes')
    expect((await stagedSource(stage))?.list.size).toBe(13)
    expect(await stagedSource(stage, Date.now() + DELTA_STAGE_MAX_AGE_MS + 60_000)).toBeNull()
    expect(await readdir(sub)).toEqual(['target'])
  })
})

describe('sweepStaging', () => {
  it('keeps at most the newest DELTA_STAGE_MAX_FILES, drops old ones, and leaves other files alone', async () => {
    const root = await mkdtemp(join(dir, 'sweep-'))
    await mkdir(join(root, 'a', 'b'), { recursive: true })
    const now = Date.now()
    const staged: string[] = []
    for (let i = 0; i < DELTA_STAGE_MAX_FILES + 3; i++) {
      const p = stagingPathFor(join(root, i % 2 ? 'a/b' : 'a', `f${i}`), `f${i}`)
      await writeFile(p, `partial ${i}`)
      const t = (now - (100 + i) * 1000) / 1000 // f0 newest
      await utimes(p, t, t)
      staged.push(p)
    }
    const old = stagingPathFor(join(root, 'old'), 'old')
    await writeFile(old, 'stale')
    const t = (now - DELTA_STAGE_MAX_AGE_MS - 1000) / 1000
    await utimes(old, t, t)
    await writeFile(join(root, 'a', 'keep.bin'), 'data')
    await writeFile(join(root, '.assetsync-0000000000000001.tmp'), 'plain temp')
    const r = await sweepStaging(root, now)
    expect(r).toEqual({ kept: DELTA_STAGE_MAX_FILES, keptBytes: expect.any(Number), removed: 4 })
    const exists = async (p: string) => stat(p).then(() => true, () => false)
    for (let i = 0; i < staged.length; i++) expect(await exists(staged[i]!), `f${i}`).toBe(i < DELTA_STAGE_MAX_FILES)
    expect(await exists(old)).toBe(false)
    expect(await exists(join(root, 'a', 'keep.bin'))).toBe(true)
    expect(await exists(join(root, '.assetsync-0000000000000001.tmp'))).toBe(true)
  })
})
