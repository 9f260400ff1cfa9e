/**
 * Turns a settled set of paths (each one's hash as last published, and its entry now) into
 * ready-to-push UPDATE entries: creates/changes, deletes, and renames (a delete and a create of
 * the same content in one batch). Used by the folder feed; any feed that learns "path P is now X"
 * can use it.
 */
import type { FileMeta, UpdateEntry } from '../../protocol/messages.js'
import { equalHash } from '../fs/hash.js'

function meta(e: FileMeta): FileMeta {
  return { hash: e.hash, size: e.size, mode: e.mode, mtime: e.mtime }
}

/**
 * What subscribers last heard of a path: its hash, or its hash and mode (then a mode-only change,
 * `chmod +x`, is news too: issue 11, case 4).
 */
export type Heard = Uint8Array | { hash: Uint8Array; mode: number }

/**
 * `before`: each path as subscribers last heard it (null: absent). `after`: its entry now (null:
 * gone). Unchanged paths give nothing; a path gone and a new path with exactly its content pair up
 * as one rename (each new path with at most one gone one).
 */
export function diffBatch(
  before: ReadonlyMap<string, Heard | null>,
  after: ReadonlyMap<string, FileMeta | null>,
): UpdateEntry[] {
  const entries: UpdateEntry[] = []
  const deleted: { path: string; hash: Uint8Array }[] = []
  for (const [path, now] of after) {
    const heard = before.get(path) ?? null
    const old = heard instanceof Uint8Array ? heard : heard?.hash ?? null
    const modeMoved = heard !== null && !(heard instanceof Uint8Array) && heard.mode !== now?.mode
    if (now && (!equalHash(old, now.hash) || modeMoved)) entries.push({ kind: 'change', path, ...meta(now) })
    else if (!now && old) deleted.push({ path, hash: old })
  }
  for (const d of deleted) {
    // A new path with exactly the deleted content, in the same batch: a rename (or a move).
    const i = entries.findIndex((e) => e.kind === 'change' && !before.get(e.path) && equalHash(e.hash, d.hash))
    const e = entries[i]
    if (e && e.kind === 'change') entries[i] = { ...e, kind: 'rename', from: d.path }
    else entries.push({ kind: 'delete', path: d.path })
  }
  return entries
}
