/**
 * A malicious server cannot make `assetsync pull` write outside --out (design "Safety": the same
 * path rules hold on the client). The fake server here is built from the real protocol pieces
 * (ServerEndpoint + the codec, in this test process); the client is the real, built CLI.
 */
import { existsSync } from 'node:fs'
import { lstat, mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import SecretStream from '@hyperswarm/secret-stream'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { hashBytes } from '../../src/core/fs/hash.js'
import { CHUNK_SIZE } from '../../src/limits.js'
import type { ServerConnection } from '../../src/protocol/connection.js'
import { ServerEndpoint } from '../../src/protocol/endpoint.js'
import type { ClientMessage, ManifestEntry } from '../../src/protocol/messages.js'
import { ensureBuilt, lines, Sandbox } from '../helpers/cli.js'
import { LOOPBACK } from '../helpers/common.js'
import { listFiles, snapshotTree, TEMP_NAME } from '../helpers/trees.js'

interface FakeFile {
  path: string
  data: Buffer
  mode?: number
  /** Announce this hash instead of the real one (integrity attack). */
  hash?: Uint8Array
  /** Send these bytes instead of `data` (after announcing data's size and hash). */
  send?: Buffer
}

interface FakeServer {
  port: number
  key: string
  /** Paths the client asked for. */
  requests: string[]
  close(): Promise<void>
}

const keyPair = SecretStream.keyPair()

/** Serves `files` as a manifest and answers REQUESTs with their bytes, lies included. */
async function fakeServer(files: FakeFile[]): Promise<FakeServer> {
  const ep = await ServerEndpoint.listen({ transport: 'udp', host: LOOPBACK, port: 0, keyPair, token: null })
  const requests: string[] = []
  const entries: ManifestEntry[] = files.map((f) => ({
    path: f.path, hash: f.hash ?? hashBytes(f.data), size: f.data.length, mode: f.mode ?? 0o644, mtime: 1_700_000_000_000,
  })).sort((a, b) => (a.path < b.path ? -1 : 1))
  ep.on('connection', (conn: ServerConnection) => {
    conn.on('message', (msg: ClientMessage) => {
      if (msg.type === 'manifest') {
        conn.send({ type: 'manifest-reply', id: msg.id, done: true, entries: entries.filter((e) => e.path > msg.after) })
      } else if (msg.type === 'batch') {
        // It agreed to feature batch-request (the endpoint's default offer) but sends nothing in
        // batches: every file is `alone`, so the client asks for each with a REQUEST, lies below.
        conn.send({ type: 'batch-data', id: msg.id, final: true, answers: msg.items.map(() => ({ status: 'alone' as const, reason: 'one by one' })) })
      } else if (msg.type === 'request') {
        requests.push(msg.path)
        const f = files.find((x) => x.path === msg.path)
        const e = entries.find((x) => x.path === msg.path)
        if (!f || !e) {
          conn.send({ type: 'response', id: msg.id, status: 'not-found', reason: 'no' })
          return
        }
        void (async () => {
          conn.send({ type: 'response', id: msg.id, status: 'file', hash: e.hash, size: e.size, mode: e.mode, mtime: e.mtime })
          const body = f.send ?? f.data
          for (let off = 0; ; off += CHUNK_SIZE) {
            const end = Math.min(off + CHUNK_SIZE, body.length)
            const final = end === body.length
            await conn.sendChunk({ type: 'chunk', id: msg.id, offset: off, final, data: body.subarray(off, end) })
            if (final) return
          }
        })().catch(() => { /* the client hung up */ })
      }
    })
  })
  return {
    port: ep.address().port,
    key: keyPair.publicKey.toString('hex'),
    requests,
    close: () => ep.close(),
  }
}

let sb: Sandbox
let servers: FakeServer[] = []

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('malicious')
})

afterEach(async () => {
  for (const s of servers) await s.close()
  servers = []
})

afterAll(async () => {
  await sb?.cleanup()
})

async function pullFrom(files: FakeFile[], out: string): Promise<{ code: number | null; stderr: string; server: FakeServer }> {
  const server = await fakeServer(files)
  servers.push(server)
  const r = await sb.run(['pull', '--server', `${LOOPBACK}:${server.port}`, '--key', server.key, '--out', out, '--timeout', '10'])
  return { code: r.code, stderr: r.stderr, server }
}

/** A folder holding out/ (the client's --out) and things outside it. */
async function arena(): Promise<{ dir: string; out: string; outside: string }> {
  const dir = await sb.mkdir('arena')
  const out = join(dir, 'out')
  const outside = join(dir, 'outside')
  await mkdir(outside)
  await writeFile(join(outside, 'victim.txt'), 'ORIGINAL\n')
  return { dir, out, outside }
}

const evil = Buffer.from('pwned by a malicious server\n')
const skipOut = (rel: string): boolean => rel === 'out' || rel.startsWith('out/')

describe('manifest paths that escape --out', () => {
  const table: Array<{ name: string; path: (dir: string) => string }> = [
    { name: '../escape.txt', path: () => '../escape.txt' },
    { name: '../outside/victim.txt', path: () => '../outside/victim.txt' },
    { name: 'a/../../x', path: () => 'a/../../x' },
    { name: '/abs (an absolute path into the arena)', path: (dir) => join(dir, 'abs.txt') },
    { name: '/abs', path: () => '/abs' },
    { name: 'C:/x', path: () => 'C:/x' },
    { name: 'a\\..\\..\\x', path: () => 'a\\..\\..\\x' },
    { name: 'empty segment', path: () => 'a//b' },
    { name: 'NUL', path: () => 'a\0b' },
  ]

  test.each(table)('$name: exit 5, nothing requested, nothing written outside --out', async ({ path }) => {
    const { dir, out } = await arena()
    const before = await snapshotTree(dir, skipOut)
    const r = await pullFrom([{ path: 'fine.txt', data: Buffer.from('fine\n') }, { path: path(dir), data: evil }], out)
    expect(r.code).toBe(5)
    expect(lines(r.stderr)).toHaveLength(1)
    expect(r.stderr).toMatch(/^assetsync: .*refused/)
    expect(r.server.requests, 'the client asks for nothing from a manifest it refused').toEqual([])
    expect(await snapshotTree(dir, skipOut)).toEqual(before)
    expect(existsSync('/abs')).toBe(false)
  })
})

describe('planted symlinks under --out', () => {
  test('a legit path whose parent folder under --out is a symlink to a folder outside: exit 5', async () => {
    const { dir, out, outside } = await arena()
    await mkdir(out)
    await symlink(outside, join(out, 'planted'))
    await symlink(outside, join(out, 'planted2'))
    const before = await snapshotTree(dir, skipOut)
    for (const p of ['planted/x.txt', 'planted2/sub/deeper/y.txt', 'planted/victim.txt']) {
      const r = await pullFrom([{ path: p, data: evil }], out)
      expect(r.code, p).toBe(5)
      expect(lines(r.stderr), p).toHaveLength(1)
      expect(r.stderr, p).toMatch(/^assetsync: .*refused/)
    }
    expect(await snapshotTree(dir, skipOut)).toEqual(before)
    expect(await readFile(join(outside, 'victim.txt'), 'utf8')).toBe('ORIGINAL\n')
  })

  test('a symlink at the final path is replaced by the file, its target outside stays untouched', async () => {
    const { dir, out, outside } = await arena()
    await mkdir(out)
    await symlink(join(outside, 'victim.txt'), join(out, 'link.txt'))
    const before = await snapshotTree(dir, skipOut)
    const r = await pullFrom([{ path: 'link.txt', data: evil }], out)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(await snapshotTree(dir, skipOut)).toEqual(before)
    expect((await lstat(join(out, 'link.txt'))).isFile()).toBe(true)
    expect(await readFile(join(out, 'link.txt'))).toEqual(evil)
  })
})

describe('lying about content', () => {
  test.each([
    { name: 'bytes that do not match the announced hash', file: { path: 'lie.bin', data: Buffer.alloc(200_000, 1), send: Buffer.alloc(200_000, 2) } },
    { name: 'a hash that does not match the bytes', file: { path: 'lie.bin', data: Buffer.alloc(1000, 3), hash: Buffer.alloc(32, 9) } },
    { name: 'fewer bytes than announced', file: { path: 'lie.bin', data: Buffer.alloc(300_000, 4), send: Buffer.alloc(100_000, 4) } },
  ])('$name: exit 6, no file at the final path, no temp file left', async ({ file }) => {
    const { out } = await arena()
    const r = await pullFrom([{ path: 'ok.txt', data: Buffer.from('ok\n') }, file], out)
    expect(r.code).toBe(6)
    expect(lines(r.stderr)).toHaveLength(1)
    expect(r.stderr.startsWith('assetsync: ')).toBe(true)
    const left = existsSync(out) ? await listFiles(out) : []
    expect(left).not.toContain('lie.bin')
    expect(left.filter((p) => TEMP_NAME.test(p.split('/').at(-1) as string))).toEqual([])
  })
})
