/**
 * The one way assetsync replaces a file: write a temp file in the target's folder (created with
 * O_EXCL, with its final mode), fsync it where durability matters, rename it over the target,
 * and remove it on any failure. A crash leaves at most a temp file with a recognisable name,
 * never a torn file at the final path. `writeFileAtomic` is the whole-buffer variant (identity,
 * known servers, hash cache); `IncomingFile` (atomic-file.ts) is the streaming variant for
 * downloads and shares the naming and temp-file creation here.
 */
import { randomBytes } from 'node:crypto'
import { unlinkSync } from 'node:fs'
import { type FileHandle, mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { writeError } from '../../errors.js'
import { TEMP_PREFIX, TEMP_SUFFIX } from './ignore.js'

/** Random per process (48 bits), so two processes writing into one folder never pick the same name. */
let processTag: string | null = null
let tempCounter = 0
/** Attempts at a fresh temp name when one exists already (a leftover, or another process's). */
const TEMP_NAME_ATTEMPTS = 5

/**
 * A temp name beside `finalPath`: `.assetsync-<process tag><counter>.tmp` (hex). One random draw
 * per process instead of one per file; the file is created with O_EXCL, so a clash is an error
 * (and a retry with the next name), never a shared file. The default ignores skip these names,
 * and a mirror removes leftovers of a killed run (`isTempName`).
 */
export function tempPathFor(finalPath: string): string {
  processTag ??= randomBytes(6).toString('hex')
  return join(dirname(finalPath), `${TEMP_PREFIX}${processTag}${(tempCounter++).toString(16).padStart(4, '0')}${TEMP_SUFFIX}`)
}

/** True for a file name `tempPathFor` could have made. */
export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX)
}

const isExists = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === 'EEXIST'

/**
 * Temp files this process created and has neither renamed nor removed yet: what an interrupted
 * run (SIGINT, SIGTERM) removes before it exits (`removeLiveTemps`).
 */
const liveTemps = new Set<string>()

/**
 * False once the user stopped the process (SIGINT, SIGTERM: commands/common.ts): from then on a
 * transfer cut short keeps nothing, not even the staged part of a large download that a lost
 * connection or a crash would leave for resuming (IncomingFile.discard). A stopped command
 * removes every temp file it made, as docs/cli.md promises.
 */
let keepParts = true

/** The process is stopping at the user's request: no partial download is kept from now on. */
export function keepNoParts(): void { keepParts = false }

/** Whether a transfer cut short may keep its staged part for resuming (see keepNoParts). */
export function keepingParts(): boolean { return keepParts }

/** A temp file became its final file (renamed): it is no longer ours to remove. */
export function tempInstalled(tempPath: string): void {
  liveTemps.delete(tempPath)
}

/**
 * Removes every temp file this process still has, synchronously (called on SIGINT/SIGTERM, once
 * the work in flight has stopped). Returns how many were removed.
 */
export function removeLiveTemps(): number {
  let n = 0
  for (const p of liveTemps) {
    try {
      unlinkSync(p)
      n++
    } catch { /* gone already */ }
  }
  liveTemps.clear()
  return n
}

/**
 * Creates a fresh temp file beside `finalPath` with `create(tempPath)`, which must open it
 * exclusively (flag 'wx'): a name that exists already is never reused or truncated, the next name
 * is tried instead. Failures are ERR_WRITE naming `label` (default `finalPath`).
 */
export async function createTemp<T>(
  finalPath: string, create: (tempPath: string) => Promise<T>, label: string = finalPath,
): Promise<{ tempPath: string; handle: T }> {
  for (let attempt = 1; ; attempt++) {
    const tempPath = tempPathFor(finalPath)
    try {
      const handle = await create(tempPath)
      liveTemps.add(tempPath)
      return { tempPath, handle }
    } catch (err) {
      if (isExists(err) && attempt < TEMP_NAME_ATTEMPTS) continue
      throw writeError(label, err)
    }
  }
}

/** Removes a temp file, ignoring every failure (it may be gone already). */
export async function removeTemp(tempPath: string): Promise<void> {
  liveTemps.delete(tempPath)
  await unlink(tempPath).catch(() => {})
}

export interface AtomicWriteOptions {
  /** File mode of the new file (before the umask). Default 0o600: what we write is private. */
  mode?: number
  /**
   * fsync the file before the rename and its folder after it, so a power cut leaves the old or
   * the new file, whole (default true). A cache that can be rebuilt passes false.
   */
  fsync?: boolean
  /** Create the folder first (mode 0o700) if it is missing. Default false. */
  mkdir?: boolean
}

/**
 * Replaces `file` with `data` atomically: temp file in the same folder (O_EXCL, `mode`), write,
 * fsync, rename, fsync of the folder. On failure the temp file is removed and the old file is
 * untouched. Throws ERR_WRITE.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const durable = opts.fsync ?? true
  if (opts.mkdir) {
    try {
      await mkdir(dirname(file), { recursive: true, mode: 0o700 })
    } catch (err) {
      throw writeError(file, err)
    }
  }
  const { tempPath, handle } = await createTemp(file, (p) => open(p, 'wx', opts.mode ?? 0o600))
  let fh: FileHandle | null = handle
  try {
    await fh.writeFile(data)
    if (durable) await fh.sync()
    await fh.close()
    fh = null
    await rename(tempPath, file)
    tempInstalled(tempPath)
  } catch (err) {
    await fh?.close().catch(() => {})
    await removeTemp(tempPath)
    throw writeError(file, err)
  }
  if (durable) await syncDir(dirname(file))
}

/**
 * The bytes of a file `writeFileAtomic` wrote with `header` first, or null when there is no such
 * file, it cannot be read, or it starts otherwise (another format or version): for caches, which
 * are then rebuilt.
 */
export async function readTaggedFile(file: string | null, header: Buffer): Promise<Buffer | null> {
  if (!file) return null
  let buf: Buffer
  try {
    buf = await readFile(file)
  } catch {
    return null
  }
  return buf.length >= header.length && buf.subarray(0, header.length).equals(header) ? buf : null
}

/**
 * fsync of a folder, so a rename in it is on disk. Best effort: some systems (Windows, some
 * network file systems) cannot open or sync a folder, and the file itself is synced already.
 */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | null = null
  try {
    fh = await open(dir, 'r')
    await fh.sync()
  } catch { /* see above */ } finally {
    await fh?.close().catch(() => {})
  }
}
