-- wrk script for bench/load/run.sh: pre-signed webhook bodies, each with a unique message id.
-- Usage: wrk ... -s load.lua URL -- BODIES_FILE THREADS
-- BODIES_FILE has one "signature<TAB>body" line per body (see `wabridge loadgen`). Thread k of
-- THREADS sends lines k, k+THREADS, ... once each. Once its share is all sent, a thread sends
-- GET /healthz (so no body is ever sent twice) until every POST of its share is answered, then
-- stops: every id is sent exactly once and answered.

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("thread_id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local reqs = {}
local idx = 0
local answered_posts = 0
local ok_posts = 0
local filler

function init(args)
   local file = args[1]
   local nthreads = tonumber(args[2]) or 1
   local me = thread_id or 1
   local line_no = 0
   for line in io.lines(file) do
      line_no = line_no + 1
      if (line_no - 1) % nthreads == me - 1 then
         local tab = string.find(line, "\t", 1, true)
         local sig = string.sub(line, 1, tab - 1)
         local body = string.sub(line, tab + 1)
         reqs[#reqs + 1] = wrk.format("POST", "/webhook", {
            ["Content-Type"] = "application/json",
            ["X-Hub-Signature-256"] = sig,
         }, body)
      end
   end
   n = #reqs
   filler = wrk.format("GET", "/healthz")
   sent, ok, non2xx = 0, 0, 0
end

local primed = false

function request()
   -- wrk calls request() once on the first thread's state to inspect it and discards the result:
   -- give every thread's first call the filler so no body is lost to that.
   if not primed then
      primed = true
      return filler
   end
   idx = idx + 1
   if idx > n then
      return filler
   end
   return reqs[idx]
end

function response(status, headers, body)
   if body == '{"status":"ok"}' then
      return -- a filler
   end
   answered_posts = answered_posts + 1
   if status >= 200 and status < 300 then
      ok_posts = ok_posts + 1
   else
      non2xx = non2xx + 1
   end
   sent = math.min(idx, n)
   ok = ok_posts
   if answered_posts >= n then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local unique, oks, bad = 0, 0, 0
   for _, t in ipairs(threads) do
      unique = unique + (t:get("sent") or 0)
      oks = oks + (t:get("ok") or 0)
      bad = bad + (t:get("non2xx") or 0)
   end
   io.write(string.format("unique_ids_sent %d\n", unique))
   io.write(string.format("posts_2xx %d\n", oks))
   io.write(string.format("posts_not_2xx %d\n", bad))
   io.write(string.format("p50_ms %.3f\n", latency:percentile(50) / 1000))
   io.write(string.format("p99_ms %.3f\n", latency:percentile(99) / 1000))
   io.write(string.format("max_ms %.3f\n", latency.max / 1000))
end
