/**
 * An entry of the store's index (store.ts) and the helpers the store and its background index
 * (store-index.ts) share to make one from a file found on disk.
 */
import { relative, sep } from 'node:path'
import type { ManifestEntry } from '../../protocol/messages.js'
import { type FileStamp, wireMtime } from '../fs/stamp.js'
import type { FileStat } from '../fs/walk.js'

/** An indexed file: what clients are told, the stamp it was hashed at, and where it is. */
export interface Entry extends ManifestEntry, FileStamp {
  /** Where it is on disk, relative to the root (platform separators), when that is not the wire path's own name (an NFD name). */
  disk?: string
  /** The path is a symlink (to a file inside the root): it is read through the link. */
  link: boolean
}

export function entryOf(path: string, st: FileStat, hash: Buffer, link: boolean, disk: string | undefined): Entry {
  const e: Entry = {
    path, hash, size: st.size, mode: st.mode & 0o777, mtime: wireMtime(st.mtimeMs),
    mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, link,
  }
  if (disk !== undefined) e.disk = disk
  return e
}

/** The wire path as a relative disk path (platform separators). */
export const ownRel = (wire: string): string => wire.split('/').join(sep)

/** `full`'s path relative to root when it is not the wire path's own, else undefined. */
export function diskRel(root: string, wire: string, full: string): string | undefined {
  const rel = relative(root, full)
  return rel === ownRel(wire) ? undefined : rel
}

/** The byWire choice between two names on disk with one NFC form (see Store.scan). */
export function keepFirst(root: string, wire: string, a: { full: string }, b: { full: string }): boolean {
  const aOwn = diskRel(root, wire, a.full) === undefined
  const bOwn = diskRel(root, wire, b.full) === undefined
  return aOwn || (!bOwn && a.full < b.full)
}

