#!/usr/bin/env bash
# Every test, as `make test` and CI run it:
#   0. format: clang-format --dry-run over every tracked .c/.h (make format-check)
#   1. normal build: unit, probe CLI + HTML report (headless Chromium),
#      OpenAPI, /metrics, integration (SQLite, PostgreSQL READ COMMITTED and
#      SERIALIZABLE), security, connection abuse, kill -9 and database faults
#   2. ASan+UBSan build: unit, probe CLI, /metrics, integration again
#   3. TSan build: the concurrency tests (make test-tsan)
#   4. libFuzzer on every parser, bounded (make fuzz-ci)
#   5. unit tests under valgrind (leaks and memory errors)
# Ends with one line "N passed, N failed" summing every runner.
# Each stage prints its wall time, so CI's 20 minutes can be budgeted.
#
# One suite, or one test of a suite (also `make test ONLY=PATTERN[,PATTERN…]`):
#   scripts/test.sh --list                 the suites, by the names the stages print
#   scripts/test.sh --only NAME[,NAME…]    only those suites; NAME is a suite's name,
#                                          else a glob ('integration-*'), else a
#                                          substring ('postgres'); --only may repeat
#   scripts/test.sh --only SUITE:TEST      TEST goes to the suite's own filter:
#       unit*, tsan (unit part)      a substring of the test function's name
#       integration-*, tsan (itest)  itest --only SUBSTR
#       probe-cli*, openapi, abuse, security   the runner's --only SUBSTR
#       faults                       tests/faults/run.sh --only NAME[,NAME…]
#       fuzz                         the targets whose name holds TEST
#       probe-html, metrics, format  no filter: TEST is refused
# Only what the chosen suites need is built, and PostgreSQL is started only for
# the suites that use it.
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/support/lib.sh

# In the order they run; the names `run` and `check` print.
SUITES=(format unit probe-cli probe-html openapi metrics integration-sqlite integration-postgres
    integration-postgres-serializable security abuse faults unit-asan probe-cli-asan metrics-asan
    integration-sqlite-asan integration-postgres-asan tsan fuzz unit-valgrind)
# Suites whose runner takes no filter.
NOFILTER=" probe-html metrics metrics-asan format "

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

patterns=()
while [ $# -gt 0 ]; do
    case $1 in
    --only) [ $# -ge 2 ] || usage; IFS=, read -ra p <<<"$2"; patterns+=("${p[@]}"); shift 2 ;;
    --only=*) IFS=, read -ra p <<<"${1#--only=}"; patterns+=("${p[@]}"); shift ;;
    --list) printf '%s\n' "${SUITES[@]}"; exit 0 ;;
    *) usage ;;
    esac
done
# `make test ONLY=…` hands it over as --only; the suites must not see it.
unset ONLY

# SEL[suite] is set for every chosen suite, to its TEST filter (may be empty).
declare -A SEL=()
for pat in "${patterns[@]}"; do
    [ -n "$pat" ] || continue
    name=${pat%%:*}
    filter=
    [[ $pat == *:* ]] && filter=${pat#*:}
    hits=()
    for s in "${SUITES[@]}"; do [ "$s" = "$name" ] && hits=("$s"); done
    if [ ${#hits[@]} -eq 0 ]; then
        for s in "${SUITES[@]}"; do
            # shellcheck disable=SC2053
            if [[ $name == *[*?[]* ]]; then [[ $s == $name ]] && hits+=("$s")
            elif [[ $s == *"$name"* ]]; then hits+=("$s"); fi
        done
    fi
    if [ ${#hits[@]} -eq 0 ]; then
        echo "test.sh: no suite matches '$name'; the suites (--list):" >&2
        printf '  %s\n' "${SUITES[@]}" >&2
        exit 2
    fi
    for s in "${hits[@]}"; do
        if [ -n "$filter" ] && [[ $NOFILTER == *" $s "* ]]; then
            echo "test.sh: $s takes no TEST filter (asked for '$filter')" >&2
            exit 2
        fi
        SEL[$s]=$filter
    done
done

# want SUITE...: true if any of them is to run.
want() {
    [ ${#patterns[@]} -eq 0 ] && return 0
    local s
    for s in "$@"; do [ -n "${SEL[$s]+x}" ] && return 0; done
    return 1
}
filter() { [ ${#patterns[@]} -eq 0 ] || echo "${SEL[$1]:-}"; }

JOBS=$(nproc 2>/dev/null || echo 2)
log=$(mktemp)

# Runs a test runner, echoes its output, adds its "N passed, N failed" line
# to the totals; a runner that crashes without one counts as one failure.
# Runs only if SUITE was chosen.
run() {
    local name=$1
    shift
    want "$name" || return 0
    echo "== $name: $*"
    local t0=$SECONDS
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: $((SECONDS - t0)) s"
    local line
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        local p f
        p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')
        f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            echo "!! $name exited $rc with no failed test: counted as one failure"
            failed=$((failed + 1))
        fi
    else
        echo "!! $name printed no summary (exit $rc): counted as one failure"
        failed=$((failed + 1))
    fi
}

# For commands without a test runner's summary: one pass or one failure.
check() {
    local name=$1
    shift
    want "$name" || return 0
    echo "== $name: $*"
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "!! $name failed"
        failed=$((failed + 1))
    fi
}

build() {
    echo "== build: make $*"
    if ! make -s -j"$JOBS" "$@" check; then
        echo "!! build failed: make $*"
        failed=$((failed + 1))
        return 1
    fi
}

# "--only TEST" when SUITE was given one, else nothing.
only_arg() {
    local f
    f=$(filter "$1")
    [ -n "$f" ] && printf '%s\n' --only "$f"
}

# The fuzz targets a fuzz:TEST filter names, refused when it names none.
fuzz_only=()
if [ -n "$(filter fuzz)" ]; then
    names=$(ls tests/fuzz/*_fuzz.c | sed 's|.*/||; s|\.c$||' | grep -F -- "$(filter fuzz)" | tr '\n' ' ')
    if [ -z "$names" ]; then
        echo "test.sh: no fuzz target's name holds '$(filter fuzz)'" >&2
        exit 2
    fi
    fuzz_only=(FUZZ_NAMES="${names% }")
fi

# make probe-test's filter, as a make variable.
probe_only() {
    local f
    f=$(filter "$1")
    [ -n "$f" ] && echo "PROBE_ONLY=$f"
}

# Cheap, and needs no build: first.
check format make -s format-check

# Two throwaway PostgreSQL clusters from Debian's packages: one with the
# defaults (READ COMMITTED), one SERIALIZABLE, as PostgreSQL-compatible
# distributed engines run. Stopped by PID on exit (tests/support/lib.sh).
PGTMP=$(mktemp -d /tmp/rf-pg.XXXXXX)
chmod 755 "$PGTMP"
rf_on_exit() { rm -rf "$PGTMP" "$log"; }
trap rf_cleanup EXIT
PG_RC= PG_SER=
if want unit integration-postgres integration-postgres-serializable security unit-asan \
    integration-postgres-asan tsan unit-valgrind; then
    rf_pg_start PG_RC "$PGTMP/rc" || { echo "!! PostgreSQL did not start"; failed=$((failed + 1)); }
fi
if want integration-postgres-serializable; then
    rf_pg_start PG_SER "$PGTMP/ser" default_transaction_isolation=serializable ||
        { echo "!! PostgreSQL (serializable) did not start"; failed=$((failed + 1)); }
fi

# The unit tests of the PostgreSQL driver talk to a real server when asked.
export RF_TEST_PG_URL=$PG_RC

itests() {
    local dir=$1
    # shellcheck disable=SC2046
    run "integration-sqlite$2" "./$dir/itest" --bin "./$dir/racefree" $(only_arg "integration-sqlite$2")
    if [ -n "$PG_RC" ]; then
        # shellcheck disable=SC2046
        run "integration-postgres$2" "./$dir/itest" --bin "./$dir/racefree" --pg "$PG_RC" \
            --pg-dir "$PGTMP/rc" $(only_arg "integration-postgres$2")
    fi
}

# Word splitting of $(filter …) and $(only_arg …) below is wanted: nothing,
# or one word (TEST filters hold no spaces).
# shellcheck disable=SC2046
if want unit probe-cli probe-html openapi metrics integration-sqlite integration-postgres \
    integration-postgres-serializable security abuse faults unit-valgrind && build; then
    run unit ./build/unit $(filter unit)
    run probe-cli make -s probe-test $(probe_only probe-cli)
    run probe-html make -s probe-html-test
    run openapi tests/openapi/run.sh --bin ./build/racefree $(only_arg openapi)
    run metrics python3 tests/metrics/run.py --build build
    itests build ""
    if [ -n "$PG_SER" ]; then
        run integration-postgres-serializable ./build/itest --bin ./build/racefree \
            --pg "$PG_SER" --pg-dir "$PGTMP/ser" $(only_arg integration-postgres-serializable)
    fi
    if [ -n "$PG_RC" ]; then
        run security tests/security/run.sh --bin ./build/racefree --pg "$PG_RC" --pg-dir "$PGTMP/rc" \
            $(only_arg security)
    else
        run security tests/security/run.sh --bin ./build/racefree $(only_arg security)
    fi
    run abuse tests/abuse/run.sh --bin ./build/racefree $(only_arg abuse)
    if [ -n "$(filter faults)" ]; then
        run faults env KILLS="${KILLS:-100}" tests/faults/run.sh --bin ./build/racefree \
            $(only_arg faults)
    else
        run faults make -s test-faults KILLS="${KILLS:-100}"
    fi
fi

# shellcheck disable=SC2046
if want unit-asan probe-cli-asan metrics-asan integration-sqlite-asan integration-postgres-asan &&
    build SAN=1; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    run unit-asan ./build-san/unit $(filter unit-asan)
    run probe-cli-asan make -s SAN=1 probe-test $(probe_only probe-cli-asan)
    run metrics-asan python3 tests/metrics/run.py --build build-san
    itests build-san "-asan"
    unset ASAN_OPTIONS UBSAN_OPTIONS
fi

# The server's concurrency tests under ThreadSanitizer (a build of its own).
tsan_only=()
if [ -n "$(filter tsan)" ]; then tsan_only=(TSAN_UNIT="$(filter tsan)" TSAN_TESTS="$(filter tsan)"); fi
run tsan make -s test-tsan TSAN_PG_URL="$PG_RC" TSAN_PG_DIR="$PGTMP/rc" "${tsan_only[@]}"

# Every parser under libFuzzer, bounded per target (make fuzz runs longer).
check fuzz make -s fuzz-ci FUZZ_CI_SECONDS="${FUZZ_CI_SECONDS:-15}" "${fuzz_only[@]}"

if want unit-valgrind && [ -x ./build/unit ]; then
    # shellcheck disable=SC2046
    run unit-valgrind valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        ./build/unit $(filter unit-valgrind)
fi

echo
echo "test.sh: $SECONDS s in all"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
