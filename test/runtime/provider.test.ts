/**
 * The folder-backed AssetProvider, its two-lane transfer queue, and the module graph's reload
 * order.
 */
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FolderAssets } from '../../src/runtime/folder-assets.js'
import { ModuleGraph } from '../../src/runtime/module-graph.js'
import type { FetchOptions } from '../../src/runtime/provider.js'
import { TransferQueue } from '../../src/core/fs/transfer-queue.js'
import { type Sandbox, sandbox } from '../helpers/lua.js'

let sb: Sandbox
beforeEach(async () => { sb = await sandbox() })
afterEach(async () => { await sb.cleanup() })

const opts = (o: Partial<FetchOptions> = {}): FetchOptions => ({ network: true, reload: false, instance: 'i1', priority: 'blocking', ...o })

describe('FolderAssets', () => {
  it('downloads, then answers up-to-date by hash, then downloads a changed file again', async () => {
    await sb.serve({ 'a/b.txt': 'one' })
    const p = sb.provider()
    const first = await p.fetch('a/b.txt', opts())
    expect(first).toMatchObject({ path: 'a/b.txt', action: 'downloaded', size: 3, bytes: 3 })
    expect(await readFile(join(sb.out, 'a', 'b.txt'), 'utf8')).toBe('one')
    expect(await p.fetch('a/b.txt', opts())).toMatchObject({ action: 'up-to-date', bytes: 0, hash: first?.hash })
    await sb.serve({ 'a/b.txt': 'two!' })
    expect(await p.fetch('a/b.txt', opts())).toMatchObject({ action: 'downloaded', bytes: 4 })
    expect(await p.fetch('missing.txt', opts())).toBeNull()
    expect(p.stats).toEqual({ downloaded: 2, bytes: 7, unchanged: 1 })
  })

  it('network = false and offline mode answer from the local folder', async () => {
    await writeFile(join(sb.out, 'here.txt'), 'local')
    await sb.serve({ 'here.txt': 'server', 'there.txt': 'x' })
    const p = sb.provider()
    expect(await p.fetch('here.txt', opts({ network: false }))).toMatchObject({ action: 'local', size: 5 })
    expect(await p.fetch('there.txt', opts({ network: false }))).toBeNull()
    const offline = new FolderAssets({ out: sb.out })
    expect(await offline.fetch('here.txt', opts())).toMatchObject({ action: 'local' })
  })

  it('refuses hostile paths and symlinks out of either folder', async () => {
    const p = sb.provider()
    for (const bad of ['../x', '/etc/passwd', 'a\0b', 'a\\b', 'a//b', '']) {
      await expect(p.fetch(bad, opts())).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
    }
    await symlink('/etc', join(sb.server, 'etc'))
    await expect(p.fetch('etc/hostname', opts())).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
    await sb.serve({ 'evil/f.txt': 'x' })
    await mkdir(join(sb.dir, 'elsewhere'))
    await symlink(join(sb.dir, 'elsewhere'), join(sb.out, 'evil'))
    await expect(p.fetch('evil/f.txt', opts())).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
  })

  it('publish tells listeners about a changed subscribed file, and only then', async () => {
    await sb.serve({ 'm.lua': 'v1' })
    const p = sb.provider()
    const seen: string[] = []
    p.onChange((c) => seen.push(`${c.path}:${c.size}`))
    await p.fetch('m.lua', opts({ reload: true }))
    expect(await p.publish('m.lua')).toBeNull() // saved without a change
    await sb.serve({ 'm.lua': 'v2!' })
    expect(await p.publish('m.lua')).toMatchObject({ path: 'm.lua', size: 3 })
    await p.release('i1')
    await sb.serve({ 'm.lua': 'v3!!' })
    expect(await p.publish('m.lua')).toBeNull()
    expect(seen).toEqual(['m.lua:3'])
  })
})

describe('TransferQueue', () => {
  it('starts every queued blocking job before any queued background job, and shares a key', async () => {
    const q = new TransferQueue<string>(1)
    const order: string[] = []
    let release!: () => void
    const gate = new Promise<void>((res) => { release = res })
    const job = (name: string, wait?: Promise<void>) => async () => { order.push(name); await wait; return name }
    const all = [q.add('first', 'background', job('first', gate))]
    for (let i = 0; i < 5; i++) all.push(q.add(`bg${i}`, 'background', job(`bg${i}`)))
    all.push(q.add('urgent', 'blocking', job('urgent')))
    all.push(q.add('bg3', 'blocking', job('never runs: joins bg3'))) // joins and moves bg3 up
    expect(q.queued).toBe(6)
    release()
    expect(await Promise.all(all)).toEqual(['first', 'bg0', 'bg1', 'bg2', 'bg3', 'bg4', 'urgent', 'bg3'])
    expect(order).toEqual(['first', 'urgent', 'bg3', 'bg0', 'bg1', 'bg2', 'bg4'])
  })
})

describe('ModuleGraph', () => {
  it('orders a reload: the changed module, then its dependents, each after what it requires', () => {
    const g = new ModuleGraph()
    for (const n of ['main', 'ui', 'enemy', 'ai', 'util', 'other']) g.add({ name: n, path: `${n}.lua`, chunk: `@${n}.lua`, reload: n === 'util' })
    g.addEdge('ui', 'enemy')
    g.addEdge('enemy', 'ai')
    g.addEdge('ai', 'util')
    g.addEdge('enemy', 'util')
    g.addEdge('other', 'ai')
    expect(g.subscribedAt('util.lua')).toEqual(['util'])
    expect(g.reloadOrder(['util'])).toEqual(['util', 'ai', 'enemy', 'ui', 'other'])
    expect(g.reloadOrder(['enemy'])).toEqual(['enemy', 'ui'])
    expect([...g.dependentsOf('ai')].sort()).toEqual(['enemy', 'other', 'ui'])
    g.addEdge('util', 'ui') // a cycle: still every module once
    expect(g.reloadOrder(['util']).sort()).toEqual(['ai', 'enemy', 'other', 'ui', 'util'])
    expect(g.moduleOfChunk('@ai.lua')).toBe('ai')
  })
})
