/**
 * Installs the host into a fresh Lua state: the JS functions Lua calls (the table `B`, kept in
 * the prelude's upvalues, never global), and the Lua prelude (stdlib, tasks, require, reload),
 * composed into one chunk named "[assetsync]" (tracebacks drop its frames). Returns the driver `D`
 * the host calls into.
 */
import { checkWirePath } from '../core/fs/paths.js'
import type { FetchPriority } from './provider.js'
import { type LuaArg, type LuaBridge, type LuaRet, text } from './lua-bridge.js'
import { FsFailure, type LuaFiles } from './lua-fs.js'
import { RELOAD_LUA } from './lua/reload-lua.js'
import { REQUIRE_LUA } from './lua/require-lua.js'
import { STDLIB_LUA } from './lua/stdlib-lua.js'
import { TASKS_LUA } from './lua/tasks-lua.js'

/** What the Lua side tells the host. */
export interface HostPort {
  /** Starts a fetch for the running task; returns its request id. */
  fetch(path: string, network: boolean, reload: boolean, kind: 'module' | 'asset', priority: FetchPriority): number
  /** A task was created; step it on the next turn. */
  spawned(id: number, kind: string): void
  /** A task waiting for another task's module load may go on. */
  wake(id: number): void
  taskError(id: number, message: string, traceback: string): void
  exit(code: number): void
  module(name: string, path: string, chunk: string, reload: boolean): void
  /** A function defined in chunk `fromChunk` (or, failing that, module `fromModule`) required `name`. */
  edge(fromChunk: string, fromModule: string, name: string): void
  reloadDone(name: string, ok: boolean, message: string): void
}

/** What the host calls in Lua. Every call is synchronous and never yields. */
export interface LuaDriver {
  /** 0 done, 1 waiting, 2 failed (reported through HostPort.taskError), 3 os.exit. */
  resume(id: number, ...values: unknown[]): number
  /** Loads the main chunk and spawns its task; returns a load error message, or null. */
  main(file: string, chunk: string, script: string, ...args: string[]): string | null
  has_update(): boolean
  /** Spawns one `update(dt)` task; returns its id (0 when there is no update function). */
  update(dt: number): number
  /** Spawns the reload task of one module; returns its id. */
  reload(name: string): number
  asset_changed(path: string, file: string, hash: string, size: number): void
}

/** Why `name` (a plain module name, dots as separators) may not be required, or null. */
export function checkModuleName(name: string): string | null {
  if (name.includes('..')) return '".." in module name'
  return checkWirePath(name.replaceAll('.', '/'))
}

function utf8OrReason(arg: LuaArg): string | { reason: string } {
  try {
    return text(arg, 'name')
  } catch {
    return { reason: 'not valid UTF-8' }
  }
}

/** Failure triples as Lua's luaL_fileresult returns them. */
function result(v: LuaRet | FsFailure): LuaRet[] {
  return v instanceof FsFailure ? [null, v.message, v.errno] : [v]
}

const num = (a: LuaArg): number => (typeof a === 'number' ? a : Number.NaN)

export function installPrelude(bridge: LuaBridge, files: LuaFiles, port: HostPort, env: NodeJS.ProcessEnv): LuaDriver {
  const fn = bridge.bridge.bind(bridge)
  const str = (a: LuaArg, what: string): string => text(a, what)
  const B: Record<string, unknown> = {
    // stdlib
    write: fn((h, data) => { if (!Buffer.isBuffer(data)) throw new Error('write: string expected'); return result(files.write(num(h), data)) }),
    read: fn((h, what) => result(files.read(num(h), Buffer.isBuffer(what) ? what.toString('latin1') : num(what)))),
    open: fn((name, mode) => result(files.open(str(name, 'io.open'), str(mode, 'io.open')))),
    close: fn((h) => result(files.close(num(h)))),
    seek: fn((h, whence, off) => result(files.seek(num(h), str(whence, 'seek'), num(off)))),
    readfile: fn((name) => { const r = files.readFile(str(name, 'loadfile')); return r instanceof FsFailure ? [null, r.message] : [r] }),
    remove: fn((name) => result(files.remove(str(name, 'os.remove')))),
    rename: fn((a, b) => result(files.rename(str(a, 'os.rename'), str(b, 'os.rename')))),
    tmpname: fn(() => files.tmpname()),
    getenv: fn((name) => env[str(name, 'os.getenv')] ?? null),
    clock: fn(() => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 }),
    execute: fn((cmd) => { const r = files.execute(str(cmd, 'os.execute'), env); return [r.ok, r.how, r.code] }),
    // host
    check_path: fn((p) => { const s = utf8OrReason(p); return typeof s === 'string' ? checkWirePath(s) : s.reason }),
    check_name: fn((p) => { const s = utf8OrReason(p); return typeof s === 'string' ? checkModuleName(s) : s.reason }),
    fetch: fn((path, network, reload, kind, prio) => port.fetch(str(path, 'fetch'), network === true, reload === true,
      str(kind, 'fetch') === 'asset' ? 'asset' : 'module', str(prio, 'fetch') === 'background' ? 'background' : 'blocking')),
    spawned: fn((id, kind) => { port.spawned(num(id), str(kind, 'spawn')) }),
    wake: fn((id) => { port.wake(num(id)) }),
    task_error: fn((id, msg, tb) => { port.taskError(num(id), str(msg, 'error'), str(tb, 'error')) }),
    exit: fn((code) => { port.exit(num(code)) }),
    module: fn((name, path, chunk, reload) => { port.module(str(name, 'module'), str(path, 'module'), str(chunk, 'module'), reload === true) }),
    // Lossy on purpose: an edge to a name that is not UTF-8 names a module that never loads.
    edge: fn((from, mod, name) => { port.edge(String(from), String(mod), String(name)) }),
    reload_done: fn((name, ok, msg) => { port.reloadDone(str(name, 'reload'), ok === true, str(msg, 'reload')) }),
  }
  const source = [
    'local B = ...',
    'local H, D = {}, {}',
    'H.load_text = (function(...)',
    STDLIB_LUA,
    'end)(B).load_text',
    TASKS_LUA,
    REQUIRE_LUA,
    RELOAD_LUA,
    'return D',
  ].join('\n')
  const g = bridge.engine.global
  const top = g.getTop()
  g.loadString(source, '=[assetsync]')
  g.pushValue(B)
  const d = g.runSync(1)[0] as LuaDriver
  g.setTop(top)
  return d
}
