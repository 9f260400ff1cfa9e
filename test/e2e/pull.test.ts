/**
 * `assetsync pull` end to end (issue 3): the built CLI mirrors a served tree byte for byte with
 * modes, prints the contract's --json events, skips what is up to date, selects by pattern, prunes
 * only files the server listed and only within the patterns (issue 11: a file the server never
 * sent is never deleted), and changes nothing with --dry-run. Over UDP and TCP.
 */
import { existsSync } from 'node:fs'
import { appendFile, mkdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type CliResult, ensureBuilt, lines, parseEvents, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { diffTrees, listFiles, snapshotTree, writeAssetTree, writeTree } from '../helpers/trees.js'

const SUMMARY_FIELDS = ['files', 'downloaded', 'upToDate', 'deleted', 'bytesReceived', 'ms'] as const

let sb: Sandbox
let src: string
let files: string[]
let sizes: Map<string, number>
let udp: ServerHandle

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('pull')
  src = await sb.mkdir('src')
  files = await writeAssetTree(src)
  sizes = new Map()
  for (const f of files) sizes.set(f, (await stat(join(src, ...f.split('/')))).size)
  udp = await sb.serve(src)
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

function ok(r: CliResult): void {
  expect(r.stderr, `stderr of a successful run`).toBe('')
  expect(r.code).toBe(0)
}

/** Splits --json output into file events and the one summary, which must come last. */
function events(r: CliResult): { file: Array<Record<string, unknown>>; summary: Record<string, unknown> } {
  const evs = parseEvents(r.stdout)
  const summaries = evs.filter((e) => e.event === 'summary')
  expect(summaries, 'exactly one summary event').toHaveLength(1)
  expect(evs.at(-1)?.event, 'the summary is the last event').toBe('summary')
  const summary = summaries[0] as Record<string, unknown>
  for (const k of SUMMARY_FIELDS) {
    expect(Number.isInteger(summary[k]) && (summary[k] as number) >= 0, `summary.${k} is a count: ${JSON.stringify(summary)}`).toBe(true)
  }
  const file = evs.filter((e) => e.event === 'file')
  const warnings = evs.filter((e) => e.event === 'warning')
  expect(file.length + warnings.length + 1, 'only file, warning and summary events').toBe(evs.length)
  for (const e of file) {
    expect(typeof e.path).toBe('string')
    expect(['downloaded', 'up-to-date', 'mode', 'deleted', 'vanished']).toContain(e.action)
    expect(Number.isInteger(e.bytes)).toBe(true)
  }
  return { file, summary }
}

const pathsOf = (evs: Array<Record<string, unknown>>): string[] => evs.map((e) => String(e.path)).sort()

async function mirrorAndCheck(server: ServerHandle, transport: 'udp' | 'tcp'): Promise<void> {
  const out = sb.path(`out-${transport}`)
  const r = await sb.run(['pull', '--server', server.addr, '--out', out, '--json', '--transport', transport])
  ok(r)
  expect(await diffTrees(src, out)).toEqual([])
  const { file, summary } = events(r)
  expect(pathsOf(file), 'one file event per file').toEqual(files)
  const total = [...sizes.values()].reduce((a, b) => a + b, 0)
  for (const e of file) {
    expect(e.action, String(e.path)).toBe('downloaded')
    expect(e.bytes, String(e.path)).toBe(sizes.get(String(e.path)))
  }
  expect(summary).toMatchObject({ files: files.length, downloaded: files.length, upToDate: 0, deleted: 0, bytesReceived: total })
}

describe('pull mirrors a tree', () => {
  test('over UDP: byte for byte, modes included, one file event per file then the summary', async () => {
    await mirrorAndCheck(udp, 'udp')
  })

  test('over TCP (server and client with --transport tcp)', async () => {
    const tcp = await sb.serve(src, ['--transport', 'tcp'])
    expect(tcp.listening.transport).toBe('tcp')
    try {
      await mirrorAndCheck(tcp, 'tcp')
    } finally {
      await tcp.stop()
    }
  })

  test('a second pull transfers nothing: bytesReceived 0, upToDate == files', async () => {
    const out = sb.path('out-twice')
    ok(await sb.run(['pull', '--server', udp.addr, '--out', out, '--json']))
    const before = await snapshotTree(out)
    const r = await sb.run(['pull', '--server', udp.addr, '--out', out, '--json'])
    ok(r)
    const { file, summary } = events(r)
    expect(summary).toMatchObject({ files: files.length, downloaded: 0, upToDate: files.length, deleted: 0, bytesReceived: 0 })
    expect(file.every((e) => e.action === 'up-to-date' && e.bytes === 0)).toBe(true)
    expect(pathsOf(file)).toEqual(files)
    expect(await snapshotTree(out)).toEqual(before)
  })

  test('a changed or missing local file is downloaded again, the rest is up to date', async () => {
    const out = sb.path('out-repair')
    ok(await sb.run(['pull', '--server', udp.addr, '--out', out]))
    await appendFile(join(out, 'scripts', 'main.lua'), '-- local edit\n')
    await rm(join(out, 'ü', '日本.lua'))
    const r = await sb.run(['pull', '--server', udp.addr, '--out', out, '--json'])
    ok(r)
    const { file, summary } = events(r)
    expect(pathsOf(file.filter((e) => e.action === 'downloaded'))).toEqual(['scripts/main.lua', 'ü/日本.lua'])
    expect(summary).toMatchObject({ files: files.length, downloaded: 2, upToDate: files.length - 2 })
    expect(await diffTrees(src, out)).toEqual([])
  })
})

describe('patterns', () => {
  test('pull "scripts/**" pulls only those', async () => {
    const out = sb.path('out-scripts')
    const r = await sb.run(['pull', '--server', udp.addr, '--out', out, '--json', 'scripts/**'])
    ok(r)
    const want = files.filter((f) => f.startsWith('scripts/'))
    expect(want.length).toBeGreaterThan(1)
    expect(await listFiles(out)).toEqual(want)
    expect(pathsOf(events(r).file)).toEqual(want)
    expect(events(r).summary).toMatchObject({ files: want.length, downloaded: want.length })
  })

  test('several patterns select the union, non-ASCII names included', async () => {
    const out = sb.path('out-lua')
    const r = await sb.run(['pull', '--server', udp.addr, '--out', out, '**/*.lua', 'bin/*'])
    ok(r)
    const want = files.filter((f) => f.endsWith('.lua') || f.startsWith('bin/'))
    expect(want).toContain('ü/日本.lua')
    expect(await listFiles(out)).toEqual(want)
    expect((await stat(join(out, 'bin', 'run.sh'))).mode & 0o777).toBe(0o755)
  })

  test('a pattern that matches nothing pulls nothing, succeeds, and warns (a note and a --json event)', async () => {
    const out = sb.path('out-none')
    const r = await sb.run(['pull', '--server', udp.addr, '--out', out, '--json', 'no-such-folder/**', 'scripts/**'])
    expect(r.code).toBe(0)
    expect(lines(r.stderr)).toEqual(['assetsync: warning: pattern "no-such-folder/**" matches no file on the server'])
    expect(parseEvents(r.stdout).filter((e) => e.event === 'warning'))
      .toEqual([{ event: 'warning', code: 'NO_MATCH', pattern: 'no-such-folder/**', message: 'pattern "no-such-folder/**" matches no file on the server' }])
    expect(events(r).summary).toMatchObject({ files: 2, downloaded: 2 })
    expect(await listFiles(out)).toEqual(['scripts/lib/util.lua', 'scripts/main.lua'])
    const none = sb.path('out-none')
    const n = await sb.run(['pull', '--server', udp.addr, '--out', none, 'no-such-folder/**'])
    expect(n.code).toBe(0)
    expect(lines(n.stderr)).toEqual(['assetsync: warning: pattern "no-such-folder/**" matches no file on the server'])
    expect(existsSync(none) ? await listFiles(none) : []).toEqual([])
  })
})

describe('--prune and --dry-run', () => {
  // A small served tree of its own, so the server can be restarted without a file.
  let psrc: string
  let pserver: ServerHandle
  const tree = {
    'scripts/a.lua': 'a\n',
    'scripts/b.lua': 'b\n',
    'scripts/sub/c.lua': 'c\n',
    'levels/l1.json': '{"level":1}\n',
  }

  beforeAll(async () => {
    psrc = await sb.mkdir('prune-src')
    await writeTree(psrc, tree)
    pserver = await sb.serve(psrc)
  })

  /** A mirror of the prune tree plus local-only files (never sent by the server) inside and outside "scripts/**". */
  async function preparedOut(): Promise<string> {
    const out = sb.path('out-prune')
    ok(await sb.run(['pull', '--server', pserver.addr, '--out', out]))
    await writeTree(out, {
      'scripts/stale.lua': 'stale\n',
      'scripts/sub/deep/stale2.lua': 'stale 2\n',
      'levels/local-only.json': '{}\n',
      'notes.txt': 'mine\n',
      'scripts/.git/HEAD': 'ref: x\n', // ignored locally: never pruned
    })
    return out
  }

  test('--dry-run --prune reports (exit 0, events) and changes nothing on disk', async () => {
    const out = await preparedOut()
    await writeFile(join(out, 'scripts', 'a.lua'), 'locally changed\n')
    await rm(join(out, 'levels', 'l1.json'))
    const before = await snapshotTree(out)
    const r = await sb.run(['pull', '--server', pserver.addr, '--out', out, '--prune', '--dry-run', '--json'])
    ok(r)
    expect(await snapshotTree(out)).toEqual(before)
    const { file, summary } = events(r)
    const by = (a: string): string[] => pathsOf(file.filter((e) => e.action === a))
    expect(by('downloaded')).toEqual(['levels/l1.json', 'scripts/a.lua'])
    expect(by('deleted'), 'files the server never sent are never deleted').toEqual([])
    expect(by('up-to-date')).toEqual(['scripts/b.lua', 'scripts/sub/c.lua'])
    expect(file.every((e) => e.bytes === 0)).toBe(true)
    expect(summary).toMatchObject({ files: 4, downloaded: 2, upToDate: 2, deleted: 0, bytesReceived: 0 })
  })

  test('--dry-run into a folder that does not exist creates nothing', async () => {
    const parent = await sb.mkdir('dry-parent')
    const out = join(parent, 'out')
    const r = await sb.run(['pull', '--server', pserver.addr, '--out', out, '--dry-run', '--json'])
    ok(r)
    expect(await snapshotTree(parent)).toEqual({})
    const { file, summary } = events(r)
    expect(pathsOf(file)).toEqual(Object.keys(tree).sort())
    expect(file.every((e) => e.action === 'downloaded' && e.bytes === 0)).toBe(true)
    expect(summary).toMatchObject({ files: 4, downloaded: 4, bytesReceived: 0 })
  })

  test('human output (no --json) names what changed and ends with a summary line', async () => {
    const out = sb.path('out-human')
    await mkdir(out)
    const r = await sb.run(['pull', '--server', pserver.addr, '--out', out])
    ok(r)
    const text = lines(r.stdout.toString())
    for (const p of Object.keys(tree)) expect(text.some((l) => l.includes(p)), p).toBe(true)
    expect(text.at(-1)).toMatch(/^4 files: 4 downloaded, 0 up to date, 0 deleted/)
    expect(() => parseEvents(r.stdout)).toThrow()
  })

  // Last in this block: it restarts the server without scripts/b.lua.
  test('--prune deletes files the server listed and no longer has, only within the patterns; never a file it never sent', async () => {
    const out = await preparedOut()
    // The server loses scripts/b.lua: restart it without the file.
    await pserver.stop()
    await rm(join(psrc, 'scripts', 'b.lua'))
    pserver = await sb.serve(psrc)

    const r = await sb.run(['pull', '--server', pserver.addr, '--out', out, '--prune', '--json', 'scripts/**'])
    ok(r)
    const { file, summary } = events(r)
    expect(pathsOf(file.filter((e) => e.action === 'deleted'))).toEqual(['scripts/b.lua'])
    expect(summary).toMatchObject({ files: 2, deleted: 1, upToDate: 2, downloaded: 0 })
    const localOnly = ['levels/local-only.json', 'notes.txt', 'scripts/.git/HEAD', 'scripts/stale.lua', 'scripts/sub/deep/stale2.lua']
    expect(await listFiles(out)).toEqual(['levels/l1.json', ...localOnly, 'scripts/a.lua', 'scripts/sub/c.lua'].sort())

    // Without patterns: nothing else goes, the local-only files stay.
    const all = await sb.run(['pull', '--server', pserver.addr, '--out', out, '--prune', '--json'])
    ok(all)
    expect(pathsOf(events(all).file.filter((e) => e.action === 'deleted'))).toEqual([])
    expect(await listFiles(out)).toEqual(['levels/l1.json', ...localOnly, 'scripts/a.lua', 'scripts/sub/c.lua'].sort())
  })
})
