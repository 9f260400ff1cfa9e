/**
 * The Lua 5.4 host behind `assetsync run <script>` (issue 13): one wasmoon state, the script's
 * tasks, the game loop and hot reload, on top of an AssetProvider (the network, or a folder).
 *
 * How a task waits: Lua calls B.fetch (JS starts provider.fetch, returns a request id at once),
 * then yields its task. When the promise settles, the host queues `(task, results)`; the pump
 * resumes queued tasks one at a time (D.resume), always from a fresh macrotask, never inside a
 * Lua call. Nothing here prints: script output goes to the injected streams, events to onEvent,
 * failures reject run() (ScriptError: exit 7).
 */
import { randomBytes } from 'node:crypto'
import { isAbsolute, relative, sep } from 'node:path'
import { AssetSyncError } from '../errors.js'
import { printable } from '../core/fs/paths.js'
import { DEFAULT_TICK_HZ, MAX_TICK_HZ } from '../limits.js'
import type { Clock } from '../protocol/clock.js'
import { LuaBridge, createLuaEngine } from './lua-bridge.js'
import { LuaFiles } from './lua-fs.js'
import { ModuleGraph } from './module-graph.js'
import { type HostPort, type LuaDriver, installPrelude } from './prelude.js'
import type { AssetChange, AssetProvider, FetchAction, FetchPriority } from './provider.js'
import { ReloadJob } from './reload-job.js'

/** `--json` events of `run` (docs: ../shared/design.md, CLI contract). */
export type RuntimeEvent =
  | { event: 'required'; path: string; action: FetchAction; ms: number }
  | { event: 'reloaded'; paths: string[]; ms: number }
  | { event: 'reload-error'; path: string; message: string }

export interface RunOptions {
  /** The main script: a wire path, fetched like every module. */
  script: string
  provider: AssetProvider
  /** `arg[1..n]` and the main chunk's `...`. */
  args?: readonly string[]
  /** `package.path` to start from (LUA_PATH style, wire paths); default "?.lua;?/init.lua". */
  luaPath?: string
  /** `update(dt)` calls per second (default DEFAULT_TICK_HZ). */
  tick?: number
  /** Call `update` once, then end when nothing is pending. */
  once?: boolean
  /** The folder `io` and `os` resolve relative paths against (default process.cwd()). */
  cwd?: string
  /** What `os.getenv` sees (default process.env). */
  env?: NodeJS.ProcessEnv
  stdout?: NodeJS.WritableStream
  stderr?: NodeJS.WritableStream
  /** File descriptor io.stdin reads (default 0). */
  stdinFd?: number
  /** Drives the game loop (tests pass a ManualClock); default: ref'd real timers. */
  clock?: Clock
  /** Subscription owner id at the provider (default: random). */
  instance?: string
  onEvent?: (event: RuntimeEvent) => void
}

export const DEFAULT_LUA_PATH = '?.lua;?/init.lua'

/** An uncaught Lua error (main chunk, `update`, a callback): exit code 7. */
export class ScriptError extends AssetSyncError {
  /** The Lua error message, e.g. "main.lua:3: boom". */
  readonly luaMessage: string
  /** "stack traceback:\n\t..." (the host's own frames left out). */
  readonly traceback: string
  constructor(luaMessage: string, traceback: string) {
    super('ERR_SCRIPT', `script error: ${luaMessage}`)
    this.name = 'ScriptError'
    this.luaMessage = luaMessage
    this.traceback = traceback.startsWith(luaMessage) ? traceback.slice(luaMessage.length).replace(/^\n/, '') : traceback
  }
}

/** Real timers that keep the process alive while the game loop runs. */
const loopClock: Clock = {
  now: () => performance.now(),
  every(ms, fn) { const t = setInterval(fn, ms); return () => clearInterval(t) },
  after(ms, fn) { const t = setTimeout(fn, ms); return () => clearTimeout(t) },
}

type TaskKind = 'main' | 'update' | 'reload' | 'callback'

export class LuaHost {
  readonly #o: RunOptions
  readonly #instance: string
  readonly #cwd: string
  readonly #clock: Clock
  readonly #tickHz: number
  readonly graph = new ModuleGraph()
  #bridge: LuaBridge | null = null
  #files: LuaFiles | null = null
  #driver: LuaDriver | null = null
  readonly #tasks = new Map<number, TaskKind>()
  readonly #ready: { id: number; values: unknown[] }[] = []
  #scheduled = false
  #running = 0
  #requests = 0
  #reqSeq = 0
  #mainDone = false
  #updateTask = 0
  #updates = 0
  #stopLoop: (() => void) | null = null
  #lastTick = 0
  #exitCode: number | null = null
  #finished = false
  #unsubscribe: (() => void) | null = null
  readonly #pending = new Map<string, AssetChange>()
  #job: ReloadJob | null = null
  #resolve!: (code: number) => void
  #reject!: (err: unknown) => void
  readonly #done = new Promise<number>((res, rej) => { this.#resolve = res; this.#reject = rej })

  constructor(opts: RunOptions) {
    this.#o = opts
    this.#instance = opts.instance ?? randomBytes(8).toString('hex')
    this.#cwd = opts.cwd ?? process.cwd()
    this.#clock = opts.clock ?? loopClock
    this.#tickHz = opts.tick ?? DEFAULT_TICK_HZ
    if (!(this.#tickHz > 0 && this.#tickHz <= MAX_TICK_HZ)) {
      throw new AssetSyncError('ERR_USAGE', `--tick must be between 0 and ${MAX_TICK_HZ} (exclusive of 0), got ${this.#tickHz}`)
    }
  }

  /** Runs the script to its end; resolves the exit code (0, or os.exit's), rejects ScriptError or a fatal provider error. */
  async run(): Promise<number> {
    const o = this.#o
    const t0 = performance.now()
    const res = await o.provider.fetch(o.script, { network: true, reload: false, instance: this.#instance, priority: 'blocking' })
    if (!res) throw new AssetSyncError('ERR_NOT_FOUND', `script not found: ${printable(o.script)}`)
    this.#emit({ event: 'required', path: o.script, action: res.action, ms: Math.round(performance.now() - t0) })
    this.#bridge = new LuaBridge(await createLuaEngine())
    this.#files = new LuaFiles(this.#cwd, { stdout: o.stdout ?? process.stdout, stderr: o.stderr ?? process.stderr, stdinFd: o.stdinFd })
    this.#driver = installPrelude(this.#bridge, this.#files, this.#port(), o.env ?? process.env)
    const g = this.#bridge.engine.global
    g.set('__assetsync_path', o.luaPath ?? DEFAULT_LUA_PATH)
    this.#bridge.run('package.path = __assetsync_path; __assetsync_path = nil', '=[assetsync]')
    this.#unsubscribe = o.provider.onChange((c) => this.#onChange(c))
    const err = this.#driver.main(res.localPath, `@${this.#display(res.localPath)}`, o.script, ...(o.args ?? []))
    if (err) this.#fail(new ScriptError(err, ''))
    return this.#done
  }

  /** Ends the run (Ctrl-C): resolves run() with `code`. */
  stop(code = 0): void {
    this.#finish(code)
  }

  #emit(e: RuntimeEvent): void {
    this.#o.onEvent?.(e)
  }

  /** A local path as the script sees it: relative to cwd when inside it (as stock lua names files). */
  #display(localPath: string): string {
    const rel = relative(this.#cwd, localPath)
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return localPath
    return rel.split(sep).join('/')
  }

  #port(): HostPort {
    return {
      fetch: (path, network, reload, kind, priority) => this.#fetch(path, network, reload, kind, priority),
      spawned: (id, kind) => {
        this.#tasks.set(id, kind === 'main' || kind === 'update' || kind === 'reload' ? kind : 'callback')
        this.#enqueue(id, [])
      },
      wake: (id) => this.#enqueue(id, []),
      taskError: (_id, message, traceback) => this.#fail(new ScriptError(message, traceback)),
      exit: (code) => { this.#exitCode ??= ((code % 256) + 256) % 256 },
      module: (name, path, chunk, reload) => this.graph.add({ name, path, chunk, reload }),
      edge: (fromChunk, fromModule, name) => {
        const from = this.graph.moduleOfChunk(fromChunk) ?? (fromModule || undefined)
        if (from !== undefined) this.graph.addEdge(from, name)
      },
      reloadDone: (name, ok, message) => this.#job?.done(name, ok, message),
    }
  }

  #fetch(path: string, network: boolean, reload: boolean, kind: 'module' | 'asset', priority: FetchPriority): number {
    const req = ++this.#reqSeq
    const task = this.#running
    const t0 = performance.now()
    this.#requests++
    this.#o.provider.fetch(path, { network, reload, instance: this.#instance, priority }).then((res) => {
      this.#requests--
      if (!res) return this.#enqueue(task, [true, false])
      if (kind === 'module') this.#emit({ event: 'required', path, action: res.action, ms: Math.round(performance.now() - t0) })
      this.#enqueue(task, [true, true, res.localPath, `@${this.#display(res.localPath)}`, res.hash, res.size])
    }, (err: unknown) => {
      this.#requests--
      if (err instanceof AssetSyncError && err.code === 'ERR_NOT_FOUND') return this.#enqueue(task, [true, false])
      if (err instanceof AssetSyncError && err.code === 'ERR_PATH_REFUSED') return this.#enqueue(task, [false, err.message])
      this.#fail(err) // connection lost, integrity, local write: the run cannot go on
    })
    return req
  }

  #enqueue(id: number, values: unknown[]): void {
    if (this.#finished) return
    this.#ready.push({ id, values })
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => this.#pump())
    }
  }

  #pump(): void {
    this.#scheduled = false
    while (this.#ready.length > 0 && !this.#finished) {
      const { id, values } = this.#ready.shift() as { id: number; values: unknown[] }
      this.#step(id, values)
    }
    this.#checkIdle()
  }

  #step(id: number, values: unknown[]): void {
    const driver = this.#driver as LuaDriver
    let status: number
    this.#running = id
    try {
      status = driver.resume(id, ...values.map((v) => (v === null ? undefined : v)))
    } catch (err) {
      return this.#fail(err)
    } finally {
      this.#running = 0
    }
    if (this.#exitCode !== null) return this.#finish(this.#exitCode)
    if (status === 0) this.#taskDone(id)
    else if (status === 2 || status === 3) this.#tasks.delete(id)
  }

  #taskDone(id: number): void {
    const kind = this.#tasks.get(id)
    this.#tasks.delete(id)
    if (kind === 'main') {
      this.#mainDone = true
      this.#startLoop()
    } else if (kind === 'update') {
      this.#updateTask = 0
    } else if (kind === 'reload') {
      this.#job?.next()
    }
  }

  #startLoop(): void {
    const driver = this.#driver as LuaDriver
    if (!driver.has_update()) return
    if (this.#o.once) {
      this.#runUpdate(1 / this.#tickHz)
      return
    }
    this.#lastTick = this.#clock.now()
    this.#stopLoop = this.#clock.every(1000 / this.#tickHz, () => {
      if (this.#updateTask !== 0 || this.#finished) return // still waiting on the network: skip this tick
      const now = this.#clock.now()
      const dt = (now - this.#lastTick) / 1000
      this.#lastTick = now
      this.#runUpdate(dt)
    })
  }

  #runUpdate(dt: number): void {
    this.#updates++
    this.#updateTask = (this.#driver as LuaDriver).update(dt)
  }

  /** Ends the run when the main chunk and every pending task and request are done. */
  #checkIdle(): void {
    if (this.#finished || !this.#mainDone || this.#stopLoop) return
    if (this.#tasks.size > 0 || this.#requests > 0 || this.#ready.length > 0 || this.#job || this.#pending.size > 0) return
    this.#finish(0)
  }

  #onChange(change: AssetChange): void {
    if (this.#finished) return
    this.#pending.set(change.path, change)
    if (!this.#job) setImmediate(() => this.#startReload())
  }

  #startReload(): void {
    if (this.#job || this.#pending.size === 0 || this.#finished) return
    const changes = [...this.#pending.values()]
    this.#pending.clear()
    const driver = this.#driver as LuaDriver
    const names = changes.flatMap((c) => this.graph.subscribedAt(c.path))
    this.#job = new ReloadJob(this.graph, this.graph.reloadOrder(names), {
      start: (name) => driver.reload(name),
      emit: (e) => this.#emit(e),
      end: () => {
        this.#job = null
        for (const c of changes) driver.asset_changed(c.path, this.#display(c.localPath), c.hash, c.size)
        if (this.#pending.size > 0) setImmediate(() => this.#startReload())
        else if (this.#ready.length === 0) setImmediate(() => this.#checkIdle())
      },
    })
    this.#job.next()
  }

  #finish(code: number): void {
    if (this.#finished) return
    this.#finished = true
    this.#cleanup()
    this.#resolve(code)
  }

  #fail(err: unknown): void {
    if (this.#finished) return
    this.#finished = true
    this.#cleanup()
    this.#reject(err)
  }

  /** Stops timers and subscriptions now; the Lua state is closed once no Lua call is on the stack. */
  #cleanup(): void {
    this.#stopLoop?.()
    this.#stopLoop = null
    this.#unsubscribe?.()
    this.#o.provider.release(this.#instance).catch(() => {})
    setImmediate(() => {
      this.#files?.closeAll()
      this.#bridge?.close()
      this.#bridge = null
    })
  }

  /** `update` calls so far (tests). */
  get updates(): number { return this.#updates }

  /** The main chunk is done and the game loop's timer runs. */
  get looping(): boolean { return this.#stopLoop !== null }
}

/** Runs `opts.script` to its end: the exit code, or a rejection (ScriptError: exit 7). */
export function runScript(opts: RunOptions): Promise<number> {
  return new LuaHost(opts).run()
}
