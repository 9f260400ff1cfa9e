// Setup shared by the scenarios: a generated tree next to a private config dir, `assetsync serve`
// of it over both transports, and fresh output folders.
import { spawnSync } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { cliEnv, startServe } from './assetsync.mjs'

/** The tree `generate(src)` writes at ctx.tmp/tree, and the env of a private config dir: {src, env, tree}. */
export async function treeSetup(ctx, generate) {
  const src = join(ctx.tmp, 'tree')
  const env = cliEnv(join(ctx.tmp, 'config'))
  return { src, env, tree: await generate(src) }
}

/** `assetsync serve src` over UDP and over TCP: {udp, tcp}; their stops go onto `stops`. */
export async function serveUdpTcp(src, env, stops) {
  const udp = await startServe(src, { transport: 'udp', env })
  stops.push(udp.stop)
  const tcp = await startServe(src, { transport: 'tcp', env })
  stops.push(tcp.stop)
  return { udp, tcp }
}

/** fresh(fn): runs fn(out) on a new folder ctx.tmp/dest-<n> (after a `sync`), removed afterwards. */
export function freshOut(ctx) {
  let n = 0
  return async (fn) => {
    const out = join(ctx.tmp, `dest-${n++}`)
    spawnSync('sync')
    try {
      return await fn(out)
    } finally {
      await rm(out, { recursive: true, force: true })
    }
  }
}
