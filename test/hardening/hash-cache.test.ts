/**
 * The persistent hash cache (binary file in the config dir): what it saves it loads back; a
 * changed size, mtime, ctime or inode is a miss; a damaged, truncated or old-format file (JSON v1,
 * binary v2 without ctime) is an empty cache, never an error or a wrong hash.
 */
import { randomBytes } from 'node:crypto'
import { statSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HashCache, cacheFileFor } from '../../src/core/fs/hash-cache.js'
import { tempDir } from '../helpers/common.js'

let work: string
let remove: () => Promise<void>
beforeAll(async () => { ({ dir: work, remove } = await tempDir('hash-cache')) })
afterAll(() => remove())

describe('HashCache', () => {
  it('round-trips every record through save and load, non-ASCII and long paths included', async () => {
    const file = cacheFileFor(join(work, 'cfg'), 'mirror', '/some/root')
    const data = join(work, 'data.bin')
    await writeFile(data, 'x')
    const st = statSync(data)
    const c = await HashCache.load(file)
    const paths = ['a.txt', 'dir/ü ñ 漢字.png', `${'d/'.repeat(300)}f`]
    const hashes = paths.map(() => randomBytes(32))
    paths.forEach((p, i) => c.set(p, st, hashes[i] as Buffer))
    await c.save()
    const back = await HashCache.load(file)
    paths.forEach((p, i) => expect(back.lookup(p, st)?.equals(hashes[i] as Buffer), p).toBe(true))
    expect(back.lookup('missing', st)).toBeNull()
    // A changed size, mtime, ctime or inode is a miss.
    expect(back.lookup('a.txt', { ...st, size: st.size + 1 } as typeof st)).toBeNull()
    expect(back.lookup('a.txt', { ...st, mtimeMs: st.mtimeMs + 1 } as typeof st)).toBeNull()
    expect(back.lookup('a.txt', { ...st, ctimeMs: st.ctimeMs + 1 } as typeof st)).toBeNull()
    expect(back.lookup('a.txt', { ...st, ino: st.ino + 1 } as typeof st)).toBeNull()
  })

  it('a truncated, damaged or old JSON file loads as an empty cache', async () => {
    const file = join(work, 'c2.bin')
    const st = statSync(file.replace('c2.bin', ''))
    const c = await HashCache.load(file)
    c.set('a', st, randomBytes(32))
    c.set('b', st, randomBytes(32))
    await c.save()
    const good = await readFile(file)
    expect((await HashCache.load(file)).lookup('b', st)).not.toBeNull()

    await writeFile(file, good.subarray(0, good.length - 1))
    const truncated = await HashCache.load(file)
    expect(truncated.lookup('a', st)).toBeNull()
    expect(truncated.lookup('b', st)).toBeNull()

    await writeFile(file, JSON.stringify({ v: 1, e: [['a', st.size, st.mtimeMs, st.ino, 'ab'.repeat(32)]] }))
    expect((await HashCache.load(file)).lookup('a', st)).toBeNull()

    // Version 2 (no ctime), well formed: its records cannot vouch for a file, so none is used.
    const v2 = Buffer.alloc(8 + 2 + 1 + 24 + 32)
    v2.write('ASYNCHC\x02', 0, 'latin1')
    let at = v2.writeUInt16BE(1, 8)
    at += v2.write('a', at, 'utf8')
    at = v2.writeDoubleBE(st.size, at)
    at = v2.writeDoubleBE(st.mtimeMs, at)
    at = v2.writeDoubleBE(st.ino, at)
    v2.fill(0xab, at)
    await writeFile(file, v2)
    expect((await HashCache.load(file)).lookup('a', st)).toBeNull()
    expect(good.subarray(0, 8).toString('latin1')).toBe('ASYNCHC\x03')

    await writeFile(file, randomBytes(500))
    expect((await HashCache.load(file)).lookup('a', st)).toBeNull()
    expect((await HashCache.load(join(work, 'absent.bin'))).lookup('a', st)).toBeNull()
  })
  it('records loaded from the file (kept as offsets into it) mix with new ones: entries, set over, delete, and a second save', async () => {
    const file = join(work, 'c3.bin')
    const data = join(work, 'data3.bin')
    await writeFile(data, 'y')
    const st = statSync(data)
    const first = await HashCache.load(file)
    const h = Array.from({ length: 4 }, () => randomBytes(32))
    ;['a', 'b', 'c', 'ü'].forEach((p, i) => first.set(p, st, h[i] as Buffer))
    await first.save()
    const saved = await readFile(file)

    const c = await HashCache.load(file)
    expect(new Map([...c.entries()].map(([p, x]) => [p, x.toString('hex')]))).toEqual(new Map([['a', h[0]], ['b', h[1]], ['c', h[2]], ['ü', h[3]]].map(([p, x]) => [p, (x as Buffer).toString('hex')])))
    // Nothing changed: nothing is written.
    await writeFile(file, saved)
    await c.save()
    expect((await readFile(file)).equals(saved)).toBe(true)
    // A new hash over a loaded record, a loaded record deleted, one added.
    const nb = randomBytes(32)
    const nd = randomBytes(32)
    c.set('b', st, nb)
    c.delete('c')
    c.set('d', st, nd)
    expect(c.lookup('b', st)?.equals(nb)).toBe(true)
    expect(c.lookup('c', st)).toBeNull()
    await c.save()
    const back = await HashCache.load(file)
    expect(back.lookup('a', st)?.equals(h[0] as Buffer)).toBe(true)
    expect(back.lookup('ü', st)?.equals(h[3] as Buffer)).toBe(true)
    expect(back.lookup('b', st)?.equals(nb)).toBe(true)
    expect(back.lookup('c', st)).toBeNull()
    expect(back.lookup('d', st)?.equals(nd)).toBe(true)
    // retain drops loaded records too; the stamps of kept ones still decide.
    back.retain(new Set(['a']))
    await back.save()
    const last = await HashCache.load(file)
    expect([...last.entries()].map(([p]) => p)).toEqual(['a'])
    expect(last.lookup('a', { ...st, ino: st.ino + 1 } as typeof st)).toBeNull()
  })
})
