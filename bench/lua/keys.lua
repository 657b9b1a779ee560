-- POST /v1/keys for one of 100 external ids ("1" … "100"), uniformly at
-- random: after the first hundred, every request finds its identity.
--   wrk … -s bench/lua/keys.lua http://127.0.0.1:PORT/v1/keys -- ROOT_KEY
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
    racefree_post(args)
    math.randomseed(os.time() * 100 + tid)
end

function request()
    return wrk.format(nil, nil, nil,
        string.format('{"externalId":"%d"}', math.random(1, 100)))
end
