-- GET /healthz, nothing but the result line.
--   wrk … -s bench/lua/healthz.lua http://127.0.0.1:PORT/healthz
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
