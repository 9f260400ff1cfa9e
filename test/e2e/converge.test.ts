/**
 * Issue 11, cases 3 and 4, with `pull`: a path that changes type (a file that became a folder, a
 * folder that became a file: what a branch switch in a served git work tree does) and a
 * mode-only change (`chmod +x`) converge with `pull` and `pull --prune`. Only files the server
 * listed are removed to make room: a local-only file in the way fails that path (exit 6) and is
 * kept.
 */
import { chmod, mkdir, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type CliResult, Sandbox, type ServerHandle, ensureBuilt, lines, parseEvents } from '../helpers/cli.js'
import { diffTrees, listFiles, writeTree } from '../helpers/trees.js'

const diffFiles = (a: string, b: string): Promise<string[]> => diffTrees(a, b, { filesOnly: true })

let sb: Sandbox

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('converge')
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

const pull = (server: ServerHandle, out: string, ...args: string[]): Promise<CliResult> =>
  sb.run(['pull', '--server', server.addr, '--out', out, '--json', ...args])

/** A served tree with a file `foo` and a folder `dir/`, mirrored into a fresh folder. */
async function mirrored(): Promise<{ src: string; server: ServerHandle; out: string }> {
  const src = await sb.mkdir('src')
  await writeTree(src, { 'foo': 'a file\n', 'dir/x.txt': 'x\n', 'dir/sub/y.txt': 'y\n', 'tool.sh': { data: '#!/bin/sh\necho hi\n', mode: 0o644 } })
  const server = await sb.serve(src)
  const out = sb.path('out')
  const r = await pull(server, out)
  expect(r.code, r.stderr).toBe(0)
  return { src, server, out }
}

/** The branch switch: `foo` becomes a folder, `dir/` becomes a file. */
async function switchTypes(src: string): Promise<void> {
  await unlink(join(src, 'foo'))
  await mkdir(join(src, 'foo'))
  await writeFile(join(src, 'foo', 'inner'), 'now a folder\n')
  await rm(join(src, 'dir'), { recursive: true })
  await writeFile(join(src, 'dir'), 'now a file\n')
}

/** The server's index has caught up with `paths` (a request refreshes a path). */
async function settled(server: ServerHandle, ...paths: string[]): Promise<void> {
  for (const p of paths) await sb.run(['get', '--server', server.addr, p])
}

describe('issue 11 case 3: a path that changes type', () => {
  test.each([[[]], [['--prune']]])('pull %j converges: file -> folder and folder -> file', async (args) => {
    const { src, server, out } = await mirrored()
    await switchTypes(src)
    await settled(server, 'foo', 'foo/inner', 'dir', 'dir/x.txt', 'dir/sub/y.txt')
    const r = await pull(server, out, ...args)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(await diffFiles(src, out)).toEqual([])
    const deleted = parseEvents(r.stdout).filter((e) => e.event === 'file' && e.action === 'deleted').map((e) => e.path).sort()
    expect(deleted, 'what was removed to make room is reported').toEqual(['dir/sub/y.txt', 'dir/x.txt', 'foo'])
    // And back again (the other branch).
    await rm(join(src, 'foo'), { recursive: true })
    await writeFile(join(src, 'foo'), 'a file again\n')
    await unlink(join(src, 'dir'))
    await writeTree(src, { 'dir/x.txt': 'x again\n' })
    await settled(server, 'foo', 'foo/inner', 'dir', 'dir/x.txt')
    const back = await pull(server, out, ...args)
    expect(back.code, back.stderr).toBe(0)
    expect(await diffFiles(src, out)).toEqual([])
    await server.stop()
  })

  test('a local-only file inside a folder that must become a file: exit 6, that file kept', async () => {
    const { src, server, out } = await mirrored()
    await writeFile(join(out, 'dir', 'mine.txt'), 'never sent by the server\n')
    await switchTypes(src)
    await settled(server, 'foo', 'foo/inner', 'dir', 'dir/x.txt', 'dir/sub/y.txt')
    for (const args of [[], ['--prune']]) {
      const r = await pull(server, out, ...args)
      expect(r.code).toBe(6)
      expect(lines(r.stderr)).toEqual([`assetsync: cannot replace the folder dir with the server's file: dir/mine.txt is not a file the server sent (kept)`])
      expect(await listFiles(join(out, 'dir'))).toContain('mine.txt')
    }
    await server.stop()
  })

  test('a local-only file where the server now has a folder: exit 6, the file kept', async () => {
    const src = await sb.mkdir('src')
    await writeTree(src, { 'other.txt': 'o\n', 'notes/today.txt': 'server notes\n' })
    const server = await sb.serve(src)
    const out = await sb.mkdir('out')
    await writeFile(join(out, 'notes'), 'my own notes file\n')
    const r = await pull(server, out, '--prune')
    expect(r.code).toBe(6)
    expect(lines(r.stderr)).toEqual(['assetsync: cannot write under notes: it is a file here, and not one the server sent (kept)'])
    expect((await stat(join(out, 'notes'))).isFile()).toBe(true)
    await server.stop()
  })
})

describe('issue 11 case 4: a mode-only change', () => {
  test.each([[[]], [['--prune']]])('pull %j applies chmod +x without a download', async (args) => {
    const { src, server, out } = await mirrored()
    expect((await stat(join(out, 'tool.sh'))).mode & 0o777).toBe(0o644)
    await chmod(join(src, 'tool.sh'), 0o755)
    await settled(server, 'tool.sh')
    const r = await pull(server, out, ...args)
    expect(r.code, r.stderr).toBe(0)
    expect((await stat(join(out, 'tool.sh'))).mode & 0o777).toBe(0o755)
    const evs = parseEvents(r.stdout)
    expect(evs.filter((e) => e.event === 'file' && e.action !== 'up-to-date')).toEqual([{ event: 'file', path: 'tool.sh', action: 'mode', bytes: 0, reused: 0 }])
    expect(evs.find((e) => e.event === 'summary')).toMatchObject({ downloaded: 0, modeChanged: 1, bytesReceived: 0 })
    // Nothing left to do the next time.
    const again = await pull(server, out, ...args)
    expect(parseEvents(again.stdout).find((e) => e.event === 'summary')).toMatchObject({ downloaded: 0, modeChanged: 0, upToDate: 4 })
    await server.stop()
  })
})
