-- POST /v1/keys/verify of one key, the same body every time.
--   wrk … -s bench/lua/verify.lua http://127.0.0.1:PORT/v1/keys/verify -- ROOT_KEY KEY
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
    racefree_post(args)
    wrk.body = '{"key":"' .. args[2] .. '"}'
end
