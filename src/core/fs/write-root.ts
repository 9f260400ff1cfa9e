/**
 * Writes under a mirror's root that a local user cannot redirect (issue 12). Checking a folder
 * once and then creating and renaming files by path left a window: a user who can write to the
 * mirror's parent swapped `out/d` for a symlink to another folder while a pull ran, and every
 * file after the swap landed outside `--out`.
 *
 * Every folder on the way to a file is opened without following symlinks, from the root down
 * (a chain of O_DIRECTORY | O_NOFOLLOW opens), and kept open while it is used: a PinnedDir.
 * Node 20 has no openat(), so on Linux the files inside a pinned folder are named
 * `/proc/self/fd/<dirfd>/<name>`: the kernel resolves that through the open descriptor, not
 * through the path, so create, rename and unlink happen in the very folder that was checked,
 * whatever has since been swapped on the path. Before a rename makes a file visible the folder's
 * path is checked once more (lstat of the path against the pinned device + inode): a swap is then
 * reported as ERR_PATH_REFUSED for that file, and nothing is written anywhere else.
 *
 * Elsewhere (macOS, BSD, Windows, or a Linux without /proc) the same checks run by path: each
 * folder is lstat'ed segment by segment (a symlink is never walked through blindly) and checked
 * again right before each rename; the window left is the time between that check and the rename
 * syscall. See docs/security.md, "Local users".
 *
 * A symlinked folder that resolves inside the root is still followed, as before: the walk then
 * continues along its real path, again without following anything.
 */
import { type Dirent, closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, realpathSync, rmdirSync, statSync, unlinkSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { AssetSyncError, writeError } from '../../errors.js'
import { WRITE_DIR_HANDLES } from '../../limits.js'
import { isInside, printable, toWirePath } from './paths.js'
import { type FolderIdentity, folderIdentity, sameFolder } from './stamp.js'

/** A folder under the root, checked and (on Linux) held open; which folder it is (FolderIdentity). */
export interface PinnedDir extends FolderIdentity {
  /** Its wire path ('' for the root) as asked for. */
  readonly wire: string
  /** Its real path (no symlink on it): for messages and the path fallback. */
  readonly path: string
  /** Open descriptor (O_DIRECTORY | O_NOFOLLOW); -1 when working by path. */
  readonly fd: number
}

interface Entry extends PinnedDir {
  refs: number
  /** Out of the cache: the descriptor closes once the last user releases it. */
  dropped: boolean
  /** The descriptor is closed: never hand this entry out again. */
  closed: boolean
}

/** Called when a regular file stands where a folder must be: true lets the root remove it. */
export type ClearFile = (wire: string) => boolean | Promise<boolean>

export type WriteRootMode = 'fd' | 'path'

const { O_RDONLY = 0, O_DIRECTORY, O_NOFOLLOW } = constants
const PROC_FD = '/proc/self/fd'
const DIR_FLAGS = O_RDONLY | (O_DIRECTORY ?? 0) | (O_NOFOLLOW ?? 0)

let procFdWorks: boolean | null = null

/**
 * Whether `/proc/self/fd/<dirfd>/<name>` reaches into an open folder here (Linux with procfs):
 * checked once, by opening a folder and comparing what the /proc name leads to.
 */
export function procFdUsable(): boolean {
  if (procFdWorks !== null) return procFdWorks
  procFdWorks = false
  if (process.platform !== 'linux' || O_DIRECTORY === undefined || O_NOFOLLOW === undefined) return false
  let fd = -1
  try {
    fd = openSync('/', DIR_FLAGS)
    const a = fstatSync(fd)
    const b = statSync(`${PROC_FD}/${fd}/.`)
    procFdWorks = a.dev === b.dev && a.ino === b.ino
  } catch {
    procFdWorks = false
  } finally {
    if (fd >= 0) closeSync(fd)
  }
  return procFdWorks
}

const codeOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException)?.code

function refused(wire: string, why: string): AssetSyncError {
  return new AssetSyncError('ERR_PATH_REFUSED', `refused path "${printable(wire)}": ${why}`)
}

/**
 * The folders of one write session under a root (a sync, a watch batch). Open folders are
 * shared and cached (at most WRITE_DIR_HANDLES unused ones stay open); `close()` ends the session.
 * A descriptor is closed only once nobody holds it, so a /proc name never outlives its folder.
 */
export class WriteRoot {
  readonly root: string
  readonly mode: WriteRootMode
  readonly #dirs = new Map<string, Entry>()
  readonly #opening = new Map<string, Promise<Entry>>()
  /** Cached folders nobody holds, oldest first (Map order), closed beyond WRITE_DIR_HANDLES. */
  readonly #idle = new Map<string, Entry>()
  readonly #rootDir: Entry
  #closed = false

  private constructor(root: string, mode: WriteRootMode, rootDir: (w: WriteRoot) => Entry) {
    this.root = root
    this.mode = mode
    this.#rootDir = rootDir(this)
    this.#rootDir.refs = 1 // held by the session itself, until close()
  }

  /**
   * Opens a session on `root` (a real path: no symlink in it). `mode` forces the path fallback
   * (tests); by default descriptors are used where they work (procFdUsable). ERR_WRITE if `root`
   * is missing or not a folder.
   */
  static open(root: string, mode: WriteRootMode = procFdUsable() ? 'fd' : 'path'): WriteRoot {
    try {
      return new WriteRoot(root, mode, (w) => w.#pin('', root, mode === 'fd' ? openSync(root, DIR_FLAGS) : -1))
    } catch (err) {
      throw writeError(root, err)
    }
  }

  /** Which folder the root this session pinned is. */
  get rootId(): FolderIdentity {
    return { dev: this.#rootDir.dev, ino: this.#rootDir.ino, born: this.#rootDir.born }
  }

  #pin(wire: string, path: string, fd: number): Entry {
    try {
      const st = fd >= 0 ? fstatSync(fd) : lstatSync(path)
      if (!st.isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' })
      return { wire, path, ...folderIdentity(st), fd, refs: 0, dropped: false, closed: false }
    } catch (err) {
      if (fd >= 0) closeSync(fd)
      throw err
    }
  }

  /**
   * The name a syscall should use for `name` inside `d`: through the descriptor on Linux, by path
   * elsewhere. Valid while `d` is held (between `dir()` and `release()`).
   */
  at(d: PinnedDir, name: string): string {
    if ((d as Entry).closed) throw new AssetSyncError('ERR_INTERNAL', `folder ${printable(d.path)} used after it was closed`)
    return d.fd >= 0 ? `${PROC_FD}/${d.fd}/${name}` : join(d.path, name)
  }

  /**
   * The folder `wire` ('' for the root), opened without following symlinks from the root down,
   * and held until `release`. With `create`, missing folders are made, and a regular file in the
   * way is removed if `clear(itsWirePath)` allows it (the caller decided it may go), else
   * ERR_WRITE. A symlink on the way is followed only when it resolves inside the root, else
   * ERR_PATH_REFUSED. Without `create`, a missing folder throws the errno error ENOENT, and one that
   * is something else (a file) ENOTDIR.
   */
  async dir(wire: string, create: boolean, clear?: ClearFile): Promise<PinnedDir> {
    for (;;) {
      if (this.#closed) throw new AssetSyncError('ERR_INTERNAL', 'write session already closed')
      const e = wire === '' ? this.#rootDir : (this.#dirs.get(wire) ?? (await this.#open(wire, create, clear)))
      // Taken synchronously after the lookup: an idle entry cannot be closed in between.
      if (e.closed) continue
      e.refs++
      this.#idle.delete(e.wire)
      return e
    }
  }

  /** Gives back a folder from `dir()`. */
  release(d: PinnedDir): void {
    const e = d as Entry
    if (--e.refs > 0) return
    if (e === this.#rootDir || e.dropped || this.#closed) {
      if (e.dropped || this.#closed) this.#closeEntry(e)
      return
    }
    if (this.#dirs.get(e.wire) !== e) {
      this.#closeEntry(e)
      return
    }
    this.#idle.set(e.wire, e)
    while (this.#idle.size > WRITE_DIR_HANDLES) {
      const [oldWire, old] = this.#idle.entries().next().value as [string, Entry]
      this.#idle.delete(oldWire)
      this.#dirs.delete(oldWire)
      this.#closeEntry(old)
    }
  }

  #open(wire: string, create: boolean, clear?: ClearFile): Promise<Entry> {
    let p = this.#opening.get(wire)
    if (!p) {
      p = this.#openDir(wire, create, clear).finally(() => this.#opening.delete(wire))
      this.#opening.set(wire, p)
    }
    return p
  }

  async #openDir(wire: string, create: boolean, clear?: ClearFile): Promise<Entry> {
    const cut = wire.lastIndexOf('/')
    const parent = await this.dir(cut < 0 ? '' : wire.slice(0, cut), create, clear)
    try {
      const e = await this.#openChild(parent, wire, wire.slice(cut + 1), create, clear)
      // An entry reached through a symlink is cached under its real path only.
      if (e.wire === wire && !this.#closed) this.#dirs.set(wire, e)
      return e
    } finally {
      this.release(parent)
    }
  }

  async #openChild(parent: PinnedDir, wire: string, name: string, create: boolean, clear?: ClearFile): Promise<Entry> {
    const at = this.at(parent, name)
    const path = join(parent.path, name)
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        return this.#pin(wire, path, this.mode === 'fd' ? openSync(at, DIR_FLAGS) : -1)
      } catch (err) {
        const code = codeOf(err)
        if (code === 'ENOENT') {
          if (!create) throw err
          try {
            await mkdir(at)
          } catch (e) {
            if (codeOf(e) !== 'EEXIST') throw writeError(wire, e)
          }
          continue
        }
        if (code !== 'ENOTDIR' && code !== 'ELOOP') throw writeError(wire, err)
        // O_DIRECTORY | O_NOFOLLOW says ENOTDIR for a symlink as for a file: look at which it is.
        let st
        try {
          st = lstatSync(at)
        } catch (e) {
          if (codeOf(e) === 'ENOENT') continue // gone meanwhile: look again
          throw writeError(wire, e)
        }
        if (st.isDirectory()) continue // swapped back meanwhile
        if (st.isSymbolicLink()) return this.#throughLink(wire, path)
        if (!create) throw Object.assign(new Error(`${printable(wire)} is not a folder`), { code: 'ENOTDIR' })
        if (!st.isFile() || !clear || !(await clear(wire))) {
          throw new AssetSyncError('ERR_WRITE', `cannot write under ${printable(wire)}: it is ${st.isFile() ? 'a file' : 'not a folder'} here, and not one the server sent (kept)`)
        }
        try {
          unlinkSync(at)
        } catch (e) {
          if (codeOf(e) !== 'ENOENT') throw writeError(wire, e)
        }
      }
    }
    throw new AssetSyncError('ERR_WRITE', `cannot write under ${printable(wire)}: it keeps changing`)
  }

  /**
   * A symlinked folder: followed only if its real path is inside the root, and then reached by
   * walking that real path from the root without following anything.
   */
  async #throughLink(wire: string, path: string): Promise<Entry> {
    let real: string
    try {
      real = realpathSync(path)
    } catch (err) {
      throw refused(wire, `a folder on the way is a symlink that does not resolve (${codeOf(err) ?? String(err)})`)
    }
    if (!isInside(this.root, real)) throw refused(wire, `a parent folder resolves outside ${this.root}`)
    const realWire = toWirePath(relative(this.root, real))
    return realWire === '' ? this.#rootDir : (this.#dirs.get(realWire) ?? this.#open(realWire, false))
  }

  /**
   * Throws ERR_PATH_REFUSED unless `d`'s path still leads to the folder that was pinned (the same
   * FolderIdentity, no symlink at its end). Called right before a rename makes a file visible.
   */
  check(d: PinnedDir, what: string): void {
    let st
    try {
      st = lstatSync(d.path)
    } catch {
      st = null
    }
    if (!st || !st.isDirectory() || !sameFolder(d, folderIdentity(st))) {
      throw refused(what, `folder ${printable(d.path)} was replaced while writing (moved, or swapped for a symlink); nothing was written there`)
    }
  }

  /** Removes the empty folder `name` inside the held `parent`; false if not empty or not there. */
  removeEmptyDir(parent: PinnedDir, name: string, wire: string): boolean {
    try {
      rmdirSync(this.at(parent, name))
    } catch {
      return false
    }
    this.forget(wire)
    return true
  }

  /** Drops cached folders at or under `wire` (removed or replaced): later writes open them again. */
  forget(wire: string): void {
    const prefix = `${wire}/`
    for (const [w, e] of this.#dirs) {
      if (w !== wire && !w.startsWith(prefix)) continue
      this.#dirs.delete(w)
      this.#idle.delete(w)
      if (e.refs === 0) this.#closeEntry(e)
      else e.dropped = true
    }
  }

  /** The entries of a held folder, with their types. */
  list(d: PinnedDir): Dirent[] {
    return readdirSync(this.at(d, '.'), { withFileTypes: true })
  }

  #closeEntry(e: Entry): void {
    if (e.closed) return
    e.closed = true
    if (e.fd < 0) return
    try {
      closeSync(e.fd)
    } catch { /* already closed */ }
  }

  /** Ends the session: cached folders close now, folders still held close when released. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const e of this.#dirs.values()) {
      if (e.refs === 0) this.#closeEntry(e)
      else e.dropped = true
    }
    this.#dirs.clear()
    this.#idle.clear()
    this.release(this.#rootDir)
  }
}
