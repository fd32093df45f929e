-- Argo CD health check for outflow.dev/Dataflow, from the conditions the Outflow controller
-- writes (Ready, Reconciling, Stalled, each with observedGeneration; status.observedGeneration),
-- Degraded (the last run failed) and spec.enabled.
-- Argo CD runs this with gopher-lua (Lua 5.1) and only the base, table and os libraries.
local hs = {}
local generation = obj.metadata.generation
local status = obj.status

local function waiting()
  if generation == nil then
    return "Waiting for the controller to observe this Dataflow"
  end
  return "Waiting for the controller to observe generation " .. tostring(generation)
end

-- The condition of type t; with current, nil when it was computed for an older generation.
local function condition(t, current)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == t then
      if current and generation ~= nil and c.observedGeneration ~= nil and c.observedGeneration < generation then
        return nil
      end
      return c
    end
  end
  return nil
end

local function nonempty(s)
  return s ~= nil and s ~= ""
end

-- The message, else the reason, else fallback.
local function text(c, fallback)
  if nonempty(c.message) then
    return c.message
  elseif nonempty(c.reason) then
    return c.reason
  end
  return fallback
end

-- "Reason: message", or whichever of the two is set, else fallback.
local function explain(c, fallback)
  if nonempty(c.reason) and nonempty(c.message) then
    return c.reason .. ": " .. c.message
  end
  return text(c, fallback)
end

local function health()
  if status == nil then
    return "Progressing", waiting()
  end
  if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
    return "Progressing", waiting()
  end
  local reconciling = condition("Reconciling", true)
  if reconciling ~= nil and reconciling.status == "True" then
    if nonempty(reconciling.message) then
      return "Progressing", reconciling.message
    end
    return "Progressing", waiting()
  end
  local stalled = condition("Stalled", true)
  if stalled ~= nil and stalled.status == "True" then
    return "Degraded", text(stalled, "Stalled")
  end
  local ready = condition("Ready", true)
  if obj.spec ~= nil and obj.spec.enabled == false and ready ~= nil and ready.status == "True" then
    return "Suspended", "Dataflow is disabled"
  end
  -- Degraded describes the last run, whatever generation it ran for: kept until the next run.
  local degraded = condition("Degraded", false)
  if degraded ~= nil and degraded.status == "True" then
    return "Degraded", text(degraded, "The last run failed")
  end
  if ready == nil then
    return "Progressing", waiting()
  end
  if ready.status == "True" then
    return "Healthy", text(ready, "Ready")
  end
  return "Progressing", explain(ready, "Waiting for the controller to report readiness")
end

hs.status, hs.message = health()
return hs
