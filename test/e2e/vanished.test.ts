/**
 * A file deleted on the server between the manifest and its request ("vanished", as rsync calls
 * it) does not fail the pull: it is reported, nothing is written for it, the other files arrive,
 * and --prune removes the local copy of a file the server no longer has.
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { type FileEvent, Mirror } from '../../src/core/client/mirror.js'
import { tempDir } from '../helpers/common.js'
import { type LocalServer, startLocalServer } from '../helpers/raw-peers.js'

let work: string
let remove: () => Promise<void>
let srv: LocalServer
beforeAll(async () => {
  ({ dir: work, remove } = await tempDir('vanished'))
  await mkdir(join(work, 'root', 'sub'), { recursive: true })
  for (const n of ['a.txt', 'b.txt', 'sub/c.txt', 'sub/d.txt']) await writeFile(join(work, 'root', n), `content of ${n}\n`)
  srv = await startLocalServer(join(work, 'root'), join(work, 'cfg'))
})
afterAll(async () => {
  await srv.server.close()
  await remove()
})

describe('a file that vanishes on the server mid-pull', () => {
  it('is reported as vanished; the rest is mirrored; --prune drops the local copy', async () => {
    const out = join(work, 'out')
    await mkdir(out, { recursive: true })
    await writeFile(join(out, 'b.txt'), 'an old local copy\n') // differs: would be fetched
    const client = await AssetClient.connect({ server: srv.addr, key: srv.key, configDir: join(work, 'ccfg'), connectTimeoutMs: 5000 })
    try {
      const manifest = await client.manifest(['**'])
      expect(manifest.map((e) => e.path)).toEqual(['a.txt', 'b.txt', 'sub/c.txt', 'sub/d.txt'])
      // Gone after the manifest was read, before the files are requested.
      await unlink(join(work, 'root', 'b.txt'))
      await unlink(join(work, 'root', 'sub', 'd.txt'))
      const events: FileEvent[] = []
      const mirror = new Mirror({ out, configDir: join(work, 'ccfg') })
      const summary = await mirror.sync(client, manifest, { prune: true, onFile: (ev) => events.push(ev) })
      expect(summary).toMatchObject({ files: 2, downloaded: 2, upToDate: 0, vanished: 2, deleted: 1 })
      expect(events.filter((e) => e.action === 'vanished').map((e) => e.path).sort()).toEqual(['b.txt', 'sub/d.txt'])
      expect(await readFile(join(out, 'a.txt'), 'utf8')).toBe('content of a.txt\n')
      expect(await readFile(join(out, 'sub', 'c.txt'), 'utf8')).toBe('content of sub/c.txt\n')
      expect(existsSync(join(out, 'sub', 'd.txt'))).toBe(false)
      expect(existsSync(join(out, 'b.txt'))).toBe(false) // pruned: the server no longer has it
    } finally {
      client.close()
      await rm(out, { recursive: true, force: true })
    }
  })
})
