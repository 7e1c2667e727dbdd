-- wrk script: plain GET with no credential (the `noauth` scenario).
-- Only adds the TG_RESULT summary line of common.lua.
--   wrk -t1 -c32 -d5s --latency -s loadtest/plain.lua http://127.0.0.1:8090/

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
