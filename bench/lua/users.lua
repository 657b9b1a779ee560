-- POST /v1/users, a new email every request: the run tag (unique per wrk
-- run), the thread number and a per-thread counter.
--   wrk … -s bench/lua/users.lua http://127.0.0.1:PORT/v1/users -- ROOT_KEY RUN_TAG
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local n, tag = 0, ""

function init(args)
    racefree_post(args)
    tag = args[2]
end

function request()
    n = n + 1
    return wrk.format(nil, nil, nil,
        string.format('{"email":"u%s-%d-%d@bench.example"}', tag, tid, n))
end
