// Issue 11, case 2: one file with an mtime before 1970 used to break the whole server: the codec's
// u64 mtime cannot carry a negative number, so every MANIFEST (and the UPDATE of that file) failed
// with an internal error, pull and watch exited 1, and serve logged nothing. Now such a file is
// announced with mtime 0 (1970-01-01, wireMtime in src/core/fs/stamp.ts; the wire is unchanged,
// so protocol-2 peers decode it too) and served like any other. The built CLI, real folders.
import { execFileSync } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ServerHandle, Sandbox, ensureBuilt, parseEvents } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { startWatch } from '../helpers/watch.js'

let sb: Sandbox
let root: string
let srv: ServerHandle

/** `touch -d @-1 <file>`: dated one second before the epoch, as in the issue. */
const before1970 = (file: string): void => { execFileSync('touch', ['-d', '@-1', file]) }

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('pre-1970')
  root = await sb.mkdir('root')
  await writeFile(join(root, 'f.txt'), 'old file\n')
  await writeFile(join(root, 'g.txt'), 'a normal file\n')
  before1970(join(root, 'f.txt'))
  expect((await stat(join(root, 'f.txt'))).mtimeMs).toBeLessThan(0)
  srv = await sb.serve(root)
})
afterAll(() => sb?.cleanup())

describe('a file dated before 1970', () => {
  it('pull mirrors the whole folder (exit 0), the old file with mtime 1970-01-01', async () => {
    const out = sb.path('out')
    const r = await sb.run(['pull', '--server', srv.addr, '--out', out, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const summary = parseEvents(r.stdout).find((e) => e.event === 'summary')
    expect(summary).toMatchObject({ files: 2, downloaded: 2 })
    expect(await readFile(join(out, 'f.txt'), 'utf8')).toBe('old file\n')
    expect(await readFile(join(out, 'g.txt'), 'utf8')).toBe('a normal file\n')
    expect((await stat(join(out, 'f.txt'))).mtimeMs).toBe(0)
  })

  it('get prints it; watch syncs it and applies its later edits; serve reports no internal error', async () => {
    const got = await sb.run(['get', '--server', srv.addr, 'f.txt'])
    expect(got.code, got.stderr).toBe(0)
    expect(got.stdout.toString()).toBe('old file\n')

    const out = sb.path('watch')
    const w = await startWatch(sb, srv.addr, { out })
    expect(await readFile(join(out, 'f.txt'), 'utf8')).toBe('old file\n')
    const from = w.events().length
    await writeFile(join(root, 'f.txt'), 'edited, and dated before 1970 again\n')
    before1970(join(root, 'f.txt'))
    await w.waitEvent((e) => e.event === 'applied' && JSON.stringify(e.changes).includes('f.txt'), 20_000, 'the edit to be applied', from)
    await waitFor(async () => (await readFile(join(out, 'f.txt'), 'utf8')) === 'edited, and dated before 1970 again\n', 10_000, 'the edit on disk')
    expect(srv.events().filter((e) => e.event === 'internal-error')).toEqual([])
    expect(srv.stderr()).toBe('')
  })
})
