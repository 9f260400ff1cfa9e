// Summarises a V8 .cpuprofile (from `node --cpu-prof`): top functions by self time, and self time
// grouped by where the code lives (assetsync's dist/, each node_modules package, node internals,
// GC, idle). Self time comes from the sample time deltas, not hit counts. Also summarises a
// .heapprofile (`node --heap-prof`): live bytes by allocating function.
//
//   node bench/lib/cpuprofile.mjs <file.cpuprofile|file.heapprofile>... [--top 15]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'

function where(url) {
  if (!url) return ''
  const u = url.replace(/^file:\/\//, '')
  const nm = u.lastIndexOf('/node_modules/')
  if (nm >= 0) return u.slice(nm + '/node_modules/'.length)
  const d = u.indexOf('/dist/')
  if (d >= 0) return u.slice(d + 1)
  const b = u.indexOf('/bench/')
  if (b >= 0) return u.slice(b + 1)
  return u
}

function group(fn, url) {
  if (!url) {
    if (fn === '(garbage collector)' || fn === '(idle)' || fn === '(program)') return fn
    return '(native / builtins)'
  }
  const u = url.replace(/^file:\/\//, '')
  const nm = u.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const rest = u.slice(nm + '/node_modules/'.length).split('/')
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
  }
  if (u.startsWith('node:')) return 'node internals'
  if (u.includes('/dist/')) return `assetsync ${u.slice(u.indexOf('/dist/') + 1)}`
  return where(url)
}

/** True for frames of assetsync or a package (not node internals, builtins or V8 pseudo-frames). */
function isOwnerFrame(url) {
  return !!url && !url.startsWith('node:') && (url.includes('/node_modules/') || url.includes('/dist/') || url.includes('/bench/'))
}

/**
 * {totalMs, top: [{fn, at, selfMs, pct}], groups: [{group, selfMs, pct}]}. With `window`
 * ({fromUs, toUs}, CLOCK_MONOTONIC µs as from process.hrtime), only samples inside it count:
 * V8 profile timestamps use the same clock.
 */
export function summarize(file, top = 15, window = null) {
  const prof = JSON.parse(readFileSync(file, 'utf8'))
  const byId = new Map(prof.nodes.map((n) => [n.id, n]))
  // Owner of a node: the deepest frame on its stack that is assetsync's or a package's, so native
  // and node-internal self time (lstat, writeBuffer, ...) is charged to whoever called it.
  const parent = new Map()
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const ownerOf = (id) => {
    for (let x = id; x !== undefined; x = parent.get(x)) {
      const cf = byId.get(x).callFrame
      if (isOwnerFrame(cf.url)) return group(cf.functionName, cf.url)
    }
    return '(no assetsync/package frame)'
  }
  const owners = new Map()
  const self = new Map()
  const { samples = [], timeDeltas = [] } = prof
  let ts = prof.startTime
  for (let i = 0; i < samples.length; i++) {
    ts += timeDeltas[i] ?? 0
    if (window && (ts < window.fromUs || ts > window.toUs)) continue
    // timeDeltas[i] is the time before sample i; attribute the gap to the following sample's node.
    const dt = (timeDeltas[i + 1] ?? 0) / 1000
    self.set(samples[i], (self.get(samples[i]) ?? 0) + dt)
  }
  const fns = new Map()
  const groups = new Map()
  let total = 0
  for (const [id, ms] of self) {
    const n = byId.get(id)
    const cf = n.callFrame
    const fn = cf.functionName || '(anonymous)'
    const at = cf.url ? `${where(cf.url)}:${cf.lineNumber + 1}` : ''
    const key = `${fn}\0${at}`
    fns.set(key, (fns.get(key) ?? 0) + ms)
    const g = group(fn, cf.url)
    groups.set(g, (groups.get(g) ?? 0) + ms)
    if (g !== '(idle)') {
      const o = g === '(garbage collector)' || g === '(program)' ? g : ownerOf(id)
      owners.set(o, (owners.get(o) ?? 0) + ms)
    }
    total += ms
  }
  const busy = total - (groups.get('(idle)') ?? 0)
  const pct = (ms) => Number(((100 * ms) / (busy || 1)).toFixed(1))
  return {
    totalMs: Math.round(total),
    busyMs: Math.round(busy),
    top: [...fns].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)
      .map(([k, ms]) => { const [fn, at] = k.split('\0'); return { fn, at, selfMs: Math.round(ms), pct: pct(ms) } }),
    groups: [...groups].filter(([g]) => g !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 12)
      .map(([g, ms]) => ({ group: g, selfMs: Math.round(ms), pct: pct(ms) })),
    owners: [...owners].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([g, ms]) => ({ group: g, selfMs: Math.round(ms), pct: pct(ms) })),
  }
}

/**
 * Summarises a sampling heap profile (`node --heap-prof`, written at exit): live bytes by
 * allocating function and by location. {totalMB, top: [{fn, at, mb, pct}], groups: [...]}
 */
export function summarizeHeap(file, top = 15) {
  const prof = JSON.parse(readFileSync(file, 'utf8'))
  const fns = new Map()
  const groups = new Map()
  let total = 0
  const owners = new Map()
  const stack = [[prof.head, '(no assetsync/package frame)']]
  while (stack.length > 0) {
    const [n, inherited] = stack.pop()
    const cf = n.callFrame
    const owner = isOwnerFrame(cf.url) ? group(cf.functionName, cf.url) : inherited
    for (const c of n.children ?? []) stack.push([c, owner])
    if (!n.selfSize) continue
    owners.set(owner, (owners.get(owner) ?? 0) + n.selfSize)
    const key = `${cf.functionName || '(anonymous)'}\0${cf.url ? `${where(cf.url)}:${cf.lineNumber + 1}` : ''}`
    fns.set(key, (fns.get(key) ?? 0) + n.selfSize)
    const g = group(cf.functionName, cf.url)
    groups.set(g, (groups.get(g) ?? 0) + n.selfSize)
    total += n.selfSize
  }
  const pct = (b) => Number(((100 * b) / (total || 1)).toFixed(1))
  const mb = (b) => Number((b / 1e6).toFixed(1))
  return {
    totalMB: mb(total),
    top: [...fns].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, b]) => { const [fn, at] = k.split('\0'); return { fn, at, mb: mb(b), pct: pct(b) } }),
    groups: [...groups].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([g, b]) => ({ group: g, mb: mb(b), pct: pct(b) })),
    owners: [...owners].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([g, b]) => ({ group: g, mb: mb(b), pct: pct(b) })),
  }
}

export function renderHeap(name, s) {
  const lines = [`${name}: ${s.totalMB} MB of live JS allocations (sampled)`]
  lines.push('  by allocating function:')
  for (const t of s.top) lines.push(`    ${String(t.pct).padStart(5)}%  ${String(t.mb).padStart(7)} MB  ${t.fn}  ${t.at}`)
  lines.push('  by location:')
  for (const g of s.groups) lines.push(`    ${String(g.pct).padStart(5)}%  ${String(g.mb).padStart(7)} MB  ${g.group}`)
  lines.push('  by owner (nearest assetsync/package frame on the allocating stack):')
  for (const g of s.owners) lines.push(`    ${String(g.pct).padStart(5)}%  ${String(g.mb).padStart(7)} MB  ${g.group}`)
  return lines.join('\n')
}

/** Text rendering of summarize() for the console and docs. */
export function render(name, s) {
  const lines = [`${name}: ${s.busyMs} ms busy (of ${s.totalMs} ms sampled); % of busy time`]
  lines.push('  by self time:')
  for (const t of s.top) lines.push(`    ${String(t.pct).padStart(5)}%  ${String(t.selfMs).padStart(6)} ms  ${t.fn}  ${t.at}`)
  lines.push('  by location:')
  for (const g of s.groups) lines.push(`    ${String(g.pct).padStart(5)}%  ${String(g.selfMs).padStart(6)} ms  ${g.group}`)
  lines.push('  by owner (self time charged to the nearest assetsync/package frame on the stack):')
  for (const g of s.owners) lines.push(`    ${String(g.pct).padStart(5)}%  ${String(g.selfMs).padStart(6)} ms  ${g.group}`)
  return lines.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '15' } } })
  for (const f of positionals) {
    console.log(f.endsWith('.heapprofile') ? renderHeap(f, summarizeHeap(f, Number(values.top))) : render(f, summarize(f, Number(values.top))))
  }
}
