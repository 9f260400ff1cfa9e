/**
 * Names on disk that cannot travel, made visible (issue 11: a file is never silently missing).
 * Node decodes a file name that is not valid UTF-8 with U+FFFD in place of the bad bytes, so the
 * name it hands us opens nothing; here such names are found again as bytes and shown as text
 * (`bad\xff.txt`), for the server's "skipped" report.
 */
import { isUtf8 } from 'node:buffer'
import { readdir } from 'node:fs/promises'
import { sep } from 'node:path'

/** A path (or name) that will not be served, and why: what `serve` reports, once per path. */
export interface SkippedPath {
  /** The path relative to the served folder, '/'-separated, made printable (see displayName). */
  path: string
  reason: string
  /** A folder: nothing under it is served either. */
  folder: boolean
}

/** Lead byte → length of the UTF-8 sequence it starts (0: not a lead byte). */
function seqLength(b: number): number {
  if (b < 0x80) return 1
  if (b >= 0xc2 && b <= 0xdf) return 2
  if (b >= 0xe0 && b <= 0xef) return 3
  if (b >= 0xf0 && b <= 0xf4) return 4
  return 0
}

/**
 * A file name's bytes as one printable line: valid UTF-8 as is, any other byte and every control
 * character as `\xNN`.
 */
export function displayName(name: Uint8Array | string): string {
  if (typeof name === 'string') return escapeControls(name)
  const buf = Buffer.from(name.buffer, name.byteOffset, name.byteLength)
  let out = ''
  for (let i = 0; i < buf.length;) {
    const n = seqLength(buf[i] as number)
    if (n > 0 && i + n <= buf.length && isUtf8(buf.subarray(i, i + n))) {
      out += escapeControls(buf.toString('utf8', i, i + n))
      i += n
    } else {
      out += `\\x${(buf[i] as number).toString(16).padStart(2, '0')}`
      i++
    }
  }
  return out
}

function escapeControls(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/** Whether a name Node gave as text may stand for bytes that are not UTF-8 (it holds U+FFFD). */
export function mayBeLossy(name: string): boolean {
  return name.includes('\uFFFD')
}

/**
 * The names in `dir` that are not valid UTF-8 and that Node shows as `lossy`: each as bytes and
 * made printable. Empty when `lossy` is the real name (a genuine U+FFFD) or the folder cannot be read.
 */
export async function nonUtf8Names(dir: string, lossy: string): Promise<{ raw: Buffer; shown: string }[]> {
  let names: Buffer[]
  try {
    names = await readdir(dir, { encoding: 'buffer' })
  } catch {
    return []
  }
  return names.filter((b) => !isUtf8(b) && b.toString('utf8') === lossy).map((raw) => ({ raw, shown: displayName(raw) }))
}

/** `dir`/`name` as a path in bytes (for a name that is not UTF-8, which no string can hold). */
export function bytePath(dir: string, name: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(dir.endsWith(sep) ? dir : dir + sep), name])
}
