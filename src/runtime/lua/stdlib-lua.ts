/**
 * Lua side of the real-file-system `io`, `os`, `print`, `loadfile` and `dofile` (JS side:
 * ../lua-fs.ts). Installed once per engine, before anything else runs. Files are tables with the
 * metatable named "FILE*"; `io.type` knows them. Messages and return values follow the stock
 * interpreter (`nil, "name: No such file or directory", 2`).
 */
export const STDLIB_LUA = String.raw`
local B = ...
local type, select, tostring, tonumber, error, setmetatable, getmetatable = type, select, tostring, tonumber, error, setmetatable, getmetatable
local sformat, ssub, concat, mtype, tointeger = string.format, string.sub, table.concat, math.type, math.tointeger
local load = load

local function typename(n, v) if n == 0 then return 'no value' end return type(v) end

-- io.write / file:write text of one argument (floats as "%.14g", as C's fprintf does)
local function wtext(v, i, fname)
  local t = type(v)
  if t == 'string' then return v end
  if t == 'number' then return mtype(v) == 'float' and sformat('%.14g', v) or tostring(v) end
  error(sformat("bad argument #%d to '%s' (string expected, got %s)", i, fname, t), 3)
end

local FILE = {}
local MT = { __name = 'FILE*', __index = FILE }
local STD = {}
local function newfile(h) return setmetatable({ h = h }, MT) end
MT.__tostring = function(f) if f.h then return sformat('file (%p)', f) end return 'file (closed)' end
MT.__gc = function(f) if f.h and not STD[f] then B.close(f.h); f.h = nil end end
MT.__close = MT.__gc

local function isfile(f) return getmetatable(f) == MT end
local function open_h(f, fname)
  if not isfile(f) then error(sformat("bad argument #1 to '%s' (FILE* expected, got %s)", fname, type(f)), 3) end
  if not f.h then error('attempt to use a closed file', 3) end
  return f.h
end

function FILE.close(f)
  local h = open_h(f, 'close')
  if STD[f] then return nil, 'cannot close standard file' end
  local ok, msg, no = B.close(h)
  f.h = nil
  if ok then return true end
  return nil, msg, no
end

local function read_formats(h, fname, n, ...)
  if n == 0 then
    local s, err, no = B.read(h, 'l')
    if err then return nil, err, no end
    return s
  end
  local out = {}
  for i = 1, n do
    local fmt = select(i, ...)
    local s, err, no
    if mtype(fmt) == 'integer' then
      s, err, no = B.read(h, fmt)
    elseif type(fmt) == 'number' then
      local k = tointeger(fmt)
      if not k then error(sformat("bad argument #%d to '%s' (number has no integer representation)", i, fname), 3) end
      s, err, no = B.read(h, k)
    elseif type(fmt) == 'string' then
      local c = ssub(fmt, 1, 1) == '*' and ssub(fmt, 2, 2) or ssub(fmt, 1, 1)
      if c ~= 'l' and c ~= 'L' and c ~= 'n' and c ~= 'a' then
        error(sformat("bad argument #%d to '%s' (invalid format)", i, fname), 3)
      end
      s, err, no = B.read(h, c)
      if c == 'n' and s then s = tonumber(s) end
    else
      error(sformat("bad argument #%d to '%s' (invalid format)", i, fname), 3)
    end
    if err then return nil, err, no end
    out[i] = s
    if s == nil then return table.unpack(out, 1, i) end
  end
  return table.unpack(out, 1, n)
end

function FILE.read(f, ...) return read_formats(open_h(f, 'read'), 'read', select('#', ...), ...) end

function FILE.write(f, ...)
  local h = open_h(f, 'write')
  for i = 1, select('#', ...) do
    local ok, err, no = B.write(h, wtext((select(i, ...)), i, 'write'))
    if not ok then return nil, err, no end
  end
  return f
end

local function lines_iter(f, close, n, ...)
  local fmts = table.pack(...)
  return function()
    if not f.h then error('file is already closed', 2) end
    local r = table.pack(read_formats(f.h, 'lines', n, table.unpack(fmts, 1, fmts.n)))
    if r[1] == nil then
      if r[2] ~= nil then error(r[2], 2) end
      if close then f:close() end
    end
    return table.unpack(r, 1, r.n)
  end
end

function FILE.lines(f, ...)
  open_h(f, 'lines')
  return lines_iter(f, false, select('#', ...), ...)
end

function FILE.seek(f, whence, offset)
  local h = open_h(f, 'seek')
  whence = whence == nil and 'cur' or whence
  if whence ~= 'set' and whence ~= 'cur' and whence ~= 'end' then
    error(sformat("bad argument #1 to 'seek' (invalid option '%s')", tostring(whence)), 2)
  end
  local off = offset == nil and 0 or tointeger(offset)
  if not off then error("bad argument #2 to 'seek' (number has no integer representation)", 2) end
  local pos, err, no = B.seek(h, whence, off)
  if not pos then return nil, err, no end
  return pos
end

function FILE.setvbuf(f) open_h(f, 'setvbuf'); return true end
function FILE.flush(f) open_h(f, 'flush'); return true end

local stdin, stdout, stderr = newfile(0), newfile(1), newfile(2)
STD[stdin], STD[stdout], STD[stderr] = true, true, true
local input, output = stdin, stdout

local function check_mode(mode)
  return type(mode) == 'string' and mode:match('^[rwa]%+?b*$') ~= nil
end

local function open(name, mode)
  local h, err, no = B.open(name, mode)
  if not h then return nil, err, no end
  return newfile(h)
end

local function strerror_of(name, err) return ssub(err, #name + 3) end

io.stdin, io.stdout, io.stderr = stdin, stdout, stderr

function io.open(name, mode)
  if type(name) ~= 'string' then error(sformat("bad argument #1 to 'io.open' (string expected, got %s)", typename(select('#', name), name)), 2) end
  mode = mode == nil and 'r' or mode
  if not check_mode(mode) then error("bad argument #2 to 'io.open' (invalid mode)", 2) end
  return open(name, mode)
end

function io.close(f) if f == nil then f = output end return FILE.close(f) end
function io.read(...) return read_formats(open_h(input, 'read'), 'read', select('#', ...), ...) end
function io.write(...) return FILE.write(output, ...) end

function io.lines(name, ...)
  if name == nil then
    open_h(input, 'lines')
    return lines_iter(input, false, select('#', ...), ...)
  end
  local f, err = open(name, 'r')
  if not f then error(sformat("cannot open file '%s' (%s)", name, strerror_of(name, err)), 2) end
  return lines_iter(f, true, select('#', ...), ...), nil, nil, f
end

local function std_choice(cur, file, mode, fname)
  if file == nil then return cur end
  if type(file) == 'string' then
    local f, err = open(file, mode)
    if not f then error(sformat("cannot open file '%s' (%s)", file, strerror_of(file, err)), 3) end
    return f
  end
  open_h(file, fname)
  return file
end
function io.input(file) input = std_choice(input, file, 'r', 'input'); return input end
function io.output(file) output = std_choice(output, file, 'w', 'output'); return output end

function io.type(f)
  if not isfile(f) then return nil end
  return f.h and 'file' or 'closed file'
end

function io.tmpfile()
  local name = B.tmpname()
  local f, err, no = open(name, 'w+b')
  if not f then return nil, err, no end
  B.remove(name) -- the open file lives on, as tmpfile()'s does
  return f
end

function io.popen() error("'popen' not supported", 2) end

function print(...)
  local n = select('#', ...)
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  B.write(1, concat(parts, '\t') .. '\n')
end

function os.remove(name) return B.remove(name) end
function os.rename(a, b) return B.rename(a, b) end
function os.tmpname() return B.tmpname() end
function os.getenv(name)
  if type(name) ~= 'string' then error(sformat("bad argument #1 to 'getenv' (string expected, got %s)", typename(select('#', name), name)), 2) end
  return B.getenv(name)
end
function os.clock() return B.clock() end
function os.execute(cmd)
  if cmd == nil then return true end
  local ok, how, code = B.execute(cmd)
  return ok or nil, how, code
end

-- A chunk from a file: skips a UTF-8 BOM and a first line starting with '#', keeping line numbers.
local function load_text(src, chunkname, mode, env, has_env)
  if ssub(src, 1, 3) == '\239\187\191' then src = ssub(src, 4) end
  if ssub(src, 1, 1) == '#' then src = src:gsub('^[^\n]*', '', 1) end
  if has_env then return load(src, chunkname, mode, env) end
  return load(src, chunkname, mode)
end

function loadfile(name, mode, ...)
  local src, chunkname
  if name == nil then
    src, chunkname = stdin:read('a') or '', '=stdin'
  else
    local err
    src, err = B.readfile(name)
    if not src then return nil, sformat('cannot open %s: %s', tostring(name), err) end
    chunkname = '@' .. name
  end
  return load_text(src, chunkname, mode, (...), select('#', ...) > 0)
end

function dofile(name)
  local f, err = loadfile(name)
  if not f then error(err, 0) end
  return f()
end

return { load_text = load_text, stdout = stdout }
`
