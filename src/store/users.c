/* Users in SQL both drivers accept; the coalesced creates PostgreSQL
 * gains from are store/user_batch.c's. */
#include <stdlib.h>
#include <string.h>

#include "core/rules.h"
#include "core/util.h"
#include "store/store.h"

void rf_store_user_from_row(const struct rf_db_rows *r, int row, void *user)
{
    struct rf_user *u = user;
    u->id = rf_db_cell(r, row, 0);
    u->email = rf_db_cell(r, row, 1);
    u->name = rf_db_cell(r, row, 2);
    u->username = rf_db_cell(r, row, 3);
    u->created_at = rf_db_cell(r, row, 4);
    u->updated_at = rf_db_cell(r, row, 5);
    u->version = atoll(rf_db_cell(r, row, 6) ? rf_db_cell(r, row, 6) : "0");
}

struct user_ctx {
    struct rf_arena *a;
    const char *ws, *id, *email, *name;
    const struct rf_user_patch *patch;
    struct rf_user *out;
    int created, found;
};

/* Seed 002 done right: the insert either creates the row or, when (ws,
 * email) exists, does nothing and returns nothing; then the winner is read.
 * The pair needs no transaction around it (RF_TX_AUTOCOMMIT): on SQLite the
 * write lock makes it atomic anyway; on PostgreSQL the conflicting insert
 * waits for the winner's commit, and the next statement, with a snapshot of
 * its own, sees the row. */
static int user_create_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct user_ctx *ctx = arg;
    char id[RF_ID_MAX], now[RF_TIME_MAX];
    struct rf_db_rows rows;
    int rc;

    ctx->created = ctx->found = 0;
    if (rf_id_new(id, sizeof(id), "usr_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(now);
    struct rf_db_param ins[] = {RF_TEXT(id),        RF_TEXT(ctx->ws), RF_TEXT(ctx->email),
                                RF_TEXT(ctx->name), RF_TEXT(now),     RF_TEXT(now)};
    rc = rf_db_exec(c,
                    "INSERT INTO users (id, workspace_id, email, name, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (workspace_id, email) DO NOTHING RETURNING " RF_USER_COLS,
                    ins, 6, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows == 1) {
        rf_store_user_from_row(&rows, 0, ctx->out);
        ctx->created = ctx->found = 1;
        return RF_DB_OK;
    }
    struct rf_db_param sel[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->email)};
    rc = rf_db_exec(c, "SELECT " RF_USER_COLS " FROM users WHERE workspace_id = ? AND email = ?",
                    sel, 2, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows != 1)
        /* The conflicting row vanished between the two statements (a delete
         * committed in between): run the whole transaction again. */
        return rf_db_fail(e, RF_DB_RETRY, "conflicting user row not visible");
    rf_store_user_from_row(&rows, 0, ctx->out);
    ctx->found = 1;
    return RF_DB_OK;
}

int rf_store_user_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                         const char *email, const char *name, struct rf_user *out, int *created,
                         struct rf_db_error *e)
{
    /* Inside someone else's transaction the create must join it, so it
     * cannot ride in a shared statement. */
    if (rf_db_has(db, RF_DB_CAP_BATCH_CREATE) && !outer)
        return rf_store_user_create_batched(db, a, ws, email, name, out, created, e);
    struct user_ctx ctx = {.a = a, .ws = ws, .email = email, .name = name, .out = out};
    int rc = rf_tx_run(db, outer, RF_TX_AUTOCOMMIT, user_create_tx, &ctx, e);
    *created = ctx.created;
    return rc;
}

int rf_store_user_get(struct rf_db *db, struct rf_arena *a, const char *ws, const char *id,
                      struct rf_user *out, int *found, struct rf_db_error *e)
{
    return rf_store_get(db, a,
                        "SELECT " RF_USER_COLS " FROM users WHERE workspace_id = ? AND id = ?", ws,
                        id, rf_store_user_from_row, out, found, e);
}

int rf_store_user_by_email(struct rf_db *db, struct rf_arena *a, const char *ws, const char *email,
                           struct rf_user *out, int *found, struct rf_db_error *e)
{
    return rf_store_get(db, a,
                        "SELECT " RF_USER_COLS " FROM users WHERE workspace_id = ? AND email = ?",
                        ws, email, rf_store_user_from_row, out, found, e);
}

/* Seed 001 done right: one UPDATE; the unique constraint on
 * (workspace_id, username_key) rejects the loser, whom the caller answers
 * with 409. Setting one's own username again changes nothing the index
 * cares about, so it succeeds. */
static int user_update_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct user_ctx *ctx = arg;
    const struct rf_user_patch *p = ctx->patch;
    char now[RF_TIME_MAX], key[RF_USERNAME_MAX + 1];
    struct rf_db_rows rows;

    ctx->found = 0;
    rf_now_rfc3339(now);
    const char *ukey = NULL;
    if (p->set_username && p->username) {
        size_t n = strlen(p->username);
        if (n > RF_USERNAME_MAX)
            return rf_db_fail(e, RF_DB_ERROR, "username too long");
        rf_username_key(p->username, n, key);
        ukey = key;
    }
    /* CASE keeps columns the patch leaves alone, so one statement serves
     * every combination of fields. */
    struct rf_db_param q[] = {
        RF_INT(p->name != NULL),
        RF_TEXT(p->name),
        RF_INT(p->set_username),
        RF_TEXT(p->username),
        RF_INT(p->set_username),
        RF_TEXT(ukey),
        RF_TEXT(now),
        RF_TEXT(ctx->ws),
        RF_TEXT(ctx->id),
        RF_TEXT(p->if_versions),
        RF_TEXT(p->if_versions),
    };
    int rc = rf_db_exec(c,
                        "UPDATE users SET"
                        " name = CASE WHEN ? = 1 THEN ? ELSE name END,"
                        " username = CASE WHEN ? = 1 THEN ? ELSE username END,"
                        " username_key = CASE WHEN ? = 1 THEN ? ELSE username_key END,"
                        " updated_at = ?, version = version + 1"
                        " WHERE workspace_id = ? AND id = ?" RF_IF_VERSION_SQL
                        " RETURNING " RF_USER_COLS,
                        q, 11, ctx->a, &rows, e);
    if (rc == RF_DB_OK && rows.nrows == 1) {
        rf_store_user_from_row(&rows, 0, ctx->out);
        ctx->found = RF_STORE_FOUND;
    } else if (rc == RF_DB_OK && p->if_versions) {
        /* Nothing matched: a missing user (404) or one whose version moved
         * on (412). The write above already decided; this only names why. */
        int exists;
        rc = rf_store_exists(c, "SELECT id FROM users WHERE workspace_id = ? AND id = ?", ctx->ws,
                             ctx->id, &exists, e);
        if (exists)
            ctx->found = RF_STORE_STALE;
    }
    return rc;
}

int rf_store_user_update(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                         const char *id, const struct rf_user_patch *p, struct rf_user *out,
                         int *found, struct rf_db_error *e)
{
    struct user_ctx ctx = {.a = a, .ws = ws, .id = id, .patch = p, .out = out};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, user_update_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

int rf_store_user_list(struct rf_db *db, struct rf_arena *a, const char *ws,
                       const char *after_created, const char *after_id, int limit,
                       struct rf_user **out, int *n, int *more, struct rf_db_error *e)
{
    void *items;
    int rc = rf_store_list(
        db, a, "SELECT " RF_USER_COLS " FROM users WHERE workspace_id = ?" RF_PAGE_FIRST_SQL,
        "SELECT " RF_USER_COLS " FROM users WHERE workspace_id = ?" RF_PAGE_AFTER_SQL, ws,
        after_created, after_id, limit, sizeof(**out), rf_store_user_from_row, &items, n, more, e);
    *out = items;
    return rc;
}

/* One DELETE: the row, and with it the (workspace, email) and (workspace,
 * username_key) entries of the unique constraints, go at commit. A create
 * with that email or a claim of that username racing it waits for this
 * transaction on PostgreSQL (the index entry is locked) and on SQLite for
 * the write lock, so of several claimants exactly one gets the freed value. */
static int user_delete_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rf_store_ref *ctx = arg;
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->id)};
    int n;
    int rc = rf_store_count(c, "DELETE FROM users WHERE workspace_id = ? AND id = ? RETURNING id",
                            p, 2, &n, e);
    ctx->found = n == 1;
    return rc;
}

int rf_store_user_delete(struct rf_db *db, const char *ws, const char *id, int *found,
                         struct rf_db_error *e)
{
    return rf_store_ref_write(db, NULL, user_delete_tx, ws, id, found, e);
}
