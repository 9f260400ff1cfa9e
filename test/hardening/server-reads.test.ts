/**
 * The server's read path: each transfer gets turns of SERVER_READ_BYTES (one read, sent as
 * CHUNK_SIZE frames) from a pool of SERVER_READ_BUFFERS buffers shared by every connection.
 * Sizes around every boundary arrive whole; a small file is not stuck behind big ones; the pool
 * never makes more buffers than its count, however many wait.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { BufferPool } from '../../src/core/fs/pool.js'
import { CHUNK_SIZE, SERVER_READ_BYTES } from '../../src/limits.js'
import { Cleanup, tempDir } from '../helpers/common.js'
import { type LocalServer, startLocalServer } from '../helpers/raw-peers.js'
import { writeTree } from '../helpers/trees.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())
const suite = new Cleanup()
afterAll(() => suite.run())

const SIZES = [
  0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1,
  SERVER_READ_BYTES - 1, SERVER_READ_BYTES, SERVER_READ_BYTES + 1,
  3 * SERVER_READ_BYTES + CHUNK_SIZE + 7,
]

let work: string
let config: string
const files: Record<string, Buffer> = {}
const servers: Partial<Record<'udp' | 'tcp', LocalServer>> = {}

beforeAll(async () => {
  const t = await tempDir('server-reads')
  suite.add(t.remove)
  work = t.dir
  config = join(work, 'config')
  for (const n of SIZES) files[`f-${n}.bin`] = randomBytes(n)
  files['big.bin'] = randomBytes(24 * SERVER_READ_BYTES)
  await writeTree(join(work, 'root'), files)
  for (const d of ['out-udp', 'out-tcp', 'out-order']) await mkdir(join(work, d))
  for (const transport of ['udp', 'tcp'] as const) {
    const s = await startLocalServer(join(work, 'root'), config, { transport })
    suite.add(() => s.server.close())
    servers[transport] = s
  }
})

async function client(transport: 'udp' | 'tcp'): Promise<AssetClient> {
  const s = servers[transport] as LocalServer
  const c = await AssetClient.connect({ server: s.addr, transport, key: s.key, configDir: config, connectTimeoutMs: 5000 })
  cleanup.add(() => c.conn.destroy())
  return c
}

describe('server reads in turns of SERVER_READ_BYTES', () => {
  it.each(['udp', 'tcp'] as const)('%s: every size around CHUNK_SIZE and SERVER_READ_BYTES arrives whole, all at once', async (transport) => {
    const c = await client(transport)
    const out = join(work, `out-${transport}`)
    const names = Object.keys(files)
    const results = await Promise.all(names.map((name) => c.download(name, join(out, name))))
    for (const [i, name] of names.entries()) {
      expect(results[i]?.bytes, name).toBe(files[name]?.length)
      expect((await readFile(join(out, name))).equals(files[name] as Buffer), name).toBe(true)
    }
  })

  it('a small file requested after several big transfers started finishes before them', async () => {
    const c = await client('udp')
    const out = join(work, 'out-order')
    const order: string[] = []
    const big = Array.from({ length: 4 }, (_, i) =>
      c.download('big.bin', join(out, `big-${i}.bin`)).then(() => { order.push(`big-${i}`) }))
    const small = c.download('f-1.bin', join(out, 'small.bin')).then(() => { order.push('small') })
    await Promise.all([...big, small])
    expect(order[0]).toBe('small')
  })
})

describe('BufferPool', () => {
  it('hands out at most `count` buffers; the rest wait and get released ones in order', async () => {
    const pool = new BufferPool(2, 16)
    const a = await pool.acquire()
    const b = await pool.acquire()
    expect(a.length).toBe(16)
    expect(a).not.toBe(b)
    const got: Buffer[] = []
    const c = pool.acquire().then((x) => got.push(x))
    const d = pool.acquire().then((x) => got.push(x))
    await new Promise((resolve) => setImmediate(resolve))
    expect(got).toEqual([])
    pool.release(b)
    await c
    expect(got[0]).toBe(b)
    pool.release(a)
    await d
    expect(got[1]).toBe(a)
    expect(pool.allocated).toBe(2)
  })
})
