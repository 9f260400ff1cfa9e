/**
 * The real file system under Lua's `io` and `os` (wasmoon's own io sees only emscripten's
 * in-memory MEMFS, and its os.execute crashes the process). Scripts read their own data files,
 * so `io.open` & co. work as in the stock `lua` interpreter, relative to the host's `cwd`.
 *
 * Synchronous node:fs calls, because Lua's io is synchronous; reads are buffered here
 * (LUA_READ_BUFFER_BYTES) so `file:lines()` costs one bridge call per line, not per byte.
 * Failures come back as stock Lua does: `nil, "<name>: <strerror>", errno`.
 */
import { spawnSync } from 'node:child_process'
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, renameSync, rmdirSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import { constants, tmpdir } from 'node:os'
import { isAbsolute, join, sep } from 'node:path'
import { LUA_MAX_NUMERAL_CHARS, LUA_READ_BUFFER_BYTES } from '../limits.js'

/** A failed call, as Lua's luaL_fileresult reports it. */
export class FsFailure {
  constructor(readonly message: string, readonly errno: number) {}
}

/** `ENOENT: no such file or directory, open 'x'` -> `No such file or directory` (C's strerror). */
export function strerror(err: unknown): { text: string; errno: number } {
  const e = err as NodeJS.ErrnoException
  const m = /^[A-Z0-9_]+: ([^,]+)/.exec(e?.message ?? '')
  const raw = m?.[1] ?? e?.code ?? String(err)
  const errno = (e?.code && (constants.errno as Record<string, number>)[e.code]) || 0
  return { text: raw.charAt(0).toUpperCase() + raw.slice(1), errno }
}

function fail(err: unknown, name?: string): FsFailure {
  const { text, errno } = strerror(err)
  return new FsFailure(name === undefined ? text : `${name}: ${text}`, errno)
}

/** Where the host's standard streams go. */
export interface LuaStreams {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  /** File descriptor `io.stdin` reads (default 0). */
  stdinFd?: number
}

interface OpenFile {
  fd: number
  /** File offset of the byte after the buffered ones (unused for stdin, which cannot seek). */
  pos: number
  append: boolean
  buf: Buffer
  /** Unread buffered bytes are buf[start, end). */
  start: number
  end: number
  stdin: boolean
}

/** Handle numbers for the standard streams; files get 3 and up. */
export const STDIN = 0
export const STDOUT = 1
export const STDERR = 2

export class LuaFiles {
  readonly #cwd: string
  readonly #streams: LuaStreams
  readonly #files = new Map<number, OpenFile>()
  #next = 3

  constructor(cwd: string, streams: LuaStreams) {
    this.#cwd = cwd
    this.#streams = streams
    this.#files.set(STDIN, this.#wrap(streams.stdinFd ?? 0, false, true))
  }

  #wrap(fd: number, append: boolean, stdin = false): OpenFile {
    return { fd, pos: 0, append, buf: Buffer.alloc(0), start: 0, end: 0, stdin }
  }

  /**
   * A Lua path against the host's current folder. Joined, not normalised: the kernel resolves
   * "a/../b" as C's fopen would (ENOENT when "a" does not exist).
   */
  resolve(path: string): string {
    return isAbsolute(path) ? path : `${this.#cwd}${sep}${path}`
  }

  /** io.open: returns a handle number. `mode` was checked by the Lua side (r, w, a, with + and b). */
  open(path: string, mode: string): number | FsFailure {
    const flags = mode.replace(/b/g, '')
    try {
      const fd = openSync(this.resolve(path), flags, 0o666)
      const h = this.#next++
      this.#files.set(h, this.#wrap(fd, flags.startsWith('a')))
      return h
    } catch (err) {
      return fail(err, path)
    }
  }

  #file(h: number): OpenFile {
    const f = this.#files.get(h)
    if (!f) throw new Error('attempt to use a closed file')
    return f
  }

  /** Refills the buffer; false at end of file. */
  #fill(f: OpenFile): boolean {
    if (f.buf.length === 0) f.buf = Buffer.allocUnsafe(LUA_READ_BUFFER_BYTES)
    const n = readSync(f.fd, f.buf, 0, f.buf.length, f.stdin ? null : f.pos)
    f.pos += n
    f.start = 0
    f.end = n
    return n > 0
  }

  /**
   * One read format: 'l' / 'L' (a line without / with its newline), 'a' (the rest), 'n' (a
   * numeral's text: Lua converts it), or a byte count. null: end of file (the read fails).
   */
  read(h: number, what: string | number): Buffer | FsFailure | null {
    if (h === STDOUT || h === STDERR) return new FsFailure('Bad file descriptor', constants.errno.EBADF)
    const f = this.#file(h)
    try {
      if (typeof what === 'number') return this.#readCount(f, what)
      if (what === 'a') return this.#readAll(f)
      if (what === 'n') return this.#readNumeral(f)
      return this.#readLine(f, what === 'L')
    } catch (err) {
      return fail(err)
    }
  }

  #readCount(f: OpenFile, n: number): Buffer | null {
    if (f.start === f.end && !this.#fill(f)) return null
    if (n === 0) return Buffer.alloc(0)
    const parts: Buffer[] = []
    let left = n
    while (left > 0 && (f.start < f.end || this.#fill(f))) {
      const take = Math.min(left, f.end - f.start)
      parts.push(Buffer.from(f.buf.subarray(f.start, f.start + take)))
      f.start += take
      left -= take
    }
    return Buffer.concat(parts)
  }

  #readAll(f: OpenFile): Buffer {
    const parts: Buffer[] = []
    while (f.start < f.end || this.#fill(f)) {
      parts.push(Buffer.from(f.buf.subarray(f.start, f.end)))
      f.start = f.end
    }
    return Buffer.concat(parts)
  }

  #readLine(f: OpenFile, keep: boolean): Buffer | null {
    const parts: Buffer[] = []
    let any = false
    while (f.start < f.end || this.#fill(f)) {
      any = true
      const nl = f.buf.indexOf(10, f.start)
      if (nl >= 0 && nl < f.end) {
        parts.push(Buffer.from(f.buf.subarray(f.start, keep ? nl + 1 : nl)))
        f.start = nl + 1
        return Buffer.concat(parts)
      }
      parts.push(Buffer.from(f.buf.subarray(f.start, f.end)))
      f.start = f.end
    }
    return any ? Buffer.concat(parts) : null
  }

  #peek(f: OpenFile): number {
    if (f.start === f.end && !this.#fill(f)) return -1
    return f.buf[f.start] ?? -1
  }

  /** Lua's l_getn: the longest prefix that can start a numeral (the look-ahead byte stays unread). */
  #readNumeral(f: OpenFile): Buffer | null {
    const out: number[] = []
    let c = this.#peek(f)
    while (c === 32 || (c >= 9 && c <= 13)) { f.start++; c = this.#peek(f) }
    const test2 = (set: string): boolean => {
      const ch = this.#peek(f)
      if (ch >= 0 && set.includes(String.fromCharCode(ch)) && out.length < LUA_MAX_NUMERAL_CHARS) {
        out.push(ch)
        f.start++
        return true
      }
      return false
    }
    const digits = (hex: boolean): number => {
      let n = 0
      for (;;) {
        const ch = this.#peek(f)
        const ok = (ch >= 48 && ch <= 57) || (hex && ((ch >= 97 && ch <= 102) || (ch >= 65 && ch <= 70)))
        if (!ok || out.length >= LUA_MAX_NUMERAL_CHARS) return n
        out.push(ch)
        f.start++
        n++
      }
    }
    let count = 0
    let hex = false
    test2('-+')
    if (test2('0')) {
      if (test2('xX')) hex = true
      else count = 1
    }
    count += digits(hex)
    if (test2('.')) count += digits(hex)
    if (count > 0 && test2(hex ? 'pP' : 'eE')) {
      test2('-+')
      digits(false)
    }
    return out.length === 0 && this.#peek(f) < 0 ? null : Buffer.from(out)
  }

  /** Drops read-ahead, so the file offset is where the script thinks it is. */
  #unread(f: OpenFile): void {
    if (!f.stdin) f.pos -= f.end - f.start
    f.start = f.end = 0
  }

  write(h: number, data: Buffer): true | FsFailure {
    if (h === STDOUT || h === STDERR) {
      ;(h === STDOUT ? this.#streams.stdout : this.#streams.stderr).write(data)
      return true
    }
    const f = this.#file(h)
    try {
      this.#unread(f)
      if (f.append) {
        writeSync(f.fd, data)
        f.pos = fstatSync(f.fd).size
      } else {
        let off = 0
        while (off < data.length) off += writeSync(f.fd, data, off, data.length - off, f.pos + off)
        f.pos += data.length
      }
      return true
    } catch (err) {
      return fail(err)
    }
  }

  seek(h: number, whence: string, offset: number): number | FsFailure {
    if (h <= STDERR) return new FsFailure('Illegal seek', constants.errno.ESPIPE)
    const f = this.#file(h)
    try {
      this.#unread(f)
      const base = whence === 'set' ? 0 : whence === 'cur' ? f.pos : fstatSync(f.fd).size
      const to = base + offset
      if (to < 0) return new FsFailure('Invalid argument', constants.errno.EINVAL)
      f.pos = to
      return to
    } catch (err) {
      return fail(err)
    }
  }

  close(h: number): true | FsFailure {
    if (h <= STDERR) return new FsFailure('cannot close standard file', 0)
    const f = this.#file(h)
    this.#files.delete(h)
    try {
      closeSync(f.fd)
      return true
    } catch (err) {
      return fail(err)
    }
  }

  /** Closes every file the script left open (the run ended). */
  closeAll(): void {
    for (const [h, f] of this.#files) {
      if (h > STDERR) try { closeSync(f.fd) } catch { /* already gone */ }
    }
    this.#files.clear()
  }

  /** loadfile / dofile / require: the whole file. */
  readFile(path: string): Buffer | FsFailure {
    try {
      return readFileSync(this.resolve(path))
    } catch (err) {
      return fail(err)
    }
  }

  /** os.remove: a file or an empty folder, as C's remove(). */
  remove(path: string): true | FsFailure {
    const abs = this.resolve(path)
    try {
      unlinkSync(abs)
      return true
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EISDIR' || code === 'EPERM') {
        try { rmdirSync(abs); return true } catch (err2) { return fail(err2, path) }
      }
      return fail(err, path)
    }
  }

  rename(from: string, to: string): true | FsFailure {
    try {
      renameSync(this.resolve(from), this.resolve(to))
      return true
    } catch (err) {
      return fail(err) // stock os.rename names no file in its message
    }
  }

  /** os.tmpname: a new empty file in the system temp folder (as mkstemp makes one). */
  tmpname(): string {
    const dir = mkdtempSync(join(tmpdir(), 'lua-'))
    const path = join(dir, 'tmp')
    writeFileSync(path, '', { mode: 0o600 })
    return path
  }

  /** os.execute(cmd): runs `/bin/sh -c cmd` in the host's folder; its output goes to the host's streams. */
  execute(cmd: string, env: NodeJS.ProcessEnv): { ok: boolean; how: 'exit' | 'signal'; code: number } {
    const r = spawnSync('/bin/sh', ['-c', cmd], { cwd: this.#cwd, env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 })
    if (r.stdout?.length) this.#streams.stdout.write(r.stdout)
    if (r.stderr?.length) this.#streams.stderr.write(r.stderr)
    if (r.signal) return { ok: false, how: 'signal', code: (constants.signals as Record<string, number>)[r.signal] ?? 0 }
    const code = r.status ?? 127
    return { ok: code === 0, how: 'exit', code }
  }
}
