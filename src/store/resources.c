#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/store.h"

#define RES_COLS "id, type, name, status, created_at, version"

static void res_from_row(const struct rf_db_rows *r, int row, void *item)
{
    struct rf_resource *o = item;
    o->id = rf_db_cell(r, row, 0);
    o->type = rf_db_cell(r, row, 1);
    o->name = rf_db_cell(r, row, 2);
    o->status = rf_db_cell(r, row, 3);
    o->created_at = rf_db_cell(r, row, 4);
    o->version = atoll(rf_db_cell(r, row, 5) ? rf_db_cell(r, row, 5) : "0");
}

struct res_ctx {
    struct rf_arena *a;
    const char *ws, *type, *name;
    int64_t quota;
    struct rf_resource *out;
    int flag;
};

/* Seed 004's other guard: the quota is one conditional upsert of the
 * workspace's counter in the create transaction — "n < quota" is checked
 * and bumped in one atomic step, so M creates racing for one free slot
 * give exactly one success. Never COUNT(*) then INSERT. */
static int res_create_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct res_ctx *ctx = arg;
    char id[RF_ID_MAX], now[RF_TIME_MAX];
    struct rf_db_rows rows;
    ctx->flag = 0;
    struct rf_db_param q[] = {RF_TEXT(ctx->ws), RF_INT(ctx->quota > 0 ? ctx->quota : INT64_MAX)};
    int bumped;
    int rc = rf_store_count(c,
                            "INSERT INTO resource_counts (workspace_id, n) VALUES (?, 1)"
                            " ON CONFLICT (workspace_id) DO UPDATE SET n = resource_counts.n + 1"
                            " WHERE resource_counts.n < ? RETURNING n",
                            q, 2, &bumped, e);
    if (rc != RF_DB_OK)
        return rc;
    if (bumped == 0) {
        ctx->flag = 1;
        return RF_DB_OK;
    }
    if (rf_id_new(id, sizeof(id), "res_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(now);
    struct rf_db_param p[] = {RF_TEXT(id), RF_TEXT(ctx->ws), RF_TEXT(ctx->type), RF_TEXT(ctx->name),
                              RF_TEXT(now)};
    rc = rf_db_exec(c,
                    "INSERT INTO resources (id, workspace_id, type, name, status, created_at)"
                    " VALUES (?, ?, ?, ?, 'ready', ?) RETURNING " RES_COLS,
                    p, 5, ctx->a, &rows, e);
    if (rc == RF_DB_OK && rows.nrows == 1)
        res_from_row(&rows, 0, ctx->out);
    return rc;
}

int rf_store_resource_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a,
                             const char *ws, const char *type, const char *name, int64_t quota,
                             struct rf_resource *out, int *over, struct rf_db_error *e)
{
    struct res_ctx ctx = {.a = a, .ws = ws, .type = type, .name = name, .quota = quota, .out = out};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, res_create_tx, &ctx, e);
    *over = ctx.flag;
    return rc;
}

int rf_store_resource_get(struct rf_db *db, struct rf_arena *a, const char *ws, const char *id,
                          struct rf_resource *out, int *found, struct rf_db_error *e)
{
    return rf_store_get(db, a,
                        "SELECT " RES_COLS " FROM resources WHERE workspace_id = ? AND id = ?", ws,
                        id, res_from_row, out, found, e);
}

/* The delete and the counter move together, so the quota frees exactly
 * the slots that were really freed. */
static int res_delete_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rf_store_ref *ctx = arg;
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->id)};
    int n;
    int rc = rf_store_count(
        c, "DELETE FROM resources WHERE workspace_id = ? AND id = ? RETURNING id", p, 2, &n, e);
    ctx->found = n == 1;
    if (ctx->found) {
        struct rf_db_param q[] = {RF_TEXT(ctx->ws)};
        rc = rf_db_exec(c, "UPDATE resource_counts SET n = n - 1 WHERE workspace_id = ?", q, 1,
                        NULL, NULL, e);
    }
    return rc;
}

int rf_store_resource_delete(struct rf_db *db, const char *ws, const char *id, int *found,
                             struct rf_db_error *e)
{
    return rf_store_ref_write(db, NULL, res_delete_tx, ws, id, found, e);
}

int rf_store_resource_list(struct rf_db *db, struct rf_arena *a, const char *ws,
                           const char *after_created, const char *after_id, int limit,
                           struct rf_resource **out, int *n, int *more, struct rf_db_error *e)
{
    void *items;
    int rc = rf_store_list(
        db, a, "SELECT " RES_COLS " FROM resources WHERE workspace_id = ?" RF_PAGE_FIRST_SQL,
        "SELECT " RES_COLS " FROM resources WHERE workspace_id = ?" RF_PAGE_AFTER_SQL, ws,
        after_created, after_id, limit, sizeof(**out), res_from_row, &items, n, more, e);
    *out = items;
    return rc;
}
