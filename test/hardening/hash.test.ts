/** hashFile streams in ≤ HASH_READ_BYTES pieces and gives the same digest whatever size hint it gets. */
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HASH_READ_BYTES, hashBytes, hashFile } from '../../src/core/fs/hash.js'
import { tempDir } from '../helpers/common.js'

let work: string
let remove: () => Promise<void>
beforeAll(async () => { ({ dir: work, remove } = await tempDir('hash')) })
afterAll(() => remove())

describe('hashFile', () => {
  it.each([0, 1, 4096, HASH_READ_BYTES - 1, HASH_READ_BYTES, 2 * HASH_READ_BYTES + 3])('a %i-byte file: right digest and size with an exact, small, large or no hint', async (n) => {
    const data = randomBytes(n)
    const file = join(work, `f-${n}`)
    await writeFile(file, data)
    const want = hashBytes(data)
    for (const hint of [n, 0, Math.max(0, n - 1), n + 100, undefined]) {
      const got = await hashFile(file, hint)
      expect(got.size, `hint ${hint}`).toBe(n)
      expect(got.hash.equals(want), `hint ${hint}`).toBe(true)
    }
  })

  it('BLAKE3 of "abc" is the published test vector', () => {
    expect(hashBytes(Buffer.from('abc')).toString('hex')).toBe('6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85')
  })
})
