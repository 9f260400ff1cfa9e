/**
 * Scale-out under failure, with real parts: the bucket (s3rver) away for 5 s in the middle of a
 * pull (through an edge, and --direct) — the pull waits, retries and finishes, and no partial file
 * is ever visible; a node of a 3-node NATS JetStream cluster killed — the feed goes on, and the
 * edges still get each change from the feed (not from their HEAD safety net).
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, parseEvents, Sandbox } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { diffTrees, listFiles, sameBytes, writeRandomFile } from '../helpers/trees.js'
import { startWatch, waitForSameFiles } from '../helpers/watch.js'
import { BUCKET, NATS_MISSING, TcpRelay, TestNats, TestS3, startEdge, waitPublished } from './support.js'

describe.skipIf(NATS_MISSING)('scale-out faults', () => {
  let sb: Sandbox

  beforeAll(async () => {
    ensureBuilt()
    sb = await Sandbox.create('scale-faults')
  })

  afterAll(async () => {
    await sb?.cleanup()
  })

  it('the bucket away for 5 s mid-pull: the pull retries and finishes, and no partial file appears', async () => {
    const s3 = await TestS3.start()
    const nats = await TestNats.start(1)
    try {
      const assets = await sb.mkdir('assets')
      const names = ['a.bin', 'b.bin', 'c.bin', 'd.bin']
      for (const n of names) await writeRandomFile(join(assets, n), 24 * 1024 * 1024)
      const origin = await sb.serve(assets, ['--publish', `s3://${BUCKET}/o`, '--feed', nats.url], { env: s3.env() })
      await waitPublished(origin, 1, 120_000)
      // The edge (and, with --direct, the pull's presigned fetches) reach the bucket through a relay
      // the test cuts at once: stopping s3rver waits for its open connections, and a fast pull
      // could finish meanwhile.
      const relay = await TcpRelay.start(s3.port)
      const viaRelay = { env: () => s3.envVia(relay.httpUrl) }
      for (const mode of ['edge', 'direct'] as const) {
        const edge = await startEdge(sb, viaRelay, 'o', nats.url) // a fresh edge: nothing cached
        const out = await sb.mkdir(`out-${mode}`)
        const pull = sb.spawn(['pull', '--server', edge.addr, '--out', out, '--json', ...(mode === 'direct' ? ['--direct'] : [])], { timeoutMs: 120_000 })
        // As soon as the first temp file exists, the bucket goes away for 5 s.
        await waitFor(async () => (await listFiles(out).catch(() => [])).length > 0, 30_000, `the ${mode} pull to start writing`)
        relay.cut()
        // The outage must really fall inside the pull, or this test would prove nothing.
        expect(pull.proc.exitCode, `the ${mode} pull ended before the bucket went away`).toBeNull()
        const t0 = Date.now()
        while (Date.now() - t0 < 5000) {
          // Whatever is at a final path is complete and right: a partial file never shows.
          for (const f of await listFiles(out).catch(() => [])) {
            if (names.includes(f)) expect(await sameBytes(join(assets, f), join(out, f)), f).toBe(true)
          }
          await sleep(100)
        }
        relay.heal()
        const r = await pull.result
        expect(r.code, r.stderr).toBe(0)
        expect(r.ms).toBeGreaterThan(5000) // it waited for the bucket
        expect(await diffTrees(assets, out)).toEqual([])
        expect(parseEvents(r.stdout).find((e) => e.event === 'summary')).toMatchObject({ files: 4, downloaded: 4 })
        await edge.stop()
      }
      await origin.stop()
      await relay.close()
    } finally {
      await nats.stop()
      await s3.remove()
    }
  }, 240_000)

  it('a node of the NATS cluster killed: the feed goes on', async () => {
    const s3 = await TestS3.start()
    const nats = await TestNats.start(3)
    try {
      const assets = await sb.mkdir('assets')
      await writeFile(join(assets, 'config.json'), '{"v":1}\n')
      const origin = await sb.serve(assets, ['--publish', `s3://${BUCKET}/c`, '--feed', nats.url, '--settle', '50'], { env: s3.env() })
      await waitPublished(origin, 1)
      const edges = [await startEdge(sb, s3, 'c', nats.url), await startEdge(sb, s3, 'c', nats.url)]
      const watchers = []
      for (const e of edges) watchers.push(await startWatch(sb, e.addr, { out: await sb.mkdir('mirror') }))
      for (const w of watchers) await waitForSameFiles(assets, w.out, 20_000)

      for (let round = 1; round <= 2; round++) {
        if (round === 2) await nats.kill(0)
        await writeFile(join(assets, 'config.json'), `{"v":${round + 1}}\n`)
        const published = await waitPublished(origin, round + 1, 60_000)
        // Well under the edges' HEAD safety net (30 s, twice): only the feed can deliver this fast.
        for (const w of watchers) await waitForSameFiles(assets, w.out, 25_000)
        for (const e of edges) {
          const got = e.events().find((x) => x.event === 'edge-version' && x.version === published.version)
          expect(got?.via, JSON.stringify(e.events().slice(-4))).toBe('feed')
        }
      }
      await origin.stop()
    } finally {
      await nats.stop()
      await s3.remove()
    }
  }, 180_000)
})
