// FolderSource (src/core/server/folder-source.ts): the read path moved out of the session. What a
// reader gives is exactly what its entry's hash describes, or ERR_CHANGED; the one stamp compare
// (src/core/fs/stamp.ts) sees an edit that keeps size and mtime (issue 11: ctime). Real files.
import { mkdir, mkdtemp, open, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { hashBytes } from '../../src/core/fs/hash.js'
import { HashCache } from '../../src/core/fs/hash-cache.js'
import { type FileStamp, sameStamp, stampOf } from '../../src/core/fs/stamp.js'
import { FolderSource } from '../../src/core/server/folder-source.js'
import { SERVER_READ_BYTES } from '../../src/limits.js'

let work: string
let root: string

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'assetsync-folder-source-'))
  root = join(work, 'root')
  await mkdir(join(root, 'sub'), { recursive: true })
})
afterEach(() => rm(work, { recursive: true, force: true }))

async function scanned(): Promise<FolderSource> {
  const s = await FolderSource.open({ root, cacheFile: join(work, 'cache.bin') })
  await s.scan()
  return s
}

const hex = (h: Uint8Array | undefined): string => Buffer.from(h ?? []).toString('hex')

describe('sameStamp', () => {
  const a: FileStamp = { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4 }
  it('compares size, mtime, ctime and inode; two absent files are the same, one absent is not', () => {
    expect(sameStamp(a, { ...a })).toBe(true)
    for (const k of ['size', 'mtimeMs', 'ctimeMs', 'ino'] as const) expect(sameStamp(a, { ...a, [k]: a[k] + 1 }), k).toBe(false)
    expect(sameStamp(null, undefined)).toBe(true)
    expect(sameStamp(a, null)).toBe(false)
    expect(sameStamp(null, a)).toBe(false)
  })
})

describe('FolderSource', () => {
  it('lists, pages and reads the folder; ignored, missing and non-file paths are not found', async () => {
    await writeFile(join(root, 'a.txt'), 'alpha')
    await writeFile(join(root, 'sub', 'b.txt'), 'beta')
    await writeFile(join(root, 'x.swp'), 'ignored by default')
    const s = await scanned()
    expect(s.size).toBe(2)
    const all = await s.page(() => true, '')
    expect(all).toMatchObject({ done: true, entries: [{ path: 'a.txt', size: 5 }, { path: 'sub/b.txt', size: 4 }] })
    const first = await s.page(() => true, '', 1)
    expect(first.entries.map((e) => e.path)).toEqual(['a.txt'])
    expect(first.done).toBe(false)
    expect((await s.page(() => true, 'a.txt', 1)).entries.map((e) => e.path)).toEqual(['sub/b.txt'])
    const r = await s.open('sub/b.txt')
    expect(hex(r?.entry.hash)).toBe(hex(hashBytes(Buffer.from('beta'))))
    const buf = Buffer.alloc(4)
    await r?.read(buf, 0, 4)
    expect(buf.toString()).toBe('beta')
    await r?.close()
    await r?.close() // twice is fine
    expect(await s.open('x.swp')).toBeNull()
    expect(await s.open('missing.txt')).toBeNull()
    expect(await s.open('sub')).toBeNull()
    await s.close()
  })

  it('refuses a symlink that leads out of the root (ERR_PATH_REFUSED)', async () => {
    await writeFile(join(work, 'secret.txt'), 'outside')
    await symlink(join(work, 'secret.txt'), join(root, 'link.txt'))
    const s = await scanned()
    await expect(s.open('link.txt')).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
  })

  it.skipIf(process.platform === 'win32')('answers not-found for a FIFO without blocking', async () => {
    const { execFileSync } = await import('node:child_process')
    execFileSync('mkfifo', [join(root, 'pipe')])
    const s = await scanned()
    expect(await s.open('pipe')).toBeNull() // without O_NONBLOCK, open() would wait for a writer
  })

  it('a file rewritten in place during a transfer fails its last read with ERR_CHANGED', async () => {
    const file = join(root, 'big.bin')
    await writeFile(file, Buffer.alloc(2 * SERVER_READ_BYTES, 1))
    const s = await scanned()
    const r = await s.open('big.bin')
    const buf = Buffer.alloc(SERVER_READ_BYTES)
    await r?.read(buf, 0, SERVER_READ_BYTES)
    const fh = await open(file, 'r+')
    await fh.write(Buffer.alloc(16, 2), 0, 16, SERVER_READ_BYTES) // same size, new bytes
    await fh.close()
    await expect(r?.read(buf, SERVER_READ_BYTES, SERVER_READ_BYTES)).rejects.toMatchObject({ code: 'ERR_CHANGED' })
    await r?.close()
  })

  it('a file that shrank during a transfer fails with ERR_CHANGED', async () => {
    const file = join(root, 'big.bin')
    await writeFile(file, Buffer.alloc(2 * SERVER_READ_BYTES, 1))
    const s = await scanned()
    const r = await s.open('big.bin')
    await writeFile(file, 'short')
    await expect(r?.read(Buffer.alloc(SERVER_READ_BYTES), SERVER_READ_BYTES, SERVER_READ_BYTES)).rejects.toMatchObject({ code: 'ERR_CHANGED' })
    await r?.close()
  })

  it('an edit that keeps size and mtime is still seen (ctime), by the index and by the hash cache', async () => {
    const file = join(root, 'same.txt')
    await writeFile(file, 'AAAA')
    const mtime = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000) // whole seconds: utimes restores it exactly
    await utimes(file, mtime, mtime)
    const s = await scanned()
    const before = await stat(file)
    await new Promise((r) => setTimeout(r, 20)) // let the clock pass the ctime granularity
    const fh = await open(file, 'r+')
    await fh.write('BBBB', 0)
    await fh.close()
    await utimes(file, mtime, mtime) // mtime restored; ctime cannot be
    const after = await stat(file)
    expect([after.size, after.mtimeMs, after.ino]).toEqual([before.size, before.mtimeMs, before.ino])
    expect(after.ctimeMs).not.toBe(before.ctimeMs)
    // The index re-hashes on the next look (a request, or the feed's refresh)...
    expect(hex((await s.get('same.txt'))?.hash)).toBe(hex(hashBytes(Buffer.from('BBBB'))))
    const r = await s.open('same.txt')
    expect(hex(r?.entry.hash)).toBe(hex(hashBytes(Buffer.from('BBBB'))))
    await r?.close()
    // ... and a cache record of the old stamp does not vouch for it.
    const cache = new HashCache(null)
    cache.set('same.txt', before, hashBytes(Buffer.from('AAAA')))
    expect(cache.lookup('same.txt', before)).not.toBeNull()
    expect(cache.lookup('same.txt', after)).toBeNull()
    expect(sameStamp(stampOf(before), stampOf(after))).toBe(false)
  })
})
