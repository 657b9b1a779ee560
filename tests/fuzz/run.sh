#!/usr/bin/env bash
# Runs libFuzzer targets one after another, each for a bounded time, on a
# working corpus kept in DIR/corpus/<target> (seeded from
# tests/fuzz/corpus/<target>, growing across runs). Prints executions per
# target and ends with "N passed, N failed"; exits 1 when any target found a
# crash, a leak, a timeout or a broken invariant (the input is left in
# DIR/artifacts/).
#
# usage: tests/fuzz/run.sh --dir build-fuzz --seconds 20 TARGET...
set -u
dir=build-fuzz
secs=60
while [ $# -gt 0 ]; do
    case "$1" in
    --dir) dir=$2; shift 2 ;;
    --seconds) secs=$2; shift 2 ;;
    *) break ;;
    esac
done
here=$(dirname "$0")
. "$here/../support/lib.sh"
mkdir -p "$dir/artifacts" "$dir/logs"
for t in "$@"; do
    seeds=$here/corpus/${t%_fuzz}
    work=$dir/corpus/${t%_fuzz}
    log=$dir/logs/$t.log
    mkdir -p "$work"
    [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null
    start=$(date +%s)
    # -timeout: one input taking 10 s is a hang; rss: leaks that grow.
    "$dir/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/$t-" "$work" >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok fuzz $t: ${execs:-?} executions in ${took}s, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l)"
    else
        failed=$((failed + 1))
        echo "not ok fuzz $t (exit $rc after ${took}s, ${execs:-?} executions); log $log:"
        grep -A40 -m1 'ERROR:\|invariant failed\|runtime error\|deadly signal' "$log" | head -60
        ls -1 "$dir/artifacts/$t-"* 2>/dev/null | sed 's/^/  artifact: /'
    fi
done
rf_summary fuzz
