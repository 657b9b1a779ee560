/* Fixed-window ratelimits counted in the database, exact across processes:
 * every spend is one conditional upsert on the (owner, name) row, so two
 * verifies can never both take the last unit. */
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int rf_store_ratelimits_set(struct rf_db_conn *c, const char *ws, const char *owner,
                            const struct rf_ratelimits *rl, struct rf_db_error *e)
{
    struct rf_db_param p[] = {RF_TEXT(owner)};
    int rc = rf_db_exec(c, "DELETE FROM ratelimits WHERE owner_id = ?", p, 1, NULL, NULL, e);
    for (int i = 0; rc == RF_DB_OK && i < rl->n; i++) {
        struct rf_db_param q[] = {RF_TEXT(ws), RF_TEXT(owner), RF_TEXT(rl->v[i].name),
                                  RF_INT(rl->v[i].limit), RF_INT(rl->v[i].duration)};
        rc = rf_db_exec(c,
                        "INSERT INTO ratelimits (workspace_id, owner_id, name, lim, duration)"
                        " VALUES (?, ?, ?, ?, ?)",
                        q, 5, NULL, NULL, e);
    }
    /* A counter whose limit is gone would come back to life, half spent,
     * if a limit of that name were added again. */
    if (rc == RF_DB_OK) {
        struct rf_db_param q[] = {RF_TEXT(owner), RF_TEXT(owner)};
        rc = rf_db_exec(c,
                        "DELETE FROM ratelimit_windows WHERE owner_id = ? AND name NOT IN"
                        " (SELECT name FROM ratelimits WHERE owner_id = ?)",
                        q, 2, NULL, NULL, e);
    }
    return rc;
}

int rf_store_ratelimits_get2(struct rf_db_conn *c, struct rf_arena *a, const char *owner,
                             const char *owner2, struct rf_ratelimits *out,
                             struct rf_ratelimits *out2, struct rf_db_error *e)
{
    struct rf_db_rows rows;
    /* One round trip for both: it runs inside a verify's transaction. */
    struct rf_db_param p[] = {RF_TEXT(owner), RF_TEXT(owner2 ? owner2 : owner)};
    out->n = 0;
    if (out2)
        out2->n = 0;
    int rc = rf_db_exec(c,
                        "SELECT owner_id, name, lim, duration FROM ratelimits"
                        " WHERE owner_id = ? OR owner_id = ? ORDER BY owner_id, name",
                        p, 2, a, &rows, e);
    for (int i = 0; rc == RF_DB_OK && i < rows.nrows; i++) {
        struct rf_ratelimits *o = !strcmp(rf_db_cell(&rows, i, 0), owner) ? out : out2;
        if (!o || o->n == RF_RATELIMITS_MAX)
            continue;
        o->v[o->n].name = rf_db_cell(&rows, i, 1);
        o->v[o->n].limit = atoll(rf_db_cell(&rows, i, 2));
        o->v[o->n].duration = atoll(rf_db_cell(&rows, i, 3));
        o->n++;
    }
    return rc;
}

int rf_store_ratelimits_get(struct rf_db_conn *c, struct rf_arena *a, const char *owner,
                            struct rf_ratelimits *out, struct rf_db_error *e)
{
    return rf_store_ratelimits_get2(c, a, owner, NULL, out, NULL, e);
}

int rf_store_ratelimits_drop(struct rf_db_conn *c, const char *owner, struct rf_db_error *e)
{
    struct rf_db_param p[] = {RF_TEXT(owner)};
    int rc = rf_db_exec(c, "DELETE FROM ratelimit_windows WHERE owner_id = ?", p, 1, NULL, NULL, e);
    if (rc == RF_DB_OK)
        rc = rf_db_exec(c, "DELETE FROM ratelimits WHERE owner_id = ?", p, 1, NULL, NULL, e);
    return rc;
}

static int64_t window_of(const struct rf_rl_check *k, int64_t now_ms)
{
    return now_ms - now_ms % k->duration;
}

/* What the counters say now, for every check: after a refusal (rolled
 * back, so this is what others have spent) or for a check never reached. */
int rf_store_ratelimits_peek(struct rf_db_conn *c, struct rf_arena *a, struct rf_rl_check *v, int n,
                             int64_t now_ms, struct rf_db_error *e)
{
    for (int i = 0; i < n; i++) {
        struct rf_db_rows rows;
        struct rf_db_param p[] = {RF_TEXT(v[i].owner), RF_TEXT(v[i].name)};
        int rc = rf_db_exec(c,
                            "SELECT window_start, used FROM ratelimit_windows"
                            " WHERE owner_id = ? AND name = ?",
                            p, 2, a, &rows, e);
        if (rc != RF_DB_OK)
            return rc;
        int64_t w = window_of(&v[i], now_ms), used = 0;
        if (rows.nrows == 1 && atoll(rf_db_cell(&rows, 0, 0)) >= w)
            used = atoll(rf_db_cell(&rows, 0, 1));
        v[i].remaining = v[i].limit > used ? v[i].limit - used : 0;
        v[i].reset = w + v[i].duration;
    }
    return RF_DB_OK;
}

int rf_store_ratelimits_spend(struct rf_db_conn *c, struct rf_arena *a, struct rf_rl_check *v,
                              int n, int64_t now_ms, int *refused, struct rf_db_error *e)
{
    int rc = RF_DB_OK;
    *refused = -1;
    for (int i = 0; i < n; i++) {
        struct rf_db_rows rows;
        int64_t w = window_of(&v[i], now_ms);
        v[i].exceeded = 0;
        if (v[i].cost > v[i].limit) { /* never fits, whatever the window holds */
            *refused = i;
            break;
        }
        /* The whole race story: a new window starts at cost; the current one
         * grows only while it stays within the limit (WHERE), in one
         * statement that locks the row. A window behind ours (a process
         * whose clock runs late) is counted in the newer one. */
        struct rf_db_param p[] = {RF_TEXT(v[i].owner), RF_TEXT(v[i].name), RF_INT(w),
                                  RF_INT(v[i].cost), RF_INT(v[i].limit)};
        rc = rf_db_exec(c,
                        "INSERT INTO ratelimit_windows (owner_id, name, window_start, used)"
                        " VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (owner_id, name) DO UPDATE SET"
                        " used = CASE WHEN ratelimit_windows.window_start >= excluded.window_start"
                        " THEN ratelimit_windows.used + excluded.used ELSE excluded.used END,"
                        " window_start = CASE WHEN ratelimit_windows.window_start >="
                        " excluded.window_start THEN ratelimit_windows.window_start"
                        " ELSE excluded.window_start END"
                        " WHERE ratelimit_windows.window_start < excluded.window_start"
                        " OR ratelimit_windows.used + excluded.used <= ?"
                        " RETURNING used, window_start",
                        p, 5, a, &rows, e);
        if (rc != RF_DB_OK)
            return rc;
        if (rows.nrows == 0) {
            *refused = i;
            break;
        }
        int64_t used = atoll(rf_db_cell(&rows, 0, 0));
        v[i].remaining = v[i].limit > used ? v[i].limit - used : 0;
        v[i].reset = atoll(rf_db_cell(&rows, 0, 1)) + v[i].duration;
    }
    if (*refused >= 0)
        v[*refused].exceeded = 1;
    return rc;
}
