/**
 * Issue 11, case 1: `pull --prune` (and a watcher's deletes) only ever delete files under --out
 * that the server listed into this mirror, in the selected patterns. A file the server never sent
 * is never deleted, whatever the patterns; a damaged record of what was listed deletes nothing.
 * The record lives in the config folder next to the hash cache, never inside --out.
 */
import { existsSync } from 'node:fs'
import { readFile, readdir, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type CliResult, Sandbox, ensureBuilt, lines, parseEvents } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { listFiles, writeTree } from '../helpers/trees.js'
import { startWatch } from '../helpers/watch.js'

let sb: Sandbox

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('prune-rule')
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

/** path → action of the --json file events. */
function actions(r: CliResult): Record<string, string> {
  const out: Record<string, string> = {}
  for (const e of parseEvents(r.stdout)) if (e.event === 'file') out[String(e.path)] = String(e.action)
  return out
}

/** Makes the server drop `rel` from its index now (a request refreshes the path). */
async function goneOnServer(addr: string, src: string, rel: string): Promise<void> {
  await unlink(join(src, ...rel.split('/')))
  await waitFor(async () => (await sb.run(['get', '--server', addr, rel])).code === 5, 10_000, `the server to drop ${rel}`)
}

describe('issue 11: --prune deletes only what the server listed', () => {
  test("pull -o o 'tex/**' '!**/*.psd' --prune keeps local files the server never sent", async () => {
    const src = await sb.mkdir('src')
    await writeTree(src, { 'tex/a.png': 'png\n', 'tex/c.psd': 'psd\n' })
    const server = await sb.serve(src)
    const o = await sb.mkdir('o')
    await writeTree(o, { 'build/output.bin': 'built here\n', 'notes.txt': 'mine\n' })
    const r = await sb.run(['pull', '-o', o, 'tex/**', '!**/*.psd', '--prune', '--json', '--server', server.addr])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    // Every server file in the selection is downloaded (the .psd is excluded), nothing deleted.
    expect(actions(r)).toEqual({ 'tex/a.png': 'downloaded' })
    expect(await readFile(join(o, 'build', 'output.bin'), 'utf8')).toBe('built here\n')
    expect(await readFile(join(o, 'notes.txt'), 'utf8')).toBe('mine\n')
    // The record is in the config folder beside the hash cache; nothing of ours inside --out.
    expect((await readdir(join(sb.config, 'cache'))).some((f) => /^listed-[0-9a-f]+\.bin$/.test(f))).toBe(true)
    expect((await listFiles(o)).filter((p) => !p.startsWith('tex/'))).toEqual(['build/output.bin', 'notes.txt'])

    // What the server listed and then lost goes; what it never sent stays.
    await goneOnServer(server.addr, src, 'tex/a.png')
    const again = await sb.run(['pull', '-o', o, 'tex/**', '!**/*.psd', '--prune', '--json', '--server', server.addr])
    expect(again.code).toBe(0)
    expect(actions(again)['tex/a.png']).toBe('deleted')
    expect(existsSync(join(o, 'tex', 'a.png'))).toBe(false)
    expect(await readFile(join(o, 'notes.txt'), 'utf8')).toBe('mine\n')
    expect(existsSync(join(o, 'build', 'output.bin'))).toBe(true)
    await server.stop()
  })

  test('a listed file outside the current patterns is not deleted', async () => {
    const src = await sb.mkdir('src')
    await writeTree(src, { 'a/x.txt': 'x\n', 'b/y.txt': 'y\n' })
    const server = await sb.serve(src)
    const o = sb.path('o')
    expect((await sb.run(['pull', '-o', o, '--server', server.addr])).code).toBe(0)
    await goneOnServer(server.addr, src, 'b/y.txt')
    const r = await sb.run(['pull', '-o', o, 'a/**', '--prune', '--json', '--server', server.addr])
    expect(r.code).toBe(0)
    expect(Object.values(actions(r))).not.toContain('deleted')
    expect(await listFiles(o)).toEqual(['a/x.txt', 'b/y.txt'])
    // With b/** selected, it goes.
    const all = await sb.run(['pull', '-o', o, '--prune', '--json', '--server', server.addr])
    expect(actions(all)['b/y.txt']).toBe('deleted')
    expect(await listFiles(o)).toEqual(['a/x.txt'])
    await server.stop()
  })

  test('a damaged record deletes nothing (warning), and the listing rebuilds it', async () => {
    const src = await sb.mkdir('src')
    await writeTree(src, { 'keep.txt': 'k\n', 'one.txt': '1\n', 'two.txt': '2\n' })
    const server = await sb.serve(src)
    const o = sb.path('o')
    const cfg = await sb.mkdir('cfg') // a config folder of its own: one record in it
    const env = { ASSETSYNC_CONFIG_DIR: cfg }
    expect((await sb.run(['pull', '-o', o, '--server', server.addr], { env })).code).toBe(0)
    const [record] = (await readdir(join(cfg, 'cache'))).filter((f) => f.startsWith('listed-'))
    const file = join(cfg, 'cache', record as string)
    const bytes = await readFile(file)
    bytes[bytes.length - 40] = (bytes[bytes.length - 40] as number) ^ 0xff // one flipped byte
    await writeFile(file, bytes)
    await goneOnServer(server.addr, src, 'one.txt')
    const r = await sb.run(['pull', '-o', o, '--prune', '--json', '--server', server.addr], { env })
    expect(r.code).toBe(0)
    expect(Object.values(actions(r))).not.toContain('deleted')
    expect(existsSync(join(o, 'one.txt'))).toBe(true)
    expect(lines(r.stderr)).toHaveLength(1)
    expect(r.stderr).toMatch(/^assetsync: warning: the record of files the server listed .* is damaged: nothing is deleted/)
    expect(parseEvents(r.stdout).find((e) => e.event === 'warning')).toMatchObject({ code: 'RECORD_DAMAGED' })
    // Rebuilt from that listing: a file it listed and the server then loses is deleted next time.
    await goneOnServer(server.addr, src, 'two.txt')
    const next = await sb.run(['pull', '-o', o, '--prune', '--json', '--server', server.addr], { env })
    expect(next.stderr).toBe('')
    expect(actions(next)).toMatchObject({ 'two.txt': 'deleted' })
    expect(await listFiles(o)).toEqual(['keep.txt', 'one.txt'])
    await server.stop()
  })

  test('watch deletes what the server deletes, and never a local file the server never sent', async () => {
    const src = await sb.mkdir('src')
    await writeTree(src, { 'a.txt': 'a\n', 'stale.txt': 'listed once\n', 'b.txt': 'b\n' })
    const server = await sb.serve(src)
    const out = sb.path('mirror')
    expect((await sb.run(['pull', '-o', out, '--server', server.addr])).code).toBe(0)
    await writeTree(out, { 'mine.txt': 'local only\n', 'sub/also-mine.txt': 'local only\n' })
    await goneOnServer(server.addr, src, 'stale.txt') // lost while no watcher ran
    const watch = await startWatch(sb, server.addr, { out })
    // The initial sync converges: the stale listed file goes, the local-only files stay.
    expect(watch.synced).toMatchObject({ deleted: 1 })
    expect(await listFiles(out)).toEqual(['a.txt', 'b.txt', 'mine.txt', 'sub/also-mine.txt'])
    await unlink(join(src, 'b.txt'))
    await watch.waitEvent((e) => e.event === 'applied' && JSON.stringify(e.changes).includes('"b.txt"'), 10_000, 'the delete of b.txt')
    expect(await listFiles(out)).toEqual(['a.txt', 'mine.txt', 'sub/also-mine.txt'])
    await server.stop()
  })
})
