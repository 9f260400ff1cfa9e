/**
 * `assetsync serve` + `assetsync watch --exec` end to end (issue 4): edits, creates, deletes,
 * renames and a burst of saves on the server reach the mirror, and the hook runs once per batch
 * with the right ASSETSYNC_* variables and stdin. A failing hook is reported, never fatal.
 */
import { writeFileSync } from 'node:fs'
import { chmod, mkdir, realpath, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { ensureBuilt, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { writeTree } from '../helpers/trees.js'
import { type HookRun, readHookRuns, recordingHook, startWatch, waitForSameFiles, type WatchHandle } from '../helpers/watch.js'

const CONVERGE_MS = 10_000

let sb: Sandbox
let src: string
let server: ServerHandle
let watch: WatchHandle
let hookLog: string
let root: string

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('watch-sync')
  src = await sb.mkdir('src')
  await writeTree(src, {
    'a.txt': 'alpha\n',
    'scripts/main.lua': 'print("hi")\n',
    'textures/hero.png': Buffer.alloc(70_000, 7), // more than one chunk
    'levels/old name.json': '{"level":1}\n',
    'gone.txt': 'to be deleted\n',
    'deep/er/file.txt': 'deep\n',
  })
  server = await sb.serve(src)
  hookLog = sb.path('hook.log')
  const out = await sb.mkdir('mirror')
  // The hook also prints burst.txt as it finds it (the burst test checks it is always whole).
  watch = await startWatch(sb, server.addr, { out, exec: recordingHook(hookLog, 'if [ -f burst.txt ]; then cat burst.txt; fi') })
  root = await realpath(out)
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

/** Hook runs after the first `from`; waits until their changes include every expected one. */
async function hookSaw(from: number, expected: { path: string; action: string }[]): Promise<HookRun[]> {
  const key = (c: { path: string; action: string }): string => `${c.action} ${c.path}`
  return waitFor(() => {
    const runs = readHookRuns(hookLog).slice(from)
    const seen = new Set(runs.flatMap((r) => r.stdin.changes.map(key)))
    return expected.every((c) => seen.has(key(c))) ? runs : null
  }, CONVERGE_MS, `a hook run with ${JSON.stringify(expected)}`, { detail: () => JSON.stringify(readHookRuns(hookLog).slice(from)) })
}

/** Every hook run so far is well formed: event, root, and ASSETSYNC_PATHS equal to stdin's paths. */
function checkRuns(runs: HookRun[]): void {
  for (const r of runs) {
    expect(r.event).toBe('applied')
    expect(r.root).toBe(root)
    expect(r.stdin.event).toBe('applied')
    expect(r.stdin.root).toBe(root)
    expect(r.paths).toEqual(r.stdin.changes.map((c) => c.path))
    for (const c of r.stdin.changes) expect(['change', 'delete']).toContain(c.action)
  }
}

describe('watch --exec mirrors every kind of change', () => {
  test('the initial sync mirrors the tree and prints synced; no hook run for it', async () => {
    await waitForSameFiles(src, watch.out, CONVERGE_MS)
    expect(watch.synced).toMatchObject({ event: 'synced', files: 6, downloaded: 6 })
    expect(readHookRuns(hookLog)).toEqual([])
  })

  test('an edit', async () => {
    const from = readHookRuns(hookLog).length
    await writeFile(join(src, 'a.txt'), 'alpha, edited\n')
    await waitForSameFiles(src, watch.out, CONVERGE_MS)
    await watch.waitEvent((e) => e.event === 'applied' && JSON.stringify(e.changes).includes('"a.txt"'), CONVERGE_MS, 'applied a.txt')
    const runs = await hookSaw(from, [{ path: 'a.txt', action: 'change' }])
    checkRuns(runs)
    expect(runs.flatMap((r) => r.paths)).toEqual(['a.txt'])
  })

  test('a create (in a new folder, with its mode)', async () => {
    const from = readHookRuns(hookLog).length
    await mkdir(join(src, 'new', 'folder'), { recursive: true })
    await writeFile(join(src, 'new', 'folder', 'tool.sh'), '#!/bin/sh\necho tool\n')
    await chmod(join(src, 'new', 'folder', 'tool.sh'), 0o755)
    await waitForSameFiles(src, watch.out, CONVERGE_MS)
    checkRuns(await hookSaw(from, [{ path: 'new/folder/tool.sh', action: 'change' }]))
  })

  test('a delete', async () => {
    const from = readHookRuns(hookLog).length
    await unlink(join(src, 'gone.txt'))
    await waitForSameFiles(src, watch.out, CONVERGE_MS)
    checkRuns(await hookSaw(from, [{ path: 'gone.txt', action: 'delete' }]))
    await watch.waitEvent((e) => e.event === 'applied' && JSON.stringify(e.changes) === JSON.stringify([{ path: 'gone.txt', action: 'delete' }]), CONVERGE_MS, 'applied delete of gone.txt')
  })

  test('a rename (mv), into another folder; the server pairs it as a rename', async () => {
    const from = readHookRuns(hookLog).length
    const fromEvents = server.events().length
    await rename(join(src, 'levels', 'old name.json'), join(src, 'levels', 'new name.json'))
    await rename(join(src, 'textures', 'hero.png'), join(src, 'scripts', 'hero.png'))
    await waitForSameFiles(src, watch.out, CONVERGE_MS)
    checkRuns(await hookSaw(from, [
      { path: 'levels/old name.json', action: 'delete' },
      { path: 'levels/new name.json', action: 'change' },
      { path: 'textures/hero.png', action: 'delete' },
      { path: 'scripts/hero.png', action: 'change' },
    ]))
    const pushed = server.events().slice(fromEvents).filter((e) => e.event === 'changes')
      .flatMap((e) => e.changes as { path: string; action: string; from?: string }[])
    expect(pushed).toContainEqual({ path: 'levels/new name.json', action: 'rename', from: 'levels/old name.json' })
    expect(pushed).toContainEqual({ path: 'scripts/hero.png', action: 'rename', from: 'textures/hero.png' })
  })

  test('a folder rename (mv deep deeper): its files move on the mirror', async () => {
    const from = readHookRuns(hookLog).length
    await rename(join(src, 'deep'), join(src, 'deeper'))
    await waitForSameFiles(src, watch.out, CONVERGE_MS)
    checkRuns(await hookSaw(from, [
      { path: 'deep/er/file.txt', action: 'delete' },
      { path: 'deeper/er/file.txt', action: 'change' },
    ]))
  })

  test('a burst of 50 rapid saves of one file ends with the last content; every hook run names only that file', async () => {
    const from = readHookRuns(hookLog).length
    const fromEvents = watch.events().length
    const versions: string[] = []
    for (let i = 0; i < 50; i++) {
      const text = `burst save ${i} ${'.'.repeat(i * 37)}\n`
      versions.push(text)
      // One synchronous truncate-write-close, as an editor saves in place: the async writeFile's
      // truncate and write are separate thread-pool trips, and on a starved machine the gap
      // between them outlasted the settle time (a writer pausing that long is caught half-way
      // by design: docs/cli.md, --settle).
      writeFileSync(join(src, 'burst.txt'), text)
      if (i % 5 === 4) await new Promise((r) => setTimeout(r, 4)) // an editor's autosave rhythm
    }
    await waitForSameFiles(src, watch.out, CONVERGE_MS)
    // The last version's applied batch has been handed to the hook runner: wait for its run.
    const runs = await waitFor(() => {
      const rs = readHookRuns(hookLog).slice(from)
      return rs.length > 0 && rs.at(-1)?.extra.join('\n') === versions.at(-1)?.trimEnd() ? rs : null
    }, CONVERGE_MS, 'a hook run that sees the last burst version', { detail: () => JSON.stringify(readHookRuns(hookLog).slice(from)) })
    checkRuns(runs)
    for (const r of runs) {
      expect(r.paths).toEqual(['burst.txt'])
      // What the hook found was always one complete saved version.
      expect(versions).toContain(`${r.extra.join('\n')}\n`)
    }
    const applied = watch.events().slice(fromEvents).filter((e) => e.event === 'applied')
    expect(applied.length).toBeGreaterThanOrEqual(1)
    expect(applied.length).toBeLessThanOrEqual(50)
    expect(runs.length).toBeLessThanOrEqual(applied.length)
    expect(watch.events().slice(fromEvents).filter((e) => e.event === 'hook').every((e) => e.exitCode === 0)).toBe(true)
  })
})
