/**
 * Issue 11, case 7: a batch of 1,500 files with ~240-byte paths made the hook's environment
 * overflow (`{"event":"hook","exitCode":126,"error":"spawn E2BIG"}`) and that batch's hook never
 * ran. Now the hook always runs: the JSON on stdin always holds every path, ASSETSYNC_PATHS only
 * when it fits (HOOK_ENV_PATHS_MAX_BYTES), else empty with ASSETSYNC_PATHS_TRUNCATED=1, and
 * ASSETSYNC_PATH_COUNT always counts the batch.
 */
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { HOOK_ENV_PATHS_MAX_BYTES } from '../../src/limits.js'
import { Sandbox, type ServerHandle, ensureBuilt } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { type WatchHandle, shq, startWatch } from '../helpers/watch.js'

const FILES = 1500

let sb: Sandbox
let src: string
let server: ServerHandle
let watch: WatchHandle
let logDir: string

interface Run { count: string; truncated: string; paths: string; stdin: { changes: { path: string; action: string }[] } }

async function runs(): Promise<Run[]> {
  const names = (await readdir(logDir)).filter((n) => n.endsWith('.done')).sort()
  return Promise.all(names.map(async (n) => {
    const base = join(logDir, n.slice(0, -'.done'.length))
    const [count, truncated, ...paths] = (await readFile(`${base}.env`, 'utf8')).split('\n')
    return { count: count ?? '', truncated: truncated ?? '', paths: paths.join('\n').replace(/\n$/, ''), stdin: JSON.parse(await readFile(`${base}.json`, 'utf8')) as Run['stdin'] }
  }))
}

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('hook-env')
  src = await sb.mkdir('src')
  await writeFile(join(src, 'seed.txt'), 'seed\n')
  server = await sb.serve(src)
  logDir = await sb.mkdir('hook-runs')
  const l = shq(logDir)
  // One record per run: the env values, and stdin as it came.
  const hook = `r=${l}/$(date +%s%N); cat > "$r.json"; printf '%s\\n%s\\n%s\\n' "$ASSETSYNC_PATH_COUNT" "\${ASSETSYNC_PATHS_TRUNCATED:-0}" "$ASSETSYNC_PATHS" > "$r.env"; : > "$r.done"`
  watch = await startWatch(sb, server.addr, { out: await sb.mkdir('mirror'), exec: hook })
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

describe('issue 11 case 7: hooks on big batches', () => {
  test(`a batch of ${FILES} files with ~240-byte paths runs its hook; stdin holds every path`, async () => {
    // Built beside the served folder, then moved in at once: the watcher sees one new folder.
    const stage = await sb.mkdir('stage')
    const deep = `${'long-folder-name-'.repeat(12)}x`.slice(0, 200)
    await mkdir(join(stage, 'batch', deep), { recursive: true })
    const expected: string[] = []
    for (let i = 0; i < FILES; i++) {
      const name = `file-${String(i).padStart(5, '0')}-${'n'.repeat(20)}.txt`
      await writeFile(join(stage, 'batch', deep, name), `${i}\n`)
      expected.push(`batch/${deep}/${name}`)
    }
    expect(Buffer.byteLength(expected.join('\n'))).toBeGreaterThan(HOOK_ENV_PATHS_MAX_BYTES)
    expect(expected[0]?.length).toBeGreaterThan(230)
    await rename(join(stage, 'batch'), join(src, 'batch'))
    // Every path reaches a hook run, through stdin.
    await waitFor(async () => {
      const seen = new Set((await runs()).flatMap((r) => r.stdin.changes.map((c) => c.path)))
      return expected.every((p) => seen.has(p))
    }, 60_000, `hook runs naming all ${FILES} paths`, { detail: async () => `${(await runs()).length} runs; events: ${JSON.stringify(watch.events().filter((e) => e.event === 'hook'))}` })
    const hooks = watch.events().filter((e) => e.event === 'hook')
    expect(hooks.length).toBeGreaterThan(0)
    expect(hooks.filter((e) => e.exitCode !== 0 || 'error' in e)).toEqual([])
    for (const r of await runs()) {
      const n = r.stdin.changes.length
      expect(r.count).toBe(String(n))
      const joined = r.stdin.changes.map((c) => c.path).join('\n')
      if (Buffer.byteLength(joined) <= HOOK_ENV_PATHS_MAX_BYTES) {
        expect(r.truncated).toBe('0')
        expect(r.paths).toBe(joined)
      } else {
        expect(r.truncated).toBe('1')
        expect(r.paths).toBe('')
      }
    }
    // At least one run was a big batch (the case the issue hit).
    expect((await runs()).some((r) => r.truncated === '1')).toBe(true)
  }, 120_000)

  test('a small batch afterwards gets ASSETSYNC_PATHS in full and no truncation flag (warm start too)', async () => {
    const before = (await runs()).length
    await writeFile(join(src, 'small.txt'), 'small\n')
    const run = await waitFor(async () => (await runs()).slice(before).find((r) => r.stdin.changes.some((c) => c.path === 'small.txt')), 15_000, 'a hook run for small.txt')
    expect(run).toMatchObject({ count: '1', truncated: '0', paths: 'small.txt' })
  })
})
