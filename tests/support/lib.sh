# Shared preamble of the shell test suites (bash): sourced, never run.
#
#   . "$(dirname "$0")/../support/lib.sh"   (from tests/<suite>/<script>.sh)
#
#   rf_init LABEL SECONDS   scratch dir $TMP, tally, cleanup on exit, and a
#                           watchdog that ends the whole script after SECONDS
#   rf_track PID            stop PID (TERM, then wait) at exit
#   rf_start_server LOG CMD...   CMD in the background, waits for its
#                           "listening on http://127.0.0.1:PORT" line; sets
#                           PORT and SPID. Not in a subshell: SPID must reach
#                           the cleanup list.
#   rf_start_serve LOG BIN ARGS...   `BIN serve --log-level info ARGS`, as
#                           rf_start_server, and KEY: the bootstrap root key
#   rf_root_key LOG         the first root key a serve log announces
#   rf_stop PID [SECONDS]   TERM, wait up to SECONDS (15), then KILL; returns
#                           the exit status. By PID, never by name.
#   rf_free_port            a port on 127.0.0.1 free at the time of asking
#   rf_pg_start VAR DIR [NAME=VALUE...]   a throwaway cluster in DIR
#                           (scripts/pg.sh), stopped at exit; its URL in VAR
#   rf_pg_stop DIR
#   rf_ok NAME / rf_bad NAME [WHY]   count and print "ok NAME" / "not ok NAME: WHY"
#                           ($RF_OK_SEP between "ok" and NAME, default " ")
#   rf_summary [LABEL]      "LABEL: N passed, N failed"; false if any failed
#   rf_want NAME            true unless $ONLY is set and NAME lacks it
#   rf_args FLAG VAR METAVAR... -- "$@"   each `FLAG VALUE` in the script's
#                           arguments sets VAR; anything else prints the usage
#                           line the triples make and exits 2
#
# Every runner ends with the "N passed, N failed" line scripts/test.sh sums.

RF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PIDS=()
RF_PG_DIRS=()
RF_TMP=
RF_OK_SEP=${RF_OK_SEP:-" "}
passed=0
failed=0
# Not taken from the environment: `make test ONLY=…` exports it for
# scripts/test.sh, not for the suites it runs.
ONLY=

rf_cleanup() {
    local p d
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    for d in "${RF_PG_DIRS[@]}"; do
        "$RF_ROOT/scripts/pg.sh" stop "$d" >/dev/null 2>&1 || true
    done
    # A suite's own cleanup, if it defines one.
    if declare -F rf_on_exit >/dev/null; then rf_on_exit; fi
    # RF_TMP, not TMP: a TMP from the environment is no scratch of ours.
    [ -n "$RF_TMP" ] && rm -rf "$RF_TMP"
}

rf_init() { # LABEL SECONDS
    local label=$1 secs=$2
    TMP=$(mktemp -d "/tmp/rf-$label.XXXXXX")
    RF_TMP=$TMP
    trap rf_cleanup EXIT
    trap 'exit 130' INT TERM
    # A hard stop for the whole run, whatever hangs. The sleep runs under
    # `wait` so that a TERM from the cleanup ends the watchdog at once.
    (
        trap 'kill "$SP" 2>/dev/null; exit 0' TERM
        sleep "$secs" &
        SP=$!
        wait "$SP"
        echo "!! $label tests: $((secs / 60)) minute limit reached" >&2
        kill -TERM $$
    ) &
    WATCHDOG=$!
    PIDS+=("$WATCHDOG")
}

rf_track() { PIDS+=("$1"); }

# RF_START_TRIES tenths of a second to wait for the line (default 50).
rf_start_server() { # LOG CMD...
    local log=$1
    shift
    PORT=
    "$@" 2>"$log" >/dev/null &
    SPID=$!
    PIDS+=("$SPID")
    for _ in $(seq "${RF_START_TRIES:-50}"); do
        PORT=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" 2>/dev/null | grep -o '[0-9]*$')
        [ -n "$PORT" ] && return 0
        sleep 0.1
    done
    echo "!! server did not start: $*" >&2
    cat "$log" >&2
    return 1
}

rf_root_key() { grep -o 'rk_[A-Za-z0-9]*' "$1" | head -1; }

rf_start_serve() { # LOG BIN ARGS...
    local log=$1 bin=$2
    shift 2
    KEY=
    rf_start_server "$log" "$bin" serve --log-level info "$@" || return 1
    KEY=$(rf_root_key "$log")
    if [ -z "$KEY" ]; then
        echo "!! server announced no root key: $*" >&2
        cat "$log" >&2
        return 1
    fi
}

rf_stop() { # PID [SECONDS]
    local pid=$1 tenths=$((${2:-15} * 10))
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq "$tenths"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid"
}

rf_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Sets VAR rather than printing the URL: in a $(...) the directory would not
# reach the cleanup list.
rf_pg_start() { # VAR DIR [NAME=VALUE...]
    local var=$1 url
    shift
    mkdir -p "$1" && chmod 755 "$1"
    RF_PG_DIRS+=("$1")
    url=$("$RF_ROOT/scripts/pg.sh" start "$@") || return 1
    printf -v "$var" '%s' "$url"
}

rf_pg_stop() { "$RF_ROOT/scripts/pg.sh" stop "$1" >/dev/null 2>&1 || true; }

rf_ok() {
    passed=$((passed + 1))
    echo "ok$RF_OK_SEP$1"
}

rf_bad() {
    failed=$((failed + 1))
    echo "not ok$RF_OK_SEP$1${2:+: $2}"
}

rf_want() { [ -z "$ONLY" ] || [[ $1 == *"$ONLY"* ]]; }

rf_args() { # FLAG VAR METAVAR... -- ARGS...
    local -A var=()
    local usage="usage: $0"
    while [ "$1" != -- ]; do
        var[$1]=$2
        usage+=" [$1 $3]"
        shift 3
    done
    shift
    while [ $# -gt 0 ]; do
        if [ $# -lt 2 ] || [ -z "${var[$1]:-}" ]; then
            echo "$usage" >&2
            exit 2
        fi
        printf -v "${var[$1]}" '%s' "$2"
        shift 2
    done
}

rf_summary() { # [LABEL]
    echo "${1:+$1: }$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
