/**
 * Delta and compression against the protocol-2 release (test/fixtures/release-v2), both ways: a
 * protocol-2 client pulling an edited file from this server gets it whole (the server never sends
 * an optional frame it did not agree on), and this client pulling from a protocol-2 server falls
 * back to whole, uncompressed transfers (bytesReceived = the file's size, nothing reused).
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { ensureBuilt, parseEvents, PROJECT_ROOT, Sandbox } from '../helpers/cli.js'
import { MiB } from '../helpers/common.js'
import { diffTrees, writeRandomFile, writeTree } from '../helpers/trees.js'
import { jsonText } from './support.js'

const OLD_CLI = join(PROJECT_ROOT, 'test', 'fixtures', 'release-v2', 'cli.mjs')
const BIG = 4 * MiB

let sb: Sandbox

beforeAll(() => {
  ensureBuilt()
  return Sandbox.create('delta-cross').then((s) => { sb = s })
})
afterAll(async () => { await sb?.cleanup() })

async function tree(): Promise<string> {
  const src = await sb.mkdir('src')
  await writeTree(src, { 'level.json': jsonText(MiB, 3) })
  await writeRandomFile(join(src, 'big.bin'), BIG)
  return src
}

async function flipByte(file: string, at: number): Promise<void> {
  const b = await readFile(file)
  b[at] = (b[at] as number) ^ 0xff
  await writeFile(file, b)
}

for (const [client, server] of [['old', 'new'], ['new', 'old']] as const) {
  test(`the ${client} CLI pulls an edit from the ${server} server: whole files, byte for byte`, async () => {
    const src = await tree()
    const bin = server === 'old' ? { bin: OLD_CLI } : {}
    const out = sb.path('out')
    // Each pull against a freshly started server: its index is then the folder as it is (no
    // wait for a watcher).
    const pull = async (): Promise<Record<string, number>> => {
      const s = await sb.serve(src, [], bin)
      try {
        const r = await sb.run(['pull', '--server', s.addr, '--key', s.key, '--out', out, '--json'], client === 'old' ? { bin: OLD_CLI } : {})
        expect(r.stderr).toBe('')
        expect(r.code).toBe(0)
        return parseEvents(r.stdout).find((e) => e.event === 'summary') as unknown as Record<string, number>
      } finally {
        await s.stop()
      }
    }
    await pull()
    expect(await diffTrees(src, out)).toEqual([])
    await flipByte(join(src, 'big.bin'), BIG >> 1)
    const second = await pull()
    expect(second).toMatchObject({ downloaded: 1, upToDate: 1, bytesReceived: BIG })
    if (client === 'new') expect(second.bytesReused).toBe(0)
    expect(await diffTrees(src, out)).toEqual([])
  }, 60_000)
}
