/**
 * One `fs.watch` per folder of the served tree (one inotify watch on Linux), kept in step as
 * folders appear, vanish and move. A folder's watch reports each create, write, delete and move of
 * an entry in it, by name, so files need no watch and no memory of their own; FolderWatcher
 * (watcher.ts) turns the names into settled batches.
 *
 * Why not chokidar, which the rest of the project would suggest: told to ignore files it does keep
 * one watch per folder, but it lstat()s every entry of a folder when it starts and again on every
 * event in that folder (readdirp with `alwaysStat`, not configurable), and lists a new folder
 * before it watches it. At 100,000 files that start cost +90 MB of JS heap (179 MB peak RSS for
 * the watcher alone) against +2 MB here, each save in a 500-file folder cost 500 lstat() calls, and
 * files created in a folder while chokidar listed it were never announced (docs/benchmarks.md).
 * Here a folder is watched first and listed second, so every entry is either listed or evented.
 *
 * Not followed: symlinks (to folders or files; an event for the link's own name is reported like
 * a file's), and folders the ignore globs match.
 *
 * Names are taken as bytes: one that is not UTF-8, or whose path breaks the wire rules, is told
 * to `onSkipped` instead of being dropped in silence (issue 11). An event about the root itself
 * (deleted, moved) goes to `onRootEvent`: its watch is then dead or follows the folder elsewhere.
 */
import { isUtf8 } from 'node:buffer'
import { type FSWatcher, watch } from 'node:fs'
import { lstat, opendir } from 'node:fs/promises'
import { basename, join, relative } from 'node:path'
import { type SkippedPath, bytePath, displayName, mayBeLossy, nonUtf8Names } from '../fs/disk-names.js'
import type { PathMatcher } from '../fs/ignore.js'
import { checkWirePath, toWirePath } from '../fs/paths.js'
import { type FolderIdentity, folderIdentity, sameFolder } from '../fs/stamp.js'

export interface FolderWatchHandlers {
  /**
   * The entry `wire` may have changed: created, written, deleted, moved, or (rarely) a folder.
   * `full` is where it is on disk (its name may be in another Unicode normalization than `wire`).
   */
  onPath(wire: string, full: string): void
  /** The folder `wire` is gone (deleted, moved away or replaced), with everything under it. */
  onFolderGone(wire: string): void
  onError(err: unknown): void
  /** An entry whose path cannot travel (not ignored): reported, never served. */
  onSkipped?(skipped: SkippedPath): void
  /** The root folder itself was deleted or moved (its watch is dead or follows it elsewhere). */
  onRootEvent?(): void
}

interface Watched {
  watcher: FSWatcher
  /** Which folder it is (stamp.ts sameFolder), to tell it from another one later put at the same path. */
  id: FolderIdentity
}

/** Errors that mean "not there (any more)": the events about it tell the rest. */
function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code
  return code === 'ENOENT' || code === 'ENOTDIR'
}

export class FolderWatches {
  readonly root: string
  readonly #ignored: PathMatcher
  readonly #on: FolderWatchHandlers
  /** Watched folders by wire path ('' is the root). */
  readonly #folders = new Map<string, Watched>()
  #closed = false

  constructor(root: string, ignored: PathMatcher, handlers: FolderWatchHandlers) {
    this.root = root
    this.#ignored = ignored
    this.#on = handlers
  }

  /** Folders watched now. */
  get size(): number { return this.#folders.size }

  /** Watches the root and every folder under it; resolves once all are watched. */
  async start(): Promise<void> {
    await this.#add('', this.root, false)
  }

  close(): void {
    this.#closed = true
    for (const f of this.#folders.values()) f.watcher.close()
    this.#folders.clear()
  }

  /** The wire path of `full`, or null if it cannot travel (then reported, unless ignored). */
  #wire(full: string): string | null {
    const rel = relative(this.root, full)
    if (rel === '') return ''
    const wire = toWirePath(rel)
    const why = checkWirePath(wire)
    if (why === null) return wire
    if (!this.#ignoredAny(wire)) this.#skip(full, displayName(wire), why)
    return null
  }

  /** Ignored as a file or as a folder (an entry we have not looked at): nothing to report then. */
  #ignoredAny(wire: string): boolean {
    return this.#ignored(wire) || this.#ignored(wire, true)
  }

  /** Reports `path` (shown as given) as skipped, if it is still there (a folder or not). */
  #skip(full: string | Buffer, path: string, reason: string): void {
    if (!this.#on.onSkipped) return
    void lstat(full).then((st) => {
      if (!this.#closed) this.#on.onSkipped?.({ path, reason, folder: st.isDirectory() })
    }, () => { /* gone already: nothing left to report */ })
  }

  /** Reports the names in `dir` that are not UTF-8 and that Node shows as `name`; true if there were any. */
  async #nonUtf8(dir: string, name: string): Promise<boolean> {
    if (!mayBeLossy(name)) return false
    const bad = await nonUtf8Names(dir, name)
    const parent = this.#quietWire(dir)
    for (const { raw, shown } of bad) this.#skip(bytePath(dir, raw), parent ? `${parent}/${shown}` : shown, 'name is not valid UTF-8')
    return bad.length > 0
  }

  #fail(err: unknown): void {
    if (!this.#closed && !isGone(err)) this.#on.onError(err)
  }

  /**
   * Watches the folder `full` and, recursively, the folders in it. With `announce` (a folder that
   * appeared after start), every file found is reported: it came with the folder, unseen.
   */
  async #add(wire: string, full: string, announce: boolean): Promise<void> {
    if (this.#closed || this.#folders.has(wire)) return
    let id: FolderIdentity
    try {
      const st = await lstat(full)
      if (!st.isDirectory()) return
      id = folderIdentity(st)
    } catch (err) {
      this.#fail(err)
      return
    }
    // Checked again after the await: two events may have raced to add the same folder.
    if (this.#closed || this.#folders.has(wire)) return
    let watcher: FSWatcher
    try {
      watcher = watch(full, { encoding: 'buffer' }, (event, name) => this.#onEvent(wire, full, watcher, event, name))
    } catch (err) {
      this.#fail(err) // e.g. ENOSPC: more folders than fs.inotify.max_user_watches
      return
    }
    watcher.on('error', (err: unknown) => {
      // Windows reports a deleted folder as EPERM; its parent's event removes it properly.
      if (this.#folders.get(wire)?.watcher === watcher) this.#folders.delete(wire)
      watcher.close()
      if (wire === '') this.#on.onRootEvent?.()
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') this.#fail(err)
    })
    this.#folders.set(wire, { watcher, id })
    // Watched first, listed second: an entry created after the listing raises an event.
    const folders: [string, string][] = []
    try {
      for await (const d of await opendir(full)) {
        if (this.#closed) return
        const childFull = join(full, d.name)
        if (!announce && !d.isDirectory()) continue // at start, the scan reports files
        if (announce && (await this.#nonUtf8(full, d.name))) continue
        if (d.isDirectory()) {
          // At start, folders that cannot travel were reported by the scan.
          const childWire = announce ? this.#wire(childFull) : this.#quietWire(childFull)
          if (childWire !== null && !this.#ignored(childWire, true)) folders.push([childWire, childFull])
        } else {
          const childWire = this.#wire(childFull)
          if (childWire !== null) this.#on.onPath(childWire, childFull)
        }
      }
    } catch (err) {
      this.#fail(err)
    }
    for (const [childWire, childFull] of folders) await this.#add(childWire, childFull, announce)
  }

  /** Stops watching `wire` and every folder under it. */
  #remove(wire: string): void {
    const prefix = `${wire}/`
    for (const [w, f] of this.#folders) {
      if (w !== wire && !w.startsWith(prefix)) continue
      f.watcher.close()
      this.#folders.delete(w)
    }
    this.#on.onFolderGone(wire)
  }

  /** `#wire` without reporting (folders listed at start: the scan reported them). */
  #quietWire(full: string): string | null {
    const wire = toWirePath(relative(this.root, full))
    return checkWirePath(wire) === null ? wire : null
  }

  #onEvent(wire: string, full: string, watcher: FSWatcher, event: string, raw: Buffer | string | null): void {
    if (this.#closed || this.#folders.get(wire)?.watcher !== watcher) return // closed or replaced
    if (raw === null || raw.length === 0) {
      this.#relist(full) // no entry name (allowed on some platforms): look at them all
      return
    }
    if (typeof raw !== 'string' && !isUtf8(raw)) {
      const shown = wire ? `${wire}/${displayName(raw)}` : displayName(raw)
      const lossy = toWirePath(relative(this.root, join(full, raw.toString('utf8'))))
      if (!this.#ignoredAny(lossy)) this.#skip(bytePath(full, raw), shown, 'name is not valid UTF-8')
      return
    }
    const name = raw.toString()
    const childFull = join(full, name)
    const childWire = name === basename(full) ? this.#quietWire(childFull) : this.#wire(childFull)
    if (childWire === null || childWire === '') return
    if (name === basename(full)) {
      // A folder's own deletion or move is reported with its own name: not an entry of it.
      void this.#isEntry(wire, full, childFull).then((entry) => {
        if (entry) {
          if (this.#wire(childFull) !== null) this.#onEntry(event, childWire, childFull)
        } else if (wire === '') this.#on.onRootEvent?.()
      }, (err: unknown) => this.#fail(err))
      return
    }
    this.#onEntry(event, childWire, childFull)
  }

  #onEntry(event: string, wire: string, full: string): void {
    this.#on.onPath(wire, full)
    // 'rename' is inotify's create, delete and move: the entry may be a folder that came or went.
    if (event === 'rename' || this.#folders.has(wire)) void this.#recheck(wire, full)
  }

  /** Whether `child` (named like its folder) is a real entry, not the folder's own event. */
  async #isEntry(wire: string, full: string, child: string): Promise<boolean> {
    try {
      await lstat(child)
      return true
    } catch { /* gone: deleted, or it never was */ }
    try {
      return sameFolder(this.#folders.get(wire)?.id, folderIdentity(await lstat(full)))
    } catch {
      return false
    }
  }

  /** Brings the watch of the entry `wire` in line with what is on disk now. */
  async #recheck(wire: string, full: string): Promise<void> {
    let id: FolderIdentity | null = null
    try {
      const st = await lstat(full)
      if (st.isDirectory()) id = folderIdentity(st)
    } catch (err) {
      if (!isGone(err)) this.#fail(err)
    }
    if (this.#closed) return
    const watched = this.#folders.get(wire)
    if (watched && !sameFolder(watched.id, id)) this.#remove(wire) // gone, no folder now, or another one
    if (id !== null && !this.#ignored(wire, true) && !this.#folders.has(wire)) await this.#add(wire, full, true)
  }

  /** Reports every file of a folder and rechecks its folders. */
  #relist(full: string): void {
    void (async () => {
      for await (const d of await opendir(full)) {
        if (await this.#nonUtf8(full, d.name)) continue
        const childFull = join(full, d.name)
        const childWire = this.#wire(childFull)
        if (childWire === null) continue
        if (d.isDirectory()) await this.#recheck(childWire, childFull)
        else this.#on.onPath(childWire, childFull)
      }
    })().catch((err: unknown) => this.#fail(err))
  }
}
