// Issue 11, case 8: the served root replaced or renamed under a running serve. Recreated, the
// watchers used to apply only the deletes and pull got 0 files (exit 0); renamed away, serve kept
// advertising the old list and every pull reported `vanished` (exit 0). Now a folder back at the
// root's path within ROOT_GONE_MS is indexed anew (serve prints {"event":"reindexed"}) and every
// watcher converges to it; a root gone for good stops serve with one line on stderr and exit 5.
// The built CLI, real folders.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT_GONE_MS } from '../../src/limits.js'
import { Sandbox, ensureBuilt, parseEvents } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { listFiles } from '../helpers/trees.js'
import { startWatch, waitForSameFiles } from '../helpers/watch.js'

let sb: Sandbox
beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('root')
})
afterAll(() => sb?.cleanup())

async function tree(root: string): Promise<void> {
  await mkdir(join(root, 'b'), { recursive: true })
  await writeFile(join(root, 'a.txt'), 'a\n')
  await writeFile(join(root, 'b', 'c.txt'), 'c\n')
}

describe('the served root', () => {
  it('deleted and made again (rm -rf s; mkdir -p s/sub; echo x > s/e.txt): re-indexed; watchers and pull converge to it', async () => {
    const parent = await sb.mkdir('recreate')
    const s = join(parent, 's')
    await tree(s)
    const srv = await sb.serve(s)
    const w = await startWatch(sb, srv.addr, { out: sb.path('watch') })
    expect(await listFiles(w.out)).toEqual(['a.txt', 'b/c.txt'])

    await rm(s, { recursive: true, force: true })
    await mkdir(join(s, 'sub'), { recursive: true })
    await writeFile(join(s, 'e.txt'), 'x\n')

    await waitForSameFiles(s, w.out, 20_000)
    expect(await listFiles(w.out)).toEqual(['e.txt'])
    await waitFor(() => srv.events().find((e) => e.event === 'reindexed'), 10_000, 'serve to report the re-index')
    const out = sb.path('pull')
    const r = await sb.run(['pull', '--server', srv.addr, '--out', out, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(parseEvents(r.stdout).find((e) => e.event === 'summary')).toMatchObject({ files: 1, downloaded: 1 })
    expect(await readFile(join(out, 'e.txt'), 'utf8')).toBe('x\n')

    // And it is watched: a later save arrives.
    await writeFile(join(s, 'sub', 'later.txt'), 'later\n')
    await waitForSameFiles(s, w.out, 20_000)
    expect(srv.proc.exitCode).toBeNull()
    await srv.stop()
  })

  it('another folder moved into its place (mv s.new s): re-indexed', async () => {
    const parent = await sb.mkdir('swap')
    const s = join(parent, 's')
    await tree(s)
    const srv = await sb.serve(s)
    const w = await startWatch(sb, srv.addr, { out: sb.path('watch') })
    const next = join(parent, 's.new')
    await mkdir(join(next, 'z'), { recursive: true })
    await writeFile(join(next, 'z', 'new.txt'), 'new release\n')
    await writeFile(join(next, 'a.txt'), 'a, changed\n')
    await rename(s, join(parent, 's.old'))
    await rename(next, s)
    await waitForSameFiles(s, w.out, 20_000)
    expect(await listFiles(w.out)).toEqual(['a.txt', 'z/new.txt'])
    await srv.stop()
  })

  it('renamed away for good: serve exits 5 with one line; no pull is told a stale list', async () => {
    const parent = await sb.mkdir('gone')
    const s = join(parent, 's')
    await tree(s)
    const srv = await sb.serve(s)
    const w = await startWatch(sb, srv.addr, { out: sb.path('watch') })
    const t0 = Date.now()
    await rename(s, join(parent, 's.moved'))
    // A pull started now waits for the verdict and does not succeed on the old list.
    const pull = sb.run(['pull', '--server', srv.addr, '--out', sb.path('pull'), '--json', '--timeout', '2'])
    const r = await srv.exited
    expect(r.code).toBe(5)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(ROOT_GONE_MS - 500)
    const errLines = r.stderr.split('\n').filter((l) => l.trim() !== '')
    expect(errLines).toHaveLength(1)
    expect(errLines[0]).toMatch(/^assetsync: the served folder .*\/s is gone/)
    const p = await pull
    expect([3, 5]).toContain(p.code) // the folder is gone (5), or the server stopped under it (3)
    expect(parseEvents(p.stdout).filter((e) => e.event === 'file' && e.action === 'vanished')).toEqual([])
    // The watcher kept its files: nothing was announced as deleted.
    expect(await listFiles(w.out)).toEqual(['a.txt', 'b/c.txt'])
  })

  it('its parent moved away (no event reaches the root\'s own watch): noticed by the periodic check', async () => {
    const parent = await sb.mkdir('parent')
    const s = join(parent, 'inner', 's')
    await tree(s)
    const srv = await sb.serve(s)
    await rename(join(parent, 'inner'), join(parent, 'inner.moved'))
    const r = await srv.exited
    expect(r.code).toBe(5)
    expect(r.stderr).toMatch(/is gone/)
  })
})
