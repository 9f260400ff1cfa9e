/**
 * A file's stamp: what tells us, without reading it, that a file is still the one we hashed.
 * The one comparison of stamps (server index, read path, hash cache, watcher) lives here, so
 * all of them agree on what "unchanged" means.
 *
 * ctime is in it (issue 11): an edit that keeps size and mtime (a tool restoring the mtime, a
 * write within the file system's timestamp granularity) still moves ctime, which user space
 * cannot set. Inode catches an atomic replace (temp file renamed over the path).
 */

/** The fields of an fs.Stats that identify a file's content without reading it. */
export interface FileStamp {
  size: number
  mtimeMs: number
  ctimeMs: number
  ino: number
}

/** Just the stamp of `st` (an fs.Stats or anything with these fields): keeps no more in memory. */
export function stampOf(st: FileStamp): FileStamp {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino }
}

/**
 * Which folder a path leads to: device, inode number and birth time. The inode number is not
 * enough: ext4 gives a folder deleted and made again at once the same number (seen here every
 * time), so a new folder was taken for the old one (a server folder left unwatched, a mirror
 * folder replaced under a write not noticed). Used for every folder comparison: the served root
 * (folder-source.ts), its watched folders, the mirror's root and pinned folders. Where the file system keeps no birth time (0), the
 * device and number decide alone.
 */
export interface FolderIdentity { dev: number; ino: number; born: number }

/** The identity of the folder `st` describes (an fs.Stats, or anything with these fields). */
export function folderIdentity(st: { dev: number; ino: number; birthtimeMs: number }): FolderIdentity {
  return { dev: st.dev, ino: st.ino, born: st.birthtimeMs }
}

/** True if both are known and name the same folder (FolderIdentity). */
export function sameFolder(a: FolderIdentity | null | undefined, b: FolderIdentity | null | undefined): boolean {
  return !!a && !!b && a.dev === b.dev && a.ino === b.ino && a.born === b.born
}

/**
 * True if `a` and `b` describe the same file content: equal size, mtime, ctime and inode.
 * Absent (null/undefined) stands for "no file": two absents are the same, an absent and a
 * present file are not.
 */
export function sameStamp(a: FileStamp | null | undefined, b: FileStamp | null | undefined): boolean {
  if (!a || !b) return !a && !b
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino
}

/**
 * The mtime a file is announced with (FileMeta.mtime: whole milliseconds since the epoch, a u64 on
 * the wire). A file dated before 1970 (`touch -d @-1`) has a negative mtime, which a u64 cannot
 * carry and no protocol-2 peer could decode in any other encoding: it is announced as 0
 * (1970-01-01T00:00:00Z), and its content is served as any other file's (issue 11). The mtime is
 * information for the mirror, never part of a comparison: hashes decide what is current.
 */
export function wireMtime(mtimeMs: number): number {
  if (!(mtimeMs > 0)) return 0 // negative, or NaN
  return Math.min(Math.floor(mtimeMs), Number.MAX_SAFE_INTEGER)
}

/**
 * `sameStamp` against a stamp stored as four big-endian float64 at `at` in `buf` (size, mtimeMs,
 * ctimeMs, ino: the hash cache's record layout), read in place: no object per record.
 */
export function sameStampAt(buf: Buffer, at: number, st: FileStamp): boolean {
  return buf.readDoubleBE(at) === st.size && buf.readDoubleBE(at + 8) === st.mtimeMs &&
    buf.readDoubleBE(at + 16) === st.ctimeMs && buf.readDoubleBE(at + 24) === st.ino
}
