/**
 * Compatibility with the release already deployed (protocol 2): the CLI of commit e05baf5,
 * vendored in test/fixtures/release-v2, against this build's CLI, in both roles, over UDP and
 * TCP (docs/protocol.md §5.2). The old CLI pulls and watches from a new server; the new CLI pulls
 * and watches from an old server. Pulls must mirror byte for byte (across the flow-control
 * window), and a watch must apply a change and a new file.
 */
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { FLOW_WINDOW_BYTES } from '../../src/limits.js'
import { type CliResult, ensureBuilt, parseEvents, PROJECT_ROOT, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { diffTrees, writeAssetTree, writeTree } from '../helpers/trees.js'
import { startWatch, waitForSameFiles } from '../helpers/watch.js'

/** `node <this> <args>` runs the protocol-2 release's CLI. */
const OLD_CLI = join(PROJECT_ROOT, 'test', 'fixtures', 'release-v2', 'cli.mjs')
const CONVERGE_MS = 20_000

type Side = 'old' | 'new'
const binOf = (side: Side): { bin?: string } => (side === 'old' ? { bin: OLD_CLI } : {})

let sb: Sandbox
let src: string
let files: string[]
let live: string

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('cross-version')
  src = await sb.mkdir('src')
  // The big file is larger than the flow-control window, so CREDIT crosses versions too.
  files = await writeAssetTree(src, { small: 40, bigBytes: FLOW_WINDOW_BYTES + 1024 * 1024 })
  live = await sb.mkdir('live')
  await writeTree(live, { 'a.txt': 'first\n', 'dir/b.bin': randomBytes(70_000) })
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

function ok(r: CliResult, what: string): void {
  expect(r.stderr, `stderr of ${what}`).toBe('')
  expect(r.code, what).toBe(0)
}

/** What the server printed about refused connections (--json `rejected` events). */
const rejections = (s: ServerHandle): string[] => s.events().filter((e) => e.event === 'rejected').map((e) => String(e.code))

/**
 * A protocol-2 server refuses the protocol-3 AUTH of a new TCP client once per connection
 * (the client then reconnects with the protocol-2 AUTH); over UDP the WELCOME tells the client
 * first. A new server refuses nobody.
 */
function expectedRejections(server: Side, client: Side, transport: 'udp' | 'tcp', connections: number): string[] {
  return server === 'old' && client === 'new' && transport === 'tcp' ? Array<string>(connections).fill('ERR_PROTOCOL') : []
}

const PAIRS: readonly [Side, Side][] = [['old', 'new'], ['new', 'old']]

describe.each(['udp', 'tcp'] as const)('%s', (transport) => {
  test.each(PAIRS)('the %s CLI pulls from the %s server, byte for byte', async (client, server) => {
    const s = await sb.serve(src, ['--transport', transport], binOf(server))
    try {
      const out = sb.path(`pull-${client}-from-${server}-${transport}`)
      const r = await sb.run(['pull', '--server', s.addr, '--key', s.key, '--out', out, '--transport', transport, '--json'], binOf(client))
      ok(r, `${client} pull`)
      expect(await diffTrees(src, out)).toEqual([])
      const summary = parseEvents(r.stdout).find((e) => e.event === 'summary')
      expect(summary).toMatchObject({ files: files.length, downloaded: files.length, upToDate: 0 })
      expect(rejections(s)).toEqual(expectedRejections(server, client, transport, 1))
    } finally {
      await s.stop()
    }
  })

  test.each(PAIRS)('the %s CLI watches the %s server and applies a change and a new file', async (client, server) => {
    const s = await sb.serve(live, ['--transport', transport], binOf(server))
    try {
      const out = sb.path(`watch-${client}-from-${server}-${transport}`)
      const w = await startWatch(sb, s.addr, { out, args: ['--key', s.key, '--transport', transport], ...binOf(client) })
      await waitForSameFiles(live, out, CONVERGE_MS)
      const from = w.events().length
      const tag = `${client}-${server}-${transport}`
      await writeFile(join(live, 'a.txt'), `changed by ${tag}\n`)
      await writeFile(join(live, `new-${tag}.txt`), `${tag}\n`)
      for (const path of ['a.txt', `new-${tag}.txt`]) {
        await w.waitEvent((e) => e.event === 'applied' && (e.changes as { path: string }[]).some((c) => c.path === path),
          CONVERGE_MS, `an applied event for ${path}`, from)
      }
      await waitForSameFiles(live, out, CONVERGE_MS)
      expect(w.stderr()).toBe('')
      w.cli.proc.kill('SIGTERM')
      await w.exited
      expect(rejections(s)).toEqual(expectedRejections(server, client, transport, 1))
    } finally {
      await s.stop()
    }
  })
})
