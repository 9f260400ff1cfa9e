/**
 * The package as a user gets it (issue 10): `npm pack`, install the tarball into a fresh project,
 * type-check the README's library examples with `tsc --strict` (no skipLibCheck: the published
 * `.d.ts` must not expose an untyped dependency, TS7016), then run the first one against a real
 * server and check the copy it made.
 */
import { spawnSync } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { ensureBuilt, PROJECT_ROOT } from '../helpers/cli.js'
import { tempDir } from '../helpers/common.js'

const TSC = join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const STEP_MS = 180_000

let dir: string
let remove: () => Promise<void>

function run(cmd: string, args: string[], cwd: string): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: STEP_MS, env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } })
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` }
}

/** The ```ts blocks of the README's "## Library" section, in order. */
async function libraryExamples(): Promise<string[]> {
  const readme = await readFile(join(PROJECT_ROOT, 'README.md'), 'utf8')
  const start = readme.indexOf('\n## Library\n')
  expect(start, 'README has a "## Library" section').toBeGreaterThan(0)
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end === -1 ? undefined : end)
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? '')
}

beforeAll(async () => {
  ensureBuilt()
  ;({ dir, remove } = await tempDir('pack'))
})
afterAll(async () => { await remove?.() })

describe('the packed package in a fresh strict TypeScript project', () => {
  test('installs, type-checks the README examples with --strict, and the first one mirrors a folder', async () => {
    const pack = run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], PROJECT_ROOT)
    expect(pack.code, pack.out).toBe(0)
    const tarball = join(dir, pack.out.trim().split('\n').pop() ?? '')

    const project = join(dir, 'project')
    await mkdir(join(project, 'assets', 'scripts'), { recursive: true })
    await writeFile(join(project, 'assets', 'scripts', 'main.lua'), 'return 42\n')
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
    // A Node program's types come from @types/node, as in any user's project (the repo's version).
    const nodeTypes = JSON.parse(await readFile(join(PROJECT_ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8')) as { version: string }
    const install = run('npm', ['install', '--prefer-offline', '--no-save', tarball, `@types/node@${nodeTypes.version}`], project)
    expect(install.code, install.out).toBe(0)

    const examples = await libraryExamples()
    expect(examples.length, 'the README shows the library').toBeGreaterThanOrEqual(2)
    const [first, ...others] = examples
    await writeFile(join(project, 'example-0.ts'), first ?? '')
    // The later examples talk to a server on another machine: type-checked, not run. Names they
    // leave to the reader's program are declared.
    for (const [i, code] of others.entries()) {
      await writeFile(join(project, `example-${i + 1}.ts`), `declare function reload(path: string, localPath: string): void\n${code}`)
    }
    const files = ['example-0.ts', ...others.map((_, i) => `example-${i + 1}.ts`)]
    const tsc = run(process.execPath, [TSC, '--strict', '--outDir', 'out', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', ...files], project)
    expect(tsc.code, tsc.out).toBe(0)
    expect(tsc.out).not.toMatch(/TS7016/)

    const example = run(process.execPath, [join('out', 'example-0.js')], project)
    expect(example.code, example.out).toBe(0)
    expect(await readFile(join(project, 'copy', 'scripts', 'main.lua'), 'utf8')).toBe('return 42\n')
    // client.status() printed this client's record with the report it sent.
    expect(example.out).toMatch(/lastReport/)
  }, 4 * STEP_MS)
})
