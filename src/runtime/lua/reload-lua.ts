/**
 * Lua side of hot reload (issue 13), after lume's hotswap: the new version of a module runs, and
 * the table every holder already has is updated in place (`local M = require 'm'` held elsewhere
 * sees the new functions). On top of lume:
 * - keys the new version dropped are dropped; tables nested in the module are patched the same
 *   way (so a class table shared by instances' metatables keeps its identity), metatables too;
 * - the new functions' upvalues that point at a new table are re-pointed at the old one it was
 *   patched into, so `M.count = M.count + 1` inside the new code and `M.count` read by a holder
 *   are the same field;
 * - `new.__reload(old)` runs first, with the old table still untouched, to carry state over;
 * - any failure (syntax, runtime error, `__reload` error) leaves the old version in place and
 *   restores the globals the attempt changed; the message keeps its `file:line`.
 */
export const RELOAD_LUA = String.raw`
local LOADED = package.loaded
local rawget, rawset, next, type = rawget, rawset, next, type
local getmt, setmt = debug.getmetatable, debug.setmetatable

-- Makes 'old' hold what 'new' holds, recursively; map records new table -> old table.
local function patch(old, new, map)
  if map[new] then return end
  map[new] = old
  local om, nm = getmt(old), getmt(new)
  if type(om) == 'table' and type(nm) == 'table' and om ~= nm then patch(om, nm, map)
  elseif om ~= nm then setmt(old, nm) end
  for k, v in next, new do
    local ov = rawget(old, k)
    if type(v) == 'table' and map[v] then rawset(old, k, map[v])
    elseif type(v) == 'table' and type(ov) == 'table' and ov ~= v then patch(ov, v, map)
    else rawset(old, k, v) end
  end
  for k in next, old do
    if rawget(new, k) == nil then rawset(old, k, nil) end
  end
end

-- Re-points upvalues that hold a patched-away new table at the old one.
local function rebind_fn(f, map, seen)
  if seen[f] then return end
  seen[f] = true
  for i = 1, math.huge do
    local name, v = debug.getupvalue(f, i)
    if not name then break end
    if type(v) == 'table' and map[v] then debug.setupvalue(f, i, map[v])
    elseif type(v) == 'function' then rebind_fn(v, map, seen) end
  end
end
local function rebind(map)
  local seen = {}
  for _, old in next, map do
    for _, v in next, old do
      if type(v) == 'function' then rebind_fn(v, map, seen) end
    end
  end
end

local function snapshot()
  local s = {}
  for k, v in next, _G do s[k] = v end
  return s
end
local function restore(before)
  for k in next, _G do
    if before[k] == nil then rawset(_G, k, nil) end
  end
  for k, v in next, before do rawset(_G, k, v) end
end

local function handler(e) return H.errstring(e) end

-- Reloads one loaded module from its local file. Returns true, or false and the message.
local function reload_one(name)
  local info = H.modinfo[name]
  if not info then return false, 'module ' .. name .. ' is not loaded' end
  local src, err = B.readfile(info.file)
  if not src then return false, 'cannot read ' .. info.extra .. ': ' .. err end
  local fn, lerr = H.load_text(src, info.chunk)
  if not fn then return false, lerr end
  local old = LOADED[name]
  local before = snapshot()
  LOADED[name] = nil
  local t = H.current
  t.stack[#t.stack + 1] = name
  local ok, new = xpcall(fn, handler, name, info.extra)
  t.stack[#t.stack] = nil
  if ok then
    if new == nil then new = LOADED[name] end
    if new == nil then new = true end
    if type(old) == 'table' and type(new) == 'table' and old ~= new and type(rawget(new, '__reload')) == 'function' then
      ok, new = xpcall(function() new.__reload(old); return new end, handler)
    end
  end
  if not ok then
    restore(before)
    LOADED[name] = old
    return false, new
  end
  local map = {}
  if type(old) == 'table' and type(new) == 'table' and old ~= new then
    patch(old, new, map)
    LOADED[name] = old
  else
    LOADED[name] = new
  end
  for k, now in next, _G do -- global tables keep their identity too (only existing keys are set)
    if type(now) == 'table' then
      local v = before[k]
      if map[now] then rawset(_G, k, map[now])
      elseif type(v) == 'table' and v ~= now then patch(v, now, map); rawset(_G, k, v) end
    end
  end
  rebind(map)
  return true
end

-- One reload task per module: the host runs them one after another, in dependency order.
function D.reload(name)
  return H.spawn(function()
    local ok, err = reload_one(name)
    B.reload_done(name, ok, ok and '' or err)
  end, 'blocking', 'reload')
end
`
