// Issue 11, case 5: names that never arrived. A decomposed (NFD) name, as files copied from a Mac
// have, was listed under its NFC wire path but every pull reported it `vanished` (the server
// opened the NFC name, which is not on disk). Names that are not UTF-8, hold a backslash or a
// control character, and paths deeper than MAX_PATH_DEPTH or longer than MAX_PATH_BYTES were
// skipped in silence. Now NFD names travel (served under their NFC wire path, read from their
// real name), and every name that cannot travel is reported by serve once: a human line and
// {"event":"skipped","path":..,"reason":..,"folder":..}. The built CLI, real folders.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_PATH_BYTES, MAX_PATH_DEPTH } from '../../src/limits.js'
import { type ServerHandle, Sandbox, ensureBuilt, parseEvents } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { listFiles } from '../helpers/trees.js'
import { startWatch } from '../helpers/watch.js'

const NFD_CAFE = 'cafe\u0301.txt' // "café.txt" decomposed
const NFD_FOLDER = 'Me\u0301dia' // "Média"
const NFC_E = '\u00e9.txt' // "é.txt" composed
const NFD_E = 'e\u0301.txt' // the same name, decomposed: collides with NFC_E
const DEEP = Array.from({ length: MAX_PATH_DEPTH }, (_, i) => `d${i}`).join('/') // 64 folders: a file in it is 65 deep
const LONG = Array.from({ length: 5 }, (_, i) => String(i).repeat(200)).join('/') // 1004 bytes

let sb: Sandbox
let root: string
let srv: ServerHandle

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('names')
  root = await sb.mkdir('root')
  const put = async (rel: string | Buffer, data: string): Promise<void> => {
    if (typeof rel === 'string') {
      await mkdir(join(root, rel, '..'), { recursive: true })
      await writeFile(join(root, rel), data)
    } else await writeFile(Buffer.concat([Buffer.from(`${root}/`), rel]), data)
  }
  await put('ok.txt', 'plain\n')
  await put(NFD_CAFE, 'decomposed name\n')
  await put(`${NFD_FOLDER}/x.txt`, 'in a decomposed folder\n')
  await put(NFC_E, 'composed e\n')
  await put(NFD_E, 'decomposed e\n')
  await put(Buffer.from('bad\xff.txt', 'latin1'), 'latin-1 name\n')
  await put('back\\slash.txt', 'backslash\n')
  await put('ctl\x01.txt', 'control character\n')
  await put(`${DEEP}/deep.txt`, 'too deep\n')
  await put(`${LONG}/${'f'.repeat(30)}.txt`, 'too long\n')
  expect(Buffer.byteLength(`${LONG}/${'f'.repeat(30)}.txt`)).toBeGreaterThan(MAX_PATH_BYTES)
  srv = await sb.serve(root)
})
afterAll(() => sb?.cleanup())

const skippedEvents = (): Array<Record<string, unknown>> => srv.events().filter((e) => e.event === 'skipped')

describe('names that cannot travel', () => {
  it('are each reported by serve once, naming the file and the reason', async () => {
    // The reports follow the listening event on the same stdout: wait until all six are there.
    await waitFor(() => skippedEvents().length >= 6, 10_000, 'six skipped events', { detail: () => JSON.stringify(skippedEvents()) })
    const got = skippedEvents()
    const by = (path: string): Record<string, unknown> | undefined => got.find((e) => e.path === path)
    expect(by('bad\\xff.txt')).toMatchObject({ reason: 'name is not valid UTF-8', folder: false })
    expect(by('back\\slash.txt')).toMatchObject({ reason: 'backslash in path', folder: false })
    expect(by('ctl\\x01.txt')).toMatchObject({ reason: 'control character or NUL in path', folder: false })
    expect(by(`${DEEP}/deep.txt`)).toMatchObject({ reason: `path deeper than ${MAX_PATH_DEPTH} segments`, folder: false })
    expect(by(`${LONG}/${'f'.repeat(30)}.txt`)).toMatchObject({ reason: `path longer than ${MAX_PATH_BYTES} bytes`, folder: false })
    expect(by(NFD_E)?.reason).toMatch(/once Unicode-normalized \(NFC\)/)
    expect(got).toHaveLength(6)
    // The listening event comes first: scripts waiting for it are unaffected.
    expect(srv.events()[0]?.event).toBe('listening')
  })

  it('NFD names arrive under their NFC path; pull reports nothing vanished (exit 0); a second pull reports nothing new', async () => {
    const out = sb.path('out')
    const r = await sb.run(['pull', '--server', srv.addr, '--out', out, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const events = parseEvents(r.stdout)
    expect(events.filter((e) => e.event === 'file' && e.action === 'vanished')).toEqual([])
    expect(events.find((e) => e.event === 'summary')).toMatchObject({ files: 4, downloaded: 4 })
    expect(await listFiles(out)).toEqual(['Média/x.txt', 'café.txt', 'ok.txt', 'é.txt'].map((p) => p.normalize('NFC')).sort())
    expect(await readFile(join(out, 'café.txt'.normalize('NFC')), 'utf8')).toBe('decomposed name\n')
    expect(await readFile(join(out, 'Média'.normalize('NFC'), 'x.txt'), 'utf8')).toBe('in a decomposed folder\n')
    expect(await readFile(join(out, NFC_E), 'utf8')).toBe('composed e\n')
    const got = await sb.run(['get', '--server', srv.addr, 'café.txt'.normalize('NFC')])
    expect(got.code, got.stderr).toBe(0)
    expect(got.stdout.toString()).toBe('decomposed name\n')
    const again = await sb.run(['pull', '--server', srv.addr, '--out', out, '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(parseEvents(again.stdout).find((e) => e.event === 'summary')).toMatchObject({ files: 4, upToDate: 4 })
    expect(skippedEvents()).toHaveLength(6)
  })

  it('while watching: a new NFD file and an edit of one arrive; a new unsendable name is reported once', async () => {
    const out = sb.path('watch')
    const w = await startWatch(sb, srv.addr, { out })
    const from = w.events().length
    await writeFile(join(root, NFD_FOLDER, 'ne\u0301w.txt'), 'new, decomposed\n')
    await writeFile(join(root, NFD_CAFE), 'decomposed name, edited\n')
    const newFile = join(out, 'Média'.normalize('NFC'), 'new.txt'.replace('e', 'é').normalize('NFC'))
    await waitFor(async () => (await readFile(newFile, 'utf8').catch(() => '')) === 'new, decomposed\n', 20_000, 'the new NFD file in the mirror',
      { detail: () => JSON.stringify(w.events().slice(from)) })
    await waitFor(async () => (await readFile(join(out, 'café.txt'.normalize('NFC')), 'utf8')) === 'decomposed name, edited\n', 20_000, 'the edit of café.txt')
    await writeFile(Buffer.concat([Buffer.from(`${root}/`), Buffer.from('new\xfe.txt', 'latin1')]), 'x')
    await waitFor(() => skippedEvents().some((e) => e.path === 'new\\xfe.txt'), 20_000, 'the new non-UTF-8 name to be reported')
    // Written again: still reported once.
    await writeFile(Buffer.concat([Buffer.from(`${root}/`), Buffer.from('new\xfe.txt', 'latin1')]), 'xy')
    await writeFile(join(root, 'ok.txt'), 'plain, edited\n')
    await waitFor(async () => (await readFile(join(out, 'ok.txt'), 'utf8')) === 'plain, edited\n', 20_000, 'a later edit')
    expect(skippedEvents().filter((e) => e.path === 'new\\xfe.txt')).toEqual([{ event: 'skipped', path: 'new\\xfe.txt', reason: 'name is not valid UTF-8', folder: false }])
    expect(w.events().filter((e) => e.event === 'applied').flatMap((e) => (e.changes as { path: string }[]).map((c) => c.path)))
      .not.toContain('new\uFFFD.txt')
  })

  it('without --json, serve prints one line per skipped path', async () => {
    const s = sb.spawn(['serve', root, '--host', '127.0.0.1', '--port', '0'])
    try {
      await waitFor(() => s.stdoutSoFar().includes('server key'), 20_000, 'serve to start')
      await waitFor(() => s.stdoutSoFar().split('\n').filter((l) => l.startsWith('skipped ')).length >= 7, 10_000, 'the skipped lines',
        { detail: () => s.stdoutSoFar() })
      const lines = s.stdoutSoFar().split('\n')
      expect(lines).toContain('skipped bad\\xff.txt: name is not valid UTF-8')
      expect(lines).toContain('skipped back\\slash.txt: backslash in path')
      expect(lines).toContain('skipped new\\xfe.txt: name is not valid UTF-8')
    } finally {
      s.proc.kill('SIGTERM')
      await s.result
    }
  })
})
