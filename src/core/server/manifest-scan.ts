/**
 * One connection's MANIFEST requests (issue 12): compiled within the pattern budget, charged to
 * the connection's memory account, scanned in slices of the server's MatchScheduler and cut into
 * pages by matching work as well as by bytes. One scan at a time per connection, in order.
 *
 * Paging by work: a page is built in slices of MATCH_SLICE_STEPS, each on its own event-loop
 * turn, and ends after MANIFEST_PAGE_MATCH_STEPS of matching once it holds an entry (done =
 * false, and the client asks for the next page as it always did, protocol 2 included); until it
 * holds one it goes on, since a client takes an empty page for the end. Past the average-cost
 * rule (MATCH_STEPS_PER_CHAR) the request fails with ERR_LIMIT.
 */
import { AssetSyncError } from '../../errors.js'
import { MANIFEST_CACHED_SETS, MANIFEST_PAGE_BYTES, MANIFEST_PAGE_MATCH_STEPS, SERVER_SET_DFA_CELLS } from '../../limits.js'
import { manifestEntryBytes } from '../../protocol/codec.js'
import type { ManifestEntry, ManifestMsg, ManifestReplyMsg } from '../../protocol/messages.js'
import { PatternSet } from '../fs/patterns.js'
import { type MatchScheduler, MatchWork } from './match-work.js'
import { type MemoryAccount, patternSetBytes } from './memory-budget.js'
import type { AssetSource } from './source.js'

/** What a scan needs of the connection. */
export interface ScanConnection {
  readonly closed: boolean
  drained(): Promise<void>
}

/** Counters for tests and status. */
export interface ScanStats {
  /** MANIFEST requests answered with a page. */
  pages: number
  /** Pages cut by matching work (not by bytes or the end). */
  cutByWork: number
  /** Slices scanned (turns of the MatchScheduler). */
  slices: number
  /** Requests refused: over the pattern budget, too costly to match, or over the memory budget. */
  refused: number
  /** Match steps spent. */
  steps: number
}

export class ManifestScanner {
  readonly #conn: ScanConnection
  readonly #source: AssetSource
  readonly #scheduler: MatchScheduler
  readonly #account: MemoryAccount
  /** Compiled sets by their patterns (NUL-joined), least recently used first. */
  readonly #sets = new Map<string, PatternSet>()
  #queue: Promise<void> = Promise.resolve()
  readonly stats: ScanStats = { pages: 0, cutByWork: 0, slices: 0, refused: 0, steps: 0 }

  constructor(conn: ScanConnection, source: AssetSource, scheduler: MatchScheduler, account: MemoryAccount) {
    this.#conn = conn
    this.#source = source
    this.#scheduler = scheduler
    this.#account = account
  }

  /** Answers `msg` after the connection's earlier MANIFEST requests: the page, or the error. */
  answer(msg: ManifestMsg): Promise<ManifestReplyMsg | null> {
    const run = this.#queue.then(() => this.#scan(msg))
    this.#queue = run.then(() => {}, () => {})
    return run
  }

  /** Drops every cached set (to make room in the memory budget); returns whether there were any. */
  dropCache(except?: string): boolean {
    let dropped = false
    for (const key of [...this.#sets.keys()]) {
      if (key === except) continue
      this.#sets.delete(key)
      this.#account.release(`manifest:${key}`)
      dropped = true
    }
    return dropped
  }

  /** The compiled set for `patterns`, from the cache or compiled and charged (ERR_LIMIT / ERR_USAGE). */
  #setFor(patterns: readonly string[]): { set: PatternSet; key: string } {
    const key = patterns.join('\0')
    const cached = this.#sets.get(key)
    if (cached) {
      this.#sets.delete(key) // most recently used last
      this.#sets.set(key, cached)
      return { set: cached, key }
    }
    const set = new PatternSet(patterns, 'select', { maxCells: SERVER_SET_DFA_CELLS })
    const bytes = patternSetBytes(set)
    while (this.#sets.size >= MANIFEST_CACHED_SETS || !this.#account.fits(`manifest:${key}`, bytes)) {
      const oldest = this.#sets.keys().next()
      if (oldest.done) break
      this.#sets.delete(oldest.value)
      this.#account.release(`manifest:${oldest.value}`)
    }
    this.#account.charge(`manifest:${key}`, bytes, 'these MANIFEST patterns')
    this.#sets.set(key, set)
    return { set, key }
  }

  async #scan(msg: ManifestMsg): Promise<ManifestReplyMsg | null> {
    // Backpressure: a client that asks for pages without reading them gets no more built.
    await this.#conn.drained()
    // Compiling is matching work too (up to PATTERN_SET_MAX_STATES states): it takes a turn.
    if (!this.#sets.has(msg.patterns.join('\0'))) await this.#scheduler.turn()
    if (this.#conn.closed) return null
    let compiled: { set: PatternSet; key: string }
    try {
      compiled = this.#setFor(msg.patterns)
    } catch (err) {
      this.stats.refused++
      throw err
    }
    const { set } = compiled
    const match = (path: string): boolean => set.matches(path)
    const work = new MatchWork(() => set.steps, this.#scheduler.stats)
    const entries: ManifestEntry[] = []
    let bytes = MANIFEST_PAGE_BYTES
    let after = msg.after
    try {
      for (;;) {
        await this.#scheduler.turn()
        if (this.#conn.closed) return null
        this.stats.slices++
        work.nextSlice()
        const page = await this.#source.page(match, after, bytes, work)
        if (work.overspent) {
          this.stats.refused++
          this.#scheduler.stats.manifestsRefused++
          throw new AssetSyncError('ERR_LIMIT',
            `patterns too costly to match against this server's paths (${work.spent} steps for ${work.paths} paths): use fewer wildcards`)
        }
        for (const e of page.entries) {
          entries.push(e)
          bytes -= manifestEntryBytes(e.path)
        }
        // Cut by work once the page holds an entry: a client takes an empty page for the end.
        const cut = page.resume !== undefined && entries.length > 0 && work.spent >= MANIFEST_PAGE_MATCH_STEPS
        if (page.resume !== undefined && !cut) {
          after = page.resume
          continue
        }
        this.stats.pages++
        if (cut) {
          this.stats.cutByWork++
          this.#scheduler.stats.pagesCutByWork++
        }
        return { type: 'manifest-reply', id: msg.id, done: page.done, entries }
      }
    } finally {
      work.end()
      this.stats.steps += work.spent
    }
  }
}
