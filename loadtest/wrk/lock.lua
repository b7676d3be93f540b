-- Lock then unlock over many locks: a request takes a free lock with
-- LockDur; its reply's handle goes into an unlock that the next request
-- sends. Requests alternate between the two, so requests/s counts both.
-- Arguments: namespaces (1000), locks per namespace (1000).
--
-- Locks are taken in turn, not at random, so no two requests ever ask for
-- the same lock at once (LockWait is 0: that would be a 409). wrk's
-- response() is not told which request it answers, so the lock request
-- also reads a (never written) key named like the lock: the reply's "Key"
-- names the lock to unlock.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local namespaces, keys
local next = 0

function init(args)
   namespaces = tonumber(args[1] or 1000)
   keys = tonumber(args[2] or 1000)
end

function request()
   local r = fifo.pop()
   if r then
      return r
   end
   local ns = next % namespaces + 1
   local id = "L" .. ns .. "_" .. (math.floor(next / namespaces) % keys + 1)
   next = next + 1
   local body = '{"LockID":"' .. id .. '","LockDur":30,"KVGet":["' .. id .. '"]}'
   return wrk.format(nil, "/db/n" .. ns, nil, body)
end

function response(status, headers, body)
   local h = status == 200 and body:match('"Lock":(%d+)')
   if not h then
      return
   end
   local ns, key = body:match('"Key":"L(%d+)_(%d+)"')
   grants = grants + 1
   local unlock = '{"UnlockID":"L' .. ns .. "_" .. key .. '","Unlock":' .. h .. '}'
   fifo.push(wrk.format(nil, "/db/n" .. ns, nil, unlock))
end
