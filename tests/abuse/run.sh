#!/usr/bin/env bash
# Connection abuse (docs/SECURITY.md §4.6) and CLI completeness, black box:
# a real `racefree serve` with explicit limits, attacked by tests/abuse/abuse.py
# (slowloris, 10,000 idle connections from one and from many addresses,
# oversized heads, pipelined garbage, slow bodies) while a normal client must
# be answered within 1 s; then every command's --help against the man page.
# Ends with "N passed, N failed"; exit 1 on any failure.
#
# usage: tests/abuse/run.sh [--bin build/racefree] [--only SUBSTR] [--idle N]
# Servers listen on 127.0.0.1 only and are stopped by PID; the whole script
# gives up after 5 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
RF_OK_SEP=" - "
. tests/support/lib.sh

BIN=./build/racefree
IDLE=10000
rf_args --bin BIN PATH --only ONLY SUBSTR --idle IDLE N -- "$@"

# The limits under test: small timeouts keep the run short.
MAX_CONNS=4000
PER_IP=100
HEADER_TIMEOUT=3
BODY_TIMEOUT=4
IDLE_TIMEOUT=5

rf_init abuse 300

ok() { rf_ok "$1"; }
bad() { rf_bad "$1" "$2"; }
want() { rf_want "$1"; }

# Both this shell (the attacker's sockets) and the server need a socket per
# connection; the server raises its own limit to the hard one.
NOFILE_HARD=$(ulimit -Hn)
[ "$NOFILE_HARD" = unlimited ] && NOFILE_HARD=1048576
ulimit -n "$NOFILE_HARD" 2>/dev/null
if [ "$IDLE" -gt $(($(ulimit -n) - 200)) ]; then
    IDLE=$(($(ulimit -n) - 200))
    echo "# open-file limit $(ulimit -n): idle floods use $IDLE connections, not 10000"
fi

# Waits 10 s at most for the "listening on" line; sets PORT, SPID and KEY
# (the bootstrap root key).
start_server() {
    local log=$1
    shift
    RF_START_TRIES=100 rf_start_serve "$log" "$BIN" "$@"
}

stop_server() { rf_stop "$1" 15; } # SIGTERM, then it must exit 0 within 15 s

# ---- attacks -----------------------------------------------------------------

if want attacks; then
    if start_server "$TMP/serve.log" --db "sqlite:$TMP/a.db" --listen 127.0.0.1:0 \
        --max-connections $MAX_CONNS --max-connections-per-ip $PER_IP \
        --header-timeout $HEADER_TIMEOUT --body-timeout $BODY_TIMEOUT \
        --idle-timeout $IDLE_TIMEOUT; then
        python3 tests/abuse/abuse.py --port "$PORT" --pid "$SPID" --key "$KEY" \
            --max-conns $MAX_CONNS --per-ip $PER_IP --header-timeout $HEADER_TIMEOUT \
            --body-timeout $BODY_TIMEOUT --idle-timeout $IDLE_TIMEOUT --idle "$IDLE" \
            >"$TMP/abuse.out" 2>&1
        cat "$TMP/abuse.out"
        passed=$((passed + $(grep -c '^ok ' "$TMP/abuse.out")))
        failed=$((failed + $(grep -c '^not ok ' "$TMP/abuse.out")))
        if grep -q Traceback "$TMP/abuse.out"; then
            bad "abuse.py" "crashed"
        fi
        # The attack must not have cost the server its health or its log.
        if kill -0 "$SPID" 2>/dev/null; then ok "server still running after the attacks"; else bad "server alive" "it died"; fi
        lines=$(grep -c 'libmicrohttpd' "$TMP/serve.log")
        if [ "$lines" -le 40 ]; then
            ok "libmicrohttpd's messages rate-limited ($lines lines)"
        else
            bad "libmicrohttpd's messages rate-limited" "$lines lines"
        fi
        if grep -q 'connections: .* evicted' "$TMP/serve.log"; then
            ok "evictions and deadline closes summarised in the log"
        else
            bad "connection summary logged" "no 'connections:' line"
        fi
        if stop_server "$SPID"; then ok "SIGTERM after the attacks: exit 0"; else bad "SIGTERM after the attacks" "exit $?"; fi
    else
        bad "start server for the attacks" "see above"
    fi
fi

# ---- every slot busy: 503 problem+json, not a silent close ------------------

if want busy; then
    if start_server "$TMP/busy.log" --db "sqlite:$TMP/b.db" --listen 127.0.0.1:0 \
        --max-connections 3 --provision-delay-ms 2500 --fingerprint-window 0; then
        CURLS=()
        for i in 1 2 3; do
            curl -s -o /dev/null -m 10 -X POST "http://127.0.0.1:$PORT/v1/resources" \
                -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
                -d "{\"type\":\"redis\",\"name\":\"busy-$i\"}" &
            CURLS+=("$!")
        done
        sleep 1
        out=$(curl -s -m 5 -D - "http://127.0.0.1:$PORT/healthz")
        if grep -q '^HTTP/1.1 503' <<<"$out" && grep -q '"code":"overloaded"' <<<"$out" &&
            grep -qi '^Retry-After: 1' <<<"$out"; then
            ok "every slot busy: 503 overloaded (problem+json, Retry-After)"
        else
            bad "every slot busy: 503" "got: $(head -c 300 <<<"$out")"
        fi
        wait "${CURLS[@]}"
        out=$(curl -s -m 5 "http://127.0.0.1:$PORT/healthz")
        if [ "$out" = '{"status":"ok"}' ]; then ok "slots free again: served"; else bad "slots free again" "got: $out"; fi
        stop_server "$SPID"
    else
        bad "start server for the busy test" "see above"
    fi
fi

# ---- CLI: help for everything, errors exit 2, the manual lists every flag ----

if want cli; then
    for args in "--help" "help" "-h" "help serve" "serve --help" "migrate --help" \
        "workspace --help" "probe --help" "version --help" "help probe"; do
        # shellcheck disable=SC2086
        "$BIN" $args >"$TMP/o" 2>"$TMP/e"
        rc=$?
        if [ $rc -eq 0 ] && [ -s "$TMP/o" ] && [ ! -s "$TMP/e" ] && grep -q 'usage' "$TMP/o"; then
            ok "racefree $args: usage on stdout, exit 0"
        else
            bad "racefree $args" "exit $rc, stdout $(wc -c <"$TMP/o") bytes, stderr $(wc -c <"$TMP/e") bytes"
        fi
    done
    if [ "$("$BIN" version)" = "$("$BIN" --version)" ] && "$BIN" version | grep -Eq '^racefree [0-9]+\.[0-9]+\.[0-9]+$'; then
        ok "racefree version"
    else
        bad "racefree version" "$("$BIN" version 2>&1)"
    fi
    for args in "" "bogus" "serve --bogus" "serve extra" "migrate --threads 2" "workspace" \
        "workspace create" "version extra" "help bogus" "serve --max-connections 0" \
        "serve --header-timeout" "probe --bogus"; do
        # shellcheck disable=SC2086
        "$BIN" $args >"$TMP/o" 2>"$TMP/e"
        rc=$?
        if [ $rc -eq 2 ] && [ ! -s "$TMP/o" ] && [ -s "$TMP/e" ]; then
            ok "racefree $args: error on stderr, exit 2"
        else
            bad "racefree $args" "exit $rc, stdout $(wc -c <"$TMP/o") bytes"
        fi
    done
    sed 's/\\-/-/g' docs/racefree.1 >"$TMP/man.txt" # troff writes a hyphen as \-
    for cmd in serve migrate workspace; do
        missing=$("$BIN" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u | while read -r f; do
            grep -qE -- "(^|[^a-z-])$f([^a-z-]|\$)" "$TMP/man.txt" || echo "$f"
        done)
        if [ -z "$missing" ]; then
            ok "every flag in '$cmd --help' is in docs/racefree.1"
        else
            bad "flags of '$cmd --help' missing from docs/racefree.1" "$(echo $missing)"
        fi
    done
    if command -v man >/dev/null && MANWIDTH=80 man -l docs/racefree.1 2>"$TMP/e" | grep -q 'max-connections-per-ip' && [ ! -s "$TMP/e" ]; then
        ok "docs/racefree.1 renders without warnings"
    elif ! command -v man >/dev/null && command -v groff >/dev/null; then
        if groff -man -Tutf8 -ww docs/racefree.1 >/dev/null 2>"$TMP/e" && [ ! -s "$TMP/e" ]; then ok "docs/racefree.1 renders"; else bad "docs/racefree.1 renders" "$(head -3 "$TMP/e")"; fi
    else
        bad "docs/racefree.1 renders" "$(head -3 "$TMP/e")"
    fi
    # make install / uninstall into a scratch DESTDIR.
    if make -s install DESTDIR="$TMP/dest" PREFIX=/opt/rf BUILD="$(dirname "$BIN")" >"$TMP/o" 2>&1 &&
        [ -x "$TMP/dest/opt/rf/bin/racefree" ] && [ -f "$TMP/dest/opt/rf/share/man/man1/racefree.1" ] &&
        "$TMP/dest/opt/rf/bin/racefree" version >/dev/null; then
        ok "make install DESTDIR=… PREFIX=/opt/rf"
    else
        bad "make install" "$(tail -3 "$TMP/o")"
    fi
    if make -s uninstall DESTDIR="$TMP/dest" PREFIX=/opt/rf >"$TMP/o" 2>&1 &&
        [ ! -e "$TMP/dest/opt/rf/bin/racefree" ] && [ ! -e "$TMP/dest/opt/rf/share/man/man1/racefree.1" ]; then
        ok "make uninstall"
    else
        bad "make uninstall" "$(tail -3 "$TMP/o")"
    fi
    if command -v systemd-analyze >/dev/null; then
        # Not installed here: the binary and the man page are allowed to be missing.
        systemd-analyze verify contrib/racefree.service >"$TMP/o" 2>&1
        if ! grep -v -e 'is not executable' -e "man racefree(1)" "$TMP/o" | grep -q .; then
            ok "contrib/racefree.service: systemd-analyze verify"
        else
            bad "contrib/racefree.service" "$(head -3 "$TMP/o")"
        fi
    fi
fi

rf_summary
