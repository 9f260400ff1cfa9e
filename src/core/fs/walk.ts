/**
 * Walks a folder for regular files, as wire paths. Ignored paths are skipped (folders are not
 * entered), symlinked folders are not followed (no cycles), and a symlinked file is included only
 * if it resolves inside the root (then with its target's stats).
 *
 * A wire path is NFC: a name stored in another normalization (NFD, from a Mac) is yielded under
 * its NFC wire path, with `full` its real place on disk. An entry whose path cannot travel (not
 * UTF-8, a backslash or control character, too deep or too long: checkWirePath) or a symlink out
 * of the root is not yielded but told to `onSkip`, so the caller can say so (issue 11).
 */
import type { Stats } from 'node:fs'
import { opendir, realpath, stat } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { type SkippedPath, displayName, mayBeLossy, nonUtf8Names } from './disk-names.js'
import type { PathMatcher } from './ignore.js'
import { checkWirePath, isInside, toWirePath } from './paths.js'
import type { FileStamp } from './stamp.js'

/** The fields of fs.Stats the index keeps: 100,000 whole Stats objects held during a scan cost ~70 MB. */
export interface FileStat extends FileStamp { mode: number }

export interface WalkedFile {
  /** Its wire path (NFC). */
  wire: string
  /** Its path on disk (the name as stored). */
  full: string
  st: FileStat
  /** A symlink (to a file inside the root); `st` is its target's. */
  link: boolean
}

export interface WalkOptions {
  /** Told about each entry that is not yielded because its path cannot travel (never an ignored one). */
  onSkip?: (skipped: SkippedPath) => void
}

/** An entry found by listing (no stat yet): a file, or a symlink that may lead to one. */
export interface ListedFile {
  /** Its wire path (NFC). */
  wire: string
  /** Its path on disk (the name as stored). */
  full: string
  /** A symlink: `statListed` checks that it leads to a file inside the root. */
  link: boolean
}

/**
 * Lists the files and symlinks under `root` by reading folders only (one `opendir` per folder, no
 * stat per file): the cheap first half of `walkFiles`, which the background index uses to know
 * every path before it looks at any (store.ts). The same entries are skipped and reported.
 */
export async function* listFiles(root: string, ignored: PathMatcher, opts: WalkOptions = {}): AsyncGenerator<ListedFile> {
  const stack = [root]
  while (stack.length > 0) {
    const dir = stack.pop() as string
    let handle
    try {
      handle = await opendir(dir)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') continue
      throw err
    }
    for await (const d of handle) {
      const full = join(dir, d.name)
      const wire = toWirePath(relative(root, full))
      const folder = d.isDirectory()
      if (ignored(wire, folder)) continue
      if (opts.onSkip && mayBeLossy(d.name)) {
        const bad = await nonUtf8Names(dir, d.name)
        if (bad.length > 0) {
          const parent = toWirePath(relative(root, dir))
          for (const { shown } of bad) opts.onSkip({ path: parent ? `${parent}/${shown}` : shown, reason: 'name is not valid UTF-8', folder })
          continue
        }
      }
      const why = checkWirePath(wire)
      if (why !== null) {
        opts.onSkip?.({ path: displayName(wire), reason: why, folder })
        continue
      }
      if (folder) {
        stack.push(full)
        continue
      }
      const link = d.isSymbolicLink()
      if (d.isFile() || link) yield { wire, full, link }
    }
  }
}

/**
 * The second half of `walkFiles` for one listed entry: its stats, or null when it is not a file
 * we can serve (vanished, a dangling link, a link to a folder, unreadable), or a symlink leading
 * out of the root (then told to `onSkip`).
 */
export async function statListed(root: string, f: ListedFile, opts: WalkOptions = {}): Promise<WalkedFile | null> {
  let st: Stats
  try {
    if (f.link && !isInside(root, await realpath(f.full))) {
      opts.onSkip?.({ path: displayName(f.wire), reason: 'symlink to a place outside the served folder', folder: false })
      return null
    }
    st = await stat(f.full)
  } catch {
    return null // vanished, dangling link or unreadable: not a file we can serve
  }
  if (!st.isFile()) return null
  return { wire: f.wire, full: f.full, st: { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, mode: st.mode }, link: f.link }
}

export async function* walkFiles(root: string, ignored: PathMatcher, opts: WalkOptions = {}): AsyncGenerator<WalkedFile> {
  for await (const f of listFiles(root, ignored, opts)) {
    const w = await statListed(root, f, opts)
    if (w) yield w
  }
}
