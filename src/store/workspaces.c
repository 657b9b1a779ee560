#include <stdio.h>
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
    struct rf_arena a;
    struct rf_db_rows rows;
    int rc;

    ctx->done = 0;
    rf_now_rfc3339(now);
    rf_arena_init(&a, 0);
    if (ctx->bootstrap) {
        /* Whoever inserts this row bootstraps; everyone else sees no row back. */
        struct rf_db_param p[] = {RF_TEXT(now)};
        rc = rf_db_exec(c,
                        "INSERT INTO rf_meta (k, v) VALUES ('bootstrapped', ?)"
                        " ON CONFLICT (k) DO NOTHING RETURNING k",
                        p, 1, &a, &rows, e);
        if (rc != RF_DB_OK || rows.nrows == 0)
            goto out;
    }
    if (rf_id_new(ctx->ws_id, 64, "ws_", 16) || rf_id_new(ctx->root_key, RF_ROOT_KEY_MAX, "rk_", 32)) {
        rc = rf_db_fail(e, RF_DB_ERROR, "id generation failed");
        goto out;
    }
    {
        struct rf_db_param p[] = {RF_TEXT(ctx->ws_id), RF_TEXT(ctx->name), RF_TEXT(now)};
        rc = rf_db_exec(c,
                        "INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?)"
                        " ON CONFLICT (name) DO NOTHING RETURNING id",
                        p, 3, &a, &rows, e);
        if (rc != RF_DB_OK || rows.nrows == 0)
            goto out;
    }
    rf_sha256_hex(ctx->root_key, strlen(ctx->root_key), hash);
    {
        struct rf_db_param p[] = {RF_TEXT(hash), RF_TEXT(ctx->ws_id), RF_TEXT(now)};
        rc = rf_db_exec(c,
                        "INSERT INTO root_keys (key_hash, workspace_id, created_at) VALUES (?, ?, ?)",
                        p, 3, NULL, NULL, e);
    }
    if (rc == RF_DB_OK)
        ctx->done = 1;
out:
    rf_arena_free(&a);
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
};

static int auth_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct auth_ctx *ctx = arg;
    struct rf_db_rows rows;
    struct rf_db_param p[] = {RF_TEXT(ctx->hash)};
    int rc = rf_db_exec(c, "SELECT workspace_id FROM root_keys WHERE key_hash = ?", p, 1, ctx->a,
                        &rows, e);
    *ctx->ws_id = rc == RF_DB_OK ? rf_db_cell(&rows, 0, 0) : NULL;
    return rc;
}

int rf_store_auth(struct rf_db *db, struct rf_arena *a, const char *root_key, const char **ws_id,
                  struct rf_db_error *e)
{
    char hash[65];
    rf_sha256_hex(root_key, strlen(root_key), hash);
    struct auth_ctx ctx = {a, hash, ws_id};
    *ws_id = NULL;
    return rf_tx_run(db, NULL, RF_TX_READ, auth_tx, &ctx, e);
}
