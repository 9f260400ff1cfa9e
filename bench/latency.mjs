// Save-to-reload latency of `assetsync watch` on loopback, through the real CLI processes:
//   serve <src> --json [--settle N]   and   watch --out <mirror> --json --exec <hook>
// For each edit the clock starts just before writeFile on the server's folder, and stops at
//   visible   fs.watch on the mirror folder reports the file, and it holds the new content
//   applied   the watcher's {"event":"applied"} line for it reaches this process
//   hook      the hook's first command runs (`date +%s%N`, ns wall clock) in the hook run that
//             finds the new content (the hook also records what it read)
// "hook − startup" subtracts the median cost of starting such a hook (sh + date, spawned the way
// HookRunner spawns it), measured separately. One edit at a time, with a pause between edits so
// batches never merge. Clocks: wall time (performance.timeOrigin + performance.now() here,
// CLOCK_REALTIME in `date`), one machine. "extra batches" counts edits that reached the mirror
// in more than one applied batch (e.g. the truncated file first, with --settle 0).
//
// Usage: npm run build && node bench/latency.mjs [--edits 150] [--settle default,0] [--transport udp] [--pause 60]
// Prints a table per --settle value, then one JSON line (last line of stdout) with every figure in ms.
import { randomBytes } from 'node:crypto'
import { readFileSync, watch as fsWatch } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { cliEnv, dateNsToMs, hookStartup, startServe } from './lib/assetsync.mjs'
import { BIN, installExitHandlers, makeTempDir, now, removeTempDir, sleep, startNode, stop, waitEvent, waitFor } from './lib/procs.mjs'
import { summary as stats } from './lib/stats.mjs'

const { values: args } = parseArgs({
  options: {
    edits: { type: 'string', default: '150' },
    settle: { type: 'string', default: 'default,0' },
    transport: { type: 'string', default: 'udp' },
    pause: { type: 'string', default: '60' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log('usage: npm run build && node bench/latency.mjs [--edits 150] [--settle default,0] [--transport udp] [--pause 60]')
  process.exit(0)
}
const EDITS = Number(args.edits)
const PAUSE_MS = Number(args.pause)
const FILE = 'level.json'

/** The hook: its first command takes the time; then it records what it finds. */
const hookCommand = (log) => `t=$(date +%s%N); printf '%s %s\\n' "$t" "$(cat ${FILE})" >> '${log}'`

async function run(settle, startupP50) {
  const dir = makeTempDir('assetsync-latency-')
  const src = join(dir, 'src')
  const out = join(dir, 'mirror')
  const hookLog = join(dir, 'hook.log')
  await mkdir(src)
  await mkdir(out)
  await writeFile(join(src, FILE), '{"edit":-1}\n')
  await writeFile(join(src, 'other.txt'), 'a second file, so the folder is not trivially small\n')
  const env = cliEnv(join(dir, 'config'))
  let server = null
  let watch = null
  let watcher = null
  try {
    server = await startServe(src, { transport: args.transport, env, args: settle === 'default' ? [] : ['--settle', settle], timeoutMs: 20_000 })
    watch = startNode(BIN, ['watch', '--server', `127.0.0.1:${server.port}`, '--transport', args.transport, '--out', out, '--json',
      '--exec', hookCommand(hookLog)], { env })
    await waitEvent(watch, (e) => e.event === 'synced', 20_000, 'watch to sync')
    await writeFile(hookLog, '', { flag: 'a' })

    let expected = ''
    let visibleAt = 0
    watcher = fsWatch(out, (_type, name) => {
      if (name !== FILE || visibleAt || !expected) return
      const t = now()
      let text = ''
      try { text = readFileSync(join(out, FILE), 'utf8') } catch { /* not there (yet) */ }
      if (text === expected) visibleAt = t
    })
    const rows = []
    let extraBatches = 0
    for (let i = 0; i < EDITS + 5; i++) {
      const content = `{"edit":${i},"pad":"${randomBytes(8 + (i % 50)).toString('hex')}"}`
      const appliedBefore = watch.events.filter((e) => e.event === 'applied').length
      visibleAt = 0
      expected = content
      const t0 = now()
      await writeFile(join(src, FILE), content)
      await waitFor(() => visibleAt, 10_000, `edit ${i} to be visible`)
      const hookLine = await waitFor(async () => (await readFile(hookLog, 'utf8')).split('\n').find((l) => l.endsWith(` ${content}`)), 10_000, `edit ${i}: a hook run that sees it`)
      // Its batch was applied before its hook started: the last applied event so far.
      await waitFor(() => watch.events.filter((e) => e.event === 'applied').length > appliedBefore, 10_000, `edit ${i} applied`)
      const applied = watch.events.filter((e) => e.event === 'applied').slice(appliedBefore)
      if (applied.length > 1) extraBatches++
      const hookAt = dateNsToMs(hookLine.slice(0, hookLine.indexOf(' ')))
      // The first few edits warm up (JIT, first hook spawn); they are not counted.
      if (i >= 5) rows.push({ visible: visibleAt - t0, applied: applied.at(-1).at - t0, hook: hookAt - t0 })
      await sleep(PAUSE_MS + (i % 7) * 3)
    }
    const result = {
      settle,
      edits: rows.length,
      visible: stats(rows.map((r) => r.visible)),
      applied: stats(rows.map((r) => r.applied)),
      hook: stats(rows.map((r) => r.hook)),
      hookMinusStartup: stats(rows.map((r) => r.hook - startupP50)),
      extraBatches,
    }
    return result
  } finally {
    watcher?.close()
    await stop(watch, 3000)
    await server?.stop()
    removeTempDir(dir)
  }
}

installExitHandlers()
const startup = await hookStartup(60)
const results = []
for (const settle of args.settle.split(',')) results.push(await run(settle.trim(), startup.p50))

const f = (x) => x.toFixed(1).padStart(7)
console.log(`hook process startup (sh -c 't=$(date +%s%N)', spawned like HookRunner): p50 ${startup.p50.toFixed(2)} ms, p99 ${startup.p99.toFixed(2)} ms (n=${startup.n})`)
for (const r of results) {
  console.log(`\n--settle ${r.settle}  (${r.edits} edits, ${args.transport}, loopback)`)
  console.log('                        p50      p99      min      max   (ms from just before writeFile)')
  for (const [name, s] of [['file visible (fs.watch)', r.visible], ['applied event', r.applied], ['hook start', r.hook], ['hook start − startup', r.hookMinusStartup]]) {
    console.log(`${name.padEnd(22)}${f(s.p50)}  ${f(s.p99)}  ${f(s.min)}  ${f(s.max)}`)
  }
  console.log(`extra batches: ${r.extraBatches} of ${r.edits + 5} edits reached the mirror in more than one applied batch`)
}
console.log(JSON.stringify({ bench: 'latency', transport: args.transport, hookStartup: startup, results }))
