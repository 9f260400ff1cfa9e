/**
 * The only place a wire path becomes a filesystem path, for server and client alike: a malicious
 * client must not read outside the served root, and a malicious server must not write outside
 * `--out`. A wire path is relative, '/'-separated and NFC; see checkWirePath for every rule.
 */
import { realpathSync } from 'node:fs'
import { lstat, readdir, realpath } from 'node:fs/promises'
import { dirname, isAbsolute, join, relative, sep } from 'node:path'
import { AssetSyncError } from '../../errors.js'
import { MAX_PATH_BYTES, MAX_PATH_DEPTH } from '../../limits.js'

/** Returns why `p` is not an acceptable wire path, or null if it is. */
export function checkWirePath(p: string): string | null {
  if (typeof p !== 'string' || p.length === 0) return 'empty path'
  if (Buffer.byteLength(p, 'utf8') > MAX_PATH_BYTES) return `path longer than ${MAX_PATH_BYTES} bytes`
  if (/[\u0000-\u001f\u007f]/.test(p)) return 'control character or NUL in path'
  if (p.includes('\\')) return 'backslash in path'
  if (p.startsWith('/')) return 'absolute path'
  if (/^[A-Za-z]:/.test(p)) return 'drive letter in path'
  if (p !== p.normalize('NFC')) return 'path is not NFC-normalized'
  const segments = p.split('/')
  if (segments.length > MAX_PATH_DEPTH) return `path deeper than ${MAX_PATH_DEPTH} segments`
  for (const s of segments) {
    if (s === '') return 'empty path segment'
    if (s === '.' || s === '..') return `"${s}" segment in path`
  }
  return null
}

/** Throws ERR_PATH_REFUSED unless `p` is an acceptable wire path. */
export function assertWirePath(p: string): void {
  const why = checkWirePath(p)
  if (why !== null) throw new AssetSyncError('ERR_PATH_REFUSED', `refused path "${printable(p)}": ${why}`)
}

/** A path safe to put in a one-line message (control characters escaped, length capped). */
export function printable(p: string): string {
  const s = String(p).replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
  return s.length > 200 ? `${s.slice(0, 200)}…` : s
}

/** True if `child` (absolute, resolved) is `root` or inside it. */
export function isInside(root: string, child: string): boolean {
  const rel = relative(root, child)
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel))
}

/** Filesystem-relative path (platform separators) → wire path ('/', NFC). */
export function toWirePath(rel: string): string {
  return rel.split(sep).join('/').normalize('NFC')
}

function joinWire(root: string, wire: string): string {
  return join(root, ...wire.split('/'))
}

/**
 * The file-system path `wire` names under `root`: `disk` (a path relative to the root, in
 * platform separators, that the server found on disk for this wire path: see findOnDisk) when
 * given, else the wire path's own segments. Checks the wire rules; resolves no symlinks.
 */
export function diskPath(root: string, wire: string, disk?: string): string {
  assertWirePath(wire)
  return disk === undefined ? joinWire(root, wire) : join(root, disk)
}

const isAscii = (s: string): boolean => !/[^\u0000-\u007f]/.test(s)

/**
 * Where the wire path `wire` is on disk under `root`, relative to it (platform separators), or null
 * if nowhere. A wire path is NFC; a name on disk may be in another normalization (NFD: files
 * copied from a Mac). Each segment is taken as is when that name exists, else the one entry of its
 * folder whose NFC form it is. Refuses (ERR_PATH_REFUSED) a segment that two other names on disk
 * both normalize to: which one is meant cannot be told.
 */
export async function findOnDisk(root: string, wire: string): Promise<string | null> {
  assertWirePath(wire)
  const parts: string[] = []
  for (const seg of wire.split('/')) {
    const dir = join(root, ...parts)
    try {
      await lstat(join(dir, seg))
      parts.push(seg)
      continue
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENAMETOOLONG') return null
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        throw new AssetSyncError('ERR_PATH_REFUSED', `cannot resolve ${printable(wire)}: ${code ?? err}`, { cause: err })
      }
    }
    if (isAscii(seg)) return null // ASCII has one normalization only
    let names: string[]
    try {
      names = await readdir(dir)
    } catch {
      return null
    }
    const found = names.filter((n) => n !== seg && n.normalize('NFC') === seg)
    if (found.length > 1) {
      throw new AssetSyncError('ERR_PATH_REFUSED', `refused path "${printable(wire)}": ${found.length} names on disk normalize to "${printable(seg)}"`)
    }
    const name = found[0]
    if (name === undefined) return null
    parts.push(name)
  }
  return parts.join(sep)
}

/**
 * For reading (server): the real path of `wire` under `root` (itself a realpath). Refuses a path
 * that breaks the wire rules or resolves, through symlinks, outside the root; ERR_NOT_FOUND if
 * it does not exist. `disk`: where it is on disk, when that is not its own name (see diskPath).
 */
export async function resolveForRead(root: string, wire: string, disk?: string): Promise<string> {
  const path = diskPath(root, wire, disk)
  let real: string
  try {
    real = await realpath(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    // ENAMETOOLONG: a name no file here can have (the wire allows 1024 bytes, NAME_MAX is 255).
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG') throw new AssetSyncError('ERR_NOT_FOUND', `not found: ${printable(wire)}`)
    throw new AssetSyncError('ERR_PATH_REFUSED', `cannot resolve ${printable(wire)}: ${code ?? err}`, { cause: err })
  }
  if (!isInside(root, real)) throw new AssetSyncError('ERR_PATH_REFUSED', `refused path "${printable(wire)}": resolves outside the root`)
  return real
}

/**
 * resolveForRead, synchronously and without the reasons: the real path of `wire` under `root` when
 * it exists and resolves inside the root, else null (the caller then takes the asynchronous path,
 * which says why). For the small-file fast path (FolderSource.readNow): one realpath syscall
 * chain, no thread-pool round trip.
 */
export function resolveForReadNow(root: string, wire: string, disk?: string): string | null {
  if (checkWirePath(wire) !== null) return null
  let real: string
  try {
    real = realpathSync.native(disk === undefined ? joinWire(root, wire) : join(root, disk))
  } catch {
    return null
  }
  return isInside(root, real) ? real : null
}

/**
 * For writing (client): the path `wire` names under `root` (a realpath). The deepest part of it
 * that exists is resolved through symlinks and must stay inside the root, so neither `..` nor a
 * planted symlinked folder can steer a write outside. Call again after creating parent folders.
 *
 * `checked` (optional) remembers parent folders that exist and resolved inside the root: a file
 * whose parent is in it skips the realpath (one per folder instead of one per file). Pass a set
 * only for a span in which nothing but this client changes the folders (one sync: the client
 * only creates folders and regular files, so a server cannot turn a checked folder into a
 * symlink); the wire rules are checked on every call.
 */
export async function resolveForWrite(root: string, wire: string, checked?: Set<string>): Promise<string> {
  assertWirePath(wire)
  const target = joinWire(root, wire)
  const parent = dirname(target)
  if (checked?.has(parent)) return target
  const segments = wire.split('/')
  // Walk up from the parent folder to the first ancestor that exists.
  for (let n = segments.length - 1; n >= 0; n--) {
    const dir = joinWire(root, segments.slice(0, n).join('/') || '.')
    let real: string
    try {
      real = await realpath(dir)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') continue
      if (code === 'ENOTDIR') throw new AssetSyncError('ERR_WRITE', `cannot write ${printable(wire)}: a parent is a file`)
      throw err
    }
    if (!isInside(root, real)) {
      throw new AssetSyncError('ERR_PATH_REFUSED', `refused path "${printable(wire)}": a parent folder resolves outside ${root}`)
    }
    if (n === segments.length - 1) checked?.add(parent)
    return target
  }
  return target
}
