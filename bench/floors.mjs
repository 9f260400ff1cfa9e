#!/usr/bin/env node
// The physical floors of issue 15's missed targets, measured on this machine in one run: what a
// client of this design cannot avoid doing per byte and per file, each step alone, in a loop.
//
//   node bench/floors.mjs [--mib 512] [--files 20000] [--json out.json]
//
// - BLAKE3 of received bytes (the one hash package, via dist/core/fs/hash.js), CPU-s per GiB;
// - writing received bytes to a file (64 KiB pwrites into the page cache), CPU-s per GiB;
// - an atomic small file, as the client makes one (open O_EXCL, write, fchmod, futimes, close,
//   rename), ms per file, in a fresh folder (what rsync's receiver does per file too);
// - one lstat per file (a no-op pull looks at every file, as rsync does), µs per file;
// - process start: `node -e 0`, and the CLI to `--version` (module loading), ms.
// The transport's floors are bench/cpu.mjs --stream (raw encrypted udx, CPU-s per GiB each side)
// and the cold-pull scenario's raw stream rows.
import { spawnSync } from 'node:child_process'
import { closeSync, fchmodSync, futimesSync, lstatSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { BIN, REPO, installExitHandlers, loadavg, makeTempDir, removeTempDir } from './lib/procs.mjs'
import { GiB, MiB, median } from './lib/stats.mjs'

const { values: a } = parseArgs({ options: { mib: { type: 'string', default: '512' }, files: { type: 'string', default: '20000' }, json: { type: 'string' } } })
installExitHandlers()
const { createHasher } = await import(join(REPO, 'dist', 'core', 'fs', 'hash.js'))
const bytes = Number(a.mib) * MiB
const files = Number(a.files)
const tmp = makeTempDir('assetsync-floors-')
const cpu = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1e6 }
const out = { load: loadavg(), node: process.version }
const log = (s) => console.log(s)
try {
  log(`floors: ${a.mib} MiB, ${files} files; load ${out.load.join(' ')}`)
  const chunk = Buffer.alloc(64 * 1024, 7)
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i)

  // BLAKE3, as IncomingFile hashes each received chunk.
  let c0 = cpu()
  const h = createHasher()
  for (let n = 0; n < bytes; n += chunk.length) h.update(chunk)
  h.digest()
  out.blake3CpuSPerGiB = (cpu() - c0) / (bytes / GiB)
  log(`BLAKE3 (wasm) of 64 KiB chunks: ${out.blake3CpuSPerGiB.toFixed(2)} CPU-s per GiB`)

  // pwrite into the page cache, 64 KiB at a time.
  c0 = cpu()
  const fd = openSync(join(tmp, 'big.bin'), 'wx', 0o600)
  for (let n = 0; n < bytes; n += chunk.length) writeSync(fd, chunk, 0, chunk.length, n)
  closeSync(fd)
  out.writeCpuSPerGiB = (cpu() - c0) / (bytes / GiB)
  log(`write 64 KiB pwrites: ${out.writeCpuSPerGiB.toFixed(2)} CPU-s per GiB`)

  // An atomic small file, every step the client makes, synchronously (no thread pool).
  const dir = join(tmp, 'small')
  const small = chunk.subarray(0, 4096)
  for (let d = 0; d < Math.ceil(files / 200); d++) mkdirSync(join(dir, `d${d}`), { recursive: true })
  c0 = cpu()
  let t0 = performance.now()
  for (let i = 0; i < files; i++) {
    const final = join(dir, `d${Math.floor(i / 200)}`, `f${i}.dat`)
    const temp = `${final}.tmp`
    const f = openSync(temp, 'wx', 0o600)
    writeSync(f, small, 0, small.length, 0)
    fchmodSync(f, 0o644)
    futimesSync(f, 1_700_000_000, 1_700_000_000)
    closeSync(f)
    renameSync(temp, final)
  }
  out.smallFileMs = (performance.now() - t0) / files
  out.smallFileCpuMs = ((cpu() - c0) * 1000) / files
  log(`atomic 4 KiB file (open wx, write, fchmod, futimes, close, rename): ${out.smallFileMs.toFixed(3)} ms wall, ${out.smallFileCpuMs.toFixed(3)} ms CPU per file; ${files} files: ${(out.smallFileMs * files / 1000).toFixed(2)} s`)

  // One lstat per file.
  t0 = performance.now()
  for (let i = 0; i < files; i++) lstatSync(join(dir, `d${Math.floor(i / 200)}`, `f${i}.dat`))
  out.lstatUs = ((performance.now() - t0) * 1000) / files
  log(`lstat: ${out.lstatUs.toFixed(1)} µs per file; ${files} files: ${(out.lstatUs * files / 1000).toFixed(0)} ms`)

  // Process start, and the CLI's module loading.
  const timeSpawn = (args) => {
    const ts = []
    for (let i = 0; i < 7; i++) {
      const s = performance.now()
      const r = spawnSync(process.execPath, args, { stdio: 'ignore' })
      if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`)
      ts.push(performance.now() - s)
    }
    return median(ts)
  }
  out.nodeStartMs = timeSpawn(['-e', '0'])
  out.cliVersionMs = timeSpawn([BIN, '--version'])
  log(`process start: node -e 0 ${out.nodeStartMs.toFixed(0)} ms; assetsync --version ${out.cliVersionMs.toFixed(0)} ms`)
  out.noopFloorMs = out.cliVersionMs + (out.lstatUs * files) / 1000
  log(`no-op pull floor of this design (CLI start + one lstat per file): ${out.noopFloorMs.toFixed(0)} ms for ${files} files`)
  if (a.json) writeFileSync(a.json, JSON.stringify(out, null, 2) + '\n')
} finally {
  removeTempDir(tmp)
}
