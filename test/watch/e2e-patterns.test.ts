/**
 * Two watchers with different patterns on one server (issue 4): each mirrors and is told about
 * only its own files, including both halves of a rename across their patterns.
 */
import { rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { ensureBuilt, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { listFiles, writeTree } from '../helpers/trees.js'
import { readHookRuns, recordingHook, startWatch, waitForSameFiles, type WatchHandle } from '../helpers/watch.js'

let sb: Sandbox
let src: string
let server: ServerHandle
let textures: WatchHandle
let scripts: WatchHandle
let texturesLog: string
let scriptsLog: string

const isTexture = (p: string): boolean => p.startsWith('textures/')
const isScript = (p: string): boolean => p.startsWith('scripts/')

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('watch-patterns')
  src = await sb.mkdir('src')
  await writeTree(src, {
    'textures/a.png': 'A',
    'textures/moving.png': 'moves from textures/ to scripts/',
    'textures/doomed.png': 'D',
    'scripts/b.lua': 'B',
    'levels/c.json': '{}',
    'top.txt': 'T',
  })
  server = await sb.serve(src)
  texturesLog = sb.path('textures-hook.log')
  scriptsLog = sb.path('scripts-hook.log')
  ;[textures, scripts] = await Promise.all([
    startWatch(sb, server.addr, { out: await sb.mkdir('textures'), patterns: ['textures/**'], exec: recordingHook(texturesLog) }),
    startWatch(sb, server.addr, { out: await sb.mkdir('scripts'), patterns: ['scripts/**'], exec: recordingHook(scriptsLog) }),
  ])
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

test('each watcher mirrors only its patterns initially', async () => {
  expect(await listFiles(textures.out)).toEqual(['textures/a.png', 'textures/doomed.png', 'textures/moving.png'])
  expect(await listFiles(scripts.out)).toEqual(['scripts/b.lua'])
  await waitForSameFiles(src, textures.out, 5000, isTexture)
  await waitForSameFiles(src, scripts.out, 5000, isScript)
})

test('each watcher gets only its own updates, including its half of a rename across patterns', async () => {
  await writeFile(join(src, 'textures', 'a.png'), 'A2')
  await writeFile(join(src, 'textures', 'new.png'), 'N')
  await unlink(join(src, 'textures', 'doomed.png'))
  await writeFile(join(src, 'scripts', 'b.lua'), 'B2')
  await writeFile(join(src, 'levels', 'c.json'), '{"changed":true}')
  await writeFile(join(src, 'top.txt'), 'T2')
  await rename(join(src, 'textures', 'moving.png'), join(src, 'scripts', 'moving.png'))
  await waitForSameFiles(src, textures.out, 10_000, isTexture)
  await waitForSameFiles(src, scripts.out, 10_000, isScript)

  // A sentinel for each: updates on one connection arrive in order, so once the sentinel is
  // applied, everything the server pushed before it has been applied (or never was pushed).
  await writeFile(join(src, 'textures', 'sentinel.png'), 'S')
  await writeFile(join(src, 'scripts', 'sentinel.lua'), 'S')
  await textures.waitEvent((e) => e.event === 'applied' && JSON.stringify(e.changes).includes('textures/sentinel.png'), 10_000, 'textures sentinel')
  await scripts.waitEvent((e) => e.event === 'applied' && JSON.stringify(e.changes).includes('scripts/sentinel.lua'), 10_000, 'scripts sentinel')

  const tex = textures.events().filter((e) => e.event === 'applied').flatMap((e) => e.changes as { path: string; action: string }[])
  const scr = scripts.events().filter((e) => e.event === 'applied').flatMap((e) => e.changes as { path: string; action: string }[])
  expect(tex.filter((c) => !isTexture(c.path))).toEqual([])
  expect(scr.filter((c) => !isScript(c.path))).toEqual([])
  expect(tex).toEqual(expect.arrayContaining([
    { path: 'textures/a.png', action: 'change' },
    { path: 'textures/new.png', action: 'change' },
    { path: 'textures/doomed.png', action: 'delete' },
    { path: 'textures/moving.png', action: 'delete' },
  ]))
  expect(scr).toEqual(expect.arrayContaining([
    { path: 'scripts/b.lua', action: 'change' },
    { path: 'scripts/moving.png', action: 'change' },
  ]))
  expect(await listFiles(textures.out)).toEqual(['textures/a.png', 'textures/new.png', 'textures/sentinel.png'])
  expect(await listFiles(scripts.out)).toEqual(['scripts/b.lua', 'scripts/moving.png', 'scripts/sentinel.lua'])

  // The hooks saw the same: only their own paths.
  await waitFor(() => readHookRuns(texturesLog).some((r) => r.paths.includes('textures/sentinel.png')), 10_000, 'textures hook')
  await waitFor(() => readHookRuns(scriptsLog).some((r) => r.paths.includes('scripts/sentinel.lua')), 10_000, 'scripts hook')
  expect(readHookRuns(texturesLog).flatMap((r) => r.paths).filter((p) => !isTexture(p))).toEqual([])
  expect(readHookRuns(scriptsLog).flatMap((r) => r.paths).filter((p) => !isScript(p))).toEqual([])

  // The server pushed the level and top-level changes to nobody.
  const pushed = server.events().filter((e) => e.event === 'changes')
  const nobody = pushed.filter((e) => (e.changes as { path: string }[]).every((c) => !isTexture(c.path) && !isScript(c.path)))
  for (const e of nobody) expect(e.clients).toBe(0)
  const all = pushed.flatMap((e) => e.changes as { path: string }[]).map((c) => c.path)
  expect(all).toEqual(expect.arrayContaining(['levels/c.json', 'top.txt']))
})
