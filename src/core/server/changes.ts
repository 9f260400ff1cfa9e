/**
 * Turns a settled batch (each path's hash before and its entry after) into UPDATE entries:
 * creates/changes, deletes, and renames (a delete and a create of the same content in one
 * batch), then splits them per subscribed client and into frames of bounded size.
 */
import { MAX_FRAME_BYTES, MAX_UPDATE_ENTRIES } from '../../limits.js'
import { updateEntryBytes } from '../../protocol/codec.js'
import type { FileMeta, UpdateEntry } from '../../protocol/messages.js'
import { equalHash } from '../fs/hash.js'

/** Keep UPDATE frames well under MAX_FRAME_BYTES. */
const UPDATE_FRAME_BUDGET = MAX_FRAME_BYTES / 2

export interface ChangeSummary { path: string; action: 'change' | 'delete' | 'rename'; from?: string }

export interface UpdatePlan<C> {
  /** Every change in the batch (for logs). */
  changes: ChangeSummary[]
  /** The entries each subscribed client gets (only clients with at least one). */
  perClient: Map<C, UpdateEntry[]>
  /** Splits entries into frames within MAX_UPDATE_ENTRIES and the byte budget. */
  frames(entries: UpdateEntry[]): UpdateEntry[][]
}

function meta(e: FileMeta): FileMeta {
  return { hash: e.hash, size: e.size, mode: e.mode, mtime: e.mtime }
}

export function planUpdates<C>(
  before: ReadonlyMap<string, Uint8Array | null>,
  after: ReadonlyMap<string, FileMeta | null>,
  subscribers: (path: string) => Map<C, unknown>,
): UpdatePlan<C> {
  const entries: UpdateEntry[] = []
  const deleted: { path: string; hash: Uint8Array }[] = []
  for (const [path, now] of after) {
    const old = before.get(path) ?? null
    if (now && !equalHash(old, now.hash)) entries.push({ kind: 'change', path, ...meta(now) })
    else if (!now && old) deleted.push({ path, hash: old })
  }
  for (const d of deleted) {
    // A new path with exactly the deleted content, in the same batch: a rename (or a move).
    const i = entries.findIndex((e) => e.kind === 'change' && !before.get(e.path) && equalHash(e.hash, d.hash))
    const e = entries[i]
    if (e && e.kind === 'change') entries[i] = { ...e, kind: 'rename', from: d.path }
    else entries.push({ kind: 'delete', path: d.path })
  }
  const perClient = new Map<C, UpdateEntry[]>()
  const add = (c: C, e: UpdateEntry): void => {
    let list = perClient.get(c)
    if (!list) perClient.set(c, (list = []))
    list.push(e)
  }
  for (const e of entries) {
    const to = subscribers(e.path)
    if (e.kind !== 'rename') {
      for (const c of to.keys()) add(c, e)
      continue
    }
    const from = subscribers(e.from)
    for (const c of to.keys()) add(c, from.has(c) ? e : { kind: 'change', path: e.path, ...meta(e) })
    for (const c of from.keys()) if (!to.has(c)) add(c, { kind: 'delete', path: e.from })
  }
  const changes: ChangeSummary[] = entries.map((e) =>
    e.kind === 'rename' ? { path: e.path, action: 'rename', from: e.from } : { path: e.path, action: e.kind })
  return { changes, perClient, frames: splitFrames }
}

function splitFrames(entries: UpdateEntry[]): UpdateEntry[][] {
  const frames: UpdateEntry[][] = []
  let cur: UpdateEntry[] = []
  let bytes = 0
  for (const e of entries) {
    const size = updateEntryBytes(e)
    if (cur.length > 0 && (cur.length >= MAX_UPDATE_ENTRIES || bytes + size > UPDATE_FRAME_BUDGET)) {
      frames.push(cur)
      cur = []
      bytes = 0
    }
    cur.push(e)
    bytes += size
  }
  if (cur.length > 0) frames.push(cur)
  return frames
}
