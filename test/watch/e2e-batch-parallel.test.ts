/**
 * A pushed batch of many files is downloaded several files at once (src/core/client/live-mirror.ts,
 * CLIENT_PARALLEL_TRANSFERS), not one round trip after another: through a UDP proxy that adds
 * 40 ms each way, 48 new files one after another would take at least 48 × 80 ms = 3.8 s after the
 * batch arrives; at once they take a few round trips. Still applied as one verified batch.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { CLIENT_PARALLEL_TRANSFERS } from '../../src/limits.js'
import { ensureBuilt, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { writeTree } from '../helpers/trees.js'
import { startWatch, waitForSameFiles } from '../helpers/watch.js'
import { type LossyProxy, startLossyProxy } from '../helpers/lossy-proxy.js'

const FILES = 48
const ONE_WAY_MS = 40

let sb: Sandbox
let server: ServerHandle
let proxy: LossyProxy

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('watch-batch')
}, 60_000)

afterAll(async () => {
  await proxy?.close()
  await sb?.cleanup()
})

test(`${FILES} files saved together reach the mirror in far less than ${FILES} round trips`, async () => {
  expect(CLIENT_PARALLEL_TRANSFERS).toBeGreaterThanOrEqual(8)
  const src = await sb.mkdir('src')
  await writeTree(src, { 'seed.txt': 'seed\n' })
  server = await sb.serve(src)
  proxy = await startLossyProxy({ target: { host: '127.0.0.1', port: server.port }, delayMs: ONE_WAY_MS })
  const watch = await startWatch(sb, `127.0.0.1:${proxy.port}`, { out: await sb.mkdir('mirror'), args: ['--key', server.key] })
  const t0 = performance.now()
  await Promise.all(Array.from({ length: FILES }, (_, i) => writeFile(join(src, `f${i}.txt`), `file ${i}\n`.repeat(i + 1))))
  await waitForSameFiles(src, watch.out, 30_000)
  const ms = performance.now() - t0
  const sequentialFloor = FILES * 2 * ONE_WAY_MS
  console.log(`${FILES} files through a ${2 * ONE_WAY_MS} ms RTT proxy mirrored in ${ms.toFixed(0)} ms (one at a time: ≥ ${sequentialFloor} ms)`)
  expect(ms).toBeLessThan(sequentialFloor / 2)
  // Every file arrived through an applied batch, none twice.
  const applied = watch.appliedPaths().filter((p) => p !== 'seed.txt')
  expect(applied.sort()).toEqual(Array.from({ length: FILES }, (_, i) => `f${i}.txt`).sort())
}, 60_000)
