#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/store.h"

#define EVENT_COLS "id, name, slug, starts_at, created_at, version"
#define SLUG_MAX 64
/* Counter values tried before a random suffix: a literal slug collides
 * with a handed-out suffix only by a name like "Launch Party 7", and many in
 * a row only on purpose. The counter bumps commit with the event, so the
 * next create starts past the block of literals. */
#define SLUG_COUNTER_TRIES 16
#define SLUG_RANDOM_TRIES 8

static void event_from_row(const struct rf_db_rows *r, int row, void *item)
{
    struct rf_event *ev = item;
    ev->id = rf_db_cell(r, row, 0);
    ev->name = rf_db_cell(r, row, 1);
    ev->slug = rf_db_cell(r, row, 2);
    ev->starts_at = rf_db_cell(r, row, 3);
    ev->created_at = rf_db_cell(r, row, 4);
    ev->version = atoll(rf_db_cell(r, row, 5) ? rf_db_cell(r, row, 5) : "0");
}

struct event_ctx {
    struct rf_arena *a;
    const char *ws, *name, *base, *starts_at;
    struct rf_event *out;
};

/* base-n within SLUG_MAX bytes: the base is shortened, never the number,
 * and a hyphen left at the cut is dropped. */
static void suffixed(char *out, const char *base, long n)
{
    char suf[24];
    int sl = n > 1 ? snprintf(suf, sizeof(suf), "-%ld", n) : 0;
    size_t bl = strlen(base);
    if (bl + (size_t)sl > SLUG_MAX)
        bl = SLUG_MAX - (size_t)sl;
    while (bl > 1 && base[bl - 1] == '-')
        bl--;
    memcpy(out, base, bl);
    memcpy(out + bl, suf, (size_t)sl);
    out[bl + (size_t)sl] = '\0';
}

/* Seed 000 done right, in O(1) round trips: bump the (workspace, base)
 * counter atomically, then insert with ON CONFLICT DO NOTHING on the slug.
 * No row back means a literal name already holds that slug ("Launch Party
 * 2" vs the second "Launch Party"): bump again. Never a pre-check SELECT,
 * and never an error that would abort a PostgreSQL transaction. */
static int event_create_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct event_ctx *ctx = arg;
    char id[RF_ID_MAX], now[RF_TIME_MAX], slug[SLUG_MAX + 1];
    struct rf_db_rows rows;
    int rc;

    if (rf_id_new(id, sizeof(id), "evt_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(now);
    for (int attempt = 0; attempt < SLUG_COUNTER_TRIES + SLUG_RANDOM_TRIES; attempt++) {
        if (attempt < SLUG_COUNTER_TRIES) {
            struct rf_db_param cp[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->base)};
            rc = rf_db_exec(c,
                            "INSERT INTO slug_counters (workspace_id, base, n) VALUES (?, ?, 1)"
                            " ON CONFLICT (workspace_id, base) DO UPDATE"
                            " SET n = slug_counters.n + 1 RETURNING n",
                            cp, 2, ctx->a, &rows, e);
            if (rc != RF_DB_OK)
                return rc;
            if (rows.nrows != 1)
                return rf_db_fail(e, RF_DB_ERROR, "slug counter returned no row");
            suffixed(slug, ctx->base, atol(rf_db_cell(&rows, 0, 0)));
        } else {
            /* A run of literal collisions: a random number ends it, still
             * guarded by the unique constraint like any other. */
            suffixed(slug, ctx->base, 100000 + (long)rf_rand_below(900000000));
        }
        struct rf_db_param ip[] = {RF_TEXT(id),   RF_TEXT(ctx->ws),        RF_TEXT(ctx->name),
                                   RF_TEXT(slug), RF_TEXT(ctx->starts_at), RF_TEXT(now)};
        rc = rf_db_exec(c,
                        "INSERT INTO events (id, workspace_id, name, slug, starts_at, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (workspace_id, slug) DO NOTHING RETURNING " EVENT_COLS,
                        ip, 6, ctx->a, &rows, e);
        if (rc != RF_DB_OK)
            return rc;
        if (rows.nrows == 1) {
            event_from_row(&rows, 0, ctx->out);
            return RF_DB_OK;
        }
    }
    /* Eight random numbers all taken: not a state a workspace reaches. */
    return rf_db_fail(e, RF_DB_RETRY, "no free slug for '%s'", ctx->base);
}

int rf_store_event_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                          const char *name, const char *base, const char *starts_at,
                          struct rf_event *out, struct rf_db_error *e)
{
    struct event_ctx ctx = {a, ws, name, base, starts_at, out};
    return rf_tx_run(db, outer, RF_TX_WRITE, event_create_tx, &ctx, e);
}

int rf_store_event_get(struct rf_db *db, struct rf_arena *a, const char *ws, const char *slug,
                       struct rf_event *out, int *found, struct rf_db_error *e)
{
    return rf_store_get(db, a,
                        "SELECT " EVENT_COLS " FROM events WHERE workspace_id = ? AND slug = ?"
                        " AND deleted_at IS NULL",
                        ws, slug, event_from_row, out, found, e);
}

int rf_store_event_list(struct rf_db *db, struct rf_arena *a, const char *ws,
                        const char *after_created, const char *after_id, int limit,
                        struct rf_event **out, int *n, int *more, struct rf_db_error *e)
{
    void *items;
    int rc = rf_store_list(db, a,
                           "SELECT " EVENT_COLS " FROM events WHERE workspace_id = ?"
                           " AND deleted_at IS NULL" RF_PAGE_FIRST_SQL,
                           "SELECT " EVENT_COLS " FROM events WHERE workspace_id = ?"
                           " AND deleted_at IS NULL" RF_PAGE_AFTER_SQL,
                           ws, after_created, after_id, limit, sizeof(**out), event_from_row,
                           &items, n, more, e);
    *out = items;
    return rc;
}

/* Seed 000's promise outlives a delete: the row stays as a tombstone, so
 * the unique constraint keeps its slug taken and neither the counter nor a
 * literal name can hand it to another event (a link to a deleted event
 * never starts showing a different one). The name and start are cleared;
 * the slug and id stay. One conditional UPDATE: of simultaneous deletes
 * exactly one matches a live row. */
static int event_delete_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rf_store_ref *ctx = arg;
    char now[RF_TIME_MAX];
    int n;
    rf_now_rfc3339(now);
    struct rf_db_param p[] = {RF_TEXT(now), RF_TEXT(ctx->ws), RF_TEXT(ctx->id)};
    int rc = rf_store_count(c,
                            "UPDATE events SET deleted_at = ?, name = '', starts_at = NULL,"
                            " version = version + 1"
                            " WHERE workspace_id = ? AND slug = ? AND deleted_at IS NULL"
                            " RETURNING id",
                            p, 3, &n, e);
    ctx->found = n == 1;
    return rc;
}

int rf_store_event_delete(struct rf_db *db, const char *ws, const char *slug, int *found,
                          struct rf_db_error *e)
{
    return rf_store_ref_write(db, NULL, event_delete_tx, ws, slug, found, e);
}
