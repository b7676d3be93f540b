-- Shared by the row scripts (loaded with dofile): request headers, and the
-- one result line the driver (loadtest/wrkbench) parses.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

-- grants counts lock grants in each thread's own Lua state; done() runs in
-- another state and reads them through the thread objects kept by setup().
grants = 0
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- fifo is a queue of prepared requests: the lock scripts put an unlock in
-- it for every grant, and the next request() of any connection sends it.
fifo = {head = 1, tail = 0}

function fifo.push(r)
   fifo.tail = fifo.tail + 1
   fifo[fifo.tail] = r
end

function fifo.pop()
   if fifo.head > fifo.tail then
      return nil
   end
   local r = fifo[fifo.head]
   fifo[fifo.head] = nil
   fifo.head = fifo.head + 1
   return r
end

function done(summary, latency, requests)
   local g = 0
   for _, t in ipairs(threads) do
      g = g + (t:get("grants") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "WRKBENCH requests=%d duration_us=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p99_us=%d grants=%d\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      math.floor(latency:percentile(50)), math.floor(latency:percentile(99)), g))
end

-- letters returns n random lowercase letters: values that do not compress
-- to nothing anywhere on the way.
function letters(n)
   local t = {}
   for i = 1, n do
      t[i] = string.char(96 + math.random(26))
   end
   return table.concat(t)
end
