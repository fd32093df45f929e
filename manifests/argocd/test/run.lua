-- Runs the Argo CD health checks in ../health/<group>/<Kind>/ against their health_test.yaml, the
-- way Argo CD runs a resource customization: the object is a global `obj` table decoded from the
-- testdata YAML, health.lua runs as one chunk and returns `hs` (status, message). Like Argo CD's
-- VM (gopher-lua, Lua 5.1 semantics), the chunk sees only the base, table and a safe os library:
-- no string, math, io or debug. Also checks that ../argocd-cm.yaml carries each health.lua
-- byte for byte (rebuild it with ../generate.sh).
--
--   lua5.1 manifests/argocd/test/run.lua [manifests/argocd]
--
-- Needs the `lyaml` module (Debian: lua-yaml). Prints one line per case and `N passed, M failed`.

local lyaml = require("lyaml")

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local root = (arg and arg[1]) or (here .. "/..")
local GROUP = "outflow.dev"
local KINDS = { "Destination", "Account", "Dataflow" }
local HEALTH_STATUSES = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true }

local passed, failed = 0, 0

local function pass(name, detail)
  passed = passed + 1
  print("PASS " .. name .. (detail and ("  " .. detail) or ""))
end

local function fail(name, detail)
  failed = failed + 1
  print("FAIL " .. name .. (detail and ("  " .. detail) or ""))
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, err
  end
  local text = f:read("*a")
  f:close()
  return text
end

-- YAML nulls (lyaml.null) become absent keys, as Argo CD's decoding of the object into Lua does.
local function strip_nulls(v)
  if v == lyaml.null then
    return nil
  end
  if type(v) ~= "table" then
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    out[k] = strip_nulls(x)
  end
  return out
end

local function load_yaml(path)
  local text, err = read_file(path)
  if not text then
    return nil, err
  end
  local ok, doc = pcall(lyaml.load, text)
  if not ok then
    return nil, path .. ": " .. tostring(doc)
  end
  if type(doc) ~= "table" then
    return nil, path .. ": not a YAML mapping"
  end
  return strip_nulls(doc)
end

-- The globals Argo CD's Lua VM opens for a health script: base, table, and os.time/os.date.
local function sandbox(obj)
  local env = {
    obj = obj,
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
    print = print, rawequal = rawequal, rawget = rawget, rawset = rawset, select = select,
    getmetatable = getmetatable, setmetatable = setmetatable, tonumber = tonumber,
    tostring = tostring, type = type, unpack = unpack or table.unpack, xpcall = xpcall,
    table = { concat = table.concat, insert = table.insert, remove = table.remove, sort = table.sort },
    os = { time = os.time, date = os.date },
    _VERSION = "Lua 5.1",
  }
  env._G = env
  return env
end

local function compile(source, chunkname, env)
  if setfenv and loadstring then -- Lua 5.1, the language gopher-lua implements
    local f, err = loadstring(source, chunkname)
    if not f then
      return nil, err
    end
    setfenv(f, env)
    return f
  end
  return load(source, chunkname, "t", env)
end

-- Runs one health script on one object; returns hs or nil and an error.
local function run_health(source, chunkname, obj)
  local f, err = compile(source, chunkname, sandbox(obj))
  if not f then
    return nil, "does not compile: " .. tostring(err)
  end
  -- No string library in Argo CD: method calls on strings ("x"):len() fail there, so here too.
  local string_mt = debug.getmetatable("")
  local string_index = string_mt and string_mt.__index
  if string_mt then
    string_mt.__index = nil
  end
  local ok, hs = pcall(f)
  if string_mt then
    string_mt.__index = string_index
  end
  if not ok then
    return nil, "error: " .. tostring(hs)
  end
  if type(hs) ~= "table" then
    return nil, "returned " .. type(hs) .. ", not a table"
  end
  return hs
end

local function quote(s)
  return '"' .. tostring(s) .. '"'
end

local function list_dir(path)
  local names = {}
  local p = io.popen('ls -1 "' .. path .. '" 2>/dev/null')
  if p then
    for line in p:lines() do
      names[#names + 1] = line
    end
    p:close()
  end
  return names
end

local cm, cm_err = load_yaml(root .. "/argocd-cm.yaml")
if not cm then
  fail("argocd-cm.yaml", tostring(cm_err))
elseif cm.kind ~= "ConfigMap" or cm.metadata == nil or cm.metadata.name ~= "argocd-cm" or cm.metadata.namespace ~= "argocd" then
  fail("argocd-cm.yaml", "is not the ConfigMap argocd/argocd-cm")
  cm = nil
end

for _, kind in ipairs(KINDS) do
  local dir = root .. "/health/" .. GROUP .. "/" .. kind
  local script_path = dir .. "/health.lua"
  local source, err = read_file(script_path)
  if not source then
    fail(kind .. " health.lua", tostring(err))
  else
    if cm then
      local key = "resource.customizations.health." .. GROUP .. "_" .. kind
      local value = cm.data and cm.data[key]
      if value == source then
        pass(kind .. " argocd-cm data." .. key, "matches health.lua")
      elseif value == nil then
        fail(kind .. " argocd-cm data." .. key, "missing: run manifests/argocd/generate.sh")
      else
        fail(kind .. " argocd-cm data." .. key, "differs from health.lua: run manifests/argocd/generate.sh")
      end
    end
    local spec, spec_err = load_yaml(dir .. "/health_test.yaml")
    if not spec or type(spec.tests) ~= "table" or #spec.tests == 0 then
      fail(kind .. " health_test.yaml", tostring(spec_err or "no tests"))
    else
      local used = {}
      for i, case in ipairs(spec.tests) do
        local input = case.inputPath
        local want = case.healthStatus or {}
        local name = kind .. " " .. tostring(input or ("test " .. i))
        local obj, obj_err = nil, "no inputPath"
        if input then
          used[input] = true
          obj, obj_err = load_yaml(dir .. "/" .. input)
        end
        if not obj then
          fail(name, tostring(obj_err))
        else
          local hs, run_err = run_health(source, "@" .. script_path, obj)
          if not hs then
            fail(name, run_err)
          else
            local got_status, got_message = hs.status, hs.message or ""
            local want_message = want.message or ""
            if not HEALTH_STATUSES[got_status] then
              fail(name, "invalid health status " .. quote(got_status) .. " (Argo CD would show Unknown)")
            elseif got_status == want.status and got_message == want_message then
              pass(name, got_status .. " " .. quote(got_message))
            else
              fail(name, "want " .. tostring(want.status) .. " " .. quote(want_message)
                .. ", got " .. tostring(got_status) .. " " .. quote(got_message))
            end
          end
        end
      end
      for _, file in ipairs(list_dir(dir .. "/testdata")) do
        if not used["testdata/" .. file] then
          fail(kind .. " testdata/" .. file, "is not used by health_test.yaml")
        end
      end
    end
  end
end

print(passed .. " passed, " .. failed .. " failed")
os.exit(failed == 0 and 0 or 1)
