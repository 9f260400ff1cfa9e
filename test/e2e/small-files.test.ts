/**
 * The client's small-file path (src/core/fs/atomic-file.ts): files up to SMALL_FILE_BYTES are written
 * with synchronous calls on a plain descriptor, larger ones through a FileHandle; both land in a
 * temp file beside the final path (cheap names: one random tag per process plus a counter, created
 * with O_EXCL), get mode and mtime on the open descriptor, and are renamed only after the BLAKE3
 * check. Real files in temp folders, and a real server for the pull of many small files.
 */
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { IncomingFile, tempPathFor } from '../../src/core/fs/atomic-file.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import { SMALL_FILE_BYTES } from '../../src/limits.js'
import type { FileMeta } from '../../src/protocol/messages.js'
import { ensureBuilt, parseEvents, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { diffTrees, TEMP_NAME } from '../helpers/trees.js'

let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'assetsync-small-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const MTIME = Date.UTC(2024, 1, 29, 12, 34, 56, 789)

function metaFor(data: Buffer, mode = 0o640): FileMeta {
  return { hash: hashBytes(data), size: data.byteLength, mode, mtime: MTIME }
}

/** Feeds `data` in CHUNK-sized pieces, as client.ts does. */
async function receive(file: IncomingFile, data: Buffer): Promise<void> {
  for (let off = 0; off < data.byteLength; off += 65536) await file.write(data.subarray(off, off + 65536))
}

const tempsIn = async (d: string): Promise<string[]> => (await readdir(d)).filter((n) => TEMP_NAME.test(n))

// Around the boundary between the synchronous and the streaming path, and the empty file.
const SIZES = [0, 1, 4096, SMALL_FILE_BYTES - 1, SMALL_FILE_BYTES, SMALL_FILE_BYTES + 1, 3 * 65536 + 17]

describe('IncomingFile', () => {
  test.each(SIZES)('%i bytes: temp file beside the target until commit, then content, mode and mtime at the final path', async (size) => {
    const sub = await mkdtemp(join(dir, 'ok-'))
    const final = join(sub, `f${size}.bin`)
    const data = randomBytes(size)
    const file = await IncomingFile.create(final, metaFor(data))
    // The temp file exists from the start, in the target's folder, with a temp name.
    expect(dirname(file.tempPath)).toBe(sub)
    expect(basename(file.tempPath)).toMatch(TEMP_NAME)
    expect(existsSync(file.tempPath)).toBe(true)
    await receive(file, data)
    expect(file.written).toBe(size)
    expect(existsSync(final), 'nothing at the final path before commit').toBe(false)
    await file.commit()
    expect(Buffer.compare(await readFile(final), data)).toBe(0)
    const st = await stat(final)
    expect(st.mode & 0o777).toBe(0o640)
    expect(st.mtimeMs).toBe(MTIME)
    expect(await tempsIn(sub)).toEqual([])
  })

  test.each(SIZES.filter((s) => s > 0))('%i bytes with a wrong hash: ERR_INTEGRITY, no file at the final path, no temp file', async (size) => {
    const sub = await mkdtemp(join(dir, 'bad-'))
    const final = join(sub, 'victim.bin')
    await writeFile(final, 'old content\n')
    const data = randomBytes(size)
    const file = await IncomingFile.create(final, metaFor(randomBytes(size)))
    await receive(file, data)
    await expect(file.commit()).rejects.toMatchObject({ code: 'ERR_INTEGRITY' })
    expect(await readFile(final, 'utf8'), 'the old file is untouched').toBe('old content\n')
    expect(await tempsIn(sub)).toEqual([])
  })

  test('more bytes than announced are refused before they are written', async () => {
    const sub = await mkdtemp(join(dir, 'more-'))
    const data = randomBytes(100)
    const file = await IncomingFile.create(join(sub, 'x'), metaFor(data))
    await expect(file.write(randomBytes(101))).rejects.toMatchObject({ code: 'ERR_INTEGRITY' })
    await file.discard()
    expect(await readdir(sub)).toEqual([])
  })

  test('commit(false) leaves the verified temp file (mode and mtime set) for the caller to rename; discard then keeps it', async () => {
    for (const size of [10, SMALL_FILE_BYTES + 10]) {
      const sub = await mkdtemp(join(dir, 'staged-'))
      const final = join(sub, 'staged.bin')
      const data = randomBytes(size)
      const file = await IncomingFile.create(final, metaFor(data, 0o755))
      await receive(file, data)
      await file.commit(false)
      expect(existsSync(final)).toBe(false)
      expect(Buffer.compare(await readFile(file.tempPath), data)).toBe(0)
      const st = await stat(file.tempPath)
      expect(st.mode & 0o777).toBe(0o755)
      expect(st.mtimeMs).toBe(MTIME)
      await file.discard() // a committed file belongs to the caller now
      expect(existsSync(file.tempPath)).toBe(true)
    }
  })

  test('discard removes the temp file of an unfinished transfer (small and large)', async () => {
    for (const size of [100, SMALL_FILE_BYTES * 2]) {
      const sub = await mkdtemp(join(dir, 'discard-'))
      const data = randomBytes(size)
      const file = await IncomingFile.create(join(sub, 'x.bin'), metaFor(data))
      await file.write(data.subarray(0, 50))
      await file.discard()
      await file.discard() // twice is fine
      expect(await readdir(sub)).toEqual([])
    }
  })

  test('temp names: hex, one random tag per process plus a counter, all different', () => {
    const names = Array.from({ length: 2000 }, () => basename(tempPathFor(join(dir, 'x'))))
    for (const n of names) expect(n).toMatch(TEMP_NAME)
    expect(new Set(names).size).toBe(names.length)
    const tags = new Set(names.map((n) => n.slice('.assetsync-'.length, '.assetsync-'.length + 12)))
    expect(tags.size).toBe(1)
  })

  test('a temp name that exists already is never reused or truncated: the next name is taken', async () => {
    for (const size of [10, SMALL_FILE_BYTES + 10]) {
      const sub = await mkdtemp(join(dir, 'clash-'))
      const final = join(sub, 'f.bin')
      // The counter is in the name's tail: the next name is this one's counter + 1.
      const probe = basename(tempPathFor(final))
      const counter = parseInt(probe.slice(23, -4), 16)
      const next = `${probe.slice(0, 23)}${(counter + 1).toString(16).padStart(probe.length - 27, '0')}.tmp`
      await writeFile(join(sub, next), 'someone else\'s\n')
      const data = randomBytes(size)
      const file = await IncomingFile.create(final, metaFor(data))
      expect(basename(file.tempPath)).not.toBe(next)
      await receive(file, data)
      await file.commit()
      expect(await readFile(join(sub, next), 'utf8')).toBe('someone else\'s\n')
      expect(Buffer.compare(await readFile(final), data)).toBe(0)
    }
  })
})

describe('pull of many small files (real server)', () => {
  let sb: Sandbox
  let src: string
  let server: ServerHandle
  const files = new Map<string, number>()

  beforeAll(async () => {
    ensureBuilt()
    sb = await Sandbox.create('small-files')
    src = await sb.mkdir('src')
    // 300 files in 12 folders (some nested), sizes on both sides of SMALL_FILE_BYTES, some empty,
    // with modes and old mtimes that must come across.
    for (let i = 0; i < 300; i++) {
      const rel = `d${i % 12}/${i % 5 === 0 ? 'deep/er/' : ''}f${i}.dat`
      const size = i % 50 === 0 ? 0 : i % 37 === 0 ? SMALL_FILE_BYTES + i : (i * 7919) % 40_000
      const full = join(src, ...rel.split('/'))
      await mkdir(dirname(full), { recursive: true })
      await writeFile(full, randomBytes(size), { mode: i % 3 === 0 ? 0o755 : 0o644 })
      await utimes(full, 1_600_000_000 + i, 1_600_000_000 + i)
      files.set(rel, size)
    }
    server = await sb.serve(src)
  }, 60_000)

  afterAll(async () => {
    await sb?.cleanup()
  })

  test('every file byte for byte with its mode and mtime, one --json event per file, no temp file left', async () => {
    const out = sb.path('out')
    const r = await sb.run(['pull', '--server', server.addr, '--out', out, '--json'], { timeoutMs: 120_000 })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(await diffTrees(src, out)).toEqual([])
    for (const [rel] of files) {
      const [a, b] = await Promise.all([stat(join(src, ...rel.split('/'))), stat(join(out, ...rel.split('/')))])
      expect(b.mtimeMs, rel).toBe(a.mtimeMs)
    }
    const evs = parseEvents(r.stdout)
    const fileEvs = evs.filter((e) => e.event === 'file')
    expect(fileEvs.map((e) => e.path).sort()).toEqual([...files.keys()].sort())
    for (const e of fileEvs) expect(e).toMatchObject({ action: 'downloaded', bytes: files.get(String(e.path)) })
    expect(evs.at(-1)).toMatchObject({ event: 'summary', files: files.size, downloaded: files.size })
    // The --json output is written in pieces, yet every line is whole.
    expect(r.stdout.toString().endsWith('\n')).toBe(true)
  }, 120_000)
})
