#!/usr/bin/env bash
# Black-box tests of `racefree probe`, run as a user would run it:
# against tests/fixtures/racy_server.c (a deliberately racy check-then-insert
# server, which the probe must catch) and against a real `racefree serve`
# (which must pass the same expectations). Ends with "N passed, N failed".
#
# usage: tests/probe/run.sh [--bin build/racefree] [--fixture build/probe-fixture]
#        [--only SUBSTR]
# Servers listen on 127.0.0.1 only, are stopped by PID, and every command
# runs under `timeout`; the whole script gives up after 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/support/lib.sh

BIN=./build/racefree
FIXTURE=./build/probe-fixture
ONLY=
rf_args --bin BIN PATH --fixture FIXTURE PATH --only ONLY SUBSTR -- "$@"

rf_init probe 600

# Not to be called in a subshell: the PID must reach PIDS for the cleanup.
start_server() { rf_start_server "$@"; }

PREFIX=()
PROBE() {
    timeout 60 "${PREFIX[@]}" "$BIN" probe "$@"
}

ok() { rf_ok "$1"; }
bad() {
    rf_bad "$1" "$2"
    if [ -f "$TMP/out" ]; then sed 's/^/    | /' "$TMP/out" | head -40; fi
    if [ -f "$TMP/err" ]; then sed 's/^/    ! /' "$TMP/err" | head -10; fi
}

# run NAME WANT_EXIT [grep patterns that stdout+stderr must contain] -- probe args
run() {
    local name=$1 want=$2
    shift 2
    local pats=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        pats+=("$1")
        shift
    done
    shift
    rf_want "$name" || return
    rm -f "$TMP/out" "$TMP/err"
    PROBE "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        bad "$name" "exit $rc, want $want"
        return
    fi
    for p in "${pats[@]}"; do
        if ! grep -qF -- "$p" "$TMP/out" "$TMP/err"; then
            bad "$name" "output lacks \"$p\""
            return
        fi
    done
    ok "$name"
}

# ---- servers ----------------------------------------------------------------

# A 5 ms gap between check and insert, a remote database round trip; with
# sanitizers on, the fixture itself is slow enough to need it.
start_server "$TMP/fixture.log" "$FIXTURE" --delay-us 5000 --max-seconds 600 || exit 1
FPORT=$PORT
FX=http://127.0.0.1:$FPORT

DB=sqlite:$TMP/rf.db
KEY=$(timeout 30 "$BIN" workspace create probe-test --db "$DB" 2>/dev/null | jq -r .rootKey)
RPORT=
if [ -n "$KEY" ] && [ "$KEY" != null ]; then
    start_server "$TMP/serve.log" "$BIN" serve --listen 127.0.0.1:0 --db "$DB" && RPORT=$PORT
fi
RF=http://127.0.0.1:$RPORT
AUTH="Authorization: Bearer $KEY"

# ---- usage -------------------------------------------------------------------

run help 0 "--expect-verify-count" "{{var.NAME}}" "Exit status" -- --help
run help-mixed 0 "--request [NAME=]FILE[:COUNT]" "--expect-status [GROUP:]CODE=COUNT" \
    "--server-time HEADER" "--max-spread US" "--warmup K" "3 inconclusive" -- --help
run usage-no-url 2 "no URL given" --
run usage-bad-n 2 "-n wants 1..10000" -- -n 10001 "$FX/"
run usage-bad-count 2 "bad count" -- --expect-status 200=N+1 "$FX/"
run usage-bad-path 2 "must start with '.'" -- --expect-distinct user.id=1 "$FX/"
run usage-verify-count-alone 2 "needs --verify" -- --expect-verify-count .data=1 "$FX/"
run usage-unknown-placeholder 2 "unknown placeholder {{nope}}" -- -d '{"a":"{{nope}}"}' "$FX/"
run usage-packet-needs-h2 2 "--sync packet needs HTTP/2" -- --sync packet "$FX/"
run usage-h2c-https 2 "--h2c is for http://" -- --h2c https://127.0.0.1/
run usage-missing-var-file 2 "cannot open" -- --var id=@$TMP/none.txt "$FX/"
run usage-content-length 2 "frames the body" -- -H "Content-Length: 3" "$FX/"
run usage-header-injection 2 "line break" -- --var "x=a"$'\r\n'"Evil: 1" -H 'X: {{var.x}}' "$FX/"

# ---- connection errors ---------------------------------------------------------

# A port nobody listens on: take a free one from the kernel and let it go.
FREE=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run refused 2 "got no response" "Connection refused" -- -n 4 "http://127.0.0.1:$FREE/"
run timeout 2 "timed out after 300 ms" -- -n 3 --timeout 300 "$FX/hang"
run closed-without-response 2 "got no response" -- -n 3 "$FX/close"
run localhost-name 0 "PASS" -- -n 4 --expect-status 404=N "http://localhost:$FPORT/nothing"
# --rt works with or without the privilege (a warning when refused).
run realtime 0 "PASS" -- -n 4 --rt --expect-status 404=N "$FX/nothing"
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
    PREFIX=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    run realtime-refused 0 "running at normal priority" -- -n 2 --rt "$FX/nothing"
    PREFIX=()
fi

# ---- the racy fixture: duplicates must be caught --------------------------------

run fixture-chunked 0 "PASS  distinct .user.id=1" -- -n 5 --expect-distinct .user.id=1 "$FX/chunked"
run fixture-5xx 1 "FAIL  no-5xx" -- -n 5 --expect-no-5xx "$FX/fail"
run fixture-5xx-no-expectations 0 "500 ×5" "no expectations given" -- -n 5 "$FX/fail"

USERS_EXPECT=(--expect-status 201=1 --expect-status 200=N-1 --expect-distinct .user.id=1)

# race_check NAME RUNS NEED FAIL DIAG BURST ARGS...: `BURST K ARGS...` runs
# burst K (1..RUNS) of a race; it must be caught, exit 1 with the line FAIL,
# in at least NEED of them. A miss prints the output lines matching DIAG.
race_check() {
    local name=$1 runs=$2 need=$3 fail=$4 diag=$5 burst=$6 caught=0 rc k
    shift 6
    rf_want "$name" || return
    for k in $(seq "$runs"); do
        "$burst" "$k" "$@" >"$TMP/out" 2>"$TMP/err"
        rc=$?
        if [ $rc -eq 1 ] && grep -q "$fail" "$TMP/out"; then
            caught=$((caught + 1))
        else
            echo "    $name missed run $k: exit $rc; $(grep -E "$diag" "$TMP/out" | tr -s ' ' | tr '\n' ';')"
        fi
    done
    if [ "$caught" -ge "$need" ]; then ok "$name ($caught of $runs runs caught)"; else bad "$name" "caught $caught of $runs"; fi
}

# users_burst K NAME BASE probe-args...: 32 creates of one email at BASE;
# {{round}} gives the burst's one round its own email.
users_burst() {
    local k=$1 name=$2 base=$3
    shift 3
    PROBE -n 32 "$@" -d "{\"email\":\"$name-$k-{{round}}@example.com\"}" "${USERS_EXPECT[@]}" \
        --verify "$base/v1/users?email=$name-$k-1@example.com" --expect-verify-count .data=1 \
        "$base/v1/users"
}

# dup_check NAME BASE_URL RUNS NEED probe-args...: the users race must be
# caught (the verify count failing) in at least NEED of RUNS bursts.
dup_check() {
    local name=$1 base=$2 runs=$3 need=$4
    shift 4
    race_check "$name" "$runs" "$need" "FAIL  verify-count .data=1" '^  (status|spread|no reply)' \
        users_burst "$name" "$base" "$@"
}

# The issue's bar: duplicates reported (exit 1) in at least 19 of 20 runs
# of a 32-request burst.
dup_check fixture-duplicates "$FX" 20 19

run fixture-templates-distinct 0 "PASS  distinct .user.email=N" -- -n 16 \
    -d '{"email":"t-{{uuid}}-{{i}}@example.com"}' --expect-status 201=N \
    --expect-distinct .user.email=N "$FX/v1/users"

printf 'ann@example.com\nbob@example.com\n\ncid@example.com\r\n' >"$TMP/ids.txt"
run fixture-var-file 0 "PASS  distinct .user.email=3" -- -n 9 -X POST \
    --var "who=@$TMP/ids.txt" -d '{"email":"{{var.who}}"}' --expect-distinct .user.email=3 \
    "$FX/v1/users"

printf '{"email":"file-{{i}}@example.com"}' >"$TMP/body.json"
run fixture-body-file 0 "PASS  status 201=N" -- -n 4 -d "@$TMP/body.json" \
    --expect-status 201=N "$FX/v1/users"

if rf_want fixture-body-stdin; then
    rm -f "$TMP/out" "$TMP/err"
    echo '{"email":"stdin-{{i}}@example.com"}' | PROBE -n 3 -d @- --expect-status 201=N \
        "$FX/v1/users" >"$TMP/out" 2>"$TMP/err"
    if [ $? -eq 0 ]; then ok fixture-body-stdin; else bad fixture-body-stdin "exit $?"; fi
fi

run fixture-sync-none 0 "sync none" -- -n 8 --sync none -d '{"email":"none-{{i}}@x"}' \
    --expect-status 201=N "$FX/v1/users"

if rf_want fixture-json; then
    rm -f "$TMP/out" "$TMP/err"
    PROBE -n 6 --rounds 2 --json --per-request -d '{"email":"json-{{round}}@x"}' \
        --expect-distinct .user.id=1 "$FX/v1/users" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if jq -e '.exit_code == 1 and .pass == false and (.rounds | length) == 2
              and (.rounds[0].per_request | length) == 6 and .rounds[0].per_request[0].lastbyte_us != null and .rounds[0].requests == 6
              and (.rounds[1].status["201"] // 0) >= 1 and .total.requests == 12
              and .total.expectations[0].rounds == 2 and .target.sync == "lastbyte"
              and (.total.spread_us.median | type) == "number"' "$TMP/out" >/dev/null && [ $rc -eq 1 ]; then
        ok fixture-json
    else
        bad fixture-json "exit $rc or JSON document not as expected"
    fi
fi

# ---- mixed bursts, burst evidence, warm-up (docs/PROBE.md) -------------------------

start_server "$TMP/safe.log" "$FIXTURE" --safe --delay-us 5000 --max-seconds 600 || exit 1
SX=http://127.0.0.1:$PORT

# A Burp-style file (CRLF, stale Content-Length, HTTP/2 in the request line)
# and a .http one (LF, comment, no version): one coupon, redeemed at most once.
printf 'POST /v1/coupons/redeem HTTP/2\r\nHost: shop.example.com\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n{"code":"C-{{var.k}}-{{round}}-%s"}\r\n' "$$" >"$TMP/redeem.txt"
printf '# pay with the coupon\nPOST /v1/checkout\nContent-Type: application/json\n\n{"code":"C-{{var.k}}-{{round}}-%s"}\n' "$$" >"$TMP/checkout.http"
COUPON=(--request "$TMP/redeem.txt:12" --request "$TMP/checkout.http:4"
    --expect-status redeem:200=1 --expect-status redeem:409=N-1 --expect-status checkout:200=N)

# The coupon race must be caught: at least 9 of 10 two-group bursts fail.
coupon_burst() { PROBE "${COUPON[@]}" --var "k=$1" "$FX"; }
race_check mixed-coupon-race 10 9 "FAIL  status redeem:200=1" '^  (group|  )' coupon_burst
run mixed-coupon-racefree 0 "PASS: every expectation held" "redeem ×12:" "checkout ×4: 200 ×4" \
    -- "${COUPON[@]}" --var k=free --rounds 3 "$SX"
# Without a URL the Host header says where to go.
printf 'POST /v1/checkout HTTP/1.1\nHost: 127.0.0.1:%s\n\n{"code":"none"}' "$FPORT" >"$TMP/host.http"
run mixed-host-header 0 "PASS" "1 groups" -- --request "pay=$TMP/host.http:3" \
    --expect-status pay:200=N
if rf_want mixed-json; then
    rm -f "$TMP/out" "$TMP/err"
    PROBE "${COUPON[@]}" --var k=json --json --per-request --report "$TMP/mixed.html" "$SX" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ $rc -eq 0 ] && jq -e '(.target.groups | map(.name)) == ["redeem", "checkout"]
              and .rounds[0].groups.redeem.status["200"] == 1
              and .rounds[0].groups.checkout.requests == 4
              and ([.rounds[0].per_request[].group] | map(select(. == "checkout")) | length) == 4
              and .rounds[0].per_request[1].group != .rounds[0].per_request[2].group
              and .total.groups.redeem.count == 12' "$TMP/out" >/dev/null &&
        [ "$(grep -o 'data-group="checkout"' "$TMP/mixed.html" | wc -l)" -eq 4 ]; then
        ok mixed-json
    else
        bad mixed-json "exit $rc or JSON/HTML not as expected"
    fi
fi
run usage-request-and-data 2 "-X and -d are for the" -- --request "$TMP/redeem.txt" -d x "$FX"
run usage-request-missing 2 "cannot open" -- --request "$TMP/nope.http" "$FX"
run usage-request-template 2 "{{var.k}}" -- --request "$TMP/redeem.txt" "$FX"
run usage-unknown-group 2 "no --request group \"nope\"" -- --request "$TMP/redeem.txt" \
    --var k=1 --expect-status nope:200=1 "$FX"
run usage-group-count 2 "impossible with a group of 2" -- --request "$TMP/redeem.txt:2" \
    --var k=1 --expect-status redeem:200=3 "$FX"
run usage-two-groups-same-name 2 "two groups named" -- --request "$TMP/redeem.txt" \
    --request "$TMP/redeem.txt" --var k=1 "$FX"

# --server-time: the fixture stamps X-Arrival (Unix seconds, 9 decimals).
run server-time 0 "server    spread" "X-Arrival in 8 of 8 responses" -- -n 8 \
    --server-time X-Arrival --expect-status 404=N "$FX/nothing"
run max-spread-inconclusive 3 "INCONCLUSIVE" "over --max-spread 0 µs" -- -n 8 \
    --server-time X-Arrival --max-spread 0 --expect-status 404=N "$FX/nothing"
run max-spread-client 3 "release spread" -- -n 8 --max-spread 0 --expect-status 404=N "$FX/nothing"
run max-spread-loose-enough 0 "PASS" -- -n 8 --server-time X-Arrival --max-spread 60000000 \
    --expect-status 404=N "$FX/nothing"
# A failure found in a loose burst is still a failure.
run max-spread-fail-wins 1 "FAIL" -- -n 8 --max-spread 0 --expect-status 200=N "$FX/nothing"
if rf_want max-spread-json; then
    PROBE -n 4 --server-time X-Arrival --max-spread 0 --json "$FX/nothing" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ $rc -eq 3 ] && jq -e '.exit_code == 3 and .pass == false and .rounds[0].inconclusive
              and .rounds[0].server_stamps == 4 and (.rounds[0].server_spread_us | type) == "number"
              and .total.inconclusive_rounds == 1' "$TMP/out" >/dev/null; then
        ok max-spread-json
    else
        bad max-spread-json "exit $rc or JSON not as expected"
    fi
fi

# --warmup: the fixture keeps a connection alive when asked; races are still caught.
run warmup-pass 0 "PASS" -- -n 8 --warmup 2 --expect-status 404=N "$FX/nothing"
run warmup-race 1 "FAIL  status 201=1" -- -n 16 --warmup 1 \
    -d "{\"email\":\"warm-$$@example.com\"}" --expect-status 201=1 "$FX/v1/users"
run warmup-refused 2 "--warmup needs keep-alive" -- -n 2 --warmup 1 --warmup-request 'GET /close' \
    "$FX/nothing"
run usage-warmup-request 2 "--warmup-request wants" -- --warmup 1 --warmup-request 'GET x' "$FX/"

# ---- the real server: the same expectations must hold --------------------------

if [ -z "$RPORT" ]; then
    bad racefree-server "could not start racefree serve"
else
    run racefree-users-race 0 "PASS: every expectation held" -- -n 32 -H "$AUTH" \
        -d '{"email":"race-{{round}}@example.com"}' --rounds 3 "${USERS_EXPECT[@]}" \
        --expect-no-5xx --verify "$RF/v1/users?email=race-{{round}}@example.com" \
        --expect-verify-count .data=1 "$RF/v1/users"
    run racefree-users-race-sync-none 0 "PASS: every expectation held" -- -n 32 --sync none \
        -H "$AUTH" -d '{"email":"none-{{round}}@example.com"}' "${USERS_EXPECT[@]}" \
        --verify "$RF/v1/users?email=none-1@example.com" --expect-verify-count .data=1 \
        "$RF/v1/users"
    run racefree-unauthorised 1 "FAIL  status 201=1" "401 ×8" -- -n 8 \
        -d '{"email":"x@example.com"}' --expect-status 201=1 "$RF/v1/users"
fi

# ---- https and HTTP/2: the same servers behind nghttpx ---------------------------
# nghttpx (Debian's nghttp2-proxy) terminates TLS (h2 or HTTP/1.1 by ALPN) on
# one port and speaks h2c (or HTTP/1.1) on another, and forwards HTTP/1.1 to
# the server behind it. The certificate is made here, for localhost and
# 127.0.0.1, and trusted only through --cacert.

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_proxy LOG BACKEND_PORT: sets TLSPORT and H2CPORT once both accept.
start_proxy() {
    local log=$1 back=$2
    TLSPORT=$(free_port)
    H2CPORT=$(free_port)
    timeout 600 nghttpx --conf=/dev/null --workers=1 --no-ocsp \
        -f"127.0.0.1,$TLSPORT" -f"127.0.0.1,$H2CPORT;no-tls" -b"127.0.0.1,$back" \
        --errorlog-file="$log" --accesslog-file=/dev/null "$TMP/key.pem" "$TMP/cert.pem" \
        >/dev/null 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 50); do
        if python3 -c 'import socket,sys
for p in sys.argv[1:]: socket.create_connection(("127.0.0.1", int(p)), 0.2).close()' \
            "$TLSPORT" "$H2CPORT" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "!! nghttpx did not start" >&2
    cat "$log" >&2
    return 1
}

CERT_SUBJ=(-x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1")
if ! timeout 60 openssl req "${CERT_SUBJ[@]}" -keyout "$TMP/key.pem" -out "$TMP/cert.pem" \
    2>"$TMP/openssl.log" ||
    ! timeout 60 openssl req "${CERT_SUBJ[@]}" -keyout "$TMP/other-key.pem" \
        -out "$TMP/other.pem" 2>>"$TMP/openssl.log"; then
    bad tls-certificate "openssl req failed: $(head -3 "$TMP/openssl.log")"
elif ! start_proxy "$TMP/nghttpx-fixture.log" "$FPORT"; then
    bad nghttpx-fixture "nghttpx in front of the fixture did not start"
else
    FXS=https://127.0.0.1:$TLSPORT
    FXC=http://127.0.0.1:$H2CPORT
    CA=(--cacert "$TMP/cert.pem")

    run tls-cacert 0 "PASS" -- -n 4 "${CA[@]}" --expect-status 404=N "$FXS/nothing"
    run tls-name-localhost 0 "PASS" -- -n 4 "${CA[@]}" --expect-status 404=N \
        "https://localhost:$TLSPORT/nothing"
    run tls-untrusted 2 "not trusted" "self-signed certificate" "--cacert FILE" -- -n 2 \
        "$FXS/nothing"
    run tls-wrong-ca 2 "not trusted" -- -n 2 --cacert "$TMP/other.pem" "$FXS/nothing"
    run tls-cacert-missing 2 "--cacert $TMP/none.pem" -- -n 2 --cacert "$TMP/none.pem" \
        "$FXS/nothing"
    run tls-cacert-not-pem 2 "no PEM certificate" -- -n 2 --cacert "$TMP/ids.txt" "$FXS/nothing"
    run tls-insecure 0 "PASS" -- -n 4 --insecure --expect-status 404=N "$FXS/nothing"
    # The fixture waits for a request line that a ClientHello never ends;
    # racefree answers it with an HTTP error, which is not TLS.
    run tls-plain-fixture 2 "timed out after 500 ms in the TLS handshake" -- -n 2 --timeout 500 \
        "https://127.0.0.1:$FPORT/nothing"
    [ -n "$RPORT" ] && run tls-plain-server 2 "a plain-HTTP server? use http://" -- -n 2 \
        "https://127.0.0.1:$RPORT/nothing"
    run tls-sync-none 0 "sync none" "PASS" -- -n 8 --sync none "${CA[@]}" \
        -d '{"email":"tls-none-{{i}}@x"}' --expect-status 201=N "$FXS/v1/users"
    run h2-packet-distinct 0 "sync packet" "PASS" -- -n 16 --sync packet "${CA[@]}" \
        -d '{"email":"h2-{{i}}@x"}' --expect-status 201=N --expect-distinct .user.id=N \
        "$FXS/v1/users"
    run h2-packet-get 0 "PASS" -- -n 8 --sync packet "${CA[@]}" --expect-status 404=N \
        "$FXS/nothing"
    # nghttpx allows 100 streams per connection: 250 requests need three.
    run h2c-packet-250 0 "PASS" -- -n 250 --h2c -d '{"email":"h2c-{{i}}@x"}' \
        --expect-status 201=N "$FXC/v1/users"
    run h2-packet-untrusted 2 "not trusted" -- -n 2 --sync packet "$FXS/nothing"
    run h2c-against-http1 2 "HTTP/2" -- -n 2 --h2c --timeout 3000 "$FX/nothing"

    dup_check tls-lastbyte-duplicates "$FXS" 10 9 "${CA[@]}"
    dup_check h2-packet-duplicates "$FXS" 10 9 "${CA[@]}" --sync packet
    dup_check h2c-packet-duplicates "$FXC" 10 9 --h2c

    if rf_want h2-packet-json; then
        rm -f "$TMP/out" "$TMP/err"
        PROBE -n 6 --sync packet "${CA[@]}" --json --per-request --report "$TMP/h2.html" \
            -d '{"email":"h2json@x"}' --expect-distinct .user.id=1 "$FXS/v1/users" \
            >"$TMP/out" 2>"$TMP/err"
        rc=$?
        if [ $rc -eq 1 ] && jq -e '.target.sync == "packet" and .rounds[0].requests == 6
              and (.rounds[0].per_request | length) == 6
              and all(.rounds[0].per_request[]; .status == 201 and .lastbyte_us != null
                      and .firstbyte_us != null and .done_us >= .lastbyte_us
                      and (.body | fromjson | .user.email) == "h2json@x")' \
            "$TMP/out" >/dev/null && grep -q 'data-rows="6"' "$TMP/h2.html"; then
            ok h2-packet-json
        else
            bad h2-packet-json "exit $rc, or the JSON document or HTML report not as expected"
        fi
    fi
fi

if [ -n "$RPORT" ] && [ -f "$TMP/cert.pem" ] && start_proxy "$TMP/nghttpx-serve.log" "$RPORT"; then
    RFS=https://127.0.0.1:$TLSPORT
    RFC=http://127.0.0.1:$H2CPORT
    run racefree-tls-lastbyte 0 "PASS: every expectation held" -- -n 32 --cacert "$TMP/cert.pem" \
        -H "$AUTH" -d '{"email":"tls-{{round}}@example.com"}' --rounds 2 "${USERS_EXPECT[@]}" \
        --expect-no-5xx --verify "$RFS/v1/users?email=tls-{{round}}@example.com" \
        --expect-verify-count .data=1 "$RFS/v1/users"
    run racefree-h2-packet 0 "PASS: every expectation held" -- -n 32 --sync packet \
        --cacert "$TMP/cert.pem" -H "$AUTH" -d '{"email":"h2-{{round}}@example.com"}' \
        --rounds 2 "${USERS_EXPECT[@]}" --expect-no-5xx \
        --verify "$RFS/v1/users?email=h2-{{round}}@example.com" --expect-verify-count .data=1 \
        "$RFS/v1/users"
    run racefree-h2c-packet 0 "PASS: every expectation held" -- -n 150 --h2c -H "$AUTH" \
        -d '{"email":"h2c-{{round}}@example.com"}' --rounds 2 "${USERS_EXPECT[@]}" \
        --expect-no-5xx --verify "$RFC/v1/users?email=h2c-{{round}}@example.com" \
        --expect-verify-count .data=1 "$RFC/v1/users"
elif [ -n "$RPORT" ]; then
    bad nghttpx-racefree "nghttpx in front of racefree serve did not start"
fi

kill -TERM "$WATCHDOG" 2>/dev/null
rf_summary probe
