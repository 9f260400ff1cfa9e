/**
 * The sweep a pull or watch start makes for temp files a killed run left (removeTempFiles): every
 * temp file in every folder goes, at any depth; resume staging files and everything else stay; and
 * on a tree of more than TEMP_SWEEP_SLICE folders it lets the event loop turn between slices.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { removeTempFiles } from '../../src/core/client/local-writes.js'
import { stagingPathFor } from '../../src/core/delta/staging.js'
import { TEMP_SWEEP_SLICE } from '../../src/limits.js'
import { tempDir } from '../helpers/common.js'
import { filesUnder } from '../helpers/trees.js'

let work: string
let remove: () => Promise<void>
beforeAll(async () => { ({ dir: work, remove } = await tempDir('temp-sweep')) })
afterAll(() => remove())

describe('removeTempFiles', () => {
  it(`removes every temp file in a tree of ${TEMP_SWEEP_SLICE * 2 + 10} folders, keeps staged parts and other files, and yields between slices`, async () => {
    const root = join(work, 'mirror')
    const folders = TEMP_SWEEP_SLICE * 2 + 10
    const keep: string[] = []
    const temps: string[] = []
    // Folders of several depths: f0/, f1/, ..., with every tenth one nested three deep.
    for (let i = 0; i < folders; i++) {
      const rel = i % 10 === 0 ? `f${i}/a/b` : `f${i}`
      mkdirSync(join(root, ...rel.split('/')), { recursive: true })
      writeFileSync(join(root, ...rel.split('/'), 'asset.bin'), `${i}`)
      keep.push(`${rel}/asset.bin`)
      if (i % 3 === 0) {
        writeFileSync(join(root, ...rel.split('/'), `.assetsync-${i.toString(16).padStart(8, '0')}.tmp`), 'partial')
        temps.push(rel)
      }
    }
    writeFileSync(join(root, '.assetsync-0000beef.tmp'), 'partial at the root')
    // Look-alikes that are not ours: kept.
    writeFileSync(join(root, 'assetsync-1.tmp'), 'x')
    writeFileSync(join(root, '.assetsync-notes.txt'), 'x')
    keep.push('assetsync-1.tmp', '.assetsync-notes.txt')
    // A folder with a temp-like name is walked, not removed.
    mkdirSync(join(root, '.assetsync-00000001.tmp'))
    writeFileSync(join(root, '.assetsync-00000001.tmp', 'inside.txt'), 'x')
    writeFileSync(join(root, '.assetsync-00000001.tmp', '.assetsync-00000002.tmp'), 'x')
    keep.push('.assetsync-00000001.tmp/inside.txt')
    // A resume staging file is kept (within its caps).
    const staged = stagingPathFor(join(root, 'f1', 'big.pak'), 'f1/big.pak')
    writeFileSync(staged, 'part')
    keep.push(`f1/${staged.split('/').at(-1)}`)

    let turns = 0
    let counting = true
    const count = (): void => { if (counting) { turns++; setImmediate(count) } }
    setImmediate(count)
    await removeTempFiles(root)
    counting = false

    const left = [...(await filesUnder(root)).keys()].sort()
    expect(temps.length).toBeGreaterThan(TEMP_SWEEP_SLICE / 2)
    expect(left).toEqual(keep.sort())
    // More than two slices of folders: the sweep gave the event loop at least two turns.
    expect(turns).toBeGreaterThanOrEqual(2)
  })

  it('a missing root is nothing to sweep', async () => {
    await expect(removeTempFiles(join(work, 'absent'))).resolves.toBeUndefined()
  })
})
