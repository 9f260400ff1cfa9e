/**
 * Batches of small files and big files in one pull share the connection's flow-control credit
 * (docs/protocol.md §4.6, §4.10). The server's transfer pump checked the credit, then read its
 * turn from disk; a BATCH answered during that read spent the credit, and the pump's CHUNKs went
 * past it: the server failed the pull with "chunk of 65536 bytes exceeds the flow-control credit
 * of N" (3 pulls in 3 over TCP, 1 in 3 over UDP, with this tree). Each sender now checks the
 * credit right before it sends. The built CLI, real folders, both transports.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MiB } from '../helpers/common.js'
import { ensureBuilt, parseEvents, Sandbox } from '../helpers/cli.js'
import { diffTrees, writeRandomFile } from '../helpers/trees.js'

const SMALL_FILES = 600
const BIG_FILES = 3
const BIG_BYTES = 12 * MiB
const PULLS = 3

let sb: Sandbox
let src: string

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('shared-credit')
  src = await sb.mkdir('src')
  for (let i = 0; i < SMALL_FILES; i++) {
    const dir = join(src, `s${i % 10}`)
    await mkdir(dir, { recursive: true })
    await writeRandomFile(join(dir, `f${i}.bin`), 1000 + ((i * 7919) % 30_000))
  }
  for (let i = 0; i < BIG_FILES; i++) await writeRandomFile(join(src, `big${i}.bin`), BIG_BYTES)
}, 60_000)

afterAll(async () => {
  await sb?.cleanup()
})

describe('small files in batches beside big files in one pull', () => {
  for (const transport of ['tcp', 'udp'] as const) {
    it(`over ${transport}: every pull completes byte for byte (the server never sends past the credit)`, async () => {
      const server = await sb.serve(src, ['--transport', transport])
      try {
        for (let round = 0; round < PULLS; round++) {
          const out = sb.path(`out-${transport}-${round}`)
          const r = await sb.run(['pull', '--server', server.addr, '--key', server.key, '--transport', transport, '--out', out, '--json'], { timeoutMs: 120_000 })
          expect(r.code, r.stderr).toBe(0)
          expect(parseEvents(r.stdout).find((e) => e.event === 'summary')).toMatchObject({ files: SMALL_FILES + BIG_FILES, downloaded: SMALL_FILES + BIG_FILES })
          expect(await diffTrees(src, out)).toEqual([])
        }
      } finally {
        await server.stop()
      }
    }, 240_000)
  }
})
