/**
 * The rooms of docs/architecture.md, enforced: every relative import in src/ is checked against
 * the table of what each room may import (arrows point down only), and the fixed points of
 * /work/shared/design.md (one codec, one path module, one BLAKE3 importer, nothing below
 * commands/ prints) hold. A new file lands in a room by its folder; a new room must be added here.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { describe, expect, it } from 'vitest'

const SRC = resolve(import.meta.dirname, '..', 'src')

/** Room of a file, by its path under src/. */
function roomOf(rel: string): string {
  const parts = rel.split(sep)
  if (parts[0] === 'core') return `core/${parts[1]}`
  if (parts.length === 1) return rel.replace(/\.ts$/, '') // cli, index, errors, limits
  return parts[0] as string
}

/** What each room may import (besides itself). The ground floor (errors, limits) is open to all. */
const MAY_IMPORT: Record<string, string[]> = {
  cli: ['commands'],
  index: ['core/server', 'core/client', 'core/scale', 'core/delta', 'core/fs', 'runtime', 'protocol'],
  commands: ['core/server', 'core/client', 'core/scale', 'core/delta', 'core/fs', 'runtime', 'protocol'],
  runtime: ['core/client', 'core/delta', 'core/fs', 'protocol'],
  'core/server': ['core/scale', 'core/delta', 'core/fs', 'protocol'],
  'core/client': ['core/scale', 'core/delta', 'core/fs', 'protocol'],
  'core/scale': ['core/delta', 'core/fs', 'protocol'],
  'core/delta': ['core/fs', 'protocol'],
  'core/fs': ['protocol'],
  protocol: [],
  errors: [],
  limits: [],
  version: [],
}
const GROUND = new Set(['errors', 'limits', 'version'])

function filesUnder(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...filesUnder(p))
    else if (p.endsWith('.ts')) out.push(p)
  }
  return out
}

interface Edge { from: string; to: string; fromRoom: string; toRoom: string }

function imports(file: string): string[] {
  const src = readFileSync(file, 'utf8')
  const specs: string[] = []
  for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/g)) specs.push(m[1] as string)
  for (const m of src.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) specs.push(m[1] as string)
  for (const m of src.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) specs.push(m[1] as string)
  return specs
}

const files = filesUnder(SRC)
const edges: Edge[] = []
const packages = new Map<string, string[]>()
for (const f of files) {
  const rel = relative(SRC, f)
  for (const spec of imports(f)) {
    if (!spec.startsWith('.')) {
      const list = packages.get(spec) ?? []
      list.push(rel)
      packages.set(spec, list)
      continue
    }
    const target = relative(SRC, resolve(dirname(f), spec)).replace(/\.js$/, '.ts')
    edges.push({ from: rel, to: target, fromRoom: roomOf(rel), toRoom: roomOf(target) })
  }
}

describe('rooms (docs/architecture.md)', () => {
  it('every file is in a known room', () => {
    const unknown = files.map((f) => relative(SRC, f)).filter((rel) => !(roomOf(rel) in MAY_IMPORT))
    expect(unknown).toEqual([])
  })

  it('imports point down only', () => {
    const bad = edges.filter((e) => e.fromRoom !== e.toRoom && !GROUND.has(e.toRoom) && !(MAY_IMPORT[e.fromRoom] ?? []).includes(e.toRoom))
    expect(bad.map((e) => `${e.from} -> ${e.to}`)).toEqual([])
  })

  it('server and client never import each other', () => {
    const cross = edges.filter((e) => (e.fromRoom === 'core/server' && e.toRoom === 'core/client') || (e.fromRoom === 'core/client' && e.toRoom === 'core/server'))
    expect(cross).toEqual([])
  })

  it('the BLAKE3 package has one importer: core/fs/hash.ts', () => {
    const importers = [...packages].filter(([p]) => p === 'blake3').flatMap(([, fs]) => fs)
    const required = files.filter((f) => /require\)?\(['"]blake3['"]\)/.test(readFileSync(f, 'utf8'))).map((f) => relative(SRC, f))
    expect([...new Set([...importers, ...required])]).toEqual([join('core', 'fs', 'hash.ts')])
  })

  it('nothing below commands/ prints', () => {
    const printing = files
      .filter((f) => !relative(SRC, f).startsWith(`commands${sep}`) && relative(SRC, f) !== 'cli.ts')
      .filter((f) => /\bconsole\.(log|error|warn|info)\(|process\.(stdout|stderr)\.write\(/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(SRC, f))
    expect(printing).toEqual([])
  })

  it('no source file is far over ~400 lines', () => {
    // limits.ts is exempt: it is the one table of every limit (a constant and its reason each),
    // kept in one place on purpose; it holds no logic.
    const long = files.map((f) => [relative(SRC, f), readFileSync(f, 'utf8').split('\n').length] as const)
      .filter(([rel, n]) => n > 450 && rel !== 'limits.ts')
    expect(long).toEqual([])
  })
})
