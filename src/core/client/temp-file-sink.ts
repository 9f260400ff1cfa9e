/**
 * The file-system sink: bytes go to a temp file beside the final path (IncomingFile: a small file
 * written synchronously, a large one streamed), are verified against the BLAKE3 hash, then renamed
 * into place, or, staged, left verified beside the final path for the caller to install (watch
 * makes a whole batch visible at once).
 */
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
  /** What messages call the file (e.g. its wire path); default the final path. */
  label?: string
}

class TempFileSink implements FileSink<SavedFile> {
  readonly #file: IncomingFile
  readonly #install: boolean

  constructor(file: IncomingFile, install: boolean) {
    this.#file = file
    this.#install = install
  }

  write(data: Uint8Array): Promise<void> { return this.#file.write(data) }

  async commit(): Promise<SavedFile> {
    await this.#file.commit(this.#install)
    return { finalPath: this.#file.finalPath, tempPath: this.#file.tempPath, installed: this.#install }
  }

  discard(): Promise<void> { return this.#file.discard() }
}

/**
 * A factory of temp-file sinks for `finalPath` (an already resolved, checked local path). The temp
 * file is created when the server announces the file, so a full disk or a read-only folder fails
 * the request before any byte is sent.
 */
export function fileSink(finalPath: string, opts: FileSinkOptions = {}): SinkFactory<SavedFile> {
  const install = !opts.stage
  return async (meta) => new TempFileSink(await IncomingFile.create(finalPath, meta, opts.label), install)
}
