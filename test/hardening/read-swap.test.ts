// Issue 12, the server's reads: a file swapped for a symlink to a file outside the served folder
// between the index and a request is refused or not found, never served. The index records
// whether a path is a link; a path indexed as a regular file is opened with O_NOFOLLOW, and the
// opened inode must be the one now at the (resolved, inside) path and the one the index hashed.
// Real server, real client, real files; the race is run against a second process that swaps the
// file with rename(2) as fast as it can.
import { type ChildProcess, spawn } from 'node:child_process'
import { link, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { AssetSyncError } from '../../src/errors.js'
import { tempDir } from '../helpers/common.js'
import { type LocalServer, startLocalServer } from '../helpers/raw-peers.js'

const SECRET = 'SECRET: outside the served folder\n'
const INSIDE = 'inside the served folder\n'
const SWAPPER = fileURLToPath(new URL('../fixtures/swapper.mjs', import.meta.url))

let work: string
let remove: () => Promise<void>
let root: string
let outside: string
let srv: LocalServer
let client: AssetClient

beforeAll(async () => {
  ({ dir: work, remove } = await tempDir('read-swap'))
  root = join(work, 'root')
  outside = join(work, 'outside')
  await mkdir(join(root, 'sub'), { recursive: true })
  await mkdir(outside, { recursive: true })
  await writeFile(join(outside, 'secret.txt'), SECRET)
  await writeFile(join(outside, 'f.txt'), SECRET)
  for (const n of ['swapped.txt', 'sub/f.txt', 'raced.txt', 'reg.txt']) await writeFile(join(root, n), INSIDE)
  srv = await startLocalServer(root, join(work, 'cfg'))
  client = await AssetClient.connect({ server: srv.addr, key: srv.key, configDir: join(work, 'ccfg'), connectTimeoutMs: 5000 })
})
afterAll(async () => {
  client?.close()
  await srv?.server.close()
  await remove()
})

/** What a read of `path` gives: its content, or the code it failed with. */
async function readOrCode(path: string): Promise<string> {
  try {
    return (await client.read(path)).toString()
  } catch (err) {
    if (err instanceof AssetSyncError) return err.code
    throw err
  }
}

describe('a served file swapped for a symlink out of the root', () => {
  it('after it was indexed and read: refused or not found, never the outside content', async () => {
    expect(await readOrCode('swapped.txt')).toBe(INSIDE)
    await rm(join(root, 'swapped.txt'))
    await symlink(join(outside, 'secret.txt'), join(root, 'swapped.txt'))
    expect(['ERR_NOT_FOUND', 'ERR_PATH_REFUSED']).toContain(await readOrCode('swapped.txt'))
  })

  it('its folder swapped for a symlink to a folder outside: refused or not found', async () => {
    expect(await readOrCode('sub/f.txt')).toBe(INSIDE)
    await rename(join(root, 'sub'), join(work, 'sub.away'))
    await symlink(outside, join(root, 'sub'))
    expect(['ERR_NOT_FOUND', 'ERR_PATH_REFUSED']).toContain(await readOrCode('sub/f.txt'))
  })

  it('swapped back and forth while it is requested (a racing local attacker): never the outside content', async () => {
    await rm(join(root, 'raced.txt'))
    await link(join(root, 'reg.txt'), join(root, 'raced.txt'))
    expect(await readOrCode('raced.txt')).toBe(INSIDE)
    const ms = 4000
    const swapper: ChildProcess = spawn(process.execPath, [SWAPPER, root, 'raced.txt', 'reg.txt', join(outside, 'secret.txt'), String(ms)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    swapper.stdout?.on('data', (b: Buffer) => { out += b.toString() })
    const done = new Promise<void>((resolve) => swapper.once('close', () => resolve()))
    const seen = new Map<string, number>()
    try {
      while (!out.includes('ready')) await new Promise((r) => setTimeout(r, 5))
      const end = Date.now() + ms - 200
      while (Date.now() < end) {
        // A few at once, so reads overlap each other and the swaps.
        const got = await Promise.all(Array.from({ length: 8 }, () => readOrCode('raced.txt')))
        for (const g of got) seen.set(g, (seen.get(g) ?? 0) + 1)
      }
    } finally {
      await done
    }
    expect(out).toMatch(/swaps [1-9]/)
    expect(seen.get(SECRET) ?? 0, `outcomes: ${JSON.stringify([...seen])}`).toBe(0)
    expect([...seen.keys()].every((k) => k === INSIDE || k === 'ERR_NOT_FOUND' || k === 'ERR_PATH_REFUSED' || k === 'ERR_CHANGED'),
      JSON.stringify([...seen])).toBe(true)
    expect(seen.get(INSIDE) ?? 0).toBeGreaterThan(0)
    // Once the swapping stops (the regular file back in place), it is served again.
    expect(await readFile(join(root, 'raced.txt'), 'utf8')).toBe(INSIDE)
    expect(await readOrCode('raced.txt')).toBe(INSIDE)
  })
})
