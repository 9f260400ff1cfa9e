/**
 * Watches the served folder and emits write-stable batches of wire paths that may have changed.
 * Events come from one watch per folder (folder-watches.ts): each names an entry to look at, and a
 * folder that appears or vanishes names its files.
 *
 * A path is stable once it has not been modified for `settleMs` (judged by its mtime, so a writer
 * pausing for less than that between pieces is never caught half-way, even when events in between
 * were merged), or once its stat stayed identical for `settleMs` (clock skew). Whether content
 * really changed is the store's call. A path whose stat is exactly what was announced for it
 * moments ago (size, mtime, inode, or gone both times) is not announced again: duplicate events and
 * our own trailing re-checks would otherwise produce a second batch for one save.
 */
import type { Stats } from 'node:fs'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { EventEmitter } from 'node:events'
import { SETTLE_MS, WATCH_TRAILING_CHECK_MS } from '../../limits.js'
import { FolderWatches } from './folder-watches.js'
import type { PathMatcher } from '../fs/ignore.js'

interface Pending {
  /** When this path next needs a look. */
  due: number
  /** Stat at the previous look (for the identical-stat rule). */
  last: Stats | null
  ready: boolean
  readySince: number
  /** Stat key when it became ready (see statKey). */
  seen: string
  /** Bumped by every event, so a look that raced with one is not trusted. */
  gen: number
}

/** What the store compares to decide whether to re-hash: size, mtime and inode (or gone). */
function statKey(st: Stats | null): string {
  return st ? `${st.size}:${st.mtimeMs}:${st.ino}` : 'gone'
}

/** How long an announcement is remembered to drop duplicates (covers the trailing re-check). */
const ANNOUNCED_TTL_MS = WATCH_TRAILING_CHECK_MS + 1000

/** Events: 'batch' (paths: string[]), 'error' (err). */
export class FolderWatcher extends EventEmitter {
  readonly root: string
  readonly settleMs: number
  readonly #ignored: PathMatcher
  readonly #indexed: () => Iterable<string>
  readonly #pending = new Map<string, Pending>()
  /** Recently announced paths → stat key and time, oldest first (see ANNOUNCED_TTL_MS). */
  readonly #announced = new Map<string, { key: string; at: number }>()
  /** Touched paths → when their trailing look is due, oldest first (one timer for all of them). */
  readonly #trailing = new Map<string, number>()
  #trailingTimer: NodeJS.Timeout | null = null
  #folders: FolderWatches | null = null
  #timer: NodeJS.Timeout | null = null
  #timerAt = Infinity
  #checking = false
  #closed = false

  /** `indexed` lists the paths the store knows (to expand a removed folder into its files). */
  constructor(root: string, ignored: PathMatcher, indexed: () => Iterable<string>, settleMs = SETTLE_MS) {
    super()
    this.root = root
    this.#ignored = ignored
    this.#indexed = indexed
    this.settleMs = settleMs
  }

  async start(): Promise<void> {
    this.#folders = new FolderWatches(this.root, this.#ignored, {
      onPath: (wire) => this.#touch(wire, Date.now()),
      onFolderGone: (wire) => {
        // A folder moved away raises no event per file: look at every indexed file under it.
        const prefix = `${wire}/`
        const now = Date.now()
        for (const p of this.#indexed()) if (p.startsWith(prefix)) this.#touch(p, now)
      },
      onError: (err) => this.emit('error', err),
    })
    await this.#folders.start()
  }

  /** Folders watched (one OS watch each). */
  get folders(): number { return this.#folders?.size ?? 0 }

  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    if (this.#trailingTimer) clearTimeout(this.#trailingTimer)
    this.#trailing.clear()
    this.#folders?.close()
  }

  #touch(wire: string, now: number): void {
    if (this.#closed || this.#ignored(wire)) return
    const p = this.#pending.get(wire)
    if (p) {
      p.gen++
      p.ready = false
      p.due = Math.min(p.due, now + this.settleMs)
    } else {
      this.#pending.set(wire, { due: now + this.settleMs, last: null, ready: false, readySince: 0, seen: '', gen: 0 })
    }
    // One more look after the last event (see WATCH_TRAILING_CHECK_MS). Re-inserted so the map
    // stays oldest first; a burst of writes costs one entry, not one timer per event.
    this.#trailing.delete(wire)
    this.#trailing.set(wire, now + WATCH_TRAILING_CHECK_MS)
    if (!this.#trailingTimer) this.#armTrailing()
    this.#schedule(now + this.settleMs)
  }

  #armTrailing(): void {
    const first = this.#trailing.values().next()
    if (first.done === true || this.#closed) return
    this.#trailingTimer = setTimeout(() => {
      this.#trailingTimer = null
      const now = Date.now()
      for (const [wire, due] of this.#trailing) {
        if (due > now) break
        this.#trailing.delete(wire)
        this.#trailingLook(wire)
      }
      this.#armTrailing()
    }, Math.max(0, first.value - Date.now()))
    this.#trailingTimer.unref()
  }

  #trailingLook(wire: string): void {
    if (this.#closed || this.#pending.has(wire)) return
    // Look once more; #check decides whether anything moved since it was announced.
    this.#pending.set(wire, { due: Date.now(), last: null, ready: false, readySince: 0, seen: '', gen: 0 })
    this.#schedule(Date.now())
  }

  #schedule(at: number): void {
    if (this.#closed || at >= this.#timerAt) return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timerAt = at
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#timerAt = Infinity
      void this.#check()
    }, Math.max(0, at - Date.now()))
    this.#timer.unref()
  }

  async #check(): Promise<void> {
    if (this.#checking || this.#closed) return
    this.#checking = true
    try {
      const now = Date.now()
      for (const [wire, p] of this.#pending) {
        if (p.ready || p.due > now) continue
        let st: Stats | null = null
        const gen = p.gen
        try {
          st = await stat(join(this.root, ...wire.split('/')))
          // A folder is no file: events name new folders too (their files are reported one by
          // one), and a file replaced by a folder is gone.
          if (st.isDirectory()) st = null
        } catch { /* gone: stable as a deletion */ }
        if (p.gen !== gen) continue // an event arrived meanwhile: look again (it is due already)
        const t = Date.now()
        const quietByMtime = st === null || t - st.mtimeMs >= this.settleMs
        const quietByStat = p.last !== null && st !== null &&
          p.last.size === st.size && p.last.mtimeMs === st.mtimeMs && p.last.ino === st.ino
        if (quietByMtime || quietByStat) {
          const key = statKey(st)
          // Exactly as announced moments ago: nothing new (a duplicate event or the trailing look).
          if (this.#announced.get(wire)?.key === key) {
            this.#pending.delete(wire)
            continue
          }
          p.ready = true
          p.readySince = t
          p.seen = key
        } else {
          p.last = st
          const byMtime = st ? st.mtimeMs + this.settleMs : Infinity
          p.due = Math.min(Math.max(byMtime, t + 1), t + this.settleMs)
        }
      }
      this.#flush(Date.now())
    } catch (err) {
      this.emit('error', err)
    } finally {
      this.#checking = false
    }
    let next = Infinity
    for (const p of this.#pending.values()) next = Math.min(next, p.ready ? p.readySince + this.settleMs : p.due)
    if (next !== Infinity) this.#schedule(next)
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
      this.#announced.set(wire, { key: p.seen, at: now })
    }
    for (const [wire, a] of this.#announced) {
      if (now - a.at < ANNOUNCED_TTL_MS) break
      this.#announced.delete(wire)
    }
    this.emit('batch', ready.map(([wire]) => wire))
  }
}
