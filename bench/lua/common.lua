-- Shared by every bench/lua script (loaded with dofile): thread numbering,
-- the racefree request headers, an optional stop after a number of 2xx
-- responses, and one machine-readable line at the end:
--   RESULT {"requests":…,"rps":…,"errors":…,"non2xx":…,"p50_us":…,…}
local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end

-- args[1] is the root key; POST with JSON.
function racefree_post(args)
    wrk.method = "POST"
    wrk.headers["Authorization"] = "Bearer " .. args[1]
    wrk.headers["Content-Type"] = "application/json"
end

-- With a limit, count responses and stop this thread after `limit` 2xx.
-- wrk itself still runs for its whole -d, so the thread also creates the
-- file MARKER_PREFIX<tid>: bench/run sends wrk SIGINT (its way of ending
-- early, with the usual report) once every thread has one.
-- (Defining response() makes wrk hand every response to Lua, so the
-- throughput scripts leave it undefined.)
function count_responses(limit, marker_prefix)
    ok, bad = 0, 0
    response = function(status, headers, body)
        if status >= 200 and status < 300 then
            ok = ok + 1
        else
            bad = bad + 1
        end
        if ok == limit then
            local f = io.open(marker_prefix .. tid, "w")
            if f then f:close() end
            wrk.thread:stop()
        end
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    local non2xx = e.status -- wrk counts status > 399
    local counted = false
    for _, t in ipairs(threads) do
        local b = t:get("bad")
        if b then
            if not counted then non2xx, counted = 0, true end
            non2xx = non2xx + b
        end
    end
    io.write(string.format(
        'RESULT {"requests":%d,"duration_us":%d,"rps":%.1f,"errors":%d,"non2xx":%d,'
            .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
        summary.requests, summary.duration,
        summary.requests / (summary.duration / 1e6),
        e.connect + e.read + e.write + e.timeout, non2xx,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
