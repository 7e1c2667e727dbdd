-- wrk script: every request carries the same one header, given by env vars
--   TG_HEADER  header name   (e.g. "API-Token" or "Authorization")
--   TG_VALUE   header value  (e.g. the auth token, or "Bearer <jwt>")
-- The request is built once per thread, so this costs wrk nothing per request.
--   TG_HEADER=Authorization TG_VALUE="Bearer $JWT" \
--     wrk -t1 -c32 -d5s --latency -s loadtest/fixed_header.lua http://127.0.0.1:8080/bench/hello

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local name, value = os.getenv("TG_HEADER"), os.getenv("TG_VALUE")
if not name or name == "" or not value then
   io.stderr:write("fixed_header.lua: set TG_HEADER and TG_VALUE\n")
   os.exit(2)
end
wrk.headers[name] = value
