/**
 * Which Lua modules are loaded from which files, who required whom, and so in what order a
 * change reloads them: the changed module first, then every module that required it,
 * transitively, each after the modules it requires (vite's propagateUpdate, in reverse: here the
 * importers re-run).
 */

export interface ModuleInfo {
  /** The name given to `require` ("pl.List", or a wire path "ai/enemy.lua"). */
  name: string
  /** The wire path the module was loaded from. */
  path: string
  /** The chunk name its functions carry ("@pl/List.lua"): how a caller is recognised. */
  chunk: string
  /** Subscribed: a change of `path` reloads it (dependents reload whether or not they are). */
  reload: boolean
}

export class ModuleGraph {
  readonly #modules = new Map<string, ModuleInfo>()
  readonly #byChunk = new Map<string, string>()
  /** name -> names it requires. */
  readonly #deps = new Map<string, Set<string>>()
  /** name -> names that require it. */
  readonly #users = new Map<string, Set<string>>()

  /** Records a loaded module; a second load under the same name replaces the first record. */
  add(info: ModuleInfo): void {
    const prev = this.#modules.get(info.name)
    if (prev && this.#byChunk.get(prev.chunk) === info.name) this.#byChunk.delete(prev.chunk)
    this.#modules.set(info.name, { ...info, reload: info.reload || (prev?.reload ?? false) })
    this.#byChunk.set(info.chunk, info.name)
  }

  get(name: string): ModuleInfo | undefined {
    return this.#modules.get(name)
  }

  get size(): number { return this.#modules.size }

  /** The module whose file a function with this `source` (debug.getinfo) was defined in. */
  moduleOfChunk(source: string): string | undefined {
    return this.#byChunk.get(source)
  }

  /** `from` required `to`. Self-edges are ignored. */
  addEdge(from: string, to: string): void {
    if (from === to) return
    let d = this.#deps.get(from)
    if (!d) this.#deps.set(from, (d = new Set()))
    d.add(to)
    let u = this.#users.get(to)
    if (!u) this.#users.set(to, (u = new Set()))
    u.add(from)
  }

  /** Names the module requires (loaded or not). */
  depsOf(name: string): string[] {
    return [...(this.#deps.get(name) ?? [])]
  }

  /** Loaded modules that require `name`, directly or through others. */
  dependentsOf(name: string): Set<string> {
    const out = new Set<string>()
    const stack = [name]
    while (stack.length > 0) {
      for (const u of this.#users.get(stack.pop() as string) ?? []) {
        if (!out.has(u) && this.#modules.has(u)) {
          out.add(u)
          stack.push(u)
        }
      }
    }
    out.delete(name)
    return out
  }

  /** Subscribed modules loaded from wire path `path`. */
  subscribedAt(path: string): string[] {
    return [...this.#modules.values()].filter((m) => m.reload && m.path === path).map((m) => m.name)
  }

  /**
   * The modules to reload when `changed` did, in order: each after every module of the set it
   * requires (a cycle is broken where it is entered). Ties keep `changed` order, then load order.
   */
  reloadOrder(changed: readonly string[]): string[] {
    const set = new Set<string>()
    for (const name of changed) {
      if (!this.#modules.has(name)) continue
      set.add(name)
      for (const d of this.dependentsOf(name)) set.add(d)
    }
    const order: string[] = []
    const state = new Map<string, 'visiting' | 'done'>()
    const visit = (name: string): void => {
      if (state.has(name)) return
      state.set(name, 'visiting')
      for (const dep of this.#deps.get(name) ?? []) if (set.has(dep)) visit(dep)
      state.set(name, 'done')
      order.push(name)
    }
    for (const name of changed) if (set.has(name)) visit(name)
    for (const name of this.#modules.keys()) if (set.has(name)) visit(name)
    return order
  }
}
