#include <string.h>

#include "core/rules.h"
#include "core/util.h"
#include "store/store.h"

#define USER_COLS "id, email, name, username, created_at, updated_at"

static void user_from_row(const struct rf_db_rows *r, int row, struct rf_user *u)
{
    u->id = rf_db_cell(r, row, 0);
    u->email = rf_db_cell(r, row, 1);
    u->name = rf_db_cell(r, row, 2);
    u->username = rf_db_cell(r, row, 3);
    u->created_at = rf_db_cell(r, row, 4);
    u->updated_at = rf_db_cell(r, row, 5);
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
    struct rf_db_param ins[] = {RF_TEXT(id),          RF_TEXT(ctx->ws), RF_TEXT(ctx->email),
                                RF_TEXT(ctx->name),   RF_TEXT(now),     RF_TEXT(now)};
    rc = rf_db_exec(c,
                    "INSERT INTO users (id, workspace_id, email, name, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (workspace_id, email) DO NOTHING RETURNING " USER_COLS,
                    ins, 6, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows == 1) {
        user_from_row(&rows, 0, ctx->out);
        ctx->created = ctx->found = 1;
        return RF_DB_OK;
    }
    struct rf_db_param sel[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->email)};
    rc = rf_db_exec(c, "SELECT " USER_COLS " FROM users WHERE workspace_id = ? AND email = ?", sel,
                    2, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows != 1)
        /* The conflicting row vanished between the two statements (a delete
         * committed in between): run the whole transaction again. */
        return rf_db_fail(e, RF_DB_RETRY, "conflicting user row not visible");
    user_from_row(&rows, 0, ctx->out);
    ctx->found = 1;
    return RF_DB_OK;
}

int rf_store_user_create(struct rf_db *db, struct rf_arena *a, const char *ws, const char *email,
                         const char *name, struct rf_user *out, int *created,
                         struct rf_db_error *e)
{
    struct user_ctx ctx = {.a = a, .ws = ws, .email = email, .name = name, .out = out};
    int rc = rf_tx_run(db, RF_TX_AUTOCOMMIT, user_create_tx, &ctx, e);
    *created = ctx.created;
    return rc;
}

static int user_get_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct user_ctx *ctx = arg;
    struct rf_db_rows rows;
    int rc;
    ctx->found = 0;
    if (ctx->id) {
        struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->id)};
        rc = rf_db_exec(c, "SELECT " USER_COLS " FROM users WHERE workspace_id = ? AND id = ?", p,
                        2, ctx->a, &rows, e);
    } else {
        struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->email)};
        rc = rf_db_exec(c, "SELECT " USER_COLS " FROM users WHERE workspace_id = ? AND email = ?",
                        p, 2, ctx->a, &rows, e);
    }
    if (rc == RF_DB_OK && rows.nrows == 1) {
        user_from_row(&rows, 0, ctx->out);
        ctx->found = 1;
    }
    return rc;
}

int rf_store_user_get(struct rf_db *db, struct rf_arena *a, const char *ws, const char *id,
                      struct rf_user *out, int *found, struct rf_db_error *e)
{
    struct user_ctx ctx = {.a = a, .ws = ws, .id = id, .out = out};
    int rc = rf_tx_run(db, 0, user_get_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

int rf_store_user_by_email(struct rf_db *db, struct rf_arena *a, const char *ws,
                           const char *email, struct rf_user *out, int *found,
                           struct rf_db_error *e)
{
    struct user_ctx ctx = {.a = a, .ws = ws, .email = email, .out = out};
    int rc = rf_tx_run(db, 0, user_get_tx, &ctx, e);
    *found = ctx.found;
    return rc;
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
        RF_INT(p->name != NULL), RF_TEXT(p->name),  RF_INT(p->set_username),
        RF_TEXT(p->username),    RF_INT(p->set_username), RF_TEXT(ukey),
        RF_TEXT(now),            RF_TEXT(ctx->ws),  RF_TEXT(ctx->id),
    };
    int rc = rf_db_exec(c,
                        "UPDATE users SET"
                        " name = CASE WHEN ? = 1 THEN ? ELSE name END,"
                        " username = CASE WHEN ? = 1 THEN ? ELSE username END,"
                        " username_key = CASE WHEN ? = 1 THEN ? ELSE username_key END,"
                        " updated_at = ?"
                        " WHERE workspace_id = ? AND id = ? RETURNING " USER_COLS,
                        q, 9, ctx->a, &rows, e);
    if (rc == RF_DB_OK && rows.nrows == 1) {
        user_from_row(&rows, 0, ctx->out);
        ctx->found = 1;
    }
    return rc;
}

int rf_store_user_update(struct rf_db *db, struct rf_arena *a, const char *ws, const char *id,
                         const struct rf_user_patch *p, struct rf_user *out, int *found,
                         struct rf_db_error *e)
{
    struct user_ctx ctx = {.a = a, .ws = ws, .id = id, .patch = p, .out = out};
    int rc = rf_tx_run(db, 1, user_update_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}
