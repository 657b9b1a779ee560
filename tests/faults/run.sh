#!/usr/bin/env bash
# Fault tests (docs/ARCHITECTURE.md, Operating): kill -9 under load on SQLite and
# PostgreSQL, PostgreSQL stopped and started under load, SQLite on a full disk and
# locked by another process.
#
#   tests/faults/run.sh --bin ./build/racefree [--only NAME,...] [--no-pg]
#
# Environment: KILLS=N kills per backend (default 100), KILL_SECONDS=N caps each kill
# loop (default 150; it says when it stops short), SEED=N the request mix,
# LOCK_BUDGET_S=N the longest a write may wait on a locked SQLite file (default 10),
# FAULTS_KEEP=1 keeps the scratch directory. Starts its own PostgreSQL cluster
# (scripts/pg.sh); the full-disk test mounts a tmpfs when permitted, else skips.
# Ends with "N passed, N failed"; exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/support/lib.sh

missing=""
command -v python3 >/dev/null 2>&1 || missing="python3"
if [[ " $* " != *" --no-pg "* ]]; then
    command -v psql >/dev/null 2>&1 || missing="$missing psql"
fi
if [ -n "$missing" ]; then
    echo "faults: missing:$missing (scripts/deps.sh installs them)"
    failed=1
    rf_summary
    exit 1
fi
exec python3 tests/faults/faults.py "$@"
