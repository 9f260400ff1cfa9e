// A settled batch → UPDATE entries (diffBatch, src/core/server/batch-diff.ts: the folder feed's
// part), split per client and into frames (fanOut + splitFrames, src/core/server/changes.ts: the
// server's part). planUpdates below is the two in a row, as a folder-fed server runs them.
import { describe, expect, it } from 'vitest'
import { diffBatch } from '../../src/core/server/batch-diff.js'
import { type FanOut, fanOut, splitFrames } from '../../src/core/server/changes.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import { Subscriptions } from '../../src/core/server/subscriptions.js'
import { MAX_FRAME_BYTES, MAX_UPDATE_ENTRIES } from '../../src/limits.js'
import { decode, encode, encodedSize } from '../../src/protocol/codec.js'
import type { FileMeta, UpdateEntry } from '../../src/protocol/messages.js'

const h = (s: string): Buffer => hashBytes(Buffer.from(s))
const meta = (content: string, size = content.length): FileMeta => ({ hash: h(content), size, mode: 0o644, mtime: 1_700_000_000_000 })

/** Entries as comparable data (hashes as hex). */
function plain(entries: readonly UpdateEntry[] | undefined): unknown[] {
  return (entries ?? []).map((e) => (e.kind === 'delete' ? { ...e } : { ...e, hash: Buffer.from(e.hash).toString('hex') }))
}

function planUpdates<C>(
  before: ReadonlyMap<string, Uint8Array | null>, after: ReadonlyMap<string, FileMeta | null>, subscribers: (path: string) => Map<C, unknown>,
): FanOut<C> & { frames: typeof splitFrames } {
  return { ...fanOut(diffBatch(before, after), subscribers), frames: splitFrames }
}

/** Everyone subscribes to everything, as client "all". */
const everyone = (): Map<string, unknown> => new Map([['all', new Set([1])]])

describe('planUpdates: what changed', () => {
  it('a changed file is a change entry carrying the new meta; an unchanged one is nothing', () => {
    const plan = planUpdates(
      new Map([['a.txt', h('old')], ['same.txt', h('same')]]),
      new Map([['a.txt', meta('new')], ['same.txt', meta('same')]]),
      everyone,
    )
    expect(plan.changes).toEqual([{ path: 'a.txt', action: 'change' }])
    expect(plain(plan.perClient.get('all'))).toEqual(plain([{ kind: 'change', path: 'a.txt', ...meta('new') }]))
  })

  it('a mode-only change (chmod +x) is a change entry with the new mode when the mode was heard (issue 11)', () => {
    const exe = { ...meta('script'), mode: 0o755 }
    const entries = diffBatch(new Map([['tool.sh', { hash: h('script'), mode: 0o644 }], ['same.sh', { hash: h('script'), mode: 0o755 }]]),
      new Map([['tool.sh', exe], ['same.sh', exe]]))
    expect(plain(entries)).toEqual(plain([{ kind: 'change', path: 'tool.sh', ...exe }]))
  })

  it('a new file is a change; a removed file is a delete; absent before and after is nothing', () => {
    const plan = planUpdates(
      new Map<string, Uint8Array | null>([['new.txt', null], ['gone.txt', h('gone')], ['ghost.tmp', null]]),
      new Map<string, FileMeta | null>([['new.txt', meta('fresh')], ['gone.txt', null], ['ghost.tmp', null]]),
      everyone,
    )
    expect(plan.changes).toEqual([{ path: 'new.txt', action: 'change' }, { path: 'gone.txt', action: 'delete' }])
    expect(plain(plan.perClient.get('all'))).toEqual(plain([
      { kind: 'change', path: 'new.txt', ...meta('fresh') },
      { kind: 'delete', path: 'gone.txt' },
    ]))
  })

  it('a delete and a create of the same content in one batch pair up as a rename', () => {
    const plan = planUpdates(
      new Map<string, Uint8Array | null>([['old/name.png', h('pixels')], ['new/name.png', null]]),
      new Map<string, FileMeta | null>([['old/name.png', null], ['new/name.png', meta('pixels')]]),
      everyone,
    )
    expect(plan.changes).toEqual([{ path: 'new/name.png', action: 'rename', from: 'old/name.png' }])
    expect(plain(plan.perClient.get('all'))).toEqual(plain([{ kind: 'rename', path: 'new/name.png', from: 'old/name.png', ...meta('pixels') }]))
  })

  it('pairs each created file with at most one delete, and only on equal content', () => {
    const plan = planUpdates(
      new Map<string, Uint8Array | null>([['a', h('X')], ['b', h('X')], ['c', h('Y')], ['d', null], ['e', null]]),
      new Map<string, FileMeta | null>([['a', null], ['b', null], ['c', null], ['d', meta('X')], ['e', meta('Z')]]),
      everyone,
    )
    expect(plan.changes).toEqual([
      { path: 'd', action: 'rename', from: 'a' },
      { path: 'e', action: 'change' },
      { path: 'b', action: 'delete' },
      { path: 'c', action: 'delete' },
    ])
  })

  it('a file that existed before and now holds the deleted content is not a rename target', () => {
    // `mv a b` over an existing b: b changed (its old content is gone), a deleted.
    const plan = planUpdates(
      new Map([['a', h('A')], ['b', h('B')]]),
      new Map<string, FileMeta | null>([['a', null], ['b', meta('A')]]),
      everyone,
    )
    expect(plan.changes).toEqual([{ path: 'b', action: 'change' }, { path: 'a', action: 'delete' }])
  })

  it('an empty plan when nothing really changed', () => {
    const plan = planUpdates(new Map([['a', h('A')]]), new Map([['a', meta('A')]]), everyone)
    expect(plan.changes).toEqual([])
    expect(plan.perClient.size).toBe(0)
  })
})

describe('planUpdates: per-client split', () => {
  const subs = new Subscriptions()
  subs.subscribe('textures', ['textures/**'], 1)
  subs.subscribe('scripts', ['scripts/**'], 1)
  subs.subscribe('both', ['textures/**', 'scripts/**'], 1)
  subs.subscribe('both', ['**/*.png'], 2) // overlapping patterns: still one entry each
  subs.subscribe('levels', ['levels/**'], 9)

  it('each client gets only the entries its patterns match, once each; unmatched clients get nothing', () => {
    const plan = planUpdates(
      new Map<string, Uint8Array | null>([['textures/a.png', h('a0')], ['scripts/b.lua', null], ['ui/c.txt', h('c')]]),
      new Map<string, FileMeta | null>([['textures/a.png', meta('a1')], ['scripts/b.lua', meta('b')], ['ui/c.txt', null]]),
      (p) => subs.subscribers(p),
    )
    expect(plan.changes.map((c) => c.path)).toEqual(['textures/a.png', 'scripts/b.lua', 'ui/c.txt'])
    expect(plan.perClient.get('textures')?.map((e) => e.path)).toEqual(['textures/a.png'])
    expect(plan.perClient.get('scripts')?.map((e) => e.path)).toEqual(['scripts/b.lua'])
    expect(plan.perClient.get('both')?.map((e) => e.path)).toEqual(['textures/a.png', 'scripts/b.lua'])
    expect(plan.perClient.has('levels')).toBe(false)
    expect(plan.perClient.size).toBe(3)
  })

  it('a rename across patterns: a client seeing both sides gets the rename, one seeing only the new side a change, one seeing only the old side a delete', () => {
    const plan = planUpdates(
      new Map<string, Uint8Array | null>([['textures/t.png', h('T')], ['scripts/t.png', null]]),
      new Map<string, FileMeta | null>([['textures/t.png', null], ['scripts/t.png', meta('T')]]),
      (p) => subs.subscribers(p),
    )
    expect(plan.changes).toEqual([{ path: 'scripts/t.png', action: 'rename', from: 'textures/t.png' }])
    expect(plain(plan.perClient.get('both'))).toEqual(plain([{ kind: 'rename', path: 'scripts/t.png', from: 'textures/t.png', ...meta('T') }]))
    expect(plain(plan.perClient.get('scripts'))).toEqual(plain([{ kind: 'change', path: 'scripts/t.png', ...meta('T') }]))
    expect(plain(plan.perClient.get('textures'))).toEqual(plain([{ kind: 'delete', path: 'textures/t.png' }]))
    expect(plan.perClient.has('levels')).toBe(false)
  })
})

describe('planUpdates: frames', () => {
  it(`splits more than MAX_UPDATE_ENTRIES (${MAX_UPDATE_ENTRIES}) entries over several frames, in order`, () => {
    const n = MAX_UPDATE_ENTRIES * 2 + 5
    const before = new Map<string, Uint8Array | null>()
    const after = new Map<string, FileMeta | null>()
    for (let i = 0; i < n; i++) {
      const p = `f/${String(i).padStart(5, '0')}`
      before.set(p, null)
      after.set(p, meta(p))
    }
    const plan = planUpdates(before, after, everyone)
    const entries = plan.perClient.get('all') ?? []
    expect(entries).toHaveLength(n)
    const frames = plan.frames(entries)
    expect(frames.map((f) => f.length)).toEqual([MAX_UPDATE_ENTRIES, MAX_UPDATE_ENTRIES, 5])
    expect(frames.flat()).toEqual(entries)
    // Every frame really encodes and decodes (the codec enforces the same cap).
    for (const f of frames) {
      const back = decode(encode({ type: 'update', entries: f }), 'server')
      expect(back.type === 'update' && back.entries.length).toBe(f.length)
    }
  })

  it('exactly MAX_UPDATE_ENTRIES entries fit one frame; none give no frame', () => {
    const entries: UpdateEntry[] = Array.from({ length: MAX_UPDATE_ENTRIES }, (_, i) => ({ kind: 'delete', path: `d/${i}` }))
    const plan = planUpdates(new Map(), new Map(), everyone)
    expect(plan.frames(entries)).toHaveLength(1)
    expect(plan.frames([])).toEqual([])
  })

  it('splits by bytes too, so frames of long paths stay under MAX_FRAME_BYTES', () => {
    const long = 'x'.repeat(1000)
    const entries: UpdateEntry[] = Array.from({ length: MAX_UPDATE_ENTRIES }, (_, i) =>
      ({ kind: 'rename', path: `${long}/${i}`, from: `${long}/old-${i}`, ...meta(String(i)) }))
    const plan = planUpdates(new Map(), new Map(), everyone)
    const frames = plan.frames(entries)
    expect(frames.length).toBeGreaterThan(1)
    expect(frames.flat()).toEqual(entries)
    for (const f of frames) expect(encodedSize({ type: 'update', entries: f })).toBeLessThanOrEqual(MAX_FRAME_BYTES)
  })
})
