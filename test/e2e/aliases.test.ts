// Issue 11, case 9: aliases went stale. With current.txt -> v2.txt (a symlink inside the root) and
// hl.txt a hard link of v2.txt, an edit of v2.txt raised an event for v2.txt only: watchers updated
// v2.txt alone, and a later pull called the aliases up to date, with old content, while that serve
// ran. Now every path whose content changed is announced and listed with its current hash: the
// server indexes paths by inode, and a changed path's aliases are looked at with it. An atomic
// replace (write a temp file, rename it over v2.txt) changes v2.txt and the symlink, not the hard
// link, which still names the old inode. The built CLI, real folders.
import { link, readFile, rename, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ServerHandle, Sandbox, ensureBuilt, parseEvents } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { type WatchHandle, startWatch } from '../helpers/watch.js'

let sb: Sandbox
let root: string
let srv: ServerHandle
let w: WatchHandle
let mirror: string

const read = (dir: string, name: string): Promise<string> => readFile(join(dir, name), 'utf8')

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('aliases')
  root = await sb.mkdir('root')
  await writeFile(join(root, 'v2.txt'), 'version 2\n')
  await symlink('v2.txt', join(root, 'current.txt'))
  await link(join(root, 'v2.txt'), join(root, 'hl.txt'))
  await writeFile(join(root, 'other.txt'), 'unrelated\n')
  srv = await sb.serve(root)
  mirror = sb.path('mirror')
  const first = await sb.run(['pull', '--server', srv.addr, '--out', mirror])
  expect(first.code, first.stderr).toBe(0)
  w = await startWatch(sb, srv.addr, { out: sb.path('watch') })
  for (const n of ['v2.txt', 'current.txt', 'hl.txt']) expect(await read(w.out, n)).toBe('version 2\n')
})
afterAll(() => sb?.cleanup())

describe('an edit of a file with aliases (a symlink to it, a hard link of it)', () => {
  it('in place: the watcher applies all three in one batch; a later pull updates all three', async () => {
    const from = w.events().length
    await writeFile(join(root, 'v2.txt'), 'version 2, edited in place\n')
    for (const n of ['v2.txt', 'current.txt', 'hl.txt']) {
      await waitFor(async () => (await read(w.out, n)) === 'version 2, edited in place\n', 20_000, `${n} in the watcher's mirror`,
        { detail: () => JSON.stringify(w.events().slice(from)) })
    }
    const applied = w.events().slice(from).filter((e) => e.event === 'applied')
    expect(applied.map((e) => (e.changes as { path: string }[]).map((c) => c.path).sort())).toEqual([['current.txt', 'hl.txt', 'v2.txt']])

    const r = await sb.run(['pull', '--server', srv.addr, '--out', mirror, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const downloaded = parseEvents(r.stdout).filter((e) => e.event === 'file' && e.action === 'downloaded').map((e) => e.path).sort()
    expect(downloaded).toEqual(['current.txt', 'hl.txt', 'v2.txt'])
    for (const n of ['v2.txt', 'current.txt', 'hl.txt']) expect(await read(mirror, n)).toBe('version 2, edited in place\n')
    expect(await read(mirror, 'other.txt')).toBe('unrelated\n')
  })

  it('replaced atomically (temp file renamed over it): the symlink follows, the hard link keeps the old inode', async () => {
    const from = w.events().length
    await writeFile(join(root, '.v2.txt.new'), 'version 2, replaced\n')
    await rename(join(root, '.v2.txt.new'), join(root, 'v2.txt'))
    for (const n of ['v2.txt', 'current.txt']) {
      await waitFor(async () => (await read(w.out, n)) === 'version 2, replaced\n', 20_000, `${n} in the watcher's mirror`,
        { detail: () => JSON.stringify(w.events().slice(from)) })
    }
    expect(await read(w.out, 'hl.txt')).toBe('version 2, edited in place\n')
    expect(await read(root, 'hl.txt')).toBe('version 2, edited in place\n')
    const r = await sb.run(['pull', '--server', srv.addr, '--out', mirror, '--json'])
    expect(r.code, r.stderr).toBe(0)
    for (const n of ['v2.txt', 'current.txt']) expect(await read(mirror, n)).toBe('version 2, replaced\n')
    expect(await read(mirror, 'hl.txt')).toBe('version 2, edited in place\n')
  })

  it('a hard link made while serving: an edit through it updates the file and its symlink', async () => {
    await link(join(root, 'v2.txt'), join(root, 'hl2.txt'))
    await waitFor(async () => (await read(w.out, 'hl2.txt').catch(() => '')) === 'version 2, replaced\n', 20_000, 'the new link in the mirror')
    const from = w.events().length
    await writeFile(join(root, 'hl2.txt'), 'edited through hl2.txt\n')
    for (const n of ['hl2.txt', 'v2.txt', 'current.txt']) {
      await waitFor(async () => (await read(w.out, n)) === 'edited through hl2.txt\n', 20_000, `${n} in the watcher's mirror`,
        { detail: () => JSON.stringify(w.events().slice(from)) })
    }
    // hl.txt names the inode v2.txt had before the replace: untouched.
    expect(await read(w.out, 'hl.txt')).toBe('version 2, edited in place\n')
  })
})
