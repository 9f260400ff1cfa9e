// 6. Memory. (a) `assetsync serve` indexing and watching N tiny files, after it has also served
// the whole manifest to a client (`pull --dry-run`): VmRSS and VmHWM from /proc/<pid>/status,
// against the same server on an empty folder. (b) A single large file pulled over UDP: peak RSS
// (VmHWM) of the server and of the `pull` process, each against the same processes moving a
// tiny file first. A --import preload (lib/report-mem.mjs) also records the maxima of
// process.memoryUsage(), so the figures split into JS heap, buffers (arrayBuffers) and the rest.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cliEnv, memPreload, memReport, pull, readMemReport, startServe } from '../lib/assetsync.mjs'
import { renderHeap, summarizeHeap } from '../lib/cpuprofile.mjs'
import { memOf, sleep } from '../lib/procs.mjs'
import { row } from '../lib/report.mjs'
import { GiB, MB, MiB } from '../lib/stats.mjs'
import { bigFile, smallFilesTree } from '../lib/tree.mjs'

export const id = 'memory'
export const title = 'Memory: many files, one huge file'

const mb = (kib) => (kib * 1024) / MB
/** process.memoryUsage() maxima in MB. */
const breakdown = (m) => m && Object.fromEntries(Object.entries(m.max).map(([k, v]) => [k, Number((v / MB).toFixed(1))]))

/** serve with the memory preload; `probe()` returns /proc figures plus the preload's breakdown. */
async function serveWithMem(ctx, root, env, tag) {
  const file = join(ctx.tmp, `mem-${tag}.json`)
  const pre = memPreload(file)
  const s = await startServe(root, { env: { ...env, ...pre.env }, nodeArgs: pre.nodeArgs, timeoutMs: 900_000 })
  return { s, probe: async () => ({ ...memOf(s.pid), usage: breakdown(await memReport(s.pid, file)) }) }
}

async function pullWithMem(ctx, env, opts, tag) {
  const file = join(ctx.tmp, `mem-${tag}.json`)
  const pre = memPreload(file)
  const r = await pull({ ...opts, env: { ...env, ...pre.env }, nodeArgs: pre.nodeArgs })
  const m = readMemReport(file)
  return { r, hwmKiB: m?.hwmKiB ?? NaN, usage: breakdown(m) }
}

export async function run(ctx) {
  const count = ctx.quick ? 10_000 : 100_000
  const bigSize = ctx.quick ? 256 * MiB : 2 * GiB
  const env = cliEnv(join(ctx.tmp, 'config'))

  // (a) many files
  const empty = join(ctx.tmp, 'empty')
  mkdirSync(empty)
  let base
  {
    const { s, probe } = await serveWithMem(ctx, empty, env, 'empty')
    try {
      await pull({ port: s.port, key: s.key, out: join(ctx.tmp, 'dry0'), env, json: false, extraArgs: ['--dry-run'] })
      await sleep(500)
      base = await probe()
    } finally {
      await s.stop()
    }
  }
  ctx.log(`generating ${count} tiny files`)
  const many = join(ctx.tmp, 'many')
  await smallFilesTree(many, count, { minBytes: 16, maxBytes: 64, perDir: 500, seed: 6 })
  let idle
  let after
  let ready
  let manifestMs
  {
    const { s, probe } = await serveWithMem(ctx, many, env, 'many')
    ready = s.readyMs
    try {
      await sleep(1000)
      idle = await probe()
      const r = await pull({ port: s.port, key: s.key, out: join(ctx.tmp, 'dry1'), env, json: false, extraArgs: ['--dry-run'] })
      manifestMs = r.wallMs
      if (r.summary.files !== count) throw new Error(`dry run saw ${r.summary.files} of ${count} files`)
      await sleep(500)
      after = await probe()
    } finally {
      await s.stop()
    }
  }
  ctx.log(`  ${count} files: ready in ${(ready / 1000).toFixed(1)} s, RSS idle ${mb(idle.rssKiB).toFixed(0)} MB, after manifest ${mb(after.rssKiB).toFixed(0)} MB, peak ${mb(after.hwmKiB).toFixed(0)} MB; memoryUsage max ${JSON.stringify(after.usage)}`)

  // (b) one big file
  const bigDir = join(ctx.tmp, 'big')
  mkdirSync(bigDir)
  ctx.log(`generating a ${bigSize / MiB} MiB file`)
  await bigFile(join(bigDir, 'huge.pak'), bigSize)
  writeFileSync(join(bigDir, 'tiny.txt'), 'tiny\n')
  let srvBefore
  let srvAfter
  let cliTiny
  let cliBig
  {
    const { s, probe } = await serveWithMem(ctx, bigDir, env, 'big')
    try {
      cliTiny = await pullWithMem(ctx, env, { port: s.port, key: s.key, out: join(ctx.tmp, 'out-tiny'), extraArgs: ['tiny.txt'] }, 'tiny')
      srvBefore = await probe()
      cliBig = await pullWithMem(ctx, env, { port: s.port, key: s.key, out: join(ctx.tmp, 'out-big'), extraArgs: ['huge.pak'] }, 'bigpull')
      if (cliBig.r.summary.bytesReceived !== bigSize) throw new Error(`big pull received ${cliBig.r.summary.bytesReceived} of ${bigSize}`)
      srvAfter = await probe()
    } finally {
      await s.stop()
    }
  }
  const bigMs = cliBig.r.wallMs
  ctx.log(`  ${bigSize / MiB} MiB in ${(bigMs / 1000).toFixed(1)} s: server peak ${mb(srvAfter.hwmKiB).toFixed(0)} MB ${JSON.stringify(srvAfter.usage)}, client peak ${mb(cliBig.hwmKiB).toFixed(0)} MB ${JSON.stringify(cliBig.usage)}`)
  const sizeText = bigSize >= GiB ? `${bigSize / GiB} GiB` : `${bigSize / MiB} MiB`
  const rows = [
    row({ id: 'many-rss', label: `serve ${count} files: RSS after index+watch+manifest`, unit: 'MB', value: mb(after.rssKiB), baseline: { label: 'serve, empty folder', value: mb(base.rssKiB) }, target: { on: 'value', op: '<=', value: 250, text: '≤ 250 MB' } }),
    row({ id: 'many-hwm', label: `serve ${count} files: peak RSS (VmHWM)`, unit: 'MB', value: mb(after.hwmKiB), baseline: { label: 'serve, empty folder (VmHWM)', value: mb(base.hwmKiB) }, target: { on: 'value', op: '<=', value: 250, text: '≤ 250 MB' } }),
    row({ id: 'many-idle', label: `serve ${count} files: RSS idle, before any client`, unit: 'MB', value: mb(idle.rssKiB) }),
    row({ id: 'many-ready', label: `serve ${count} files: start → listening`, unit: 's', value: ready / 1000, note: 'index (hash every file, empty hash cache) + start the watcher' }),
    row({ id: 'big-server', label: `${sizeText} pull/udp: server peak RSS`, unit: 'MB', value: mb(srvAfter.hwmKiB), baseline: { label: 'same server before it (index + tiny pull)', value: mb(srvBefore.hwmKiB) }, target: { on: 'value', op: '<=', value: 150, text: '≤ 150 MB' } }),
    row({ id: 'big-client', label: `${sizeText} pull/udp: client peak RSS`, unit: 'MB', value: mb(cliBig.hwmKiB), baseline: { label: 'pull of a 5-byte file', value: mb(cliTiny.hwmKiB) }, target: { on: 'value', op: '<=', value: 150, text: '≤ 150 MB' } }),
    row({ id: 'big-throughput', label: `${sizeText} pull/udp throughput`, unit: 'MiB/s', value: bigSize / MiB / (bigMs / 1000) }),
  ]
  const result = {
    params: { files: count, fileBytes: '16–64 B', bigFileBytes: bigSize, manifestPullMs: manifestMs },
    rows,
    detail: {
      memoryUsageMaxMB: { emptyServer: base.usage, manyServer: after.usage, bigServer: srvAfter.usage, tinyClient: cliTiny.usage, bigClient: cliBig.usage },
    },
  }
  if (ctx.profile) {
    ctx.log(`profiling serve of ${count} files (V8 sampling heap profiler: what is live after the manifest was served)`)
    const dir = join(ctx.profDir, 'memory-serve-heap')
    mkdirSync(dir, { recursive: true })
    const heapFile = join(dir, `serve-${count}-files.heapprofile`)
    const { s } = await serveWithMem(ctx, many, { ...env, BENCH_HEAP_FILE: heapFile }, 'heap')
    try {
      await pull({ port: s.port, key: s.key, out: join(ctx.tmp, 'dry2'), env, json: false, extraArgs: ['--dry-run'] })
      await memReport(s.pid, join(ctx.tmp, 'mem-heap.json')) // SIGUSR2: also writes the heap profile
      await sleep(2000)
    } finally {
      await s.stop()
    }
    const h = summarizeHeap(heapFile, 12)
    ctx.log(renderHeap(`serve ${count} files (${heapFile.replace(`${ctx.repo}/`, '')})`, h))
    result.profiles = [{ process: `serve ${count} files (live heap)`, file: heapFile.replace(`${ctx.repo}/`, ''), ...h }]
  }
  return result
}
