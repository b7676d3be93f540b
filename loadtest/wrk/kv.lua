-- KV writes of one random key in one random namespace per request.
-- Arguments: value bytes (64), namespaces (1000), keys per namespace (1000).
-- The value is a JSON string of that many letters.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local value, namespaces, keys

function init(args)
   math.randomseed(os.time())
   value = '"' .. letters(tonumber(args[1] or 64)) .. '"'
   namespaces = tonumber(args[2] or 1000)
   keys = tonumber(args[3] or 1000)
end

function request()
   local body = '{"KVSet":[{"Key":"k' .. math.random(keys) .. '","Value":' .. value .. '}]}'
   return wrk.format(nil, "/db/n" .. math.random(namespaces), nil, body)
end
