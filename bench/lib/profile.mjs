// Profiling passes (`--profile`): run a server and/or client with `node --cpu-prof`, then
// summarise each .cpuprofile (top self-time functions, self time by location).
import { mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { startServe } from './assetsync.mjs'
import { render, summarize } from './cpuprofile.mjs'

function slug(s) {
  return s.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase()
}

/** node args that write a .cpuprofile into a fresh folder; returns {dir, nodeArgs}. */
export function cpuProfArgs(ctx, name) {
  const dir = join(ctx.profDir, slug(name))
  mkdirSync(dir, { recursive: true })
  return { dir, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=500'] }
}

/** CLOCK_MONOTONIC in µs, the clock of V8's profile timestamps. */
export const monoUs = () => Number(process.hrtime.bigint() / 1000n)

/**
 * Summaries of every .cpuprofile in `dir` (one per process that exited normally); with `window`
 * ({fromUs, toUs} from monoUs()), only that part of the process's life.
 */
export function summariesIn(ctx, dir, name, window = null) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
  if (files.length === 0) ctx.log(`  (no .cpuprofile in ${dir}: the process did not exit normally)`)
  return files.map((f) => {
    const s = summarize(join(dir, f), 12, window)
    ctx.log(render(`${name}${window ? ', measured window only' : ''} (${join(dir, f).replace(`${ctx.repo}/`, '')})`, s))
    return { process: name, file: join(dir, f).replace(`${ctx.repo}/`, ''), window: !!window, ...s }
  })
}

/**
 * Profiles one server (`assetsync serve`, started fresh with --cpu-prof) and the client work
 * `client(server, nodeArgs)` against it. Returns the summaries.
 */
export async function profilePair(ctx, { name, src, env, transport, serveArgs = [], client }) {
  ctx.log(`profiling ${name} (node --cpu-prof)`)
  const sp = cpuProfArgs(ctx, `${name} server`)
  const cp = cpuProfArgs(ctx, `${name} client`)
  const server = await startServe(src, { transport, env, args: serveArgs, nodeArgs: sp.nodeArgs })
  let window
  try {
    const fromUs = monoUs()
    await client(server, cp.nodeArgs)
    window = { fromUs, toUs: monoUs() }
  } finally {
    await server.stop(60_000)
  }
  return [...summariesIn(ctx, sp.dir, `${name}: serve`, window), ...summariesIn(ctx, cp.dir, `${name}: client`)]
}
