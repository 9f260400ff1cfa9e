/**
 * The server's fan-out of a ready batch (a ChangeFeed's UPDATE entries): which entries each
 * subscribed client gets, and their split into frames of bounded size.
 */
import { MAX_FRAME_BYTES, MAX_UPDATE_ENTRIES } from '../../limits.js'
import { updateEntryBytes } from '../../protocol/codec.js'
import type { FileMeta, UpdateEntry } from '../../protocol/messages.js'

/** Keep UPDATE frames well under MAX_FRAME_BYTES. */
const UPDATE_FRAME_BUDGET = MAX_FRAME_BYTES / 2

/** One change of a batch, for logs and events. */
export interface ChangeSummary {
  path: string
  action: 'change' | 'delete' | 'rename'
  /** The old path of a rename. */
  from?: string
}

export interface FanOut<C> {
  /** Every change in the batch (for logs). */
  changes: ChangeSummary[]
  /** The entries each subscribed client gets (only clients with at least one). */
  perClient: Map<C, UpdateEntry[]>
}

function meta(e: FileMeta): FileMeta {
  return { hash: e.hash, size: e.size, mode: e.mode, mtime: e.mtime }
}

/**
 * Splits `entries` per subscribed client. A rename goes as a rename to clients subscribed to both
 * paths, as a change of the new path to those subscribed only to it, and as a delete of the old
 * path to those subscribed only to that.
 */
export function fanOut<C>(entries: readonly UpdateEntry[], subscribers: (path: string) => Map<C, unknown>): FanOut<C> {
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
  return { changes, perClient }
}

/** Splits entries into UPDATE frames within MAX_UPDATE_ENTRIES and the byte budget. */
export function splitFrames(entries: readonly UpdateEntry[]): UpdateEntry[][] {
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
