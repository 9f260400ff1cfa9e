/**
 * One hot reload: the modules to re-run, in dependency order, one Lua task at a time (a module's
 * new version may itself wait on a `require`). A module that fails keeps its old version, is
 * reported (`reload-error`, with the Lua message and its file:line), and the modules that depend
 * on it are left alone: they would only re-run against the old version. The next good save of
 * the file reloads again.
 */
import type { RuntimeEvent } from './host.js'
import type { ModuleGraph } from './module-graph.js'

export interface ReloadHooks {
  /** Spawns the reload task of `name`. */
  start(name: string): number
  emit(e: RuntimeEvent): void
  /** Every module was reloaded or skipped. */
  end(): void
}

export class ReloadJob {
  readonly #graph: ModuleGraph
  readonly #order: readonly string[]
  readonly #hooks: ReloadHooks
  readonly #t0 = performance.now()
  readonly #skip = new Set<string>()
  readonly #paths: string[] = []
  #next = 0
  #ended = false

  constructor(graph: ModuleGraph, order: readonly string[], hooks: ReloadHooks) {
    this.#graph = graph
    this.#order = order
    this.#hooks = hooks
  }

  /** Starts the next module's reload, or ends the job. */
  next(): void {
    while (this.#next < this.#order.length) {
      const name = this.#order[this.#next++] as string
      if (this.#skip.has(name)) continue
      this.#hooks.start(name)
      return
    }
    if (this.#ended) return
    this.#ended = true
    if (this.#paths.length > 0) {
      this.#hooks.emit({ event: 'reloaded', paths: this.#paths, ms: Math.round(performance.now() - this.#t0) })
    }
    this.#hooks.end()
  }

  /** The reload task of `name` reports its outcome (before it ends). */
  done(name: string, ok: boolean, message: string): void {
    const path = this.#graph.get(name)?.path ?? name
    if (ok) {
      if (!this.#paths.includes(path)) this.#paths.push(path)
      return
    }
    this.#hooks.emit({ event: 'reload-error', path, message })
    for (const d of this.#graph.dependentsOf(name)) this.#skip.add(d)
  }
}
