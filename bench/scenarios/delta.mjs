// 8. Delta transfer and compression (issue 16): what crosses the wire when only part of a tree
// changed, next to rsync --no-whole-file from its daemon in the same run (its --stats give the
// literal bytes it sent, the bytes it matched from the basis file, and its total bytes each way).
// The assetsync figures are the client's `bytesReceived` (file payload received on the wire:
// chunk lists, chunks and compressed frames as sent) from pull's summary and watch's applied
// events. Cases: a 1-byte edit in a large file (pull and watch), 1 MiB inserted at its front, a
// set of JSON/Lua text files replaced by a new version, a 300-file folder renamed, a file copied
// to a second path. Then two cold-pull timings, alternating rounds: incompressible data (the cost
// of compression sampling) and the mixed tree, each against this build with its features off
// (bench/lib/serve-features.mjs for both) and, with ASSETSYNC_BENCH_BASE (a checkout with dist/
// built), against the build before wave 2.
import { randomFillSync } from 'node:crypto'
import { closeSync, existsSync, openSync, writeSync } from 'node:fs'
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cliEnv, pull, startServe } from '../lib/assetsync.mjs'
import { mulberry32 } from '../lib/lossy-proxy.mjs'
import { cpuSecondsOf, now, runToEnd, startNode, stop, waitEvent } from '../lib/procs.mjs'
import { row } from '../lib/report.mjs'
import { rsyncPull, startRsyncDaemon } from '../lib/rsync.mjs'
import { freshOut } from '../lib/scenario.mjs'
import { MiB, median } from '../lib/stats.mjs'

const KiB = 1024
import { bigFile, mixedTree } from '../lib/tree.mjs'

export const id = 'delta'
export const title = 'Delta transfer and compression, vs rsync --no-whole-file'

const RSYNC_ARGS = ['--no-whole-file', '--delete']

/** JSON-like text (an asset table), about `n` bytes, from a seed. */
function jsonText(n, seed) {
  const r = mulberry32(seed)
  const words = ['sprite', 'atlas', 'level', 'enemy', 'spawn', 'speed', 'health', 'texture', 'sound', 'trigger', 'door', 'key']
  const parts = ['[\n']
  let size = 2
  for (let id = 0; size < n; id++) {
    const w = words[Math.floor(r() * words.length)]
    const line = `  {"id": ${id}, "name": "${w}_${Math.floor(r() * 1000)}", "x": ${(r() * 4096).toFixed(2)}, "y": ${(r() * 4096).toFixed(2)}, "tags": ["${w}", "${words[Math.floor(r() * words.length)]}"], "enabled": ${r() < 0.5}},\n`
    parts.push(line)
    size += line.length
  }
  parts.push(']\n')
  return Buffer.from(parts.join(''))
}

/** Lua-like source, about `n` bytes, from a seed. */
function luaText(n, seed) {
  const r = mulberry32(seed)
  const names = ['player', 'enemy', 'door', 'camera', 'hud', 'inventory', 'quest', 'dialog']
  const parts = []
  let size = 0
  for (let i = 0; size < n; i++) {
    const a = names[Math.floor(r() * names.length)]
    const b = names[Math.floor(r() * names.length)]
    const f = `local function update_${a}_${i}(self, dt)\n  if self.${b}.health < ${Math.floor(r() * 100)} then\n    self.${a}.speed = self.${a}.speed * ${(r() * 2).toFixed(3)}\n    return ${b}.spawn("${a}", ${Math.floor(r() * 500)}, ${Math.floor(r() * 500)})\n  end\n  return nil\nend\n\n`
    parts.push(f)
    size += f.length
  }
  return Buffer.from(parts.join(''))
}

/** Writes the text files: half JSON, half Lua, in files of `fileBytes`; `seed` picks the version. */
async function writeText(dir, totalBytes, fileBytes, seed) {
  await mkdir(dir, { recursive: true })
  const n = Math.max(2, Math.round(totalBytes / fileBytes))
  let bytes = 0
  for (let i = 0; i < n; i++) {
    const data = i % 2 === 0 ? jsonText(fileBytes, seed * 1000 + i) : luaText(fileBytes, seed * 1000 + i)
    await writeFile(join(dir, i % 2 === 0 ? `t${i}.json` : `t${i}.lua`), data)
    bytes += data.length
  }
  return { files: n, bytes }
}

/** Flips one byte of `file` in place (same inode, new mtime) at `at`. */
function flipByte(file, at) {
  const fd = openSync(file, 'r+')
  try {
    const b = Buffer.alloc(1)
    randomFillSync(b)
    writeSync(fd, b, 0, 1, at)
  } finally {
    closeSync(fd)
  }
}

export async function run(ctx) {
  const big = ctx.quick ? 16 * MiB : 64 * MiB
  const textBytes = ctx.quick ? 5 * MiB : 20 * MiB
  const folderFiles = 300
  const folderFileBytes = ctx.quick ? 16 * KiB : 200 * KiB
  const incompressible = ctx.quick ? 64 * MiB : 256 * MiB
  const mixedBytes = ctx.quick ? 64 * MiB : 256 * MiB
  const rounds = ctx.runs ?? (ctx.quick ? 1 : 3)
  const base = process.env.ASSETSYNC_BENCH_BASE && existsSync(join(process.env.ASSETSYNC_BENCH_BASE, 'dist', 'cli.js'))
    ? join(process.env.ASSETSYNC_BENCH_BASE, 'bin', 'assetsync.js') : null

  const src = join(ctx.tmp, 'src')
  const env = cliEnv(join(ctx.tmp, 'config'))
  ctx.log(`generating: a ${big / MiB} MiB file, ${textBytes / MiB} MiB of JSON/Lua, ${folderFiles} files of ${folderFileBytes / KiB} KiB`)
  await mkdir(src, { recursive: true })
  await bigFile(join(src, 'big.bin'), big)
  await writeText(join(src, 'text'), textBytes, ctx.quick ? 256 * KiB : 512 * KiB, 1)
  await mkdir(join(src, 'folder'), { recursive: true })
  for (let i = 0; i < folderFiles; i++) await writeFile(join(src, 'folder', `f${i}.bin`), randomFillSync(Buffer.allocUnsafe(folderFileBytes)))

  const stops = []
  try {
    const server = await startServe(src, { env, args: ['--settle', '50'] })
    stops.push(server.stop)
    let rsyncd = null
    if (ctx.rsync.ok) {
      rsyncd = await startRsyncDaemon(src, ctx.tmp)
      stops.push(rsyncd.stop)
    }
    const out = join(ctx.tmp, 'out')
    const rout = join(ctx.tmp, 'rsync-out')
    const wout = join(ctx.tmp, 'watch-out')
    const pullOnce = async () => (await pull({ port: server.port, key: server.key, out, env, extraArgs: ['--prune'] })).summary
    const rsyncOnce = async () => (rsyncd ? (await rsyncPull(rsyncd.url, rout, { args: RSYNC_ARGS })).stats : null)
    /** Waits until the server announced a change to `path` after `since` (its index is then current). */
    const announced = (path, since) => waitEvent(server.p, (e) => e.event === 'changes' && e.at >= since
      && e.changes.some((c) => c.path === path || c.from === path), 30_000, `the server to announce ${path}`)

    ctx.log('initial sync: pull, rsync, watch')
    const cold = await pullOnce()
    await rsyncOnce()
    const watch = startNode(join(ctx.repo, 'bin', 'assetsync.js'), ['watch', '--server', `127.0.0.1:${server.port}`, '--key', server.key, '--out', wout, '--json'], { env })
    stops.push(() => stop(watch))
    await waitEvent(watch, (e) => e.event === 'synced', 120_000, 'watch to sync')
    const applied = (path, since) => waitEvent(watch, (e) => e.event === 'applied' && e.at >= since
      && e.changes.some((c) => c.path === path), 60_000, `watch to apply ${path}`)

    // 1. One byte edited in the large file, `rounds` times at different places.
    const edit = { pull: [], watch: [], watchMs: [], rsyncLiteral: [], rsyncWire: [], rsyncMatched: [] }
    const rand = mulberry32(7)
    for (let i = 0; i < rounds; i++) {
      const t = now()
      flipByte(join(src, 'big.bin'), Math.floor(rand() * big))
      await announced('big.bin', t)
      const w = await applied('big.bin', t)
      edit.watch.push(w.bytesReceived)
      edit.watchMs.push(w.at - t)
      edit.pull.push((await pullOnce()).bytesReceived)
      const r = await rsyncOnce()
      if (r) {
        edit.rsyncLiteral.push(r.literalBytes)
        edit.rsyncMatched.push(r.matchedBytes)
        edit.rsyncWire.push(r.bytesReceived + r.bytesSent)
      }
      ctx.log(`  1-byte edit ${i + 1}/${rounds}: pull ${(edit.pull.at(-1) / KiB).toFixed(0)} KiB, watch ${(w.bytesReceived / KiB).toFixed(0)} KiB in ${(w.at - t).toFixed(0)} ms${r ? `; rsync literal ${(r.literalBytes / KiB).toFixed(0)} KiB, wire ${((r.bytesReceived + r.bytesSent) / KiB).toFixed(0)} KiB` : ''}`)
    }

    // 2. 1 MiB inserted at the front.
    let t = now()
    const old = await readFile(join(src, 'big.bin'))
    await writeFile(join(src, 'big.bin'), Buffer.concat([randomFillSync(Buffer.allocUnsafe(MiB)), old]))
    await announced('big.bin', t)
    await applied('big.bin', t)
    const insert = await pullOnce()
    const insertRsync = await rsyncOnce()
    ctx.log(`  1 MiB at the front: pull ${(insert.bytesReceived / KiB).toFixed(0)} KiB${insertRsync ? `; rsync literal ${(insertRsync.literalBytes / KiB).toFixed(0)} KiB` : ''}`)

    // 3. The text replaced by a new version (regenerated: the worst case for chunk reuse).
    t = now()
    const text2 = await writeText(join(src, 'text'), textBytes, ctx.quick ? 256 * KiB : 512 * KiB, 2)
    await announced(`text/t${text2.files - 1}.${(text2.files - 1) % 2 === 0 ? 'json' : 'lua'}`, t)
    const textPull = await pullOnce()
    const textRsync = await rsyncOnce()
    ctx.log(`  ${(text2.bytes / MiB).toFixed(1)} MiB of text replaced: pull ${(textPull.bytesReceived / KiB).toFixed(0)} KiB (${(textPull.bytesReceived / text2.bytes).toFixed(3)}×)${textRsync ? `; rsync literal ${(textRsync.literalBytes / KiB).toFixed(0)} KiB` : ''}`)

    // 4. A 300-file folder renamed.
    t = now()
    await rename(join(src, 'folder'), join(src, 'moved'))
    await announced('moved/f0.bin', t).catch(() => announced(`moved/f${folderFiles - 1}.bin`, t))
    const folderTotal = folderFiles * folderFileBytes
    const renamePull = await pullOnce()
    const renameRsync = await rsyncOnce()
    ctx.log(`  folder of ${folderFiles} files renamed: pull ${renamePull.bytesReceived} B, reused ${(renamePull.bytesReused / MiB).toFixed(1)} MiB${renameRsync ? `; rsync literal ${(renameRsync.literalBytes / KiB).toFixed(0)} KiB` : ''}`)

    // 5. A file copied to a second path.
    t = now()
    await copyFile(join(src, 'big.bin'), join(src, 'big-copy.bin'))
    await announced('big-copy.bin', t)
    const copyPull = await pullOnce()
    const copyRsync = await rsyncOnce()
    const copySize = big + MiB
    ctx.log(`  file copied: pull ${copyPull.bytesReceived} B, reused ${(copyPull.bytesReused / MiB).toFixed(1)} MiB${copyRsync ? `; rsync literal ${(copyRsync.literalBytes / KiB).toFixed(0)} KiB` : ''}`)
    await stop(watch)

    const rsyncLabel = (what) => ({ label: `rsync --no-whole-file ${what}`, value: NaN })
    const kib = (v) => v / KiB
    const rows = [
      row({ id: 'edit-pull', label: `1-byte edit in ${big / MiB} MiB, pull: wire`, unit: 'KiB', runs: edit.pull.map(kib),
        baseline: edit.rsyncLiteral.length ? { label: 'rsync --no-whole-file literal + matched', value: kib(median(edit.rsyncLiteral) + median(edit.rsyncMatched)) } : rsyncLabel('(skipped)'),
        target: { on: 'value', op: '<=', value: 256, text: '≤ 256 KiB and < rsync' } }),
      row({ id: 'edit-pull-vs-rsync-wire', label: '1-byte edit, pull wire vs rsync total bytes (both ways)', unit: 'KiB', runs: edit.pull.map(kib),
        baseline: edit.rsyncWire.length ? { label: 'rsync --no-whole-file bytes sent + received', value: kib(median(edit.rsyncWire)) } : rsyncLabel('(skipped)'),
        extra: { rsyncLiteralKiB: kib(median(edit.rsyncLiteral)), rsyncMatchedKiB: kib(median(edit.rsyncMatched)) } }),
      row({ id: 'edit-watch', label: `1-byte edit in ${big / MiB} MiB, watch: wire`, unit: 'KiB', runs: edit.watch.map(kib),
        target: { on: 'value', op: '<=', value: 256, text: '≤ 256 KiB' }, extra: { applyMsMedian: median(edit.watchMs) } }),
      row({ id: 'insert-front', label: `1 MiB inserted at the front of ${big / MiB} MiB: wire`, unit: 'KiB', value: kib(insert.bytesReceived), runs: [kib(insert.bytesReceived)],
        baseline: insertRsync ? { label: 'rsync --no-whole-file literal', value: kib(insertRsync.literalBytes) } : rsyncLabel('(skipped)'),
        target: { on: 'value', op: '<=', value: 2048, text: '≤ 2 MiB' } }),
      row({ id: 'text-replaced', label: `${(text2.bytes / MiB).toFixed(0)} MiB JSON/Lua replaced: wire / size`, unit: '×', value: textPull.bytesReceived / text2.bytes, runs: [textPull.bytesReceived / text2.bytes],
        baseline: textRsync ? { label: 'rsync --no-whole-file literal / size', value: textRsync.literalBytes / text2.bytes } : rsyncLabel('(skipped)'),
        target: { on: 'value', op: '<=', value: 0.35, text: '≤ 0.35×' }, extra: { files: text2.files, bytes: text2.bytes } }),
      row({ id: 'folder-renamed', label: `${folderFiles}-file folder renamed: wire / size`, unit: '%', value: (100 * renamePull.bytesReceived) / folderTotal, runs: [(100 * renamePull.bytesReceived) / folderTotal],
        baseline: renameRsync ? { label: 'rsync --no-whole-file literal / size', value: (100 * renameRsync.literalBytes) / folderTotal } : rsyncLabel('(skipped)'),
        target: { on: 'value', op: '<=', value: 1, text: '≤ 1 %' }, extra: { reusedBytes: renamePull.bytesReused } }),
      row({ id: 'file-copied', label: `${copySize / MiB} MiB file copied: wire / size`, unit: '%', value: (100 * copyPull.bytesReceived) / copySize, runs: [(100 * copyPull.bytesReceived) / copySize],
        baseline: copyRsync ? { label: 'rsync --no-whole-file literal / size', value: (100 * copyRsync.literalBytes) / copySize } : rsyncLabel('(skipped)'),
        target: { on: 'value', op: '<=', value: 1, text: '≤ 1 %' }, extra: { reusedBytes: copyPull.bytesReused } }),
    ]
    const result = { params: { big, text: text2, folderFiles, folderFileBytes, rounds, coldPullBytes: cold.bytesReceived }, rows }
    for (const s of stops.splice(0).reverse()) await s()

    // 6, 7. Cold pulls, alternating rounds: this build with its features against the same build
    // offering none (the cost of compression sampling and negotiation alone), and, when
    // ASSETSYNC_BENCH_BASE is set, against the build before wave 2 (serve and pull both).
    if (!base) ctx.log('ASSETSYNC_BENCH_BASE not set: the timings against the build before wave 2 are skipped')
    ctx.log(`cold-pull timings: incompressible ${incompressible / MiB} MiB, mixed tree ${mixedBytes / MiB} MiB`)
    await rm(join(ctx.tmp, 'src'), { recursive: true, force: true })
    const fresh = freshOut(ctx)
    const nowBin = join(ctx.repo, 'bin', 'assetsync.js')
    const featuresScript = join(ctx.repo, 'bench', 'lib', 'serve-features.mjs')
    // `now` and `off` are the same server process kind (the library's AssetServer, no watcher), so
    // their only difference is the features; `base` is the old CLI's `serve` (with its watcher).
    const variants = {
      now: { serve: (tree) => [featuresScript, tree, 'default'], pull: nowBin },
      off: { serve: (tree) => [featuresScript, tree, '0'], pull: nowBin },
      ...(base ? { base: { serve: (tree) => [base, 'serve', tree, '--host', '127.0.0.1', '--port', '0', '--json'], pull: base } } : {}),
    }
    const timed = async (tree, bytes, label) => {
      const servers = {}
      for (const [k, v] of Object.entries(variants)) {
        const p = startNode(v.serve(tree)[0], v.serve(tree).slice(1), { env })
        const ev = await waitEvent(p, (e) => e.event === 'listening', 300_000, `${k} serve`)
        servers[k] = { p, port: ev.port, key: ev.key, bin: v.pull }
        stops.push(() => stop(p, 3000))
      }
      const ms = Object.fromEntries(Object.keys(variants).map((k) => [k, []]))
      const cpu = Object.fromEntries(Object.keys(variants).map((k) => [k, []]))
      const keys = Object.keys(variants)
      for (let i = 0; i < 2 * rounds + 1; i++) {
        for (const k of i % 2 === 0 ? keys : [...keys].reverse()) {
          const s = servers[k]
          const c0 = cpuSecondsOf(s.p.pid)
          const r = await fresh((o) => runToEnd(process.execPath, [s.bin, 'pull', '--server', `127.0.0.1:${s.port}`, '--key', s.key, '--out', o, '--json'], { env }))
          if (r.code !== 0) throw new Error(`${k} pull exited ${r.code}: ${r.p.stderrText.slice(-300)}`)
          if (i > 0) { // the first round warms the page cache and the servers
            ms[k].push(r.wallMs)
            cpu[k].push(cpuSecondsOf(s.p.pid) - c0)
          }
        }
      }
      for (const s of stops.splice(0).reverse()) await s()
      ctx.log(`  ${label} (${(bytes / MiB).toFixed(0)} MiB): ${keys.map((k) => `${k} ${(median(ms[k]) / 1000).toFixed(2)} s (server CPU ${median(cpu[k]).toFixed(2)} s)`).join(', ')}`)
      return { ...ms, cpu }
    }
    const incDir = join(ctx.tmp, 'incompressible')
    await mkdir(incDir, { recursive: true })
    await bigFile(join(incDir, 'noise.bin'), incompressible)
    const inc = await timed(incDir, incompressible, 'incompressible cold pull')
    await rm(incDir, { recursive: true, force: true })
    const mixDir = join(ctx.tmp, 'mixed')
    const mixed = await mixedTree(mixDir, mixedBytes)
    const mix = await timed(mixDir, mixed.bytes, 'mixed-tree cold pull')
    const secs = (a) => a.map((v) => v / 1000)
    rows.push(
      row({ id: 'incompressible-vs-off', label: `cold pull, ${incompressible / MiB} MiB incompressible: time`, unit: 's', runs: secs(inc.now),
        baseline: { label: 'the same build, features off', value: median(inc.off) / 1000 }, target: { on: 'ratio', op: '<=', value: 1.03, text: '≤ 1.03× without' },
        extra: { serverCpuS: median(inc.cpu.now), serverCpuSOff: median(inc.cpu.off) } }),
      row({ id: 'mixed-cold-vs-off', label: `cold pull, ${(mixed.bytes / MiB).toFixed(0)} MiB mixed tree: time`, unit: 's', runs: secs(mix.now),
        baseline: { label: 'the same build, features off', value: median(mix.off) / 1000 }, target: { on: 'ratio', op: '<=', value: 1.0, text: 'no slower' },
        extra: { serverCpuS: median(mix.cpu.now), serverCpuSOff: median(mix.cpu.off) } }),
    )
    if (base) {
      rows.push(
        row({ id: 'incompressible-vs-before', label: `cold pull, ${incompressible / MiB} MiB incompressible: time`, unit: 's', runs: secs(inc.now),
          baseline: { label: 'the build before wave 2', value: median(inc.base) / 1000 }, target: { on: 'ratio', op: '<=', value: 1.03, text: '≤ 1.03× before' } }),
        row({ id: 'mixed-cold-vs-before', label: `cold pull, ${(mixed.bytes / MiB).toFixed(0)} MiB mixed tree: time`, unit: 's', runs: secs(mix.now),
          baseline: { label: 'the build before wave 2', value: median(mix.base) / 1000 }, target: { on: 'ratio', op: '<=', value: 1.0, text: 'no slower than before' } }),
      )
    }
    return result
  } finally {
    for (const s of stops.reverse()) await s()
  }
}
