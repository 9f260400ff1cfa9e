/**
 * Lua side of `require`, `require_async`, `load_asset`, `load_asset_async` (issue 13).
 *
 * `require` is written in Lua (stock require is C: a searcher it calls cannot yield), follows
 * stock 5.4 step by step (package.loaded, package.searchers, loader(name, data), two results)
 * and waits for the network by yielding its task. package.searchers is { stock preload searcher,
 * the network searcher }: the network searcher walks `package.path` at call time, each template
 * naming a wire path on the server, so a script that edits package.path still works. Names
 * ending in ".lua" are wire paths. The stock require is kept once, in the global
 * `__stock_require`, and the wrapper never captures whatever `require` is at install time: a
 * second install can never wrap the wrapper (the seed's infinite recursion).
 */
export const REQUIRE_LUA = String.raw`
local sformat = string.format
if rawget(_G, '__stock_require') == nil then rawset(_G, '__stock_require', require) end
local LOADED = package.loaded
local DEFAULTS = { network = true, reload = false }
local modinfo = {}                                        -- name -> { path, file, chunk, extra }
H.modinfo = modinfo
local loading = {}                                        -- name -> lock while a task loads it
local loader_info = setmetatable({}, { __mode = 'k' })    -- loader function -> module info
local search_opts = setmetatable({}, { __mode = 'k' })    -- task -> options of its current search
local edges = {}

local function where(level)
  local info = debug.getinfo(level + 1, 'Sl')
  if info and info.currentline > 0 then return info.short_src .. ':' .. info.currentline .. ': ' end
  return ''
end
local function printable(s)
  return (s:gsub('[%z\1-\31\127]', function(c) return sformat('\\x%02x', c:byte()) end))
end
local function typename(n, v) if n == 0 then return 'no value' end return type(v) end

local function check_opts(opts, fname, argn, at)
  if opts == nil then return DEFAULTS end
  if type(opts) ~= 'table' then
    error(at .. sformat("bad argument #%d to '%s' (table expected, got %s)", argn, fname, type(opts)), 0)
  end
  local network, reload = opts.network, opts.reload
  if network == nil then network = true end
  return { network = not not network, reload = not not reload }
end

local function cannot_wait(what, name, at)
  error(at .. sformat("%s '%s': cannot wait for the network here (inside a C function such as a sort " ..
    "comparator or a gsub callback); call it at load time or use the _async variant", what, printable(name)), 0)
end

-- Asks the host for a wire path; nil if the server has no such file.
local function fetch(path, opts, kind, at)
  if not H.can_wait() then cannot_wait(kind == 'asset' and 'load_asset' or 'require', path, at) end
  local prio = H.current and H.current.prio or 'blocking'
  local req = B.fetch(path, opts.network, opts.reload, kind, prio)
  local ok, found, file, chunk, hash, size = H.wait(req)
  if not ok then error(at .. found, 0) end
  if not found then return nil end
  return { path = path, file = file, chunk = chunk, hash = hash, size = size }
end

local function note_edge(src, name)
  local key = (src or '') .. '\0' .. name
  if edges[key] then return end
  edges[key] = true
  local t = H.current
  B.edge(src or '', t and t.stack[#t.stack] or '', name)
end

local function file_loader(name, r, at)
  local src, err = B.readfile(r.file)
  local display = r.chunk:sub(2)
  if not src then error(at .. sformat("error loading module '%s' from file '%s':\n\t%s", name, display, err), 0) end
  local fn, lerr = H.load_text(src, r.chunk)
  if not fn then error(at .. sformat("error loading module '%s' from file '%s':\n\t%s", name, display, lerr), 0) end
  loader_info[fn] = { path = r.path, file = r.file, chunk = r.chunk, extra = display }
  return fn, display
end

-- package.searchers[2]: every template of package.path, in order, asked of the server.
local function network_searcher(name)
  local path = package.path
  if type(path) ~= 'string' then error("'package.path' must be a string", 0) end
  local t = H.current
  local opts = t and search_opts[t] or DEFAULTS
  local sub = name:gsub('%.', '/')
  local entries = {}
  for e in (path .. ';'):gmatch('([^;]*);') do entries[#entries + 1] = e end
  if #entries > 1 and entries[#entries] == '' then entries[#entries] = nil end
  local tried = {}
  for _, template in ipairs(entries) do
    local file = template:gsub('%?', (sub:gsub('%%', '%%%%')))
    local wire = file
    while wire:sub(1, 2) == './' do wire = wire:sub(3) end
    if B.check_path(wire) == nil then
      local r = fetch(wire, opts, 'module', '')
      if r then return file_loader(name, r, '') end
    end
    tried[#tried + 1] = "no file '" .. file .. "'"
  end
  return table.concat(tried, '\n\t')
end
package.searchers = { package.searchers[1], network_searcher }
package.cpath = ''

local LOCK = { __close = function(l)
  loading[l.name] = nil
  for _, id in ipairs(l.waiters) do B.wake(id) end
end }

-- Takes the load of 'name' for the running task, or waits while another task loads it.
-- Returns nil when it got loaded meanwhile.
local function acquire(name, at)
  while true do
    local l = loading[name]
    if not l then
      l = setmetatable({ name = name, task = H.current, waiters = {} }, LOCK)
      loading[name] = l
      return l
    end
    local me = H.current
    if not me then cannot_wait('require', name, at) end
    if l.task == me then error(at .. sformat("loop or previous error loading module '%s'", name), 0) end
    local t = l.task
    while t do
      if t == me then error(at .. sformat("circular require of module '%s' between tasks", name), 0) end
      t = t.waits_for
    end
    if not H.can_wait() then cannot_wait('require', name, at) end
    me.waits_for = l.task
    l.waiters[#l.waiters + 1] = me.id
    H.wait(0)
    me.waits_for = nil
    if LOADED[name] then return nil end
  end
end

local function find_loader(name, opts, at)
  if name:sub(-4) == '.lua' then
    local why = B.check_path(name)
    if why then error(at .. sformat("module '%s' refused: %s", printable(name), why), 0) end
    local r = fetch(name, opts, 'module', at)
    if not r then
      error(at .. sformat("module '%s' not found:\n\tno field package.preload['%s']\n\tno file '%s'", name, name, name), 0)
    end
    return file_loader(name, r, at)
  end
  local why = B.check_name(name)
  if why then error(at .. sformat("module '%s' refused: %s", printable(name), why), 0) end
  local searchers = package.searchers
  if type(searchers) ~= 'table' then error(at .. "'package.searchers' must be a table", 0) end
  local t = H.current
  if t then search_opts[t] = opts end
  local msg = {}
  for i = 1, math.huge do
    local s = searchers[i]
    if s == nil then break end
    local loader, extra = s(name)
    if type(loader) == 'function' then
      if t then search_opts[t] = nil end
      return loader, extra
    elseif type(loader) == 'string' then
      msg[#msg + 1] = '\n\t' .. loader
    end
  end
  if t then search_opts[t] = nil end
  error(at .. sformat("module '%s' not found:%s", name, table.concat(msg)), 0)
end

local function require_impl(name, opts, src, at)
  local v = LOADED[name]
  if v then note_edge(src, name); return v end
  local o = check_opts(opts, 'require', 2, at)
  if package.preload[name] ~= nil then note_edge(src, name); return __stock_require(name) end
  if not H.can_wait() then cannot_wait('require', name, at) end
  local lock <close> = acquire(name, at)
  if not lock then note_edge(src, name); return LOADED[name] end
  note_edge(src, name)
  local loader, extra = find_loader(name, o, at)
  local t = H.current
  if t then t.stack[#t.stack + 1] = name end
  local res = loader(name, extra)
  if t then t.stack[#t.stack] = nil end
  if res ~= nil then LOADED[name] = res end
  if LOADED[name] == nil then LOADED[name] = true end
  local info = loader_info[loader]
  if info then
    modinfo[name] = info
    B.module(name, info.path, info.chunk, o.reload)
  end
  return LOADED[name], extra
end
H.require = require_impl

function require(...)
  local name, opts = ...
  if type(name) == 'number' then name = tostring(name) end
  if type(name) ~= 'string' then
    error(sformat("bad argument #1 to 'require' (string expected, got %s)", typename(select('#', ...), name)), 2)
  end
  local v = LOADED[name]
  local src = debug.getinfo(2, 'S').source
  if v then note_edge(src, name); return v end
  return require_impl(name, opts, src, where(2))
end

function require_async(name, callback, opts)
  local at = where(2)
  if type(callback) ~= 'function' then
    error(at .. sformat("bad argument #2 to 'require_async' (function expected, got %s)", type(callback)), 0)
  end
  local src = debug.getinfo(2, 'S').source
  H.spawn(function()
    local ok, m, extra = pcall(require_impl, name, opts, src, '')
    H.current.prio = 'blocking'
    if ok then return callback(m, extra) end
    return callback(nil, m)
  end, 'background')
end

local handles, watched = {}, {}
H.handles = handles

local function load_asset_impl(path, opts, at)
  if type(path) ~= 'string' then error(at .. sformat("bad argument #1 to 'load_asset' (string expected, got %s)", type(path)), 0) end
  local o = check_opts(opts, 'load_asset', 2, at)
  local why = B.check_path(path)
  if why then error(at .. sformat("asset '%s' refused: %s", printable(path), why), 0) end
  local h = handles[path]
  if h and watched[path] then return h end
  if not H.can_wait() then cannot_wait('load_asset', path, at) end
  local r = fetch(path, o, 'asset', at)
  if not r then error(at .. sformat("asset '%s' not found", path), 0) end
  h = h or {}
  h.id, h.path, h.hash, h.size = path, r.chunk:sub(2), r.hash, r.size
  handles[path] = h
  if o.reload then watched[path] = true end
  return h
end

function load_asset(path, opts) return load_asset_impl(path, opts, where(2)) end

function load_asset_async(path, callback, opts)
  local at = where(2)
  if type(callback) ~= 'function' then
    error(at .. sformat("bad argument #2 to 'load_asset_async' (function expected, got %s)", type(callback)), 0)
  end
  H.spawn(function()
    local ok, h = pcall(load_asset_impl, path, opts, '')
    H.current.prio = 'blocking'
    if ok then return callback(h) end
    return callback(nil, h)
  end, 'background')
end

-- A subscribed asset changed: its handle is updated in place, then its on_change runs as a task.
function D.asset_changed(path, file, hash, size)
  local h = handles[path]
  if not h then return end
  h.path, h.hash, h.size = file, hash, size
  if type(h.on_change) == 'function' then
    H.spawn(function() return h.on_change(h) end, 'blocking')
  end
end
`
