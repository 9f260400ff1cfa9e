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
 * True if `a` and `b` describe the same file content: equal size, mtime, ctime and inode.
 * Absent (null/undefined) stands for "no file": two absents are the same, an absent and a
 * present file are not.
 */
export function sameStamp(a: FileStamp | null | undefined, b: FileStamp | null | undefined): boolean {
  if (!a || !b) return !a && !b
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino
}
