#!/usr/bin/env bash
# Every test, as `make test` and CI run it:
#   1. normal build: unit tests, integration tests against build/racefree
#   2. ASan+UBSan build: the same again
#   3. unit tests under valgrind (leaks and memory errors)
# Ends with one line "N passed, N failed" summing every runner.
set -uo pipefail
cd "$(dirname "$0")/.."

JOBS=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Runs a test runner, echoes its output, adds its "N passed, N failed" line
# to the totals; a runner that crashes without one counts as one failure.
run() {
    local name=$1
    shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
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

build() {
    echo "== build: make $*"
    if ! make -s -j"$JOBS" "$@" check; then
        echo "!! build failed: make $*"
        failed=$((failed + 1))
        return 1
    fi
}

if build; then
    run unit ./build/unit
    run integration ./build/itest --bin ./build/racefree
fi

if build SAN=1; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    run unit-asan ./build-san/unit
    run integration-asan ./build-san/itest --bin ./build-san/racefree
    unset ASAN_OPTIONS UBSAN_OPTIONS
fi

if [ -x ./build/unit ]; then
    run unit-valgrind valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        ./build/unit
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
