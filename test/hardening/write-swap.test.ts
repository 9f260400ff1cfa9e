/**
 * Issue 12, case 2: a local user who can write to the mirror's parent swaps a folder under --out
 * for a symlink to another folder while a pull runs. Before the fix the client checked each
 * folder once per sync and then created and renamed temp files by path, so every file written
 * after the swap landed in the other folder (3000 of 3000 in the report) and the pull exited 0.
 *
 * Here a real pull of 1,500 files runs against a real server while a child process swaps
 * `out/d` <-> a symlink to a decoy folder as fast as it can; nothing may appear in the decoy.
 */
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { Sandbox, type ServerHandle, ensureBuilt, parseEvents } from '../helpers/cli.js'
import { filesUnder, isTemp, writeTree } from '../helpers/trees.js'

const SWAPPER = fileURLToPath(new URL('../fixtures/folder-swapper.mjs', import.meta.url))
const FILES = 1500

let sb: Sandbox
let server: ServerHandle

beforeAll(async () => {
  ensureBuilt()
  sb = await Sandbox.create('write-swap')
  const src = await sb.mkdir('src')
  const spec: Record<string, string> = {}
  // Most files straight in d/ (the swapped folder itself), some one level further (a swapped
  // folder on the way), all small: a pull then spends its time creating and renaming files.
  for (let i = 0; i < FILES; i++) spec[`d/${i % 3 === 0 ? 'sub/' : ''}f${String(i).padStart(4, '0')}.txt`] = `file ${i}\n`.repeat(1 + (i % 40))
  await writeTree(src, spec)
  server = await sb.serve(src)
}, 120_000)

afterAll(async () => {
  await sb?.cleanup()
})

/** Runs the swapper until `stopFile` exists; resolves with how many swaps it made. */
function startSwapper(out: string, decoy: string, stopFile: string, after: number): { done: Promise<number> } {
  const child = spawn(process.execPath, [SWAPPER, out, 'd', decoy, stopFile, '120000', String(after)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let text = ''
  child.stdout.on('data', (b: Buffer) => { text += b.toString() })
  const done = new Promise<number>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', () => resolve(Number(/swaps (\d+)/.exec(text)?.[1] ?? -1)))
  })
  return { done }
}

describe('issue 12: a folder under --out swapped for a symlink during a pull', () => {
  test(`a pull of ${FILES} files while out/d is swapped in a tight loop writes 0 files outside --out`, async () => {
    let totalSwaps = 0
    // A few rounds, each a fresh mirror, so the race gets several chances at different moments.
    for (let round = 0; round < 3; round++) {
      const out = sb.path('out')
      const decoy = await sb.mkdir('decoy')
      const stop = sb.path('stop')
      // Round 0 swaps from the start; later rounds once d/ holds files (folders pinned, transfers in flight).
      const swapper = startSwapper(out, decoy, stop, round === 0 ? 0 : 100 * round)
      const r = await sb.run(['pull', '--server', server.addr, '--out', out, '--json'], { timeoutMs: 300_000 })
      await writeFile(stop, '')
      const swaps = await swapper.done
      totalSwaps += swaps
      // The point: nothing at all in the decoy, not a file, not a temp file.
      expect([...(await filesUnder(decoy)).keys()], `round ${round}: files in the decoy (exit ${r.code}, ${swaps} swaps)`).toEqual([])
      // The pull either finished (the swaps missed every write: files went into the pinned
      // folder) or stopped at a swap it detected, with the path refused (exit 5).
      expect([0, 5], r.stderr).toContain(r.code)
      if (r.code === 5) expect(r.stderr).toMatch(/^assetsync: refused path "d\/.*was replaced while writing/)
      // Whatever it reported downloaded is inside --out (in d/, or where the swapper parked d).
      const inside = new Set([...(await filesUnder(out)).keys()].map((p) => p.replace(/^d\.held-by-swapper\//, 'd/')))
      const downloaded = parseEvents(r.stdout).filter((e) => e.event === 'file' && e.action === 'downloaded').map((e) => String(e.path))
      expect(downloaded.filter((p) => !inside.has(p))).toEqual([])
      expect([...inside].filter(isTemp), 'temp files left in --out').toEqual([])
    }
    expect(totalSwaps, 'the swapper must have swapped while pulls ran').toBeGreaterThan(0)
  }, 600_000)
})
