/**
 * The wasmoon (Lua 5.4 in wasm) engine and the byte-exact bridge between Lua and JS.
 *
 * wasmoon's own value conversion reads Lua strings with a C-string read (stops at the first NUL,
 * mangles bytes that are not UTF-8) and pushes JS objects as proxies. Every function the host
 * hands to Lua goes through `bridge()` instead: its arguments are read with the raw API
 * (`lua_tolstring` + length, so `"a\0b"` and binary file contents arrive whole, as Buffers) and
 * its results are pushed the same way. Only primitives cross: strings, numbers, booleans, nil.
 */
import { type LuaEngine, LuaFactory, LuaRawResult, type LuaThread, decorateFunction } from 'wasmoon'

/** A Lua value as a bridge function receives it: strings arrive as their exact bytes. */
export type LuaArg = Buffer | number | boolean | null | undefined
/** What a bridge function may return: each element becomes one Lua value (strings as UTF-8). */
export type LuaRet = Buffer | string | number | boolean | null | undefined
export type BridgeFn = (...args: LuaArg[]) => LuaRet | LuaRet[] | void

interface RawModule {
  HEAPU8: Uint8Array
  HEAPU32: Uint32Array
  _malloc(n: number): number
  _free(p: number): void
  _lua_tolstring(L: number, idx: number, lenPtr: number): number
  _lua_pushlstring(L: number, p: number, n: number): number
  _lua_type(L: number, idx: number): number
  _lua_toboolean(L: number, idx: number): number
  _lua_pushnil(L: number): void
  _lua_gettop(L: number): number
}

const LUA_TNIL = 0
const LUA_TBOOLEAN = 1
const LUA_TNUMBER = 3
const LUA_TSTRING = 4

let factory: LuaFactory | null = null

/**
 * A fresh Lua 5.4 state with the standard libraries. The wasm module is compiled once per process
 * (~15 ms); each further engine costs well under a millisecond.
 */
export async function createLuaEngine(): Promise<LuaEngine> {
  factory ??= new LuaFactory(undefined, {})
  return factory.createEngine({ injectObjects: false, enableProxy: false, openStandardLibs: true })
}

/** The raw-API helpers of one engine. */
export class LuaBridge {
  readonly engine: LuaEngine
  readonly #m: RawModule
  readonly #lenPtr: number

  constructor(engine: LuaEngine) {
    this.engine = engine
    this.#m = engine.global.lua.module as unknown as RawModule
    this.#lenPtr = this.#m._malloc(4)
  }

  /** Frees the scratch word and the Lua state. */
  close(): void {
    this.#m._free(this.#lenPtr)
    this.engine.global.close()
  }

  #argAt(thread: LuaThread, i: number): LuaArg {
    const L = thread.address
    switch (this.#m._lua_type(L, i)) {
      case LUA_TSTRING: {
        const p = this.#m._lua_tolstring(L, i, this.#lenPtr)
        const n = this.#m.HEAPU32[this.#lenPtr >> 2] ?? 0
        return Buffer.from(this.#m.HEAPU8.subarray(p, p + n))
      }
      case LUA_TNUMBER: return thread.getValue(i) as number
      case LUA_TBOOLEAN: return this.#m._lua_toboolean(L, i) !== 0
      case LUA_TNIL: return null
      default: return undefined // tables, functions, ...: never sent over the bridge
    }
  }

  /** Pushes `bytes` as one Lua string, byte for byte. */
  pushBytes(thread: LuaThread, bytes: Uint8Array): void {
    const p = this.#m._malloc(bytes.length || 1)
    try {
      this.#m.HEAPU8.set(bytes, p)
      this.#m._lua_pushlstring(thread.address, p, bytes.length)
    } finally {
      this.#m._free(p)
    }
  }

  #push(thread: LuaThread, v: LuaRet): void {
    if (v === null || v === undefined) this.#m._lua_pushnil(thread.address)
    else if (typeof v === 'string') this.pushBytes(thread, Buffer.from(v, 'utf8'))
    else if (v instanceof Uint8Array) this.pushBytes(thread, v)
    else thread.pushValue(v)
  }

  /**
   * Wraps `fn` for Lua. A JS exception becomes a Lua error whose value is the message string, so
   * Lua code sees the same kind of error a C library function raises.
   */
  bridge(fn: BridgeFn): unknown {
    return decorateFunction((thread: LuaThread, argc: number) => {
      const args: LuaArg[] = []
      for (let i = 1; i <= argc; i++) args.push(this.#argAt(thread, i))
      let out: LuaRet | LuaRet[] | void
      try {
        out = fn(...args)
      } catch (err) {
        // wasmoon pushes the thrown value and raises it: a string stays a plain Lua string.
        throw err instanceof Error ? err.message : String(err)
      }
      if (out === undefined) return new LuaRawResult(0)
      const list = Array.isArray(out) ? out : [out]
      for (const v of list) this.#push(thread, v)
      return new LuaRawResult(list.length)
    }, { receiveThread: true, receiveArgsQuantity: true })
  }

  /** Runs `source` as a chunk named `chunkname` and returns its first result. */
  run(source: string, chunkname: string): unknown {
    const g = this.engine.global
    const top = g.getTop()
    g.loadString(source, chunkname)
    try {
      const out = g.runSync(0)
      return out[0]
    } finally {
      g.setTop(top)
    }
  }
}

/** A Lua string argument as text: strict UTF-8, or an error naming `what`. */
export function text(arg: LuaArg, what: string): string {
  if (!Buffer.isBuffer(arg)) throw new Error(`${what}: string expected`)
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(arg)
  } catch {
    throw new Error(`${what}: not valid UTF-8`)
  }
}
