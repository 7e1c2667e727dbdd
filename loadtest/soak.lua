-- wrk script for loadtest/soak.sh: a mix of credentials at a paced rate, with status counting.
--
-- Env: TG_SOAK_DIR holds one file per kind, one credential header line per line:
--   token.txt (API-Token), hs256.txt, rs256.txt (one repeated JWT each), rs256-unique.txt
--   (many JWTs, rotated), unknown.txt (JWTs and tokens naming no profile).
-- TG_DELAY_MS paces each connection (wrk's delay()), so the rate is about
-- connections * 1000 / (TG_DELAY_MS + latency).
-- Known credentials must get 200 and unknown ones 401: request() counts what was sent per
-- kind, response() counts statuses; done() prints one SOAK_RESULT line with both.

local threads = {}
local mix = { "token", "token", "token", "hs256", "hs256", "rs256", "rs256", "rs256-unique", "unknown", "unknown" }

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

local prepared = {}
local cursor = {}
local position = 1
sent = {}
statuses = {}
local delay_ms = tonumber(os.getenv("TG_DELAY_MS") or "0")

local function load(kind)
   local path = os.getenv("TG_SOAK_DIR") .. "/" .. kind .. ".txt"
   local file = io.open(path, "r")
   if not file then
      io.stderr:write("soak.lua: cannot read " .. path .. "\n")
      os.exit(2)
   end
   local list = {}
   for line in file:lines() do
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then
         table.insert(list, wrk.format(nil, nil, { [name] = value }))
      end
   end
   file:close()
   prepared[kind] = list
   cursor[kind] = ((id or 0) * 7919) % #list + 1
end

function init(args)
   for _, kind in ipairs({ "token", "hs256", "rs256", "rs256-unique", "unknown" }) do
      load(kind)
      sent[kind] = 0
   end
   position = ((id or 0) * 3) % #mix + 1
end

function delay()
   return delay_ms
end

function request()
   local kind = mix[position]
   position = position % #mix + 1
   local list = prepared[kind]
   local index = cursor[kind]
   cursor[kind] = index % #list + 1
   sent[kind] = sent[kind] + 1
   return list[index]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local total_sent, total_status = {}, {}
   for _, thread in ipairs(threads) do
      for kind, count in pairs(thread:get("sent") or {}) do
         total_sent[kind] = (total_sent[kind] or 0) + count
      end
      for status, count in pairs(thread:get("statuses") or {}) do
         total_status[status] = (total_status[status] or 0) + count
      end
   end
   local parts = {}
   for kind, count in pairs(total_sent) do
      table.insert(parts, string.format('"sent_%s":%d', kind, count))
   end
   for status, count in pairs(total_status) do
      table.insert(parts, string.format('"status_%d":%d', status, count))
   end
   table.sort(parts)
   table.insert(parts, string.format('"requests":%d', summary.requests))
   table.insert(parts, string.format('"rps":%.1f', summary.requests / (summary.duration / 1e6)))
   table.insert(parts, string.format('"p50_us":%d', latency:percentile(50)))
   table.insert(parts, string.format('"p99_us":%d', latency:percentile(99)))
   local errors = summary.errors
   table.insert(parts, string.format('"socket_errors":%d', errors.connect + errors.read + errors.write + errors.timeout))
   io.write("SOAK_RESULT {" .. table.concat(parts, ",") .. "}\n")
end
