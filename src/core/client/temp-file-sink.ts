/**
 * The file-system sink: bytes go to a temp file beside the final path (IncomingFile: a small file
 * written synchronously, a large one streamed), are verified against the BLAKE3 hash, then renamed
 * into place, or, staged, left verified beside the final path for the caller to install (watch
 * makes a whole batch visible at once).
 */
import { DELTA_STAGE_MIN_BYTES, SMALL_FILE_BYTES } from '../../limits.js'
import { IncomingFile, type TempFd, createTempFd, dropTempSync } from '../fs/atomic-file.js'
import type { FileSink, SinkFactory } from './file-sink.js'

/** A verified file on disk. */
export interface SavedFile {
  /** Where the file belongs. */
  finalPath: string
  /** The verified temp file (gone once installed). */
  tempPath: string
  /** True once renamed to `finalPath`; false for a staged file, which the caller installs or removes. */
  installed: boolean
}

/** Options of `fileSink`. */
export interface FileSinkOptions {
  /** Verify and keep the temp file without renaming it (the caller renames or removes it). */
  stage?: boolean
  /**
   * Resume: write to this staging name (delta/staging.ts `stagingPathFor`) when the file is large,
   * and keep what was written there when the transfer fails after at least DELTA_STAGE_MIN_BYTES
   * (or the process is killed): the next attempt reuses its chunks.
   */
  stagingPath?: string | null
  /** What messages call the file (e.g. its wire path); default the final path. */
  label?: string
  /** A temp file made while the request was on its way (aheadTemp): a small file is written to it. */
  ahead?: AheadTemp | null
}

/**
 * A temp file made beside a missing file's final path while its request is on the wire, so that
 * once the answer comes the file is written with no thread-pool round trip (the create is the one
 * step that can wait on the disk; under a bulk download each such wait also waits for the busy
 * event loop). Used by the sink for a small file; `dropAhead` removes it otherwise.
 */
export interface AheadTemp {
  /** The temp file, or null if it could not be made (the sink then makes one and reports why). */
  readonly made: Promise<TempFd | null>
  /** True once a sink took it over. */
  taken: boolean
  /** True once dropped (dropAhead): it is gone. */
  dropped: boolean
}

/** Starts making a temp file beside `finalPath` (see AheadTemp). */
export function aheadTemp(finalPath: string): AheadTemp {
  return { made: createTempFd(finalPath).catch(() => null), taken: false, dropped: false }
}

/** Removes an AheadTemp no sink took over, once (never throws; later calls do nothing). */
export async function dropAhead(a: AheadTemp | null): Promise<void> {
  if (!a || a.taken || a.dropped) return
  a.dropped = true
  const t = await a.made
  if (t) dropTempSync(t)
}

class TempFileSink implements FileSink<SavedFile> {
  readonly #file: IncomingFile
  readonly #install: boolean
  readonly #keepPartial: boolean

  constructor(file: IncomingFile, install: boolean, keepPartial: boolean) {
    this.#file = file
    this.#install = install
    this.#keepPartial = keepPartial
  }

  write(data: Uint8Array): Promise<void> { return this.#file.write(data) }

  async commit(): Promise<SavedFile> {
    await this.#file.commit(this.#install)
    return { finalPath: this.#file.finalPath, tempPath: this.#file.tempPath, installed: this.#install }
  }

  discard(): Promise<void> {
    return this.#file.discard(this.#keepPartial && this.#file.written >= DELTA_STAGE_MIN_BYTES)
  }
}

/**
 * A factory of temp-file sinks for `finalPath` (an already resolved, checked local path). The temp
 * file is created when the server announces the file, so a full disk or a read-only folder fails
 * the request before any byte is sent.
 */
export function fileSink(finalPath: string, opts: FileSinkOptions = {}): SinkFactory<SavedFile> {
  const install = !opts.stage
  const stagingPath = opts.stagingPath ?? undefined
  const ahead = opts.ahead ?? null
  return async (meta) => {
    if (ahead && meta.size <= SMALL_FILE_BYTES) {
      const made = await ahead.made
      if (made && !ahead.taken && !ahead.dropped && made.fd >= 0) {
        ahead.taken = true
        return new TempFileSink(IncomingFile.fromTemp(finalPath, made, meta, opts.label), install, false)
      }
    }
    await dropAhead(ahead) // a large file streams into a temp (or staging) file of its own
    const file = await IncomingFile.create(finalPath, meta, opts.label, { tempPath: meta.size >= DELTA_STAGE_MIN_BYTES ? stagingPath : undefined })
    return new TempFileSink(file, install, file.tempPath === stagingPath)
  }
}
