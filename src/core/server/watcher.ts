/**
 * Watches the served folder and emits write-stable batches of wire paths that may have changed.
 * Events come from one watch per folder (folder-watches.ts): each names an entry to look at, and a
 * folder that appears or vanishes names its files.
 *
 * A path is stable once it has not been modified for `settleMs` (judged by its mtime, so a writer
 * pausing for less than that between pieces is never caught half-way, even when events in between
 * were merged), or once its stamp stayed identical for `settleMs` (clock skew). Whether content
 * really changed is the folder feed's call. A path whose stamp is exactly what was announced for it
 * moments ago (sameStamp, or gone both times) is not announced again: duplicate events and our
 * own trailing re-checks would otherwise produce a second batch for one save.
 *
 * Every timer and "now" comes from the injected Clock (default the system clock), so the timing
 * rules are testable without sleeping. Its now() must be wall-clock time: it is compared with mtimes.
 */
import { stat } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { EventEmitter } from 'node:events'
import { SETTLE_EMPTY_MS, SETTLE_LAG_MAX_MS, SETTLE_MS, WATCH_TRAILING_CHECK_MS } from '../../limits.js'
import { type Clock, systemClock } from '../../protocol/clock.js'
import { FolderWatches } from './folder-watches.js'
import type { PathMatcher } from '../fs/ignore.js'
import { type FileStamp, sameStamp, stampOf } from '../fs/stamp.js'

interface Pending {
  /** Where it is on disk (its name may be in another Unicode normalization than its wire path). */
  full: string
  /** When this path next needs a look. */
  due: number
  /** Stamp at the previous look (for the identical-stamp rule). */
  last: FileStamp | null
  /** When `last` was first seen. */
  lastAt: number
  ready: boolean
  readySince: number
  /** Stamp when it became ready (null: gone). */
  seen: FileStamp | null
  /** Bumped by every event, so a look that raced with one is not trusted. */
  gen: number
}

/**
 * The quiet time a file with stamp `st` needs before it is announced: `settleMs`, or for an empty
 * file SETTLE_EMPTY_MS (unless settleMs is 0): a save that truncates first (most in-place writers)
 * leaves the file empty until its first write, and on a busy machine that write may come later
 * than the settle time.
 */
export function quietTime(settleMs: number, st: FileStamp | null): number {
  return st !== null && st.size === 0 && settleMs > 0 ? Math.max(settleMs, SETTLE_EMPTY_MS) : settleMs
}

/** How long an announcement is remembered to drop duplicates (covers the trailing re-check). */
const ANNOUNCED_TTL_MS = WATCH_TRAILING_CHECK_MS + 1000

/**
 * Events: 'batch' (paths: string[], disk: Map<string, string>: for the paths whose name on disk
 * is not their wire path's own (NFD), that name relative to the root; seen: Map<string,
 * FileStamp | null>: each path's stamp at the look that found it stable, null for gone), 'error' (err), 'skipped'
 * (SkippedPath: an entry whose path cannot travel), 'root' (the root folder itself was deleted or
 * moved: the watch no longer sees it).
 */
export class FolderWatcher extends EventEmitter {
  readonly root: string
  readonly settleMs: number
  readonly #ignored: PathMatcher
  readonly #indexed: () => Iterable<string>
  readonly #pending = new Map<string, Pending>()
  /** Recently announced paths → stamp (null: gone) and time, oldest first (see ANNOUNCED_TTL_MS). */
  readonly #announced = new Map<string, { stamp: FileStamp | null; at: number }>()
  /** Touched paths → when their trailing look is due, oldest first (one timer for all of them). */
  readonly #trailing = new Map<string, number>()
  /** Touched paths → where they were seen on disk, for their trailing look (kept as long as #trailing). */
  readonly #disk = new Map<string, string>()
  readonly #clock: Clock
  #cancelTrailing: (() => void) | null = null
  #folders: FolderWatches | null = null
  #cancelTimer: (() => void) | null = null
  #timerAt = Infinity
  /** How late the last timer fired (ms), and when: the machine's scheduling delay, decaying (see #lagNow). */
  #lag = 0
  #lagAt = 0
  #checking: Promise<void> | null = null
  #closed = false

  /**
   * `indexed` lists the paths the index knows (to expand a removed folder into its files);
   * `clock` runs the settle and trailing-look timers.
   */
  constructor(root: string, ignored: PathMatcher, indexed: () => Iterable<string>, settleMs = SETTLE_MS, clock: Clock = systemClock) {
    super()
    this.root = root
    this.#ignored = ignored
    this.#indexed = indexed
    this.settleMs = settleMs
    this.#clock = clock
  }

  async start(): Promise<void> {
    this.#folders = new FolderWatches(this.root, this.#ignored, {
      onPath: (wire, full) => this.#touch(wire, this.#clock.now(), full),
      onFolderGone: (wire) => {
        // A folder moved away raises no event per file: look at every indexed file under it.
        const prefix = `${wire}/`
        const now = this.#clock.now()
        for (const p of this.#indexed()) if (p.startsWith(prefix)) this.#touch(p, now)
      },
      onError: (err) => this.emit('error', err),
      onSkipped: (skipped) => this.emit('skipped', skipped),
      onRootEvent: () => this.emit('root'),
    })
    await this.#folders.start()
  }

  /** Folders watched (one OS watch each). */
  get folders(): number { return this.#folders?.size ?? 0 }

  /** Paths noticed and not yet announced (settling, or ready and waiting for the others). */
  get pending(): number { return this.#pending.size }

  /** Resolves once the look in progress (if any) is done: its batch, if any, has been emitted. */
  async idle(): Promise<void> { await this.#checking }

  async close(): Promise<void> {
    this.#closed = true
    this.#cancelTimer?.()
    this.#cancelTrailing?.()
    this.#trailing.clear()
    this.#disk.clear()
    this.#folders?.close()
    await this.#checking // a look still running ends without a batch (see #flush)
  }

  #touch(wire: string, now: number, full = join(this.root, ...wire.split('/'))): void {
    if (this.#closed || this.#ignored(wire)) return
    const p = this.#pending.get(wire)
    if (p) {
      p.full = full
      p.gen++
      p.ready = false
      p.due = Math.min(p.due, now + this.settleMs)
    } else {
      this.#pending.set(wire, { full, due: now + this.settleMs, last: null, lastAt: 0, ready: false, readySince: 0, seen: null, gen: 0 })
    }
    this.#disk.set(wire, full)
    // One more look after the last event (see WATCH_TRAILING_CHECK_MS). Re-inserted so the map
    // stays oldest first; a burst of writes costs one entry, not one timer per event.
    this.#trailing.delete(wire)
    this.#trailing.set(wire, now + WATCH_TRAILING_CHECK_MS)
    if (!this.#cancelTrailing) this.#armTrailing()
    this.#schedule(now + this.settleMs)
  }

  #armTrailing(): void {
    const first = this.#trailing.values().next()
    if (first.done === true || this.#closed) return
    this.#cancelTrailing = this.#clock.after(Math.max(0, first.value - this.#clock.now()), () => {
      this.#cancelTrailing = null
      const now = this.#clock.now()
      for (const [wire, due] of this.#trailing) {
        if (due > now) break
        this.#trailing.delete(wire)
        const full = this.#disk.get(wire)
        this.#disk.delete(wire)
        this.#trailingLook(wire, full)
      }
      this.#armTrailing()
    })
  }

  #trailingLook(wire: string, full = join(this.root, ...wire.split('/'))): void {
    if (this.#closed || this.#pending.has(wire)) return
    // Look once more; #check decides whether anything moved since it was announced.
    const now = this.#clock.now()
    this.#pending.set(wire, { full, due: now, last: null, lastAt: 0, ready: false, readySince: 0, seen: null, gen: 0 })
    this.#schedule(now)
  }

  #schedule(at: number): void {
    if (this.#closed || at >= this.#timerAt) return
    this.#cancelTimer?.()
    this.#timerAt = at
    this.#cancelTimer = this.#clock.after(Math.max(0, at - this.#clock.now()), () => {
      this.#cancelTimer = null
      this.#timerAt = Infinity
      const now = this.#clock.now()
      const late = Math.max(0, now - at - 1) // now() counts whole milliseconds
      if (late >= this.#lagNow(now)) {
        this.#lag = late
        this.#lagAt = now
      }
      if (this.#checking || this.#closed) return // the running look schedules the next one
      this.#checking = this.#check().finally(() => { this.#checking = null })
    })
  }

  async #check(): Promise<void> {
    try {
      const now = this.#clock.now()
      for (const [wire, p] of this.#pending) {
        if (p.ready || p.due > now) continue
        let st: FileStamp | null = null
        const gen = p.gen
        try {
          const s = await stat(p.full)
          // A folder is no file: events name new folders too (their files are reported one by
          // one), and a file replaced by a folder is gone.
          if (!s.isDirectory()) st = stampOf(s)
        } catch { /* gone: stable as a deletion */ }
        if (p.gen !== gen) continue // an event arrived meanwhile: look again (it is due already)
        const t = this.#clock.now()
        const quiet = quietTime(this.settleMs, st) + (this.settleMs > 0 ? Math.min(this.#lagNow(t), SETTLE_LAG_MAX_MS) : 0)
        const quietByMtime = st === null || t - st.mtimeMs >= quiet
        const quietByStamp = p.last !== null && st !== null && sameStamp(p.last, st) && (st.size > 0 || t - p.lastAt >= quiet)
        if (quietByMtime || quietByStamp) {
          // Exactly as announced moments ago: nothing new (a duplicate event or the trailing look).
          const announced = this.#announced.get(wire)
          if (announced && sameStamp(announced.stamp, st)) {
            this.#pending.delete(wire)
            continue
          }
          p.ready = true
          p.readySince = t
          p.seen = st
        } else {
          if (!sameStamp(p.last, st)) p.lastAt = t
          p.last = st
          const byMtime = st ? st.mtimeMs + quiet : Infinity
          p.due = Math.min(Math.max(byMtime, t + 1), t + quiet)
        }
      }
      this.#flush(this.#clock.now())
    } catch (err) {
      this.emit('error', err)
    }
    if (this.#closed) return
    let next = Infinity
    for (const p of this.#pending.values()) next = Math.min(next, p.ready ? p.readySince + this.settleMs : p.due)
    if (next !== Infinity) this.#schedule(next)
  }

  /**
   * The scheduling delay to add to the quiet time: how late this process's timers fire, halving
   * every second. On a machine so busy that our timers run late, a writer is descheduled as long
   * between two pieces of a save, and its pause outlasts the settle time: with 10 ms and the
   * hot-reload bench's 5 ms pauses stretched to 54 ms at load 12, hooks saw first halves.
   */
  #lagNow(now: number): number {
    return this.#lag * 0.5 ** (Math.max(0, now - this.#lagAt) / 1000)
  }

  /**
   * Emits the ready paths as one batch. Ready paths wait (at most one more settle time) for paths
   * still settling, so files saved together are announced together.
   */
  #flush(now: number): void {
    if (this.#closed) return // a look still running at close() ends here: no batch after close
    const ready = [...this.#pending].filter(([, p]) => p.ready)
    if (ready.length === 0) return
    const waiting = this.#pending.size - ready.length
    let oldest = Infinity
    for (const [, p] of ready) oldest = Math.min(oldest, p.readySince)
    if (waiting > 0 && now - oldest < this.settleMs) return
    for (const [wire, p] of ready) {
      this.#pending.delete(wire)
      // Re-inserted so the map stays oldest first.
      this.#announced.delete(wire)
      this.#announced.set(wire, { stamp: p.seen, at: now })
    }
    for (const [wire, a] of this.#announced) {
      if (now - a.at < ANNOUNCED_TTL_MS) break
      this.#announced.delete(wire)
    }
    const disk = new Map<string, string>()
    for (const [wire, p] of ready) {
      const rel = relative(this.root, p.full)
      if (rel !== join(...wire.split('/'))) disk.set(wire, rel)
    }
    this.emit('batch', ready.map(([wire]) => wire), disk, new Map(ready.map(([wire, p]) => [wire, p.seen])))
  }
}
