-- wrk script for bench/load/run.sh: cycles through pre-signed webhook bodies, each with a unique
-- message id. Usage: wrk ... -s load.lua URL -- BODIES_FILE THREADS
-- BODIES_FILE has one "signature<TAB>body" line per body (see `wabridge loadgen`). Thread k of
-- THREADS sends lines k, k+THREADS, ... once each and stops after its share is answered, so every
-- id is sent, and the run ends when all of them have been acknowledged.

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("thread_id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local reqs = {}
local idx = 0
local answered = 0
local status_ok = 0

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
end

function request()
   idx = idx + 1
   if idx > n then
      -- Past our share (connections still open): repeat the last body; dedupe absorbs it.
      return reqs[n]
   end
   return reqs[idx]
end

function response(status, headers, body)
   answered = answered + 1
   if status >= 200 and status < 300 then
      status_ok = status_ok + 1
   end
   sent = math.min(idx, n)
   ok = status_ok
   if answered >= n then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local unique, oks = 0, 0
   for _, t in ipairs(threads) do
      unique = unique + (t:get("sent") or 0)
      oks = oks + (t:get("ok") or 0)
   end
   io.write(string.format("unique_ids_sent %d\n", unique))
   io.write(string.format("answers_2xx %d\n", oks))
   io.write(string.format("requests %d\n", summary.requests))
   io.write(string.format("duration_s %.3f\n", summary.duration / 1e6))
   io.write(string.format("rps %.0f\n", summary.requests / (summary.duration / 1e6)))
   io.write(string.format("p50_ms %.3f\n", latency:percentile(50) / 1000))
   io.write(string.format("p99_ms %.3f\n", latency:percentile(99) / 1000))
   io.write(string.format("max_ms %.3f\n", latency.max / 1000))
end
