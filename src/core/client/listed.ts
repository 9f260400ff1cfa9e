/**
 * What the server listed into a mirror (issue 11): every wire path a manifest or an update ever
 * gave this mirror, until the local copy is deleted. `pull --prune` and a watcher only ever
 * delete paths in this record (and in the current selection), so a file the server never sent —
 * build output, notes, anything the user put there — is never deleted, whatever the patterns say.
 *
 * It lives in the config folder beside the mirror's hash cache (never inside `--out`), is replaced
 * atomically, and carries a checksum: a damaged record loads as empty and `damaged`, which means
 * "delete nothing" until a listing rebuilds it.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { writeFileAtomic } from '../fs/atomic-write.js'

/** "ASYNCLS" + version; then count u32, per path: length u16 + UTF-8; then SHA-256 of all before. */
const HEADER = Buffer.from('ASYNCLS\x01', 'latin1')
const SUM_BYTES = 32

export class ListedRecord {
  readonly file: string | null
  /** The file existed but could not be read or trusted: it started empty. */
  readonly damaged: boolean
  readonly #paths: Set<string>
  #dirty = false

  private constructor(file: string | null, paths: Set<string>, damaged: boolean) {
    this.file = file
    this.#paths = paths
    this.damaged = damaged
  }

  /** An empty record that is never saved (dry runs, tests). */
  static memory(): ListedRecord { return new ListedRecord(null, new Set(), false) }

  /** Loads `file`: missing gives an empty record; unreadable, truncated or altered gives an empty, damaged one. */
  static async load(file: string): Promise<ListedRecord> {
    let buf: Buffer
    try {
      buf = await readFile(file)
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT'
      return new ListedRecord(file, new Set(), !missing)
    }
    const paths = parse(buf)
    return new ListedRecord(file, paths ?? new Set(), paths === null)
  }

  get size(): number { return this.#paths.size }
  has(path: string): boolean { return this.#paths.has(path) }
  paths(): IterableIterator<string> { return this.#paths.values() }

  add(path: string): void {
    if (this.#paths.has(path)) return
    this.#paths.add(path)
    this.#dirty = true
  }

  delete(path: string): void {
    if (this.#paths.delete(path)) this.#dirty = true
  }

  /**
   * Writes the record atomically if it changed (fsync'ed: losing it would keep files that should
   * go, never delete one that should stay, but a torn one must never be read). Failures are
   * reported as ERR_WRITE.
   */
  async save(): Promise<void> {
    if (!this.file || !this.#dirty) return
    const sorted = [...this.#paths].sort()
    let size = HEADER.length + 4 + SUM_BYTES
    for (const p of sorted) size += 2 + Buffer.byteLength(p, 'utf8')
    const buf = Buffer.allocUnsafe(size)
    let at = HEADER.copy(buf, 0)
    at = buf.writeUInt32BE(sorted.length, at)
    for (const p of sorted) {
      const n = buf.write(p, at + 2, 'utf8')
      buf.writeUInt16BE(n, at)
      at += 2 + n
    }
    createHash('sha256').update(buf.subarray(0, at)).digest().copy(buf, at)
    this.#dirty = false
    try {
      await writeFileAtomic(this.file, buf, { mkdir: true })
    } catch (err) {
      this.#dirty = true
      throw err
    }
  }
}

/** The paths of a record file, or null if it is not a whole, unaltered record. */
function parse(buf: Buffer): Set<string> | null {
  const body = buf.length - SUM_BYTES
  if (body < HEADER.length + 4 || !buf.subarray(0, HEADER.length).equals(HEADER)) return null
  if (!createHash('sha256').update(buf.subarray(0, body)).digest().equals(buf.subarray(body))) return null
  const count = buf.readUInt32BE(HEADER.length)
  const paths = new Set<string>()
  let at = HEADER.length + 4
  for (let i = 0; i < count; i++) {
    if (at + 2 > body) return null
    const n = buf.readUInt16BE(at)
    if (at + 2 + n > body) return null
    paths.add(buf.toString('utf8', at + 2, at + 2 + n))
    at += 2 + n
  }
  return at === body ? paths : null
}
