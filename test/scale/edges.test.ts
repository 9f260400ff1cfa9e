/**
 * Issue 18, end to end with real parts: an origin publishing to an S3 API server (s3rver) and a
 * NATS JetStream server, two edges serving from the bucket, watchers on each edge. A change on
 * the origin reaches every watcher byte-identical; an edge killed while changes are made catches
 * up when restarted, and its watchers converge.
 */
import { writeFile, rm, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, Sandbox } from '../helpers/cli.js'
import { writeRandomFile } from '../helpers/trees.js'
import { startWatch, waitForSameFiles } from '../helpers/watch.js'
import { NATS_MISSING, type EdgeHandle, TestNats, TestS3, startEdge, waitPublished } from './support.js'

describe.skipIf(NATS_MISSING)('origin, bucket, NATS, two edges, watchers', () => {
  let sb: Sandbox
  let s3: TestS3
  let nats: TestNats

  beforeAll(async () => {
    ensureBuilt()
    sb = await Sandbox.create('scale-edges')
    s3 = await TestS3.start()
    nats = await TestNats.start(1)
  }, 60_000)

  afterAll(async () => {
    await sb?.cleanup()
    await nats?.stop()
    await s3?.remove()
  })

  it('a change on the origin reaches every watcher of both edges, byte-identical; a restarted edge converges', async () => {
    const assets = await sb.mkdir('assets')
    await writeFile(join(assets, 'main.lua'), 'print("v1")\n')
    await writeRandomFile(join(assets, 'tex', 'big.bin'), 700 * 1024)
    await writeRandomFile(join(assets, 'tex', 'small.bin'), 3000)
    const origin = await sb.serve(assets, ['--publish', `s3://assets-test/studio`, '--feed', nats.url, '--settle', '50'], { env: s3.env() })
    expect(origin.listening).toMatchObject({ role: 'origin', publish: 's3://assets-test/studio', feed: nats.url })
    await waitPublished(origin, 1)

    const edges: EdgeHandle[] = [await startEdge(sb, s3, 'studio', nats.url), await startEdge(sb, s3, 'studio', nats.url)]
    for (const e of edges) expect(e.listening).toMatchObject({ role: 'edge', origin: 's3://assets-test/studio', feed: nats.url, files: 3 })
    const watchers = []
    for (const e of edges) {
      for (let i = 0; i < 2; i++) watchers.push(await startWatch(sb, e.addr, { out: await sb.mkdir('mirror') }))
    }
    for (const w of watchers) await waitForSameFiles(assets, w.out, 20_000)

    // Changes: an edit, a new file, a delete, a rename.
    await writeFile(join(assets, 'main.lua'), 'print("v2")\n')
    await writeRandomFile(join(assets, 'levels', 'one.bin'), 300 * 1024)
    await rm(join(assets, 'tex', 'small.bin'))
    await rename(join(assets, 'tex', 'big.bin'), join(assets, 'tex', 'moved.bin'))
    for (const w of watchers) await waitForSameFiles(assets, w.out, 30_000)

    // Edge 0 goes away; changes are made; it comes back on the same identity and cache.
    const gone = edges[0] as EdgeHandle
    await gone.stop('SIGKILL')
    const v = (origin.events().filter((e) => e.event === 'published').at(-1)?.version as number)
    await writeFile(join(assets, 'main.lua'), 'print("v3")\n')
    await writeRandomFile(join(assets, 'levels', 'two.bin'), 200 * 1024)
    await waitPublished(origin, v + 1)
    for (const w of watchers.slice(2)) await waitForSameFiles(assets, w.out, 30_000)
    // Back on the same port, identity and cache: its watchers (reconnecting all along) converge.
    const back = await startEdge(sb, s3, 'studio', nats.url, ['--port', String(gone.port)], gone.config)
    expect(back.listening.files).toBe(4)
    for (const w of watchers.slice(0, 2)) await waitForSameFiles(assets, w.out, 30_000)
    await writeFile(join(assets, 'main.lua'), 'print("v4")\n')
    for (const w of watchers) await waitForSameFiles(assets, w.out, 30_000)
    // Every version applied once: the restarted edge's versions only go up.
    const versions = back.events().filter((e) => e.event === 'edge-version').map((e) => e.version as number)
    expect(versions.length).toBeGreaterThan(0)
    expect([...versions].sort((a, b) => a - b)).toEqual(versions)
    expect(new Set(versions).size).toBe(versions.length)
  }, 180_000)
})
