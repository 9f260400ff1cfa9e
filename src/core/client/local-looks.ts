/**
 * What the local copies of a listing are, looked at ahead of time (issue 15: local checks that
 * overlap the network round trips). A `pull` that saved its last listing knows which files to
 * look at before the server has answered anything: it looks at them (one lstat and a hash-cache
 * lookup each) in slices while the connection is made and the digest asked, and the sync then
 * uses those looks instead of looking again. Looks of paths the sync's listing does not have are
 * ignored; paths it has that were not looked at are looked at then.
 */
import type { Stats } from 'node:fs'
import { setImmediate as yieldTurn } from 'node:timers/promises'

/** Files looked at per turn of the event loop (~5 ms: the handshake's packets are not kept waiting). */
const LOOK_SLICE = 500

/** One look: the local file's hash if the cache vouches for it, its mode (-1: no regular file), its stat if it must be hashed. */
export interface Look { hash: Buffer | null; mode: number; full: string; st: Stats | null }

/** Looks at the local copies of a sorted list of paths (LocalLooks.take finds them by path). */
export class LocalLooks {
  readonly #paths: readonly string[]
  readonly #hashes: (Buffer | null)[]
  readonly #modes: number[]
  /** Only files the cache could not vouch for keep their stat (and full path): they are hashed later. */
  readonly #unknown = new Map<number, { full: string; st: Stats }>()
  #cursor = 0

  private constructor(paths: readonly string[]) {
    this.#paths = paths
    this.#hashes = new Array<Buffer | null>(paths.length).fill(null)
    this.#modes = new Array<number>(paths.length).fill(-1)
  }

  /** Looks at `paths` (sorted ascending) with `look`, yielding to the event loop every LOOK_SLICE. */
  static async of(paths: readonly string[], look: (wire: string) => Look): Promise<LocalLooks> {
    const l = new LocalLooks(paths)
    for (let i = 0; i < paths.length; i++) {
      if (i > 0 && i % LOOK_SLICE === 0) await yieldTurn()
      const r = look(paths[i] as string)
      l.#modes[i] = r.mode
      if (r.hash) l.#hashes[i] = r.hash
      else if (r.st) l.#unknown.set(i, { full: r.full, st: r.st })
    }
    return l
  }

  /**
   * The look at `path`, or null if it was not looked at. Calls must come in ascending path order
   * (a sync walks its sorted listing): the lists are merged, no index is built.
   */
  take(path: string): Look | null {
    const paths = this.#paths
    while (this.#cursor < paths.length && (paths[this.#cursor] as string) < path) this.#cursor++
    const i = this.#cursor
    if (paths[i] !== path) return null
    const u = this.#unknown.get(i)
    return { hash: this.#hashes[i] ?? null, mode: this.#modes[i] as number, full: u?.full ?? '', st: u?.st ?? null }
  }
}
