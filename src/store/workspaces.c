#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/store.h"

struct ws_ctx {
    const char *name;
    char *ws_id, *root_key;
    int bootstrap; /* claim the rf_meta 'bootstrapped' row first */
    int done;      /* created (or, for bootstrap, this call did it) */
};

static int ws_create_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct ws_ctx *ctx = arg;
    char now[RF_TIME_MAX], hash[65];
    int rc, n;

    ctx->done = 0;
    rf_now_rfc3339(now);
    if (ctx->bootstrap) {
        /* Whoever inserts this row bootstraps; everyone else sees no row back. */
        struct rf_db_param p[] = {RF_TEXT(now)};
        rc = rf_store_count(c,
                            "INSERT INTO rf_meta (k, v) VALUES ('bootstrapped', ?)"
                            " ON CONFLICT (k) DO NOTHING RETURNING k",
                            p, 1, &n, e);
        if (rc != RF_DB_OK || n == 0)
            return rc;
    }
    if (rf_id_new(ctx->ws_id, 64, "ws_", 16) ||
        rf_id_new(ctx->root_key, RF_ROOT_KEY_MAX, "rk_", 32))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    {
        struct rf_db_param p[] = {RF_TEXT(ctx->ws_id), RF_TEXT(ctx->name), RF_TEXT(now)};
        rc = rf_store_count(c,
                            "INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?)"
                            " ON CONFLICT (name) DO NOTHING RETURNING id",
                            p, 3, &n, e);
        if (rc != RF_DB_OK || n == 0)
            return rc;
    }
    rf_sha256_hex(ctx->root_key, strlen(ctx->root_key), hash);
    struct rf_db_param p[] = {RF_TEXT(hash), RF_TEXT(ctx->ws_id), RF_TEXT(now)};
    rc =
        rf_db_exec(c, "INSERT INTO root_keys (key_hash, workspace_id, created_at) VALUES (?, ?, ?)",
                   p, 3, NULL, NULL, e);
    if (rc == RF_DB_OK)
        ctx->done = 1;
    return rc;
}

int rf_store_workspace_create(struct rf_db *db, const char *name, char ws_id[64],
                              char root_key[RF_ROOT_KEY_MAX], int *exists, struct rf_db_error *e)
{
    struct ws_ctx ctx = {.name = name, .ws_id = ws_id, .root_key = root_key};
    int rc = rf_tx_run(db, NULL, RF_TX_WRITE, ws_create_tx, &ctx, e);
    *exists = rc == RF_DB_OK && !ctx.done;
    return rc;
}

int rf_store_bootstrap(struct rf_db *db, char ws_id[64], char root_key[RF_ROOT_KEY_MAX],
                       int *created, struct rf_db_error *e)
{
    struct ws_ctx ctx = {.name = "default", .ws_id = ws_id, .root_key = root_key, .bootstrap = 1};
    int rc = rf_tx_run(db, NULL, RF_TX_WRITE, ws_create_tx, &ctx, e);
    *created = rc == RF_DB_OK && ctx.done;
    return rc;
}

struct auth_ctx {
    struct rf_arena *a;
    const char *hash;
    const char **ws_id;
    int64_t *expires;
};

static int auth_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct auth_ctx *ctx = arg;
    struct rf_db_rows rows;
    struct rf_db_param p[] = {RF_TEXT(ctx->hash), RF_INT(rf_now_ms())};
    int rc = rf_db_exec(c,
                        "SELECT workspace_id, expires_at FROM root_keys WHERE key_hash = ?"
                        " AND (expires_at IS NULL OR expires_at > ?)",
                        p, 2, ctx->a, &rows, e);
    *ctx->ws_id = rc == RF_DB_OK ? rf_db_cell(&rows, 0, 0) : NULL;
    const char *x = rc == RF_DB_OK ? rf_db_cell(&rows, 0, 1) : NULL;
    *ctx->expires = x ? atoll(x) : 0;
    return rc;
}

int rf_store_auth(struct rf_db *db, struct rf_arena *a, const char *root_key, const char **ws_id,
                  int64_t *expires_ms, struct rf_db_error *e)
{
    char hash[65];
    rf_sha256_hex(root_key, strlen(root_key), hash);
    struct auth_ctx ctx = {a, hash, ws_id, expires_ms};
    *ws_id = NULL;
    *expires_ms = 0;
    return rf_tx_run(db, NULL, RF_TX_READ, auth_tx, &ctx, e);
}

struct rotate_ctx {
    const char *name;
    char old_hash[65]; /* the key to replace; "" until picked */
    int64_t overlap_ms, old_expires;
    char *ws_id, *root_key;
    enum rf_rotate_result res;
};

/* Which key a rotation without --key replaces: the workspace's newest live
 * one, picked once, before the write transaction. A rotation that retries,
 * or that SQLite's write lock serialises behind another, then still names
 * the key it meant and finds it replaced, rather than rotating the key the
 * other one just made. */
static int rotate_pick_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rotate_ctx *ctx = arg;
    struct rf_arena a;
    struct rf_db_rows rows;
    rf_arena_init(&a, 0);
    struct rf_db_param p[] = {RF_TEXT(ctx->name), RF_INT(rf_now_ms())};
    int rc = rf_db_exec(c,
                        "SELECT r.key_hash FROM root_keys r JOIN workspaces w"
                        " ON w.id = r.workspace_id WHERE w.name = ? AND r.replaced_by IS NULL"
                        " AND (r.expires_at IS NULL OR r.expires_at > ?)"
                        " ORDER BY r.created_at DESC, r.key_hash LIMIT 1",
                        p, 2, &a, &rows, e);
    if (rc == RF_DB_OK && rows.nrows == 1)
        snprintf(ctx->old_hash, sizeof(ctx->old_hash), "%s", rf_db_cell(&rows, 0, 0));
    rf_arena_free(&a);
    return rc;
}

static int rotate_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rotate_ctx *ctx = arg;
    char now[RF_TIME_MAX], new_hash[65];
    struct rf_arena a;
    struct rf_db_rows rows;
    int64_t now_ms = rf_now_ms();
    int rc;
    rf_arena_init(&a, 0);
    rf_now_rfc3339(now);
    ctx->res = RF_ROTATE_NO_WORKSPACE;
    struct rf_db_param w[] = {RF_TEXT(ctx->name)};
    rc = rf_db_exec(c, "SELECT id FROM workspaces WHERE name = ?", w, 1, &a, &rows, e);
    if (rc != RF_DB_OK || rows.nrows == 0)
        goto out;
    snprintf(ctx->ws_id, 64, "%s", rf_db_cell(&rows, 0, 0));
    ctx->res = RF_ROTATE_NO_KEY;
    if (!ctx->old_hash[0])
        goto out;
    if (rf_id_new(ctx->root_key, RF_ROOT_KEY_MAX, "rk_", 32)) {
        rc = rf_db_fail(e, RF_DB_ERROR, "id generation failed");
        goto out;
    }
    rf_sha256_hex(ctx->root_key, strlen(ctx->root_key), new_hash);
    int64_t until = now_ms + ctx->overlap_ms;
    /* replaced_by is set once: of simultaneous rotations of one key, one
     * UPDATE matches; the rest find it set (or, on PostgreSQL, wait for
     * the winner and then find it set). */
    struct rf_db_param u[] = {RF_TEXT(new_hash),      RF_INT(until),       RF_INT(until),
                              RF_TEXT(ctx->old_hash), RF_TEXT(ctx->ws_id), RF_INT(now_ms)};
    rc = rf_db_exec(c,
                    "UPDATE root_keys SET replaced_by = ?, expires_at = CASE WHEN"
                    " expires_at IS NULL OR expires_at > ? THEN ? ELSE expires_at END"
                    " WHERE key_hash = ? AND workspace_id = ? AND replaced_by IS NULL"
                    " AND (expires_at IS NULL OR expires_at > ?) RETURNING expires_at",
                    u, 6, &a, &rows, e);
    if (rc != RF_DB_OK)
        goto out;
    if (rows.nrows == 0) {
        struct rf_db_param q[] = {RF_TEXT(ctx->old_hash), RF_TEXT(ctx->ws_id)};
        rc = rf_db_exec(c,
                        "SELECT 1 FROM root_keys WHERE key_hash = ? AND workspace_id = ?"
                        " AND replaced_by IS NOT NULL",
                        q, 2, &a, &rows, e);
        if (rc == RF_DB_OK && rows.nrows == 1)
            ctx->res = RF_ROTATE_ALREADY;
        goto out;
    }
    ctx->old_expires = atoll(rf_db_cell(&rows, 0, 0));
    struct rf_db_param n[] = {RF_TEXT(new_hash), RF_TEXT(ctx->ws_id), RF_TEXT(now)};
    rc =
        rf_db_exec(c, "INSERT INTO root_keys (key_hash, workspace_id, created_at) VALUES (?, ?, ?)",
                   n, 3, NULL, NULL, e);
    if (rc == RF_DB_OK)
        ctx->res = RF_ROTATE_OK;
out:
    rf_arena_free(&a);
    return rc;
}

int rf_store_root_key_rotate(struct rf_db *db, const char *name, const char *old_key,
                             int64_t overlap_ms, char ws_id[64], char root_key[RF_ROOT_KEY_MAX],
                             int64_t *old_expires, enum rf_rotate_result *res,
                             struct rf_db_error *e)
{
    struct rotate_ctx ctx = {.name = name,
                             .overlap_ms = overlap_ms,
                             .ws_id = ws_id,
                             .root_key = root_key,
                             .res = RF_ROTATE_NO_WORKSPACE};
    int rc = RF_DB_OK;
    if (old_key)
        rf_sha256_hex(old_key, strlen(old_key), ctx.old_hash);
    else
        rc = rf_tx_run(db, NULL, RF_TX_READ, rotate_pick_tx, &ctx, e);
    if (rc == RF_DB_OK)
        rc = rf_tx_run(db, NULL, RF_TX_WRITE, rotate_tx, &ctx, e);
    *res = ctx.res;
    *old_expires = ctx.old_expires;
    return rc;
}
