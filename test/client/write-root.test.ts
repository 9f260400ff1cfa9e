/**
 * The write path under --out (src/core/fs/write-root.ts, issue 12): folders are opened without
 * following symlinks and held; on Linux, creates and renames go through the held folder's
 * descriptor, so a folder swapped for a symlink afterwards cannot redirect a write; before a
 * rename the folder is checked again, and a swap fails that file with ERR_PATH_REFUSED. The path
 * fallback (other systems) detects the same swaps by checking before the rename.
 */
import { existsSync, mkdirSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs'
import { lstat, mkdir, readFile, readdir, rename, symlink, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { Mirror } from '../../src/core/client/mirror.js'
import { isTempName } from '../../src/core/fs/atomic-write.js'
import { WriteRoot, type WriteRootMode, procFdUsable } from '../../src/core/fs/write-root.js'
import { folderIdentity } from '../../src/core/fs/stamp.js'
import { AssetSyncError } from '../../src/errors.js'
import { WRITE_DIR_HANDLES } from '../../src/limits.js'
import { tempDir } from '../helpers/common.js'
import { type LocalServer, startLocalServer } from '../helpers/raw-peers.js'
import { writeTree } from '../helpers/trees.js'

let work: string
let remove: () => Promise<void>
let srv: LocalServer
let n = 0

beforeAll(async () => {
  ({ dir: work, remove } = await tempDir('write-root'))
  await writeTree(join(work, 'src'), { 'd/a.txt': 'A\n', 'd/b.txt': 'B\n', 'd/sub/c.txt': 'C\n' })
  srv = await startLocalServer(join(work, 'src'), join(work, 'server-config'))
})
afterAll(async () => {
  await srv?.server.close()
  await remove?.()
})

/** A fresh root with `d/` in it, and a decoy folder outside it. */
async function arena(): Promise<{ root: string; decoy: string }> {
  const base = join(work, `arena-${++n}`)
  const root = join(base, 'out')
  const decoy = join(base, 'decoy')
  await mkdir(join(root, 'd'), { recursive: true })
  await mkdir(decoy)
  return { root, decoy }
}

/** The attacker's move: `root/d` becomes a symlink to `decoy` (the real folder parked beside it). */
async function swap(root: string, decoy: string): Promise<void> {
  await rename(join(root, 'd'), join(root, 'd-parked'))
  await symlink(decoy, join(root, 'd'))
}

const modes: WriteRootMode[] = procFdUsable() ? ['fd', 'path'] : ['path']

describe.each(modes)('WriteRoot (%s)', (mode) => {
  it('check() refuses a folder swapped for a symlink after it was opened', async () => {
    const { root, decoy } = await arena()
    const w = WriteRoot.open(root, mode)
    try {
      const d = await w.dir('d', false)
      w.check(d, 'd/x') // unchanged: fine
      await swap(root, decoy)
      expect(() => w.check(d, 'd/x')).toThrow(/refused path "d\/x": folder .* was replaced while writing/)
      w.release(d)
    } finally {
      w.close()
    }
  })

  it('check() refuses a folder deleted and made again, even with the same inode number (ext4 reuses it at once)', async () => {
    const { root } = await arena()
    const w = WriteRoot.open(root, mode)
    try {
      const d = await w.dir('d', false)
      const before = statSync(join(root, 'd'))
      rmSync(join(root, 'd'), { recursive: true })
      mkdirSync(join(root, 'd'))
      const after = statSync(join(root, 'd'))
      console.log(`inode of d before ${before.ino}, after ${after.ino}${before.ino === after.ino ? ' (reused)' : ''}`)
      expect(() => w.check(d, 'd/x')).toThrow(/refused path "d\/x": folder .* was replaced while writing/)
      // The root's identity tells the same: the one pinned, not another made in its place.
      expect(w.rootId).toEqual(folderIdentity(statSync(root)))
      w.release(d)
    } finally {
      w.close()
    }
  })

  it('a symlinked folder is followed only when it resolves inside the root', async () => {
    const { root, decoy } = await arena()
    await symlink(join(root, 'd'), join(root, 'inside-link'))
    await symlink(decoy, join(root, 'outside-link'))
    const w = WriteRoot.open(root, mode)
    try {
      const d = await w.dir('inside-link', false)
      expect(d.path).toBe(join(root, 'd'))
      w.release(d)
      const e = await w.dir('outside-link/x', true).catch((err: unknown) => err)
      expect(e).toBeInstanceOf(AssetSyncError)
      expect((e as AssetSyncError).code).toBe('ERR_PATH_REFUSED')
      expect(readdirSync(decoy)).toEqual([])
    } finally {
      w.close()
    }
  })

  it('a file where a folder must be: removed only if clear() allows it', async () => {
    const { root } = await arena()
    await writeFile(join(root, 'd', 'blocker'), 'mine\n')
    const w = WriteRoot.open(root, mode)
    try {
      const e = await w.dir('d/blocker/inner', true, () => false).catch((err: unknown) => err)
      expect((e as AssetSyncError).code).toBe('ERR_WRITE')
      expect(await readFile(join(root, 'd', 'blocker'), 'utf8')).toBe('mine\n')
      const asked: string[] = []
      const d = await w.dir('d/blocker/inner', true, (p) => { asked.push(p); return true })
      expect(asked).toEqual(['d/blocker'])
      expect((await lstat(join(root, 'd', 'blocker', 'inner'))).isDirectory()).toBe(true)
      w.release(d)
    } finally {
      w.close()
    }
  })
})

describe.runIf(procFdUsable())('WriteRoot (fd): writes go to the folder that was opened', () => {
  it('a file created and renamed after the swap lands in the pinned folder, never in the decoy', async () => {
    const { root, decoy } = await arena()
    const w = WriteRoot.open(root, 'fd')
    try {
      const d = await w.dir('d', false)
      await swap(root, decoy)
      await writeFile(w.at(d, 'tmp'), 'data\n', { flag: 'wx' })
      await rename(w.at(d, 'tmp'), w.at(d, 'final'))
      w.release(d)
    } finally {
      w.close()
    }
    expect(readdirSync(decoy)).toEqual([])
    expect(await readFile(join(root, 'd-parked', 'final'), 'utf8')).toBe('data\n')
    expect(readlinkSync(join(root, 'd'))).toBe(decoy)
  })

  it(`keeps at most WRITE_DIR_HANDLES (${WRITE_DIR_HANDLES}) unused folders open`, async () => {
    const { root } = await arena()
    const fds = (): number => readdirSync('/proc/self/fd').length
    const w = WriteRoot.open(root, 'fd')
    const before = fds()
    try {
      for (let i = 0; i < WRITE_DIR_HANDLES + 50; i++) w.release(await w.dir(`d/f${i}`, true))
      expect(fds() - before).toBeLessThanOrEqual(WRITE_DIR_HANDLES + 1) // + d itself, held by none
      expect(fds() - before).toBeGreaterThan(WRITE_DIR_HANDLES / 2)
    } finally {
      w.close()
    }
    expect(fds()).toBeLessThanOrEqual(before)
  })
})

describe.each(modes)('Mirror write path (%s)', (mode) => {
  it('a folder swapped between download and install: ERR_PATH_REFUSED, nothing in the decoy, no temp file left', async () => {
    const { root, decoy } = await arena()
    const mirror = new Mirror({ out: root, configDir: join(work, `cfg-${n}`), writeMode: mode })
    const client = await AssetClient.connect({ server: srv.addr, key: srv.key, configDir: join(work, 'ccfg'), connectTimeoutMs: 5000 })
    try {
      await mirror.writes(async () => {
        const staged = await mirror.stage(client, 'd/a.txt', null)
        expect(staged).not.toBeNull()
        await swap(root, decoy)
        const err = await mirror.install(staged!).then(() => null, (e: unknown) => e)
        expect(err).toBeInstanceOf(AssetSyncError)
        expect((err as AssetSyncError).code).toBe('ERR_PATH_REFUSED')
      })
    } finally {
      client.close()
    }
    expect(readdirSync(decoy)).toEqual([])
    // Nothing installed. Through the descriptor the temp file is removed too; by path it cannot be
    // reached any more (its folder moved): it stays there, a temp file the next run cleans up.
    const parked = await readdir(join(root, 'd-parked'))
    if (mode === 'fd') expect(parked).toEqual([])
    else expect(parked.every(isTempName)).toBe(true)
    await unlink(join(root, 'd'))
    expect(existsSync(join(root, 'd', 'a.txt'))).toBe(false)
  })
})

describe('Mirror write sessions', () => {
  it('overlapping sessions (a batch and a resync) share one, closed when the last leaves', async () => {
    const { root } = await arena()
    const mirror = new Mirror({ out: root, configDir: join(work, `cfg-${n}`) })
    const client = await AssetClient.connect({ server: srv.addr, key: srv.key, configDir: join(work, 'ccfg'), connectTimeoutMs: 5000 })
    try {
      let releaseFirst!: () => void
      const first = mirror.writes(() => new Promise<void>((r) => { releaseFirst = r }))
      const second = mirror.writes(async () => {
        const a = await mirror.stage(client, 'd/a.txt', null)
        releaseFirst() // the first ends while the second still writes
        await first
        const b = await mirror.stage(client, 'd/sub/c.txt', null)
        // Still the same session: folders it holds are not closed under the second's feet.
        expect(b?.session).toBe(a?.session)
        for (const s of [a, b]) if (s) await mirror.install(s)
      })
      await second
      expect(await readFile(join(root, 'd', 'a.txt'), 'utf8')).toBe('A\n')
      expect(await readFile(join(root, 'd', 'sub', 'c.txt'), 'utf8')).toBe('C\n')
    } finally {
      client.close()
    }
  })
})
