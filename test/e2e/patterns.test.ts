/**
 * Patterns end to end through the built CLI (docs/patterns.md): issue 11's `pull 'tex/**'
 * '!**\/*.psd' --prune` selects tex minus .psd and prunes only what the server listed there, and
 * `serve --ignore` reads its list as .gitignore does (last match wins, `!` re-includes, an
 * ignored folder hides its content).
 */
import { mkdir, unlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type CliResult, ensureBuilt, parseEvents, Sandbox } from '../helpers/cli.js'
import { listFiles } from '../helpers/trees.js'

let sb: Sandbox

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('patterns')
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

async function put(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    const full = join(root, ...rel.split('/'))
    await mkdir(dirname(full), { recursive: true })
    await writeFile(full, text)
  }
}

function ok(r: CliResult): void {
  expect(r.stderr, 'stderr of a successful run').toBe('')
  expect(r.code).toBe(0)
}

/** path → action, from --json file events. */
function actions(r: CliResult): Record<string, string> {
  const out: Record<string, string> = {}
  for (const e of parseEvents(r.stdout)) if (e.event === 'file') out[String(e.path)] = String(e.action)
  return out
}

describe('issue 11: exclusions in pull patterns', () => {
  test("pull 'tex/**' '!**/*.psd' --prune fetches tex minus .psd and deletes only files the server listed, in that selection", async () => {
    const src = await sb.mkdir('src')
    await put(src, {
      'tex/a.png': 'a', 'tex/b/x.png': 'x', 'tex/c.psd': 'c', '.env': 'SECRET=1', 'other/o.bin': 'o', 'c.psd': 'top',
      'tex/old.png': 'listed once', 'tex/old.psd': 'listed once',
    })
    const server = await sb.serve(src)
    const out = await sb.mkdir('out')
    ok(await sb.run(['pull', '--server', server.addr, '--out', out, 'tex/old.*', 'other/**']))
    // The server then loses what it listed (a request makes it look at once).
    for (const p of ['tex/old.png', 'tex/old.psd', 'other/o.bin']) {
      await unlink(join(src, ...p.split('/')))
      expect((await sb.run(['get', '--server', server.addr, p])).code).toBe(5)
    }
    // Files the server never sent are never deleted (prune rule, issue 11), selected or not.
    await put(out, { 'tex/local.png': 'stale', 'tex/keep.psd': 'mine', 'notes.txt': 'mine', 'other/mine.bin': 'mine' })
    const r = await sb.run(['pull', '--server', server.addr, '--out', out, '--prune', '--json', 'tex/**', '!**/*.psd'])
    ok(r)
    expect(actions(r)).toEqual({ 'tex/a.png': 'downloaded', 'tex/b/x.png': 'downloaded', 'tex/old.png': 'deleted' })
    expect(await listFiles(out)).toEqual(['notes.txt', 'other/mine.bin', 'other/o.bin', 'tex/a.png', 'tex/b/x.png', 'tex/keep.psd', 'tex/local.png', 'tex/old.psd'])
    await server.stop()
  })

  test("only exclusions mean everything else: pull '!**/*.psd'", async () => {
    const src = await sb.mkdir('src')
    await put(src, { 'tex/a.png': 'a', 'tex/c.psd': 'c', '.env': 'e', 'c.psd': 'top' })
    const server = await sb.serve(src)
    const out = sb.path('out')
    ok(await sb.run(['pull', '--server', server.addr, '--out', out, '!**/*.psd']))
    expect(await listFiles(out)).toEqual(['.env', 'tex/a.png'])
    await server.stop()
  })
})

describe('serve --ignore reads its list as .gitignore does', () => {
  test("'**/*.psd' '!tex/c.psd' serves tex/c.psd and no other .psd, nor what is inside a folder named *.psd", async () => {
    const src = await sb.mkdir('src')
    await put(src, {
      'tex/a.png': 'a', 'tex/c.psd': 'c', 'tex/d.psd': 'd', 'e.psd': 'e', 'art.psd/inner.png': 'i', 'build/x.o': 'x', 'build/keep.txt': 'k',
      'build/sub/keep.txt': 'k2',
    })
    const server = await sb.serve(src, ['--ignore', '**/*.psd', '!tex/c.psd', 'build/**', '!build/keep.txt'])
    const out = sb.path('out')
    ok(await sb.run(['pull', '--server', server.addr, '--out', out]))
    expect(await listFiles(out)).toEqual(['build/keep.txt', 'tex/a.png', 'tex/c.psd'])
    // asking for an ignored file by name finds nothing either
    for (const p of ['tex/d.psd', 'art.psd/inner.png', 'build/sub/keep.txt']) {
      const g = await sb.run(['get', '--server', server.addr, p])
      expect(g.code, `get ${p}: ${g.stderr}`).toBe(5)
    }
    await server.stop()
  })
})
