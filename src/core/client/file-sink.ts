/**
 * FileSink: where the bytes of one received file go. The receive loop (receive.ts) opens a sink
 * when the server announces a file (its FileMeta), hands it the file's bytes, and ends it with
 * `commit` (every byte given: verify the BLAKE3 hash, then make the result available) or
 * `discard` (any failure: the request is cancelled too). The flow-control credit for bytes is
 * released once the sink has consumed them, so a slow sink slows the server and never grows
 * memory (FLOW_WINDOW_BYTES).
 *
 * Sinks: a verified temp file renamed into place (temp-file-sink.ts, for pull/watch/get), a
 * size-capped buffer (memory-sink.ts, for `AssetClient.read`). A delta chunk assembler fits the
 * same shape: it is opened with the file's meta (and its chunk list), fills what it can from local
 * files itself, takes fetched bytes at their offsets, and verifies the whole file in `commit`.
 */
import type { FileMeta } from '../../protocol/messages.js'

/** One file being received; `T` is what a successful commit yields (a path, a Buffer, ...). */
export interface FileSink<T> {
  /**
   * Consumes `data`, the file's bytes at `offset`. The receive loop calls it one call at a time
   * (the next waits until this one settles), in order: `offset` is the number of bytes given so
   * far. A sink assembling a file from several sources may accept other offsets. Bytes past
   * `meta.size` are ERR_INTEGRITY; a local failure is ERR_WRITE (or ERR_LIMIT).
   */
  write(data: Uint8Array, offset: number): void | Promise<void>
  /**
   * Every byte was given: checks the size and the BLAKE3 hash against the announced FileMeta
   * (ERR_INTEGRITY if they differ), then makes the result available and returns it. A failing
   * commit cleans up after itself (as `discard`) before it throws.
   */
  commit(): Promise<T>
  /** Drops whatever was received (temp file, buffer). Safe to call twice, and after a commit. */
  discard(): Promise<void>
}

/**
 * Opens the sink for `path` (a checked wire path) once the server announced it with `meta`.
 * Throwing or rejecting here (e.g. ERR_LIMIT: too big for memory) cancels the request before any
 * of its bytes is consumed.
 */
export type SinkFactory<T> = (meta: FileMeta, path: string) => FileSink<T> | Promise<FileSink<T>>
