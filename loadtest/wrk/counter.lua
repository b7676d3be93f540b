-- Counter adds of 1 to one random counter in one random namespace per request.
-- Arguments: namespaces (1000), counters per namespace (1000).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local namespaces, keys

function init(args)
   math.randomseed(os.time())
   namespaces = tonumber(args[1] or 1000)
   keys = tonumber(args[2] or 1000)
end

function request()
   local body = '{"Atomic":[{"Key":"c' .. math.random(keys) .. '","Add":1}]}'
   return wrk.format(nil, "/db/n" .. math.random(namespaces), nil, body)
end
