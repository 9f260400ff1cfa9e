/**
 * `assetsync get` end to end (issue 3): bytes to stdout, or atomically to -o <file> with the
 * served mode; a missing file exits 5 with one "assetsync: " line and clobbers nothing.
 */
import { existsSync } from 'node:fs'
import { readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { ensureBuilt, lines, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { TEMP_NAME, writeRandomFile, writeTree } from '../helpers/trees.js'

let sb: Sandbox
let src: string
let server: ServerHandle

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('get')
  src = await sb.mkdir('src')
  await writeTree(src, {
    'scripts/main.lua': 'print("hi")\n',
    'ü/日本.lua': 'return "日本"\n',
    'bin/tool.sh': { data: '#!/bin/sh\necho tool\n', mode: 0o750 },
    'empty': '',
  })
  await writeRandomFile(join(src, 'tex', 'big.bin'), 3 * 1024 * 1024 + 12345)
  server = await sb.serve(src)
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

describe('get', () => {
  test.each(['scripts/main.lua', 'ü/日本.lua', 'tex/big.bin', 'empty'])('%s to stdout, byte for byte', async (p) => {
    const r = await sb.run(['get', '--server', server.addr, p])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout.equals(await readFile(join(src, ...p.split('/'))))).toBe(true)
  })

  test('-o file: right bytes and mode, no temp file left next to it', async () => {
    const dir = await sb.mkdir('get-o')
    const target = join(dir, 'tool.sh')
    const r = await sb.run(['get', '--server', server.addr, 'bin/tool.sh', '-o', target])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout.length, 'nothing on stdout with -o').toBe(0)
    expect(await readFile(target, 'utf8')).toBe('#!/bin/sh\necho tool\n')
    expect((await stat(target)).mode & 0o777).toBe(0o750)
    expect(await readdir(dir)).toEqual(['tool.sh'])
  })

  test('-o replaces an existing file atomically (big binary)', async () => {
    const dir = await sb.mkdir('get-o-big')
    const target = join(dir, 'big.bin')
    await writeFile(target, 'old content')
    const r = await sb.run(['get', '--server', server.addr, 'tex/big.bin', '--output', target])
    expect(r.code).toBe(0)
    expect((await readFile(target)).equals(await readFile(join(src, 'tex', 'big.bin')))).toBe(true)
    expect((await readdir(dir)).filter((n) => TEMP_NAME.test(n))).toEqual([])
  })

  test('a missing file exits 5 with one "assetsync: " line; stdout empty', async () => {
    const r = await sb.run(['get', '--server', server.addr, 'no/such.lua'])
    expect(r.code).toBe(5)
    expect(r.stdout.length).toBe(0)
    expect(lines(r.stderr)).toHaveLength(1)
    expect(r.stderr).toMatch(/^assetsync: .*not found.*no\/such\.lua\n$/)
  })

  test('a missing file with -o leaves an existing target untouched and creates nothing', async () => {
    const dir = await sb.mkdir('get-miss')
    await writeFile(join(dir, 'keep.txt'), 'precious')
    const r1 = await sb.run(['get', '--server', server.addr, 'nope.txt', '-o', join(dir, 'keep.txt')])
    const r2 = await sb.run(['get', '--server', server.addr, 'nope.txt', '-o', join(dir, 'new.txt')])
    for (const r of [r1, r2]) {
      expect(r.code).toBe(5)
      expect(lines(r.stderr)).toHaveLength(1)
      expect(r.stderr.startsWith('assetsync: ')).toBe(true)
    }
    expect(await readFile(join(dir, 'keep.txt'), 'utf8')).toBe('precious')
    expect(await readdir(dir)).toEqual(['keep.txt'])
    expect(existsSync(join(dir, 'new.txt'))).toBe(false)
  })

  test('usage errors exit 2 with one "assetsync: " line', async () => {
    for (const args of [
      ['get', '--server', server.addr], ['get', 'x.txt'], ['get', '--server', '127.0.0.1:99999', 'x.txt'], ['get', '--server', 'host:abc', 'x.txt'],
      // an empty glob used to reach the server (and once crashed it): refused before connecting
      ['pull', '--server', server.addr, '--out', 'unused', ''], ['watch', '--server', server.addr, '--out', 'unused', ''],
    ]) {
      const r = await sb.run(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(lines(r.stderr), args.join(' ')).toHaveLength(1)
      expect(r.stderr.startsWith('assetsync: '), r.stderr).toBe(true)
    }
  })
})
