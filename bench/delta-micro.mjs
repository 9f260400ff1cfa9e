// Micro-benchmarks of the delta building blocks (src/core/delta), in one process, no network:
//   - FastCDC chunking MB/s (random and JSON-like input), chunk list + hashes MB/s, BLAKE3 alone
//   - zstd level 1 (and 3) compress / decompress MB/s, sync and async, and the ratio on JSON/Lua
//   - the cost of deciding that incompressible data is not worth compressing (the sample test)
//   - by simulation with the real modules: the bytes that would cross the wire for each target
//     case of the "send only what changed" issue, with the frame sizes proposed in docs/delta.md.
//
// Usage: npm run build && node bench/delta-micro.mjs [--mib 64] [--reps 3] [--wait-load 2]
// The machine is shared: the load average is printed before and after; figures are the best of
// --reps runs (the least disturbed). Prints tables, then one JSON line with every figure.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { chunkBytes, chunkFile, encodeChunkList } from '../dist/core/delta/chunk-list.js'
import { CODING, compressChunk, compressChunkAsync, decompressChunk, decompressChunkAsync, worthCompressing } from '../dist/core/delta/compress.js'
import { Chunker } from '../dist/core/delta/fastcdc.js'
import { ChunkIndex, planFile, planSync } from '../dist/core/delta/plan.js'
import { hashBytes } from '../dist/core/fs/hash.js'
import { mulberry32 } from './lib/lossy-proxy.mjs'
import { MiB, fmt, round } from './lib/stats.mjs'

const { values: args } = parseArgs({
  options: {
    mib: { type: 'string', default: '64' },
    reps: { type: 'string', default: '3' },
    'wait-load': { type: 'string', default: '0' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log('usage: npm run build && node bench/delta-micro.mjs [--mib 64] [--reps 3] [--wait-load <max 1-min load, waits ≤ 10 min>]')
  process.exit(0)
}
const maxLoad = Number(args['wait-load'])
for (const until = Date.now() + 600_000; maxLoad > 0 && loadavg()[0] > maxLoad && Date.now() < until;) {
  await new Promise((resolve) => setTimeout(resolve, 10_000))
}
const SIZE = Number(args.mib) * MiB
const REPS = Math.max(1, Number(args.reps))
const out = { load: { start: loadavg().map((v) => round(v)) }, speed: {}, zstd: {}, wire: {} }
console.log(`delta micro-benchmarks: ${args.mib} MiB inputs, best of ${REPS}; load average ${out.load.start.join(' ')}`)

// --- inputs ------------------------------------------------------------------------------------
function randomBytes(n, seed) {
  const r = mulberry32(seed)
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32LE((r() * 2 ** 32) >>> 0, i)
  for (let i = n & ~3; i < n; i++) b[i] = (r() * 256) | 0
  return b
}
const WORDS = ['sprite', 'atlas', 'level', 'enemy', 'spawn', 'speed', 'health', 'texture', 'sound', 'trigger', 'door', 'key', 'boss', 'coin']
/** A JSON asset table of about n bytes: one record per line, `version` changes some values. */
function jsonRecords(count, seed) {
  const r = mulberry32(seed)
  const recs = []
  for (let id = 0; id < count; id++) {
    const w = WORDS[(r() * WORDS.length) | 0]
    recs.push({ id, name: `${w}_${(r() * 1000) | 0}`, x: +(r() * 4096).toFixed(2), y: +(r() * 4096).toFixed(2), tags: [w, WORDS[(r() * WORDS.length) | 0]], hp: (r() * 500) | 0, enabled: r() < 0.5 })
  }
  return recs
}
const jsonOf = (recs) => Buffer.from('[\n' + recs.map((x) => '  ' + JSON.stringify(x)).join(',\n') + '\n]\n')
/** Lua-like source: functions with locals, tables and calls. */
function luaSource(n, seed) {
  const r = mulberry32(seed)
  const parts = []
  let size = 0
  for (let f = 0; size < n; f++) {
    const w = WORDS[(r() * WORDS.length) | 0]
    const s = `local function update_${w}_${f}(self, dt)\n  local speed = self.speed or ${(r() * 100).toFixed(1)}\n  if self.${w} and self.${w}.active then\n    self.x = self.x + speed * dt\n    self.y = self.y + math.sin(self.t * ${(r() * 4).toFixed(2)}) * ${(r() * 10) | 0}\n    emit("${w}", { id = ${f}, hp = ${(r() * 500) | 0} })\n  end\n  return self\nend\n\n`
    parts.push(s)
    size += s.length
  }
  return Buffer.from(parts.join(''))
}

// --- speed -------------------------------------------------------------------------------------
function best(fn) {
  let ms = Infinity
  let result
  for (let i = 0; i < REPS; i++) {
    const t = performance.now()
    result = fn()
    ms = Math.min(ms, performance.now() - t)
  }
  return { ms, result }
}
async function bestAsync(fn) {
  let ms = Infinity
  for (let i = 0; i < REPS; i++) {
    const t = performance.now()
    await fn()
    ms = Math.min(ms, performance.now() - t)
  }
  return ms
}
const mbs = (bytes, ms) => bytes / 1e6 / (ms / 1000)

const noise = randomBytes(SIZE, 1)
const recs = jsonRecords(Math.ceil(SIZE / 100), 2)
const json = jsonOf(recs).subarray(0, SIZE)

function chunkAll(data, piece = MiB) {
  const c = new Chunker()
  let n = 0
  for (let at = 0; at < data.length; at += piece) n += c.push(data.subarray(at, at + piece)).length
  return n + c.finish().length
}
const speedRows = []
const speed = (name, bytes, ms, extra = '') => {
  out.speed[name] = round(mbs(bytes, ms))
  speedRows.push([name, fmt(mbs(bytes, ms)), extra])
}
{
  const r = best(() => chunkAll(noise))
  speed('chunking, random', SIZE, r.ms, `${r.result} chunks, mean ${fmt(SIZE / r.result / 1024)} KiB`)
  const j = best(() => chunkAll(json))
  speed('chunking, JSON', json.length, j.ms, `${j.result} chunks, mean ${fmt(json.length / j.result / 1024)} KiB`)
  const h = best(() => hashBytes(noise))
  speed('BLAKE3 alone (today\'s whole-file hash)', SIZE, h.ms)
  const l = best(() => chunkBytes(noise))
  speed('chunk list: chunks + chunk hashes + whole hash', SIZE, l.ms)
  const dir = await mkdtemp(join(tmpdir(), 'assetsync-delta-bench-'))
  try {
    await writeFile(join(dir, 'pack.bin'), noise)
    const f = await bestAsync(() => chunkFile(join(dir, 'pack.bin')))
    speed('chunkFile (page-cached file, 1 MiB reads)', SIZE, f)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

// --- zstd ----------------------------------------------------------------------------------------
/** Splits into the chunker's chunks (what per-chunk compression sees). */
function chunksOf(data) {
  const list = chunkBytes(data)
  return Array.from({ length: list.count }, (_, i) => data.subarray(list.offsets[i], list.offsets[i] + list.lengths[i]))
}
const zRows = []
const lua = luaSource(Math.min(SIZE, 20 * MiB), 3)
// "random" is skipped after the sample test: its rows are the skip's cost and a raw pass-through.
for (const [name, data, path] of [['JSON', json, 'data/items.json'], ['Lua', lua, 'scripts/game.lua'], ['random', noise, 'pack.bin']]) {
  const chunks = chunksOf(data)
  for (const level of name === 'random' ? [1] : [1, 3]) {
    let enc = []
    const c = best(() => (enc = chunks.map((b) => compressChunk(b, path, level))))
    const wire = enc.reduce((a, e) => a + e.data.length, 0)
    const d = best(() => enc.forEach((e, i) => decompressChunk(e.coding, e.data, chunks[i].length)))
    const ca = await bestAsync(() => Promise.all(chunks.map((b) => compressChunkAsync(b, path, level))))
    const da = await bestAsync(() => Promise.all(enc.map((e, i) => decompressChunkAsync(e.coding, e.data, chunks[i].length))))
    const key = `${name} level ${level}`
    out.zstd[key] = { ratio: round(wire / data.length), compress: round(mbs(data.length, c.ms)), decompress: round(mbs(data.length, d.ms)), compressAsync: round(mbs(data.length, ca)), decompressAsync: round(mbs(data.length, da)), raw: enc.filter((e) => e.coding === CODING.RAW).length, chunks: chunks.length }
    zRows.push([key, fmt(wire / data.length), fmt(mbs(data.length, c.ms)), fmt(mbs(data.length, d.ms)), fmt(mbs(data.length, ca)), fmt(mbs(data.length, da)), `${out.zstd[key].raw}/${chunks.length} raw`])
  }
}
{
  // The sample test alone, on incompressible chunks: what "not worth it" costs.
  const chunks = chunksOf(noise)
  const s = best(() => chunks.filter((b) => worthCompressing(b)).length)
  out.zstd.sampleTest = { mbs: round(mbs(SIZE, s.ms)), usPerChunk: round((s.ms * 1000) / chunks.length), passed: s.result }
  // For comparison, a full level-1 compression of the same chunks (what skipping saves).
  const { Encoder } = createRequire(import.meta.url)('@toondepauw/node-zstd')
  const e = new Encoder(1)
  const full = best(() => chunks.forEach((b) => e.encodeSync(b)))
  out.zstd.sampleTest.fullCompressMbs = round(mbs(SIZE, full.ms))
}

// --- wire bytes by simulation --------------------------------------------------------------------
// Proposed frames (docs/delta.md): CHUNK_LIST request 1+4+2+path+32; CHUNK_LIST_REPLY pages of
// the encoded list, 1+4+8 each; CHUNK_FETCH 1+4+2+path+32+4 + 36 a chunk (hash, length), up to
// 1024 chunks a frame; CHUNK_DATA 1+4+4+1 + data, one a chunk.
const FRAME = { listRequest: 1 + 4 + 2 + 32, listPage: 1 + 4 + 8, fetch: 1 + 4 + 2 + 32 + 4, perFetched: 36, data: 1 + 4 + 4 + 1 }
const PAGE = 1024 * 1024 - 64
/** Wire bytes to bring `target` (bytes, at wire path `path`) given local `sources` ({path, bytes}). */
function wireBytes(path, target, sources, { previous } = {}) {
  const list = chunkBytes(target)
  const srcs = sources.map((s) => ({ path: s.path, list: chunkBytes(s.bytes) }))
  const index = new ChunkIndex()
  for (const s of srcs) if (s.path !== previous) index.add(s)
  const plan = planFile(list, index, srcs.find((s) => s.path === previous))
  const p = Buffer.byteLength(path)
  const enc = encodeChunkList(list).length
  let bytes = FRAME.listRequest + p + enc + Math.ceil(enc / PAGE) * FRAME.listPage
  if (plan.fetch.length > 0) bytes += Math.ceil(plan.fetch.length / 1024) * (FRAME.fetch + p) + plan.fetch.length * FRAME.perFetched
  for (const i of plan.fetch) {
    const chunk = target.subarray(list.offsets[i], list.offsets[i] + list.lengths[i])
    bytes += FRAME.data + compressChunk(chunk, path).data.length
  }
  return { bytes, list: enc, fetched: plan.fetch.length, fetchBytes: plan.fetchBytes, copy: plan.copyBytes, self: plan.selfBytes }
}
const wRows = []
const wire = (name, size, r, target, today = size) => {
  out.wire[name] = { size, bytes: r.bytes, ratio: round(r.bytes / size, 4), listBytes: r.list, chunksFetched: r.fetched, target }
  wRows.push([name, fmt(size / MiB), fmt(r.bytes / 1024), `${fmt((100 * r.bytes) / size)} %`, fmt(today / MiB), target, `${r.fetched} chunks fetched, list ${fmt(r.list / 1024)} KiB`])
}
{
  const path = 'levels/pack.bin'
  const edited = Buffer.from(noise)
  edited[Math.floor(SIZE * 0.43)] ^= 1
  wire('1-byte edit', SIZE, wireBytes(path, edited, [{ path, bytes: noise }], { previous: path }), '≤ 256 KiB')
  // Over every position of the edit: the chunk holding it is refetched (size-biased lengths);
  // an edit that also moves a boundary costs its neighbour too (rare: see fastcdc.test.ts).
  const list = chunkBytes(noise)
  const byLength = [...list.lengths].sort((x, y) => x - y)
  const at = (q) => {
    let acc = 0
    for (const l of byLength) if ((acc += l) >= q * SIZE) return l
    return byLength.at(-1)
  }
  const listBytes = encodeChunkList(list).length
  out.wire['1-byte edit, any position'] = { p50: at(0.5) + listBytes, p99: at(0.99) + listBytes, max: byLength.at(-1) + listBytes }
  wRows.push(['1-byte edit, any position', fmt(SIZE / MiB), `p50 ${fmt((at(0.5) + listBytes) / 1024)}, p99 ${fmt((at(0.99) + listBytes) / 1024)}, max ${fmt((byLength.at(-1) + listBytes) / 1024)}`, '', fmt(SIZE / MiB), '≤ 256 KiB', 'the chunk holding the byte + the list'])
  const front = Buffer.concat([randomBytes(MiB, 9), noise])
  wire('1 MiB inserted at the front', front.length, wireBytes(path, front, [{ path, bytes: noise }], { previous: path }), '≤ 2 MiB')
  const copied = wireBytes('levels/pack-copy.bin', noise, [{ path, bytes: noise }])
  wire('copied file (via chunk lists)', SIZE, copied, '≤ 1 %')
}
{
  // 20 MiB of text replaced by a new version: edited records (values changed, a few records
  // added and removed), and regenerated outright.
  const n = Math.ceil((20 * MiB) / 109)
  const v1 = jsonRecords(n, 5)
  const r = mulberry32(6)
  const v2 = v1.map((x) => (r() < 0.01 ? { ...x, hp: (r() * 500) | 0, x: +(r() * 4096).toFixed(2) } : x)).filter(() => r() > 0.001)
  for (let k = 0; k < 50; k++) v2.splice((r() * v2.length) | 0, 0, { id: n + k, name: 'new', x: 1, y: 2, tags: [], hp: 1, enabled: true })
  const a = jsonOf(v1)
  const b = jsonOf(v2)
  wire('20 MiB JSON, 1 % of records edited', b.length, wireBytes('data/items.json', b, [{ path: 'data/items.json', bytes: a }], { previous: 'data/items.json' }), '≤ 0.35×')
  const v3 = v1.map((x) => (r() < 20 / n ? { ...x, hp: x.hp + 1, name: `${x.name}_v2` } : x))
  wire('20 MiB JSON, 20 records edited', jsonOf(v3).length, wireBytes('data/items.json', jsonOf(v3), [{ path: 'data/items.json', bytes: a }], { previous: 'data/items.json' }), '≤ 0.35×')
  const c = jsonOf(jsonRecords(n, 7))
  wire('20 MiB JSON, regenerated outright', c.length, wireBytes('data/items.json', c, [{ path: 'data/items.json', bytes: a }], { previous: 'data/items.json' }), '≤ 0.35×')
  const l1 = luaSource(20 * MiB, 8)
  const l1e = Buffer.from(l1)
  for (let k = 0; k < 10; k++) { // ten one-character edits (a constant changed) across the file
    const at = l1e.indexOf('speed * dt', (r() * l1e.length) | 0)
    if (at > 0) l1e[at + 6] = 0x32 // "speed 2 dt"
  }
  wire('20 MiB Lua, 10 lines edited', l1e.length, wireBytes('scripts/all.lua', l1e, [{ path: 'scripts/all.lua', bytes: l1 }], { previous: 'scripts/all.lua' }), '≤ 0.35×')
  const l2 = luaSource(20 * MiB, 9)
  wire('20 MiB Lua, regenerated outright', l2.length, wireBytes('scripts/all.lua', l2, [{ path: 'scripts/all.lua', bytes: l1 }], { previous: 'scripts/all.lua' }), '≤ 0.35×')
}
{
  // A 300-file folder renamed: the client has every file under the old name. Whole-file hashes
  // already match (the manifest carries them): 0 bytes beyond the manifest. Through chunk lists
  // (no whole-file shortcut), a sync plan costs the lists only.
  const r = mulberry32(10)
  const files = Array.from({ length: 300 }, (_, i) => {
    const size = Math.floor(1024 + r() ** 3 * 2 * MiB)
    return { path: `old/${i}.bin`, bytes: randomBytes(size, 100 + i) }
  })
  const total = files.reduce((a, f) => a + f.bytes.length, 0)
  const sources = files.map((f) => ({ path: f.path, list: chunkBytes(f.bytes) }))
  const targets = files.map((f, i) => ({ path: `new/${i}.bin`, list: sources[i].list }))
  const plan = planSync(targets, sources)
  const lists = targets.reduce((a, t) => a + FRAME.listRequest + t.path.length + encodeChunkList(t.list).length + FRAME.listPage, 0)
  wire('300-file folder renamed (via chunk lists)', total, { bytes: lists + plan.fetchBytes, list: lists, fetched: plan.fetchChunks }, '≤ 1 %')
}

// --- incompressible data: the extra time -----------------------------------------------------------
{
  // Server, per chunk: the sample test (chunk-list computation is cached per file stamp). Client,
  // for a file with no local source: nothing (delta is skipped, raw chunks are not touched).
  const chunks = chunksOf(noise)
  const t = best(() => chunks.forEach((b) => compressChunk(b, 'pack.bin')))
  const pullMiBs = 41.6 // cold pull/udp, docs/benchmarks.md (client CPU bound)
  const transferMs = (SIZE / MiB / pullMiBs) * 1000
  out.incompressible = { serverSampleMs: round(t.ms), transferMs: round(transferMs), extra: round(t.ms / transferMs, 4) }
}

// --- report ----------------------------------------------------------------------------------------
const table = (head, rows) => {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
  console.log(head.map((h, i) => h.padEnd(w[i])).join('  '))
  for (const r of rows) console.log(r.map((c, i) => String(c).padEnd(w[i])).join('  '))
  console.log()
}
console.log()
table(['speed', 'MB/s', ''], speedRows)
table(['zstd per chunk', 'ratio', 'comp MB/s', 'decomp MB/s', 'comp async', 'decomp async', ''], zRows)
console.log(`sample test on incompressible chunks: ${out.zstd.sampleTest.mbs} MB/s (${out.zstd.sampleTest.usPerChunk} µs a chunk, ${out.zstd.sampleTest.passed} passed), vs full level-1 compression ${out.zstd.sampleTest.fullCompressMbs} MB/s`)
console.log(`incompressible ${args.mib} MiB: server sample tests ${fmt(out.incompressible.serverSampleMs)} ms = ${fmt(100 * out.incompressible.extra)} % of the transfer at 41.6 MiB/s (${fmt(out.incompressible.transferMs)} ms)\n`)
table(['wire (simulated)', 'MiB', 'KiB on the wire', 'of size', 'today MiB', 'target', ''], wRows)
out.load.end = loadavg().map((v) => round(v))
console.log(`load average at the end ${out.load.end.join(' ')}`)
console.log(JSON.stringify(out))
