-- Lock hand-off on one lock: every connection asks for the same lock with
-- a long LockWait and waits in line; whoever is granted unlocks at once
-- (the unlock is the next request sent, usually by the same connection,
-- which is the only one not parked in line). grants counts hand-offs.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local lock

function init(args)
   lock = wrk.format(nil, "/db/handoff", nil, '{"LockID":"one","LockDur":30,"LockWait":60}')
end

function request()
   return fifo.pop() or lock
end

function response(status, headers, body)
   local h = status == 200 and body:match('"Lock":(%d+)')
   if not h then
      return
   end
   grants = grants + 1
   fifo.push(wrk.format(nil, "/db/handoff", nil, '{"UnlockID":"one","Unlock":' .. h .. '}'))
end
