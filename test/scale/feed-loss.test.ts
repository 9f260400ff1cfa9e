/**
 * Issue 18, "an edge that loses NATS catches up from JetStream, or from HEAD when the stream has
 * expired; no update is lost, none is applied twice", end to end with real parts: s3rver, a
 * nats-server process, the CLI's origin, edge and `watch --exec` processes.
 *
 * - NATS itself goes away (the process killed) while changes are made, and comes back on the same
 *   port and JetStream store: the edge's watcher converges, and the feed carries changes again.
 * - The edge alone loses NATS (a relay in front of it cut) while the origin keeps publishing, and
 *   the stream no longer holds what it missed: first it keeps only the last 2 messages (max_msgs),
 *   then it is purged. The edge fills the gap from the manifests, then from HEAD.
 *
 * "Applied once" is checked at every level: the edge installs each version once and only going
 * up (`edge-version`), it pushes each round's file in one batch (`changes`), and the watcher
 * applies it once (`applied`), its hook sees it in one run and never sees the mirror go back.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect, nanos, RetentionPolicy, StorageType } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseBucketUrl, feedStream, feedSubject } from '../../src/core/scale/location.js'
import { ensureBuilt, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { writeRandomFile } from '../helpers/trees.js'
import { type Event, readHookRuns, recordingHook, startWatch, type WatchHandle, waitForSameFiles } from '../helpers/watch.js'
import { BUCKET, type EdgeHandle, NATS_MISSING, TcpRelay, TestNats, TestS3, startEdge, waitPublished } from './support.js'

const paths = (e: Event): string[] => ((e.changes ?? []) as { path: string }[]).map((c) => c.path)

/** The assets, the origin serving and publishing them, and one round of changes at a time. */
async function origin(sb: Sandbox, s3: TestS3, prefix: string, feed: string): Promise<{ assets: string; server: ServerHandle; round(r: number): Promise<number> }> {
  const assets = await sb.mkdir('assets')
  await writeFile(join(assets, 'counter.txt'), '0\n')
  await writeRandomFile(join(assets, 'base.bin'), 300 * 1024)
  const server = await sb.serve(assets, ['--publish', `s3://${BUCKET}/${prefix}`, '--feed', feed, '--settle', '50'], { env: s3.env() })
  await waitPublished(server, 1)
  // Round r: counter.txt says r, and round-r.bin is new. It returns once the origin pushed the
  // batch holding round-r.bin to its own subscribers, with the number of batches the round made:
  // one, or two on a busy machine (counter.txt settled apart); each becomes a published version.
  const round = async (r: number): Promise<number> => {
    const from = server.events().length
    await writeFile(join(assets, 'counter.txt'), `${r}\n`)
    await writeRandomFile(join(assets, `round-${r}.bin`), 40 * 1024)
    const batches = (): ReturnType<ServerHandle['events']> => server.events().slice(from).filter((e) => e.event === 'changes')
    await waitFor(() => batches().some((e) => paths(e).includes(`round-${r}.bin`)),
      20_000, `the origin's batch of round ${r}`, { detail: () => server.stderr().slice(-2000) })
    return batches().findIndex((e) => paths(e).includes(`round-${r}.bin`)) + 1
  }
  return { assets, server, round }
}

/** A watcher on `edge` whose hook logs each run and the counter.txt it then sees. */
async function watcher(sb: Sandbox, edge: EdgeHandle): Promise<{ w: WatchHandle; log: string }> {
  const log = join(await sb.mkdir('hook'), 'runs.log')
  const w = await startWatch(sb, edge.addr, { out: await sb.mkdir('mirror'), exec: recordingHook(log, 'cat counter.txt') })
  return { w, log }
}

/**
 * Every round in `rounds` was applied exactly once along the way (see the file comment), and
 * nothing went back.
 */
function expectAppliedOnce(edge: EdgeHandle, w: WatchHandle, log: string, rounds: number[]): void {
  const versions = edgeVersions(edge).map((e) => e.version as number)
  expect(versions.length).toBeGreaterThan(0)
  for (let i = 1; i < versions.length; i++) expect(versions[i], `edge versions ${versions.join(',')}`).toBeGreaterThan(versions[i - 1] as number)
  const pushed = edge.events().filter((e) => e.event === 'changes').flatMap(paths)
  const applied = w.appliedPaths()
  const runs = readHookRuns(log)
  for (const r of rounds) {
    const f = `round-${r}.bin`
    expect(pushed.filter((p) => p === f), `batches the edge pushed with ${f}`).toHaveLength(1)
    expect(applied.filter((p) => p === f), `applied events with ${f}`).toHaveLength(1)
    expect(runs.filter((run) => run.paths.includes(f)), `hook runs with ${f}`).toHaveLength(1)
  }
  // The counter the hook saw never goes back (an old batch applied again would take it back).
  const seen = runs.map((run) => Number(run.extra[0]))
  for (let i = 1; i < seen.length; i++) expect(seen[i], `counters seen by the hook: ${seen.join(',')}`).toBeGreaterThanOrEqual(seen[i - 1] as number)
  expect(seen.at(-1)).toBe(Math.max(...rounds))
}

/** The `edge-version` event that installed `version` (waits for it). */
function edgeVersion(edge: EdgeHandle, version: number, ms = 30_000): Promise<Event> {
  return waitFor(() => edge.events().find((e) => e.event === 'edge-version' && (e.version as number) >= version), ms,
    `the edge to install version ${version}`, { detail: () => JSON.stringify(edge.events().slice(-5)) })
}

const edgeVersions = (edge: EdgeHandle): Event[] => edge.events().filter((e) => e.event === 'edge-version')

const lastPublished = (server: ServerHandle): number =>
  (server.events().filter((e) => e.event === 'published').at(-1)?.version as number | undefined) ?? 0

describe.skipIf(NATS_MISSING)('an edge that loses NATS', () => {
  let sb: Sandbox
  beforeAll(async () => {
    ensureBuilt()
    sb = await Sandbox.create('scale-feed-loss')
  })
  afterAll(async () => {
    await sb?.cleanup()
  })

  it('NATS killed while changes are made, then back on the same port and store: the watcher converges, each batch applied once', async () => {
    const s3 = await TestS3.start()
    const nats = await TestNats.start(1)
    try {
      const o = await origin(sb, s3, 'down', nats.url)
      const edge = await startEdge(sb, s3, 'down', nats.url)
      const { w, log } = await watcher(sb, edge)
      await waitForSameFiles(o.assets, w.out, 20_000)

      await o.round(1)
      const before = (await waitPublished(o.server, 2)).version as number
      await waitForSameFiles(o.assets, w.out, 20_000)

      // NATS goes away; three rounds are made meanwhile. The origin writes HEAD for the first,
      // then waits for NATS to announce it; the others are published after it.
      await nats.kill(0)
      for (const r of [2, 3, 4]) await o.round(r)
      await nats.startNode(0)
      await waitPublished(o.server, before + 2, 60_000) // the pass held up, and the one after it
      // From JetStream (HEAD, the safety net, needs two reads 30 s apart while connected). The
      // edge's last ack may have died with the server: until its redelivery (then skipped) nothing
      // else comes, so that must not take long (SCALE_FEED_ACK_WAIT_MS; it was 30 s: ~24 s here).
      expect((await edgeVersion(edge, before + 2, 15_000)).via).toBe('feed')
      await waitForSameFiles(o.assets, w.out, 20_000)

      // The edge's consumer is back on the feed: a change now arrives through it, not HEAD.
      const v = lastPublished(o.server) + await o.round(5)
      await waitPublished(o.server, v)
      expect((await edgeVersion(edge, v)).via).toBe('feed')
      await waitForSameFiles(o.assets, w.out, 20_000)
      await w.waitEvent((e) => e.event === 'hook' && readHookRuns(log).some((r) => r.paths.includes('round-5.bin')), 20_000, 'the hook run of round 5')
      expectAppliedOnce(edge, w, log, [1, 2, 3, 4, 5])
    } finally {
      await nats.stop()
      await s3.remove()
    }
  }, 240_000)

  it('the edge cut off from NATS while the stream loses what it missed: it fills the gap from manifests, then from HEAD', async () => {
    const s3 = await TestS3.start()
    const nats = await TestNats.start(1)
    const relay = await TcpRelay.start(nats.ports[0] as number)
    try {
      // The stream, made before the origin makes it, keeps only the last 2 messages.
      const loc = parseBucketUrl(`s3://${BUCKET}/away`, '--publish')
      const nc = await connect({ servers: nats.url })
      const jsm = await nc.jetstreamManager()
      await jsm.streams.add({
        name: feedStream(loc), subjects: [feedSubject(loc)], retention: RetentionPolicy.Limits, storage: StorageType.File,
        max_msgs: 2, duplicate_window: nanos(120_000),
      })
      const o = await origin(sb, s3, 'away', nats.url)
      const edge = await startEdge(sb, s3, 'away', relay.url)
      const { w, log } = await watcher(sb, edge)
      await waitForSameFiles(o.assets, w.out, 20_000)

      // Away while 4 versions are published: the stream keeps the last 2, the edge's
      // consumer resumes at the first of them, whose previous version the edge never had.
      relay.cut()
      let v = lastPublished(o.server)
      let from = edgeVersions(edge).length
      for (const r of [1, 2, 3, 4]) {
        v += await o.round(r)
        await waitPublished(o.server, v)
      }
      expect((await jsm.streams.info(feedStream(loc))).state.messages).toBe(2)
      relay.heal()
      await edgeVersion(edge, v, 15_000)
      await waitForSameFiles(o.assets, w.out, 20_000)
      // The feed alone could not have done it: the first two versions were gone from the stream.
      const a = edgeVersions(edge).slice(from)
      expect(a.at(-1)?.version).toBe(v)
      expect(a.some((e) => e.via === 'gap' || e.via === 'head'), JSON.stringify(a)).toBe(true)

      // Away again, and the stream purged: nothing to replay at all. HEAD is all there is.
      relay.cut()
      from = edgeVersions(edge).length
      for (const r of [5, 6]) {
        v += await o.round(r)
        await waitPublished(o.server, v)
      }
      await jsm.streams.purge(feedStream(loc))
      relay.heal()
      // Back on NATS with nothing to replay, it reads HEAD then, well before its next polls (the
      // safety net: 30 s, twice while connected).
      await edgeVersion(edge, v, 15_000)
      await waitForSameFiles(o.assets, w.out, 20_000)
      const b = edgeVersions(edge).slice(from)
      expect(b.at(-1)?.version).toBe(v)
      expect(b.map((e) => e.via), JSON.stringify(b)).toEqual(b.map(() => 'head'))

      // And the feed works again.
      v += await o.round(7)
      await waitPublished(o.server, v)
      expect((await edgeVersion(edge, v)).via).toBe('feed')
      await waitForSameFiles(o.assets, w.out, 20_000)
      await w.waitEvent((e) => e.event === 'hook' && readHookRuns(log).some((r) => r.paths.includes('round-7.bin')), 20_000, 'the hook run of round 7')
      expectAppliedOnce(edge, w, log, [1, 2, 3, 4, 5, 6, 7])
      await nc.close()
    } finally {
      await relay.close()
      await nats.stop()
      await s3.remove()
    }
  }, 240_000)
})
