-- POST /v1/events with one name, each thread stopping after LIMIT 201s
-- (see count_responses in common.lua for MARKER_PREFIX).
--   wrk … -s bench/lua/events.lua http://127.0.0.1:PORT/v1/events \
--       -- ROOT_KEY NAME LIMIT MARKER_PREFIX
-- NAME must need no JSON escaping.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
    racefree_post(args)
    wrk.body = '{"name":"' .. args[2] .. '"}'
    count_responses(tonumber(args[3]), args[4])
end
