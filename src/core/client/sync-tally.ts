/**
 * A sync's accounting (the summary and the per-file events, in the order they happen) and its
 * NO_MATCH check: what Mirror.sync reports, apart from what it does.
 */
import { selectionSet } from '../fs/ignore.js'
import type { FileAction, SyncOptions, SyncSummary } from './mirror-types.js'

/** Counts each file's outcome into the summary and tells `opts` (onFile, onProgress). */
export class SyncTally {
  readonly summary: SyncSummary = { files: 0, downloaded: 0, upToDate: 0, modeChanged: 0, deleted: 0, vanished: 0, bytesReceived: 0, bytesReused: 0, ms: 0 }
  readonly #opts: SyncOptions
  readonly #total: number
  readonly #t0 = performance.now()
  #done = 0

  constructor(opts: SyncOptions, total: number) {
    this.#opts = opts
    this.#total = total
  }

  report(path: string, action: FileAction, bytes: number, reused = 0): void {
    const s = this.summary
    if (action === 'vanished') s.vanished++
    else if (action === 'deleted') s.deleted++
    else {
      s.files++
      if (action === 'downloaded') s.downloaded++
      else s.upToDate++
      if (action === 'mode') s.modeChanged++
    }
    s.bytesReceived += bytes
    s.bytesReused += reused
    this.#opts.onFile?.({ path, action, bytes, reused })
    if (action !== 'deleted') this.#opts.onProgress?.({ bytes: s.bytesReceived, done: ++this.#done, total: this.#total })
  }

  /** The summary, with the time since the tally began. */
  finish(): SyncSummary {
    this.summary.ms = Math.round(performance.now() - this.#t0)
    return this.summary
  }
}

/**
 * The include patterns (not `!` exclusions) that select none of the listed paths: a typo, or a
 * folder the server does not have. Exclusions are not judged: the server already left out
 * what they exclude.
 */
export function unmatchedPatterns(patterns: readonly string[], listed: readonly { path: string }[]): string[] {
  const set = selectionSet(patterns)
  for (const e of listed) set.matching(e.path)
  return set.unmatched('include')
}
