#!/usr/bin/env bash
# Every test, as `make test` and CI run it:
#   1. normal build: unit, probe CLI + HTML report (headless Chromium),
#      OpenAPI, /metrics, integration (SQLite, PostgreSQL READ COMMITTED and
#      SERIALIZABLE), security, connection abuse, kill -9 and database faults
#   2. ASan+UBSan build: unit, probe CLI, /metrics, integration again
#   3. TSan build: the concurrency tests (make test-tsan)
#   4. libFuzzer on every parser, bounded (make fuzz-ci)
#   5. unit tests under valgrind (leaks and memory errors)
# Ends with one line "N passed, N failed" summing every runner.
# Each stage prints its wall time, so CI's 20 minutes can be budgeted.
set -uo pipefail
cd "$(dirname "$0")/.."

JOBS=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
log=$(mktemp)

# Runs a test runner, echoes its output, adds its "N passed, N failed" line
# to the totals; a runner that crashes without one counts as one failure.
run() {
    local name=$1
    shift
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

# Two throwaway PostgreSQL clusters from Debian's packages: one with the
# defaults (READ COMMITTED), one SERIALIZABLE, as PostgreSQL-compatible
# distributed engines run. Stopped by PID on exit.
PGTMP=$(mktemp -d /tmp/rf-pg.XXXXXX)
chmod 755 "$PGTMP"
stop_pg() {
    ./scripts/pg.sh stop "$PGTMP/rc" >/dev/null 2>&1 || true
    ./scripts/pg.sh stop "$PGTMP/ser" >/dev/null 2>&1 || true
    rm -rf "$PGTMP"
    rm -f "$log"
}
trap stop_pg EXIT
PG_RC=$(./scripts/pg.sh start "$PGTMP/rc") || { echo "!! PostgreSQL did not start"; failed=$((failed + 1)); }
PG_SER=$(./scripts/pg.sh start "$PGTMP/ser" default_transaction_isolation=serializable) ||
    { echo "!! PostgreSQL (serializable) did not start"; failed=$((failed + 1)); }

# The unit tests of the PostgreSQL driver talk to a real server when asked.
export RF_TEST_PG_URL=$PG_RC

itests() {
    local dir=$1
    run "integration-sqlite$2" "./$dir/itest" --bin "./$dir/racefree"
    if [ -n "$PG_RC" ]; then
        run "integration-postgres$2" "./$dir/itest" --bin "./$dir/racefree" --pg "$PG_RC" --pg-dir "$PGTMP/rc"
    fi
}

if build; then
    run unit ./build/unit
    run probe-cli make -s probe-test
    run probe-html make -s probe-html-test
    run openapi tests/openapi/run.sh --bin ./build/racefree
    run metrics python3 tests/metrics/run.py --build build
    itests build ""
    if [ -n "$PG_SER" ]; then
        run integration-postgres-serializable ./build/itest --bin ./build/racefree \
            --pg "$PG_SER" --pg-dir "$PGTMP/ser"
    fi
    if [ -n "$PG_RC" ]; then
        run security tests/security/run.sh --bin ./build/racefree --pg "$PG_RC" --pg-dir "$PGTMP/rc"
    else
        run security tests/security/run.sh --bin ./build/racefree
    fi
    run abuse tests/abuse/run.sh --bin ./build/racefree
    run faults make -s test-faults KILLS="${KILLS:-100}"
fi

if build SAN=1; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    run unit-asan ./build-san/unit
    run probe-cli-asan make -s SAN=1 probe-test
    run metrics-asan python3 tests/metrics/run.py --build build-san
    itests build-san "-asan"
    unset ASAN_OPTIONS UBSAN_OPTIONS
fi

# The server's concurrency tests under ThreadSanitizer (a build of its own).
run tsan make -s test-tsan TSAN_PG_URL="$PG_RC" TSAN_PG_DIR="$PGTMP/rc"

# Every parser under libFuzzer, bounded per target (make fuzz runs longer).
check fuzz make -s fuzz-ci FUZZ_CI_SECONDS="${FUZZ_CI_SECONDS:-15}"

if [ -x ./build/unit ]; then
    run unit-valgrind valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        ./build/unit
fi

echo
echo "test.sh: $SECONDS s in all"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
