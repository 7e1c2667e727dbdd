-- Shared by the tokengate wrk scripts (loaded with dofile, not run on its own).
--
-- * Numbers each wrk thread (`id`, 0-based) so scripts can spread their work.
-- * At the end prints one machine-readable line for compare.sh:
--     TG_RESULT {"requests":…,"rps":…,"p50_us":…,"p99_us":…,"non2xx":…,…}
--   `non2xx` is wrk's own count of responses outside 2xx/3xx (no extra cost).
-- * With TG_COUNT_STATUS=1 it also counts every status code in a response()
--   hook and adds "statuses":{"200":…,"401":…}. Off by default because the
--   hook makes wrk parse every header and so steals CPU from the server.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

if os.getenv("TG_COUNT_STATUS") == "1" then
   statuses = {}
   function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local errors = summary.errors
   local parts = {
      string.format('"requests":%d', summary.requests),
      string.format('"duration_s":%.3f', seconds),
      string.format('"rps":%.1f', summary.requests / seconds),
      string.format('"mean_us":%.1f', latency.mean),
      string.format('"p50_us":%d', latency:percentile(50)),
      string.format('"p90_us":%d', latency:percentile(90)),
      string.format('"p99_us":%d', latency:percentile(99)),
      string.format('"max_us":%d', latency.max),
      string.format('"non2xx":%d', errors.status),
      string.format('"socket_errors":%d', errors.connect + errors.read + errors.write + errors.timeout),
   }
   if os.getenv("TG_COUNT_STATUS") == "1" then
      local total = {}
      for _, thread in ipairs(threads) do
         for status, count in pairs(thread:get("statuses") or {}) do
            total[status] = (total[status] or 0) + count
         end
      end
      local counts = {}
      for status, count in pairs(total) do
         table.insert(counts, string.format('"%d":%d', status, count))
      end
      table.sort(counts)
      table.insert(parts, '"statuses":{' .. table.concat(counts, ",") .. '}')
   end
   io.write("TG_RESULT {" .. table.concat(parts, ",") .. "}\n")
end
