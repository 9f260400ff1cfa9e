/**
 * The mirror's file operations below Mirror (mirror.ts), on folders held by a WriteRoot
 * (src/core/fs/write-root.ts): nothing here follows a symlink or names a file by a path that a
 * swap could redirect. What may be deleted is the caller's decision (the `mayDelete` callbacks:
 * only files the server listed, in the selection — issue 11).
 */
import { capStaging, isStagingName } from '../delta/staging.js'
import type { Stats } from 'node:fs'
import { chmodSync, closeSync, constants, fchmodSync, lstatSync, openSync, readdirSync, unlinkSync } from 'node:fs'
import { setImmediate as yieldTurn } from 'node:timers/promises'
import { join } from 'node:path'
import { AssetSyncError, writeError } from '../../errors.js'
import { TEMP_SWEEP_SLICE } from '../../limits.js'
import { isTempName } from '../fs/atomic-write.js'
import { printable } from '../fs/paths.js'
import type { PinnedDir, WriteRoot } from '../fs/write-root.js'

/**
 * What a local file is, or null if absent / not a regular file. Synchronous on purpose: a no-op
 * pull of 20,000 files spent a third of its time in async lstat round trips through the thread
 * pool (docs/benchmarks.md); one lstat syscall is microseconds.
 */
export function localFile(path: string): Stats | null {
  try {
    const st = lstatSync(path, { throwIfNoEntry: false })
    return st?.isFile() ? st : null
  } catch {
    return null
  }
}

export const codeOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException)?.code

/** The folder part and the name of a wire path (folder '' for the root). */
export function split(wire: string): [string, string] {
  const cut = wire.lastIndexOf('/')
  return cut < 0 ? ['', wire] : [wire.slice(0, cut), wire.slice(cut + 1)]
}

/** A rename failed because a folder stands at the final path. */
export const folderInTheWay = (err: unknown): boolean => ['EISDIR', 'ENOTEMPTY', 'EEXIST', 'EPERM'].includes(codeOf(err) ?? '')

const { O_RDONLY = 0, O_NOFOLLOW = 0, O_NONBLOCK = 0 } = constants

/**
 * `fn` on the folder of `wire`, held (not created) for the call: `missing` if the folder is not
 * there, or is not a folder.
 */
export async function inFolderOf<T>(w: WriteRoot, wire: string, missing: T, fn: (dir: PinnedDir, name: string) => T | Promise<T>): Promise<T> {
  const [dirWire, name] = split(wire)
  let dir: PinnedDir
  try {
    dir = await w.dir(dirWire, false)
  } catch (err) {
    if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ENOTDIR') return missing
    throw err
  }
  try {
    return await fn(dir, name)
  } finally {
    w.release(dir)
  }
}

/**
 * Sets the permission bits of the regular file `wire`: on the open file (O_NOFOLLOW: never through
 * a symlink), or by name if we cannot open it (mode 000). Its stats after, or null if it is not
 * there (or not a regular file).
 */
export function chmodFile(w: WriteRoot, wire: string, mode: number): Promise<Stats | null> {
  return inFolderOf(w, wire, null, (dir, name) => {
    const at = w.at(dir, name)
    let fd = -1
    try {
      fd = openSync(at, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
      if (!localFile(at)) return null
      fchmodSync(fd, mode & 0o777)
    } catch (err) {
      if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ELOOP') return null
      if (codeOf(err) !== 'EACCES' || !localFile(at)) throw writeError(wire, err)
      chmodSync(at, mode & 0o777)
    } finally {
      if (fd >= 0) closeSync(fd)
    }
    return localFile(at)
  })
}

/** Deletes the regular file `wire` and the folders it leaves empty; false if there is none. */
export async function removeFile(w: WriteRoot, wire: string): Promise<boolean> {
  const removed = await inFolderOf(w, wire, false, (dir, name) => {
    const at = w.at(dir, name)
    if (!localFile(at)) return false
    try {
      unlinkSync(at)
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') throw writeError(wire, err)
    }
    return true
  })
  if (removed) await removeEmptyParents(w, split(wire)[0])
  return removed
}

/**
 * Removes temp files a killed run left under `root` (by path: their names are ours, and a swapped
 * folder could at worst make it remove a file of that name elsewhere; see docs/security.md).
 * Every pull and watch start walks the whole mirror for them, so the walk is synchronous (a
 * readdir is microseconds; through the thread pool, one after another, 200 folders took ~35 ms
 * of a 20,000-file no-op pull, mostly waiting), yielding to the event loop every
 * TEMP_SWEEP_SLICE folders so a connection's packets are not kept waiting on a huge tree.
 */
export async function removeTempFiles(root: string): Promise<void> {
  const stack = [root]
  // Resume staging files (delta/staging.ts) are temp names too, but are kept within their caps.
  const staged: string[] = []
  for (let seen = 0; stack.length > 0; seen++) {
    if (seen > 0 && seen % TEMP_SWEEP_SLICE === 0) await yieldTurn()
    const dir = stack.pop() as string
    let names
    try {
      names = readdirSync(dir, { withFileTypes: true })
    } catch {
      continue
    }
    for (const d of names) {
      if (d.isDirectory()) stack.push(join(dir, d.name))
      else if (d.isFile() && isTempName(d.name)) {
        if (isStagingName(d.name)) staged.push(join(dir, d.name))
        else {
          try {
            unlinkSync(join(dir, d.name))
          } catch { /* gone already, or not ours to remove */ }
        }
      }
    }
  }
  if (staged.length > 0) await capStaging(staged)
}

/**
 * A folder stands where a file must go (it was a folder on the server, now it is a file): removes
 * it with everything in it, but only if every file inside may be deleted (or is one of our temp
 * files) and nothing else is there; else ERR_WRITE naming what is kept, and nothing is removed.
 * `removed` hears each deleted file (not temp files).
 */
export async function clearFolder(w: WriteRoot, wire: string, mayDelete: (wire: string) => boolean, removed: (wire: string) => void): Promise<void> {
  const files: string[] = []
  const folders: string[] = []
  const walk = async (dirWire: string): Promise<void> => {
    const d = await w.dir(dirWire, false)
    try {
      folders.push(dirWire)
      for (const ent of w.list(d)) {
        const child = `${dirWire}/${ent.name}`
        if (ent.isDirectory()) await walk(child)
        else if (ent.isFile() && (isTempName(ent.name) || mayDelete(child))) files.push(child)
        else {
          throw new AssetSyncError('ERR_WRITE',
            `cannot replace the folder ${printable(wire)} with the server's file: ${printable(child)} is not a file the server sent (kept)`)
        }
      }
    } finally {
      w.release(d)
    }
  }
  await walk(wire)
  for (const f of files) {
    const [dirWire, name] = split(f)
    const d = await w.dir(dirWire, false)
    try {
      unlinkSync(w.at(d, name))
    } finally {
      w.release(d)
    }
    if (!isTempName(name)) removed(f)
  }
  for (const f of folders.reverse()) {
    const [dirWire, name] = split(f)
    const d = await w.dir(dirWire, false)
    try {
      w.removeEmptyDir(d, name, f)
    } finally {
      w.release(d)
    }
  }
}

/** Removes the folders from `dirWire` up that are left empty, up to (not including) the root. */
export async function removeEmptyParents(w: WriteRoot, dirWire: string): Promise<void> {
  for (let dw = dirWire; dw !== '';) {
    const [parentWire, name] = split(dw)
    let parent: PinnedDir
    try {
      parent = await w.dir(parentWire, false)
    } catch {
      return
    }
    try {
      if (!w.removeEmptyDir(parent, name, dw)) return
    } finally {
      w.release(parent)
    }
    dw = parentWire
  }
}
