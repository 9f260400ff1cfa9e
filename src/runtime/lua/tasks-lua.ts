/**
 * Lua side of the scheduler. Every piece of script code (the main chunk, each `update(dt)`, each
 * callback, each reload) runs as a task: a coroutine the host resumes with `D.resume(id, ...)`.
 *
 * Waiting on the network is a plain Lua `coroutine.yield(WAIT, request)` from Lua code, never a
 * yield across a JS call (wasmoon cannot resume those from inside searchers or JS-called
 * functions). The yield reaches the task's root even from inside a script's own coroutines:
 * `coroutine.resume` and `coroutine.wrap` pass host signals up and the answer back down, and
 * remember whether the chain up to the root can yield at all, so a wait where it cannot (inside a
 * C function such as table.sort's comparator) fails with a clear error instead of corrupting the
 * script's coroutine.
 *
 * Composed into one chunk with the other parts (see prelude.ts); shares the locals B, H, D.
 */
export const TASKS_LUA = String.raw`
-- The stock coroutine functions, kept once: installing the prelude again must not wrap the wrappers.
local REG = debug.getregistry()
local C = REG['assetsync.coroutine'] or {
  create = coroutine.create, resume = coroutine.resume, yield = coroutine.yield, status = coroutine.status,
  running = coroutine.running, isyieldable = coroutine.isyieldable, close = coroutine.close,
}
REG['assetsync.coroutine'] = C
local co_create, co_resume, co_yield, co_status = C.create, C.resume, C.yield, C.status
local co_running, co_isyieldable, co_close = C.running, C.isyieldable, C.close
local pack, unpack = table.pack, table.unpack

local WAIT, EXIT = setmetatable({}, { __name = 'assetsync.wait' }), setmetatable({}, { __name = 'assetsync.exit' })
H.WAIT = WAIT
local roots = setmetatable({}, { __mode = 'k' })   -- task coroutine -> task
local chain = setmetatable({}, { __mode = 'k' })   -- script coroutine -> its resumer can pass a wait up
local tasks = {}
local next_id = 0
H.current = nil

-- Can the running code wait for the host (yield up to its task's root)?
local function can_wait()
  if not co_isyieldable() then return false end
  local co = co_running()
  return roots[co] ~= nil or chain[co] == true
end
H.can_wait = can_wait

-- Starts a task; the host steps it on its next turn, never inside the call that spawned it.
local function spawn(fn, prio, kind, ...)
  next_id = next_id + 1
  local co = co_create(fn)
  local t = { id = next_id, co = co, prio = prio, args = pack(...), stack = {} }
  tasks[t.id] = t
  roots[co] = t
  B.spawned(t.id, kind or 'callback')
  return t.id
end
H.spawn = spawn

-- Suspends the running task until the host resumes it; returns what the host passed.
function H.wait(request)
  return co_yield(WAIT, request)
end

local function errstring(e)
  if type(e) == 'string' then return e end
  local mt = getmetatable(e)
  if mt and mt.__tostring then return tostring(e) end
  return string.format('(error object is a %s value)', type(e))
end
H.errstring = errstring

-- A traceback without the host's own frames.
local function traceback(co, msg)
  local tb = debug.traceback(co, msg)
  local out = {}
  for line in (tb .. '\n'):gmatch('([^\n]*)\n') do
    if not line:find('[assetsync]', 1, true) then out[#out + 1] = line end
  end
  return table.concat(out, '\n')
end

-- Resumes task id with the host's values. Returns 0 done, 1 waiting, 2 failed (reported through
-- B.task_error), 3 os.exit.
function D.resume(id, ...)
  local t = tasks[id]
  if not t then return 0 end
  H.current = t
  local r
  if t.args then
    local a = t.args
    t.args = nil
    r = pack(co_resume(t.co, unpack(a, 1, a.n)))
  else
    r = pack(co_resume(t.co, ...))
  end
  H.current = nil
  if not r[1] then
    tasks[id] = nil
    if r[2] == EXIT then return 3 end
    local msg = errstring(r[2])
    B.task_error(id, msg, traceback(t.co, msg))
    co_close(t.co)
    return 2
  end
  if co_status(t.co) == 'dead' then tasks[id] = nil; return 0 end
  if r[2] == WAIT then return 1 end
  tasks[id] = nil
  return 3 -- EXIT
end

-- Passes a host signal from a script coroutine up to the task, and the answer back down.
local function pass(co, ok, ...)
  if ok and co_status(co) == 'suspended' then
    local sig = ...
    if sig == WAIT or sig == EXIT then return pass(co, co_resume(co, co_yield(...))) end
  end
  return ok, ...
end

function coroutine.resume(co, ...)
  if type(co) == 'thread' then chain[co] = can_wait() end
  return pass(co, co_resume(co, ...))
end

function coroutine.wrap(f)
  if type(f) ~= 'function' then error(string.format("bad argument #1 to 'wrap' (function expected, got %s)", type(f)), 2) end
  local co = co_create(f)
  return function(...)
    chain[co] = can_wait()
    local r = pack(pass(co, co_resume(co, ...)))
    if r[1] then return unpack(r, 2, r.n) end
    if co_status(co) == 'dead' then co_close(co) end
    if type(r[2]) == 'string' then error(r[2], 2) end
    error(r[2], 0)
  end
end

-- A task's root is the script's main thread as far as the script can tell.
function coroutine.yield(...)
  if roots[co_running()] then error('attempt to yield from outside a coroutine', 2) end
  return co_yield(...)
end
function coroutine.isyieldable(co)
  co = co or co_running()
  if roots[co] then return false end
  return co_isyieldable(co)
end
function coroutine.running()
  local co, main = co_running()
  if roots[co] then return co, true end
  return co, main
end

function os.exit(code)
  if code == nil or code == true then code = 0
  elseif code == false then code = 1
  else
    local n = math.tointeger(code)
    if not n then error("bad argument #1 to 'exit' (number has no integer representation)", 2) end
    code = n
  end
  B.exit(code)
  if can_wait() then co_yield(EXIT) end
  error(EXIT, 0) -- cannot yield here: unwind; the host ends the run as soon as it has control
end

-- The main chunk: arg as the stock interpreter sets it, the words after the script as '...'.
function D.main(file, chunk, script, ...)
  local argv = pack(...)
  local a = { [0] = script, [-1] = 'assetsync' }
  for i = 1, argv.n do a[i] = argv[i] end
  arg = a
  local src, err = B.readfile(file)
  if not src then return 'cannot open ' .. script .. ': ' .. err end
  local fn, lerr = H.load_text(src, chunk)
  if not fn then return lerr end
  spawn(fn, 'blocking', 'main', unpack(argv, 1, argv.n))
  return nil
end

function D.has_update() return type(rawget(_G, 'update')) == 'function' end

-- One tick: a task that calls the global update(dt). Returns its id (0: no update function).
function D.update(dt)
  if type(rawget(_G, 'update')) ~= 'function' then return 0 end
  return spawn(function() return update(dt) end, 'blocking', 'update')
end
`
