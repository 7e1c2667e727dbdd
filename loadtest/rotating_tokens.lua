-- wrk script: `Authorization: Bearer <token>` with a different token on each
-- request, read one per line from the file named by env TG_TOKENS.
--
-- Each wrk thread loads the file in init() and starts at its own offset
-- (spread by thread id), so threads do not send the same token at the same
-- moment. The requests are formatted once in init(); request() only picks the
-- next one, to keep wrk's per-request cost low.
--   TG_TOKENS=loadtest/tmp/rs256-unique.txt \
--     wrk -t1 -c32 -d5s --latency -s loadtest/rotating_tokens.lua http://127.0.0.1:8080/bench/hello

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local prepared = {}
local next_index = 1

function init(args)
   local path = os.getenv("TG_TOKENS")
   local file = path and io.open(path, "r")
   if not file then
      io.stderr:write("rotating_tokens.lua: set TG_TOKENS to a readable file of tokens, one per line\n")
      os.exit(2)
   end
   for line in file:lines() do
      local token = line:match("^%s*(.-)%s*$")
      if token ~= "" then
         table.insert(prepared, wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token }))
      end
   end
   file:close()
   if #prepared == 0 then
      io.stderr:write("rotating_tokens.lua: no tokens in " .. path .. "\n")
      os.exit(2)
   end
   -- Golden-ratio spacing: thread 0 starts at 0, thread 1 at 61.8 %, thread 2
   -- at 23.6 %, … well apart without knowing how many threads there are.
   local fraction = ((id or 0) * 0.6180339887) % 1
   next_index = math.floor(fraction * #prepared) + 1
end

function request()
   local request = prepared[next_index]
   next_index = next_index % #prepared + 1
   return request
end
