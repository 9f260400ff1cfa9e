/**
 * Hostile paths end to end (design "Safety"): every path below given to `assetsync get` exits 5
 * with a single "assetsync: " line; nothing outside the served root is read (a secret kept next to
 * it never reaches stdout) and nothing is written (the parent temp folder lists the same before and
 * after). The server itself refuses the same paths when a raw client skips the CLI's own check,
 * and keeps serving afterwards.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { MAX_PATH_BYTES, MAX_PATH_DEPTH } from '../../src/limits.js'
import type { ClientConnection } from '../../src/protocol/connection.js'
import { dial } from '../../src/protocol/endpoint.js'
import type { ReplyMessage } from '../../src/protocol/messages.js'
import { type CliResult, ensureBuilt, lines, PROJECT_ROOT, Sandbox, type ServerHandle } from '../helpers/cli.js'
import { snapshotTree, writeTree } from '../helpers/trees.js'

type Verdict = 'refused' | 'not-found'
interface Case { name: string; path: string; want: Verdict }

const SECRET = `TOPSECRET-${randomBytes(12).toString('hex')}`

let sb: Sandbox
let parent: string
let root: string
let secretDir: string
let server: ServerHandle

/** The table: >= 30 paths, each with what the server (or the CLI's own check) must answer. */
function cases(): Case[] {
  const refused = (name: string, path: string): Case => ({ name, path, want: 'refused' })
  const missing = (name: string, path: string): Case => ({ name, path, want: 'not-found' })
  return [
    refused('parent escape', '../etc/passwd'),
    refused('absolute path', '/etc/passwd'),
    refused('escape after a folder', 'a/../../x'),
    refused('many parents', '../../../../../../../../../../etc/passwd'),
    refused('just ..', '..'),
    refused('just .', '.'),
    refused('leading ./', './ok.txt'),
    refused('trailing /.', 'ok.txt/.'),
    refused('inner ./', 'a/./b'),
    refused('empty segment', 'a//b'),
    refused('trailing slash', 'a/'),
    refused('root slash', '/'),
    refused('empty string', ''),
    refused('drive + backslash', 'C:\\x'),
    refused('drive + slash', 'C:/x'),
    refused('drive-relative', 'c:x'),
    refused('backslash separator', 'a\\b'),
    refused('backslash escape', '..\\..\\secret\\secret.txt'),
    refused('UNC path', '\\\\server\\share\\x'),
    refused('NUL byte', 'ok.txt\0.png'),
    refused('newline', 'a\nb'),
    refused('ANSI escape', '\x1b[31mred'),
    refused('DEL', 'del\x7f'),
    refused('tab', 'tab\there'),
    refused(`longer than MAX_PATH_BYTES (${MAX_PATH_BYTES})`, 'x'.repeat(MAX_PATH_BYTES + 1)),
    refused('long in bytes, short in characters', '日'.repeat(Math.ceil((MAX_PATH_BYTES + 1) / 3))),
    refused(`deeper than MAX_PATH_DEPTH (${MAX_PATH_DEPTH})`, Array(MAX_PATH_DEPTH + 1).fill('d').join('/')),
    refused('not NFC (decomposed é)', 'cafe\u0301.txt'),
    refused('URL with //', 'file:///etc/passwd'),
    refused('the secret by absolute path', '<secret>'),
    refused('symlink to a secret file outside', 'leak.txt'),
    refused('relative symlink climbing out', 'rel-leak'),
    refused('symlink to /etc/passwd', 'passwd'),
    refused('through a symlinked folder outside', 'leakdir/secret.txt'),
    refused('the symlinked folder itself', 'leakdir'),
    refused('symlink loop', 'loop'),
    missing('ignored .git file (holds the secret too)', '.git/config'),
    missing('legal name "%2e%2e/x" (no decoding)', '%2e%2e/x'),
    missing('legal name "..."', '...'),
    missing('legal name "..x"', '..x'),
    missing('legal name " "', ' '),
    missing('a file used as a folder', 'ok.txt/x'),
    missing('a folder', 'folder'),
    missing('a FIFO (must not block the server)', 'pipe'),
  ]
}

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('hostile')
  // parent/ holds the served root, a secret folder beside it, and the client's TMPDIR.
  parent = await sb.mkdir('parent')
  root = join(parent, 'root')
  secretDir = join(parent, 'secret')
  await writeTree(secretDir, { 'secret.txt': `${SECRET}\n` })
  await writeTree(root, {
    'ok.txt': 'fine\n',
    'folder/inside.txt': 'inside\n',
    '.git/config': `[secret]\n${SECRET}\n`,
    'a/b': 'a/b exists, so only the path rules refuse a/./b\n',
  })
  await symlink(join(secretDir, 'secret.txt'), join(root, 'leak.txt'))
  await symlink('../secret/secret.txt', join(root, 'rel-leak'))
  await symlink('/etc/passwd', join(root, 'passwd'))
  await symlink(secretDir, join(root, 'leakdir'))
  await symlink('loop', join(root, 'loop'))
  await symlink('ok.txt', join(root, 'inside-link'))
  execFileSync('mkfifo', [join(root, 'pipe')])
  await mkdir(join(parent, 'tmp'))
  server = await sb.serve(root)
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

/** The built CLI in-process (argv cannot carry a NUL byte to a child process). */
async function runInProcess(args: string[]): Promise<CliResult> {
  const { run } = (await import(pathToFileURL(join(PROJECT_ROOT, 'dist', 'cli.js')).href)) as { run: typeof import('../../src/cli.js').run }
  const out: Buffer[] = []
  const err: string[] = []
  const io = {
    stdout: { write: (b: string | Uint8Array) => { out.push(Buffer.from(b)); return true } } as unknown as NodeJS.WritableStream,
    stderr: { write: (s: string | Uint8Array) => { err.push(String(s)); return true } } as unknown as NodeJS.WritableStream,
  }
  const prev = process.env.ASSETSYNC_CONFIG_DIR
  process.env.ASSETSYNC_CONFIG_DIR = sb.config
  const t0 = performance.now()
  try {
    const code = await run(['node', 'assetsync', ...args], io)
    return { code, signal: null, stdout: Buffer.concat(out), stderr: err.join(''), ms: performance.now() - t0 }
  } finally {
    if (prev === undefined) delete process.env.ASSETSYNC_CONFIG_DIR
    else process.env.ASSETSYNC_CONFIG_DIR = prev
  }
}

function getCli(path: string, extra: string[] = []): Promise<CliResult> {
  const args = ['get', '--server', server.addr, '--timeout', '10', ...extra, path]
  // The client's TMPDIR is inside parent/, so a temp file it leaves behind shows in the listing.
  return path.includes('\0') ? runInProcess(args) : sb.run(args, { env: { TMPDIR: join(parent, 'tmp') } })
}

const resolvePath = (c: Case): string => (c.path === '<secret>' ? join(secretDir, 'secret.txt') : c.path)

/** Runs `fn` over `items`, `limit` at a time (the machine has 2 cores). */
async function pool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i] as T)
    }
  }))
  return out
}

describe('hostile paths given to get', () => {
  test('the table has at least 30 hostile paths, all distinct', () => {
    const all = cases()
    expect(all.filter((c) => c.want === 'refused').length).toBeGreaterThanOrEqual(30)
    expect(new Set(all.map((c) => c.path)).size).toBe(all.length)
  })

  test('every one exits 5 with one "assetsync: " line; no secret read, nothing written', async () => {
    const before = await snapshotTree(parent)
    const all = cases()
    const results = await pool(all, 4, async (c) => ({ c, r: await getCli(resolvePath(c)) }))
    const problems: string[] = []
    for (const { c, r } of results) {
      const why: string[] = []
      if (r.code !== 5) why.push(`exit ${r.code ?? r.signal} (want 5)`)
      const errLines = lines(r.stderr)
      if (errLines.length !== 1 || !r.stderr.startsWith('assetsync: ')) why.push(`stderr is not one "assetsync: " line: ${JSON.stringify(r.stderr)}`)
      if (r.stdout.length !== 0) why.push(`stdout not empty (${r.stdout.length} bytes)`)
      if (r.stdout.includes(SECRET) || r.stderr.includes(SECRET)) why.push('THE SECRET LEAKED')
      const msg = r.stderr.toLowerCase()
      if (c.want === 'refused' && !msg.includes('refused')) why.push(`expected a refusal, got: ${r.stderr.trim()}`)
      if (c.want === 'not-found' && !msg.includes('not found')) why.push(`expected not-found, got: ${r.stderr.trim()}`)
      if (why.length > 0) problems.push(`${c.name} (${JSON.stringify(c.path).slice(0, 60)}): ${why.join('; ')}`)
    }
    expect(problems).toEqual([])
    expect(await snapshotTree(parent)).toEqual(before)
  })

  test('with -o, a refused path creates no output file and no temp file', async () => {
    const outDir = join(parent, 'out')
    await mkdir(outDir)
    const before = await snapshotTree(parent)
    for (const p of ['leak.txt', 'leakdir/secret.txt', '../secret/secret.txt']) {
      const r = await getCli(p, ['-o', join(outDir, 'got.txt')])
      expect(r.code, p).toBe(5)
      expect(lines(r.stderr), p).toHaveLength(1)
    }
    expect(await snapshotTree(parent)).toEqual(before)
    expect(existsSync(join(outDir, 'got.txt'))).toBe(false)
  })

  test('the server keeps serving after refused paths: a later valid get on the same server works', async () => {
    expect(server.proc.exitCode).toBeNull()
    for (const [p, want] of [['ok.txt', 'fine\n'], ['inside-link', 'fine\n'], ['folder/inside.txt', 'inside\n']] as const) {
      const r = await getCli(p)
      expect(r.stderr, p).toBe('')
      expect(r.code, p).toBe(0)
      expect(r.stdout.toString(), p).toBe(want)
    }
    // The server noticed the symlink escapes itself (they pass the CLI's own check).
    const refusedOnServer = server.events().filter((e) => e.event === 'refused').map((e) => String(e.path))
    expect(refusedOnServer).toEqual(expect.arrayContaining(['leak.txt', 'rel-leak', 'passwd', 'leakdir/secret.txt', 'leakdir']))
  })
})

describe('the server refuses hostile paths from a raw client (no client-side check)', () => {
  let conn: ClientConnection | null = null

  afterAll(() => conn?.destroy())

  async function connect(): Promise<ClientConnection> {
    return dial({ transport: 'udp', host: server.host, port: server.port, connectTimeoutMs: 5000, requestTimeoutMs: 10_000 })
  }

  /** Sends REQUEST(path) and returns the RESPONSE status, or the error that ended the request. */
  async function ask(c: ClientConnection, path: string): Promise<{ status?: string; error?: string; bytes: Buffer }> {
    let status: string | undefined
    const data: Buffer[] = []
    try {
      await c.request((id) => ({ type: 'request', id, path, haveHash: null }), (r: ReplyMessage) => {
        if (r.type === 'response') {
          status = r.status
          return r.status !== 'file'
        }
        if (r.type === 'chunk') {
          data.push(Buffer.from(r.data))
          return r.final
        }
        return true
      }).done
    } catch (err) {
      return { status, error: (err as Error).message, bytes: Buffer.concat(data) }
    }
    return { status, bytes: Buffer.concat(data) }
  }

  test('every path in the table: refused or not-found, never a file; the secret never sent', async () => {
    conn = await connect()
    const problems: string[] = []
    for (const c of cases()) {
      const p = resolvePath(c)
      // Over MAX_PATH_BYTES does not even decode: the server ends that connection (protocol error).
      if (Buffer.byteLength(p) > MAX_PATH_BYTES) continue
      const r = await ask(conn, p)
      if (r.bytes.includes(SECRET)) problems.push(`${c.name}: THE SECRET LEAKED`)
      if (r.status !== c.want) problems.push(`${c.name} (${JSON.stringify(p).slice(0, 60)}): ${r.status ?? r.error} (want ${c.want})`)
    }
    expect(problems).toEqual([])
    const ok = await ask(conn, 'ok.txt')
    expect(ok.status).toBe('file')
    expect(ok.bytes.toString()).toBe('fine\n')
  })

  test('an over-long path ends only that connection; the server keeps serving', async () => {
    const c = await connect()
    const r = await ask(c, 'x'.repeat(MAX_PATH_BYTES + 1))
    expect(r.status).toBeUndefined()
    expect(r.error).toMatch(/protocol|path/i)
    const again = await getCli('ok.txt')
    expect(again.code).toBe(0)
    expect(again.stdout.toString()).toBe('fine\n')
  })
})
