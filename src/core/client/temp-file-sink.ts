/**
 * The file-system sink: bytes go to a temp file beside the final path (IncomingFile: a small file
 * written synchronously, a large one streamed), are verified against the BLAKE3 hash, then renamed
 * into place, or, staged, left verified beside the final path for the caller to install (watch
 * makes a whole batch visible at once).
 */
import { DELTA_STAGE_MIN_BYTES } from '../../limits.js'
import { IncomingFile } from '../fs/atomic-file.js'
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
  return async (meta) => {
    const file = await IncomingFile.create(finalPath, meta, opts.label, { tempPath: meta.size >= DELTA_STAGE_MIN_BYTES ? stagingPath : undefined })
    return new TempFileSink(file, install, file.tempPath === stagingPath)
  }
}
