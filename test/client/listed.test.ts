/**
 * The record of what the server listed into a mirror (src/core/client/listed.ts, issue 11): it
 * round-trips, and anything but a whole, unaltered file loads as empty and damaged ("delete
 * nothing"); a missing file is simply empty.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ListedRecord } from '../../src/core/client/listed.js'
import { tempDir } from '../helpers/common.js'

let dir: string
let remove: () => Promise<void>
beforeAll(async () => { ({ dir, remove } = await tempDir('listed')) })
afterAll(async () => { await remove?.() })

const paths = ['a.txt', 'tex/ü 日本.png', 'deep/'.repeat(30) + 'x.bin']

async function saved(name: string): Promise<string> {
  const file = join(dir, name, 'listed.bin')
  const r = await ListedRecord.load(file)
  for (const p of paths) r.add(p)
  await r.save()
  return file
}

describe('ListedRecord', () => {
  it('round-trips; a missing file is empty and not damaged', async () => {
    const file = await saved('ok')
    const r = await ListedRecord.load(file)
    expect(r.damaged).toBe(false)
    expect([...r.paths()].sort()).toEqual([...paths].sort())
    const none = await ListedRecord.load(join(dir, 'nope', 'listed.bin'))
    expect(none).toMatchObject({ damaged: false, size: 0 })
  })

  it.each([
    ['truncated', (b: Buffer) => b.subarray(0, b.length - 5)],
    ['a flipped byte in a path', (b: Buffer) => { b[20] = (b[20] as number) ^ 1; return b }],
    ['a flipped checksum byte', (b: Buffer) => { b[b.length - 1] = (b[b.length - 1] as number) ^ 1; return b }],
    ['another header', (b: Buffer) => { b[0] = 0; return b }],
    ['empty', () => Buffer.alloc(0)],
    ['bytes appended', (b: Buffer) => Buffer.concat([b, Buffer.from('x')])],
  ])('%s: loads empty and damaged', async (name, damage) => {
    const file = await saved(name.replace(/ /g, '-'))
    await writeFile(file, damage(await readFile(file)))
    const r = await ListedRecord.load(file)
    expect(r.damaged).toBe(true)
    expect(r.size).toBe(0)
  })
})
