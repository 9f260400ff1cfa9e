/**
 * The one atomic-write helper (src/core/fs/atomic-write.ts) and its users: the identity and
 * known-servers files (keys.ts) and the hash cache. Real files in temp folders.
 */
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTemp, isTempName, tempPathFor, writeFileAtomic } from '../../src/core/fs/atomic-write.js'
import { HashCache } from '../../src/core/fs/hash-cache.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import { KnownServers, loadIdentity } from '../../src/core/fs/keys.js'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'assetsync-atomic-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const temps = async (d: string): Promise<string[]> => (await readdir(d)).filter(isTempName)
const isRoot = process.getuid?.() === 0

describe('writeFileAtomic', () => {
  it('creates a file with mode 0600 by default, or the mode given, and leaves no temp file', async () => {
    const sub = await mkdtemp(join(dir, 'new-'))
    await writeFileAtomic(join(sub, 'a'), 'hello\n')
    await writeFileAtomic(join(sub, 'b'), Buffer.from([1, 2, 3]), { mode: 0o640, fsync: false })
    expect(await readFile(join(sub, 'a'), 'utf8')).toBe('hello\n')
    expect(await readFile(join(sub, 'b'))).toEqual(Buffer.from([1, 2, 3]))
    expect((await stat(join(sub, 'a'))).mode & 0o777).toBe(0o600)
    expect((await stat(join(sub, 'b'))).mode & 0o777 & ~process.umask()).toBe(0o640 & ~process.umask())
    expect(await temps(sub)).toEqual([])
  })

  it('replaces an existing file by rename (a new inode: a reader of the old one is never torn)', async () => {
    const sub = await mkdtemp(join(dir, 'replace-'))
    const f = join(sub, 'f')
    await writeFile(f, 'old\n')
    const before = (await stat(f)).ino
    await writeFileAtomic(f, 'new\n')
    expect(await readFile(f, 'utf8')).toBe('new\n')
    expect((await stat(f)).ino).not.toBe(before)
    expect(await temps(sub)).toEqual([])
  })

  it('a rename that fails (the target is a folder) is ERR_WRITE; the temp file is removed, the target untouched', async () => {
    const sub = await mkdtemp(join(dir, 'fail-'))
    const target = join(sub, 'is-a-dir')
    await mkdir(target)
    await writeFile(join(target, 'inside'), 'x')
    await expect(writeFileAtomic(target, 'data')).rejects.toMatchObject({ code: 'ERR_WRITE' })
    expect(await readdir(sub)).toEqual(['is-a-dir'])
    expect(await readFile(join(target, 'inside'), 'utf8')).toBe('x')
  })

  it('a missing folder is ERR_WRITE, unless mkdir is asked for (then created 0700)', async () => {
    const sub = await mkdtemp(join(dir, 'mkdir-'))
    await expect(writeFileAtomic(join(sub, 'no', 'f'), 'x')).rejects.toMatchObject({ code: 'ERR_WRITE' })
    await writeFileAtomic(join(sub, 'yes', 'deeper', 'f'), 'x', { mkdir: true })
    expect(await readFile(join(sub, 'yes', 'deeper', 'f'), 'utf8')).toBe('x')
    expect((await stat(join(sub, 'yes'))).mode & 0o777).toBe(0o700 & ~process.umask())
  })

  it.skipIf(isRoot)('a read-only folder is ERR_WRITE naming the file, with nothing left behind', async () => {
    const sub = await mkdtemp(join(dir, 'ro-'))
    await chmod(sub, 0o500)
    try {
      const e = await writeFileAtomic(join(sub, 'f'), 'x').catch((x: unknown) => x)
      expect(e).toMatchObject({ code: 'ERR_WRITE' })
      expect(String((e as Error).message)).toContain(join(sub, 'f'))
    } finally {
      await chmod(sub, 0o700)
    }
    expect(await readdir(sub)).toEqual([])
  })

  it('createTemp never reuses a name that exists: the next one is taken', async () => {
    const sub = await mkdtemp(join(dir, 'clash-'))
    const final = join(sub, 'f')
    // Names come from one per-process tag and a counter: the next name is the probe's counter + 1.
    const probe = basename(tempPathFor(final))
    const counter = parseInt(probe.slice(23, -4), 16)
    const next = `${probe.slice(0, 23)}${(counter + 1).toString(16).padStart(probe.length - 27, '0')}.tmp`
    await writeFile(join(sub, next), 'someone else\'s\n')
    const { open } = await import('node:fs/promises')
    const { tempPath, handle } = await createTemp(final, (p) => open(p, 'wx', 0o600))
    await handle.close()
    expect(basename(tempPath)).not.toBe(next)
    expect(isTempName(basename(tempPath))).toBe(true)
    expect(await readFile(join(sub, next), 'utf8')).toBe('someone else\'s\n')
  })
})

describe('users of writeFileAtomic', () => {
  it('loadIdentity creates identity.json 0600 once and reads the same key back', async () => {
    const cfg = await mkdtemp(join(dir, 'id-'))
    const kp = await loadIdentity(cfg)
    expect((await stat(join(cfg, 'identity.json'))).mode & 0o777).toBe(0o600)
    expect((await loadIdentity(cfg)).publicKey.equals(kp.publicKey)).toBe(true)
    expect(await temps(cfg)).toEqual([])
  })

  it('KnownServers.pin writes known-servers 0600, keeping earlier pins, with no temp file left', async () => {
    const cfg = await mkdtemp(join(dir, 'known-'))
    const ks = new KnownServers(cfg)
    await ks.pin('udp://a:1', 'a'.repeat(64))
    await ks.pin('udp://b:2', 'b'.repeat(64))
    expect(await ks.get('udp://a:1')).toBe('a'.repeat(64))
    expect(await ks.get('udp://b:2')).toBe('b'.repeat(64))
    expect((await stat(ks.file)).mode & 0o777).toBe(0o600)
    expect(await temps(cfg)).toEqual([])
  })

  it('HashCache.save writes atomically into a folder it creates, and loads back', async () => {
    const file = join(dir, 'cache-dir', 'sub', 'c.bin')
    const c = new HashCache(file)
    const st = { size: 3, mtimeMs: 1234.5, ctimeMs: 1234.5, ino: 42 }
    const h = hashBytes(Buffer.from('abc'))
    c.set('x/y.txt', st, h)
    await c.save()
    expect(existsSync(file)).toBe(true)
    expect(await temps(join(dir, 'cache-dir', 'sub'))).toEqual([])
    const back = await HashCache.load(file)
    expect(back.lookup('x/y.txt', st)?.equals(h)).toBe(true)
  })

  it('HashCache.save failing (its path is a folder) is ignored and retried by the next save', async () => {
    const file = join(dir, 'cache-blocked')
    await mkdir(file)
    const c = new HashCache(file)
    c.set('a', { size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1 }, hashBytes(Buffer.from('a')))
    await expect(c.save()).resolves.toBeUndefined()
    expect(await temps(dir)).toEqual([])
    await rm(file, { recursive: true })
    await c.save() // still dirty: written now
    expect((await HashCache.load(file)).lookup('a', { size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1 })).not.toBeNull()
  })
})
