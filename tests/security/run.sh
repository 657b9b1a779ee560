#!/usr/bin/env bash
# Security checks; docs/SECURITY.md (section 9) says what each one guards.
#
#   tests/security/run.sh [--bin build/racefree] [--pg ADMIN_URL [--pg-dir DIR]]
#                         [--only SUBSTR]   (of the names below)
#
#   sql_params        every SQL statement in src/ is a constant (sql_params.py)
#   sql_params_mut_*  the same scanner on scratch copies of src/ with one bad
#                     line each must fail: proof that it can
#   secrets (secrets.py), on SQLite and, with --pg, on PostgreSQL:
#                     no plaintext root or API key in the database (dump and
#                     raw files) or in a --log-level debug log, but the
#                     bootstrap announcement
#
# Tenant isolation is in tests/integration/itest.c (tenancy, tenancy_all_routes).
# Ends with one line "N passed, N failed"; exits 1 if any failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/tests/support/lib.sh"
bin=$root/build/racefree
pg=()
while [ $# -gt 0 ]; do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    --pg) pg+=(--pg "$2"); shift 2 ;;
    --pg-dir) pg+=(--pg-dir "$2"); shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) sed -n '2,14s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
    esac
done

ok() { rf_ok "$1"; }
notok() { rf_bad "$@"; }

if rf_want sql_params; then
    out=$(python3 "$here/sql_params.py" --root "$root" 2>&1)
    if [ $? -eq 0 ]; then ok sql_params; else notok sql_params "$(printf '\n%s' "$out")"; fi
fi

# Each mutation is appended to one file of a scratch copy of src/; the
# scanner must then fail and name that file.
scratch=$(mktemp -d /tmp/rf-sqlmut.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mutate() {
    local name=$1 file=$2 code=$3
    rf_want "sql_params_mut_$name" || return 0
    rm -rf "$scratch/src"
    cp -r "$root/src" "$scratch/src"
    printf '%s\n' "$code" >>"$scratch/src/$file"
    local res
    res=$(python3 "$here/sql_params.py" --root "$scratch" 2>&1)
    if [ $? -ne 0 ] && grep -q "^src/$file:" <<<"$res"; then
        ok "sql_params_mut_$name"
    else
        notok "sql_params_mut_$name" "the scanner missed it: $res"
    fi
}
mutate format store/users.c '
static int sec_bad(struct rf_db_conn *c, const char *email, struct rf_db_error *e)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT id FROM users WHERE email = '"'"'%s'"'"'", email);
    return rf_db_exec(c, sql, NULL, 0, NULL, NULL, e);
}'
mutate strcat store/resources.c '
static int sec_bad(struct rf_db_conn *c, const char *table, struct rf_db_error *e)
{
    char sql[128] = "";
    strcat(sql, "DELETE FROM ");
    strcat(sql, table);
    return rf_db_exec(c, sql, NULL, 0, NULL, NULL, e);
}'
mutate variable store/events.c '
static int sec_bad(struct rf_db_conn *c, const char *user_sql, int flag, struct rf_db_error *e)
{
    return rf_db_exec(c, flag ? "SELECT 1" : user_sql, NULL, 0, NULL, NULL, e);
}'
mutate forwarder db/pg.c '
static void sec_run(PGconn *h, const char *q)
{
    PQclear(PQexec(h, q));
}
static void sec_bad(PGconn *h, const char *name)
{
    char b[64];
    rf_errf(b, sizeof(b), "%s", name);
    sec_run(h, b);
}'
mutate format_table api/users.c '
static const char *const sec_fmt = "UPDATE users SET name = '"'"'%s'"'"' WHERE id = ?";'

if ! rf_want secrets; then
    :
elif [ -x "$bin" ]; then
    log=$(mktemp)
    python3 "$here/secrets.py" --bin "$bin" "${pg[@]}" 2>&1 | tee "$log"
    p=$(grep -c '^ok ' "$log")
    f=$(grep -c '^not ok ' "$log")
    passed=$((passed + p))
    failed=$((failed + f))
    grep -qE '^[0-9]+ passed, [0-9]+ failed' "$log" || notok secrets "secrets.py printed no summary"
    rm -f "$log"
else
    notok secrets "no server binary at $bin (make first, or --bin)"
fi

rf_summary
