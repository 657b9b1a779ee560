#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hooks.h"
#include "core/util.h"
#include "store/store.h"

#define IDENTITY_COLS "id, external_id, meta, created_at, version"
#define KEY_SELECT                                                                                 \
    "SELECT k.id, k.start, k.name, k.enabled, k.remaining, k.expires, k.meta, k.created_at,"       \
    " k.updated_at, i.id, i.external_id, i.meta, i.created_at, i.version, k.version"               \
    " FROM api_keys k LEFT JOIN identities i ON i.id = k.identity_id"

static void identity_from_row(const struct rf_db_rows *r, int row, int col,
                              struct rf_identity *idn)
{
    idn->id = rf_db_cell(r, row, col);
    idn->external_id = rf_db_cell(r, row, col + 1);
    idn->meta = rf_db_cell(r, row, col + 2);
    idn->created_at = rf_db_cell(r, row, col + 3);
    idn->version = atoll(rf_db_cell(r, row, col + 4) ? rf_db_cell(r, row, col + 4) : "0");
}

static void key_from_row(const struct rf_db_rows *r, int row, struct rf_key *k)
{
    const char *v;
    memset(k, 0, sizeof(*k));
    k->id = rf_db_cell(r, row, 0);
    k->start = rf_db_cell(r, row, 1);
    k->name = rf_db_cell(r, row, 2);
    v = rf_db_cell(r, row, 3);
    k->enabled = v && (atoi(v) != 0 || v[0] == 't');
    if ((v = rf_db_cell(r, row, 4))) {
        k->has_remaining = 1;
        k->remaining = atoll(v);
    }
    if ((v = rf_db_cell(r, row, 5))) {
        k->has_expires = 1;
        k->expires = atoll(v);
    }
    k->meta = rf_db_cell(r, row, 6);
    k->created_at = rf_db_cell(r, row, 7);
    k->updated_at = rf_db_cell(r, row, 8);
    if (rf_db_cell(r, row, 9)) {
        k->has_identity = 1;
        identity_from_row(r, row, 9, &k->identity);
    }
    k->version = atoll(rf_db_cell(r, row, 14) ? rf_db_cell(r, row, 14) : "0");
}

/* Test builds: widen the window between reading a row and writing what
 * depends on it, so that races the tests check for happen every time. */
static void fault_pause(const char *name)
{
    if (rf_fault(name)) {
        struct timespec ts = {0, 30 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- identities ---- */

struct identity_ctx {
    struct rf_arena *a;
    const char *ws, *external_id, *meta;
    struct rf_identity *out;
    int flag; /* create: exists; get: found */
};

static int identity_create_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct identity_ctx *ctx = arg;
    char id[RF_ID_MAX], now[RF_TIME_MAX];
    struct rf_db_rows rows;
    if (rf_id_new(id, sizeof(id), "idn_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(now);
    struct rf_db_param p[] = {RF_TEXT(id), RF_TEXT(ctx->ws), RF_TEXT(ctx->external_id),
                              RF_TEXT(ctx->meta), RF_TEXT(now)};
    int rc = rf_db_exec(c,
                        "INSERT INTO identities (id, workspace_id, external_id, meta, created_at)"
                        " VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (workspace_id, external_id) DO NOTHING"
                        " RETURNING " IDENTITY_COLS,
                        p, 5, ctx->a, &rows, e);
    ctx->flag = rc == RF_DB_OK && rows.nrows == 0;
    if (rc == RF_DB_OK && rows.nrows == 1)
        identity_from_row(&rows, 0, 0, ctx->out);
    return rc;
}

int rf_store_identity_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a,
                             const char *ws, const char *external_id, const char *meta,
                             struct rf_identity *out, int *exists, struct rf_db_error *e)
{
    struct identity_ctx ctx = {a, ws, external_id, meta, out, 0};
    int rc = rf_tx_run(db, outer, RF_TX_AUTOCOMMIT, identity_create_tx, &ctx, e);
    *exists = ctx.flag;
    return rc;
}

static int identity_get_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct identity_ctx *ctx = arg;
    struct rf_db_rows rows;
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->external_id)};
    int rc = rf_db_exec(c,
                        "SELECT " IDENTITY_COLS
                        " FROM identities WHERE workspace_id = ? AND external_id = ?",
                        p, 2, ctx->a, &rows, e);
    ctx->flag = rc == RF_DB_OK && rows.nrows == 1;
    if (ctx->flag)
        identity_from_row(&rows, 0, 0, ctx->out);
    return rc;
}

int rf_store_identity_get(struct rf_db *db, struct rf_arena *a, const char *ws,
                          const char *external_id, struct rf_identity *out, int *found,
                          struct rf_db_error *e)
{
    struct identity_ctx ctx = {a, ws, external_id, NULL, out, 0};
    int rc = rf_tx_run(db, NULL, RF_TX_READ, identity_get_tx, &ctx, e);
    *found = ctx.flag;
    return rc;
}

int rf_store_identity_list(struct rf_db *db, struct rf_arena *a, const char *ws,
                           const char *after_created, const char *after_id, int limit,
                           struct rf_identity **out, int *n, int *more, struct rf_db_error *e)
{
    struct rf_db_rows rows;
    *n = 0;
    int rc = rf_store_page(db, a,
                           "SELECT " IDENTITY_COLS " FROM identities WHERE workspace_id = ?"
                           " ORDER BY created_at, id LIMIT ?",
                           "SELECT " IDENTITY_COLS " FROM identities WHERE workspace_id = ?"
                           " AND (created_at > ? OR (created_at = ? AND id > ?))"
                           " ORDER BY created_at, id LIMIT ?",
                           ws, after_created, after_id, limit, &rows, more, e);
    if (rc != RF_DB_OK)
        return rc;
    *out = rf_arena_alloc(a, sizeof(**out) * (size_t)(rows.nrows ? rows.nrows : 1));
    if (!*out)
        return rf_db_fail(e, RF_DB_ERROR, "out of memory");
    for (int i = 0; i < rows.nrows; i++)
        identity_from_row(&rows, i, 0, &(*out)[i]);
    *n = rows.nrows;
    return RF_DB_OK;
}

struct identity_update_ctx {
    struct rf_arena *a;
    const char *ws, *external_id, *meta, *if_versions;
    struct rf_identity *out;
    int found;
};

/* One conditional UPDATE (If-Match in its WHERE), then the identity's keys
 * get a new version: a key's representation embeds its identity's meta, so
 * its ETag must change with it (RFC 9110 strong validators). */
static int identity_update_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct identity_update_ctx *ctx = arg;
    struct rf_db_rows rows;
    ctx->found = RF_STORE_MISSING;
    struct rf_db_param p[] = {RF_TEXT(ctx->meta), RF_TEXT(ctx->ws), RF_TEXT(ctx->external_id),
                              RF_TEXT(ctx->if_versions), RF_TEXT(ctx->if_versions)};
    int rc = rf_db_exec(c,
                        "UPDATE identities SET meta = ?, version = version + 1"
                        " WHERE workspace_id = ? AND external_id = ?" RF_IF_VERSION_SQL
                        " RETURNING " IDENTITY_COLS,
                        p, 5, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows == 0) {
        if (!ctx->if_versions)
            return RF_DB_OK;
        struct rf_db_param k[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->external_id)};
        rc = rf_db_exec(c, "SELECT id FROM identities WHERE workspace_id = ? AND external_id = ?",
                        k, 2, ctx->a, &rows, e);
        if (rc == RF_DB_OK && rows.nrows == 1)
            ctx->found = RF_STORE_STALE;
        return rc;
    }
    identity_from_row(&rows, 0, 0, ctx->out);
    ctx->found = RF_STORE_FOUND;
    struct rf_db_param q[] = {RF_TEXT(ctx->out->id)};
    return rf_db_exec(c, "UPDATE api_keys SET version = version + 1 WHERE identity_id = ?", q, 1,
                      NULL, NULL, e);
}

int rf_store_identity_update(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a,
                             const char *ws, const char *external_id, const char *meta,
                             const char *if_versions, struct rf_identity *out, int *found,
                             struct rf_db_error *e)
{
    struct identity_update_ctx ctx = {a, ws, external_id, meta, if_versions, out, 0};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, identity_update_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

struct identity_delete_ctx {
    const char *ws, *external_id;
    int found;
};

/* Detach, then delete, in one transaction; the foreign key from api_keys
 * is what makes it race-free. A key that a concurrent transaction attached
 * to this identity after the detach (it read the identity before the
 * delete) makes the DELETE fail its foreign-key check, or makes that
 * transaction's own write fail it if the DELETE came first: the loser runs
 * again (RF_DB_FOREIGN → RETRY), this one then detaching the newcomer, that
 * one then creating a fresh identity. On PostgreSQL the foreign-key check
 * locks the identity row, so the two wait for each other rather than pass;
 * SQLite runs write transactions one at a time. */
static int identity_delete_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct identity_delete_ctx *ctx = arg;
    char now[RF_TIME_MAX];
    struct rf_arena a;
    struct rf_db_rows rows;
    rf_now_rfc3339(now);
    rf_arena_init(&a, 0);
    ctx->found = 0;
    struct rf_db_param d[] = {RF_TEXT(now), RF_TEXT(ctx->ws), RF_TEXT(ctx->external_id)};
    int rc = rf_db_exec(c,
                        "UPDATE api_keys SET identity_id = NULL, updated_at = ?,"
                        " version = version + 1 WHERE identity_id ="
                        " (SELECT id FROM identities WHERE workspace_id = ? AND external_id = ?)",
                        d, 3, NULL, NULL, e);
    if (rc == RF_DB_OK) {
        fault_pause("identities.slow_delete");
        struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->external_id)};
        rc = rf_db_exec(c,
                        "DELETE FROM identities WHERE workspace_id = ? AND external_id = ?"
                        " RETURNING id",
                        p, 2, &a, &rows, e);
        ctx->found = rc == RF_DB_OK && rows.nrows == 1;
    }
    rf_arena_free(&a);
    if (rc == RF_DB_FOREIGN)
        return rf_db_fail(e, RF_DB_RETRY, "a key was attached to the identity meanwhile");
    return rc;
}

int rf_store_identity_delete(struct rf_db *db, const char *ws, const char *external_id, int *found,
                             struct rf_db_error *e)
{
    struct identity_delete_ctx ctx = {ws, external_id, 0};
    int rc = rf_tx_run(db, NULL, RF_TX_WRITE, identity_delete_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

/* Seed 003 done right: get-or-create inside the caller's transaction. The
 * insert does nothing when the identity exists (or a concurrent request just
 * made it: PostgreSQL waits for that transaction and then sees the row
 * conflict); the read that follows runs on the same connection, in the same
 * transaction, on the primary — never a replica or a stale snapshot. If the
 * row is still not visible (a snapshot older than the winner under
 * REPEATABLE READ/SERIALIZABLE), RETRY restarts the whole transaction. */
static int identity_get_or_create(struct rf_db_conn *c, struct rf_arena *a, const char *ws,
                                  const char *external_id, const char **id_out,
                                  struct rf_db_error *e)
{
    char id[RF_ID_MAX], now[RF_TIME_MAX];
    struct rf_db_rows rows;
    if (rf_id_new(id, sizeof(id), "idn_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(now);
    struct rf_db_param p[] = {RF_TEXT(id), RF_TEXT(ws), RF_TEXT(external_id), RF_TEXT(now)};
    int rc = rf_db_exec(c,
                        "INSERT INTO identities (id, workspace_id, external_id, created_at)"
                        " VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (workspace_id, external_id) DO NOTHING RETURNING id",
                        p, 4, a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows == 0) {
        struct rf_db_param q[] = {RF_TEXT(ws), RF_TEXT(external_id)};
        rc = rf_db_exec(c, "SELECT id FROM identities WHERE workspace_id = ? AND external_id = ?",
                        q, 2, a, &rows, e);
        if (rc != RF_DB_OK)
            return rc;
        if (rows.nrows == 0)
            return rf_db_fail(e, RF_DB_RETRY, "conflicting identity not visible yet");
    }
    *id_out = rf_db_cell(&rows, 0, 0);
    return RF_DB_OK;
}

/* The identity found above was deleted before this transaction wrote its
 * reference to it (DELETE /v1/identities commits first, and the foreign key
 * refuses the write): run the transaction again, which finds or creates a
 * live identity. */
static int identity_gone_retry(int rc, struct rf_db_error *e)
{
    if (rc == RF_DB_FOREIGN)
        return rf_db_fail(e, RF_DB_RETRY, "identity deleted by a concurrent transaction");
    return rc;
}

/* ---- keys ---- */

struct key_ctx {
    struct rf_arena *a;
    const char *ws, *key_hash, *start, *key_id;
    const struct rf_key_input *in;
    char *id_out;
    const char *identity_id;
    struct rf_key *out;
    int found;
    int64_t now_ms;
    enum rf_verify_code code;
};

static int key_create_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct key_ctx *ctx = arg;
    const struct rf_key_input *in = ctx->in;
    char now[RF_TIME_MAX];
    int rc;
    ctx->identity_id = NULL;
    if (in->set_external_id && in->external_id) {
        rc = identity_get_or_create(c, ctx->a, ctx->ws, in->external_id, &ctx->identity_id, e);
        if (rc != RF_DB_OK)
            return rc;
        fault_pause("keys.slow_attach");
    }
    if (rf_id_new(ctx->id_out, 64, "key_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(now);
    struct rf_db_param p[] = {
        RF_TEXT(ctx->id_out),
        RF_TEXT(ctx->ws),
        RF_TEXT(ctx->key_hash),
        RF_TEXT(ctx->start),
        RF_TEXT(in->name),
        RF_INT(in->set_enabled ? in->enabled : 1),
        in->has_remaining ? RF_INT(in->remaining) : RF_TEXT(NULL),
        in->has_expires ? RF_INT(in->expires) : RF_TEXT(NULL),
        RF_TEXT(in->meta),
        RF_TEXT(ctx->identity_id),
        RF_TEXT(now),
        RF_TEXT(now),
    };
    rc = rf_db_exec(c,
                    "INSERT INTO api_keys (id, workspace_id, key_hash, start, name, enabled,"
                    " remaining, expires, meta, identity_id, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    p, 12, NULL, NULL, e);
    return identity_gone_retry(rc, e);
}

int rf_store_key_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                        const char *key_hash, const char *start, const struct rf_key_input *in,
                        char key_id[64], const char **identity_id, struct rf_db_error *e)
{
    struct key_ctx ctx = {.a = a, .ws = ws, .key_hash = key_hash, .start = start, .in = in,
                          .id_out = key_id};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, key_create_tx, &ctx, e);
    *identity_id = rc == RF_DB_OK ? ctx.identity_id : NULL;
    return rc;
}

static int key_read(struct rf_db_conn *c, struct key_ctx *ctx, struct rf_db_error *e)
{
    struct rf_db_rows rows;
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->key_id)};
    int rc = rf_db_exec(c, KEY_SELECT " WHERE k.workspace_id = ? AND k.id = ?", p, 2, ctx->a,
                        &rows, e);
    ctx->found = rc == RF_DB_OK && rows.nrows == 1;
    if (ctx->found)
        key_from_row(&rows, 0, ctx->out);
    return rc;
}

static int key_update_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct key_ctx *ctx = arg;
    const struct rf_key_input *in = ctx->in;
    char now[RF_TIME_MAX];
    struct rf_db_rows rows;
    int rc;
    ctx->found = 0;
    rf_now_rfc3339(now);
    /* The key first: a PATCH of a key that does not exist must not leave
     * an identity behind. One statement for every combination of fields:
     * CASE keeps what the patch leaves alone. */
    /* clang-format off */
    struct rf_db_param p[] = {
        RF_INT(in->set_name),      RF_TEXT(in->name),
        RF_INT(in->set_meta),      RF_TEXT(in->meta),
        RF_INT(in->set_remaining), in->has_remaining ? RF_INT(in->remaining) : RF_TEXT(NULL),
        RF_INT(in->set_expires),   in->has_expires ? RF_INT(in->expires) : RF_TEXT(NULL),
        RF_INT(in->set_enabled),   RF_INT(in->enabled),
        RF_INT(in->set_external_id && !in->external_id),
        RF_TEXT(now),              RF_TEXT(ctx->ws),
        RF_TEXT(ctx->key_id),
        RF_TEXT(in->if_versions),  RF_TEXT(in->if_versions), /* If-Match */
    };
    /* clang-format on */
    rc = rf_db_exec(c,
                    "UPDATE api_keys SET"
                    " name = CASE WHEN ? = 1 THEN ? ELSE name END,"
                    " meta = CASE WHEN ? = 1 THEN ? ELSE meta END,"
                    " remaining = CASE WHEN ? = 1 THEN ? ELSE remaining END,"
                    " expires = CASE WHEN ? = 1 THEN ? ELSE expires END,"
                    " enabled = CASE WHEN ? = 1 THEN ? ELSE enabled END,"
                    " identity_id = CASE WHEN ? = 1 THEN NULL ELSE identity_id END,"
                    " updated_at = ?, version = version + 1"
                    " WHERE workspace_id = ? AND id = ?" RF_IF_VERSION_SQL " RETURNING id",
                    p, 16, ctx->a, &rows, e);
    if (rc == RF_DB_OK && rows.nrows == 0 && in->if_versions) {
        /* Missing (404) or its version moved on (412): the UPDATE decided,
         * this read only names why. */
        struct rf_db_param k[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->key_id)};
        rc = rf_db_exec(c, "SELECT id FROM api_keys WHERE workspace_id = ? AND id = ?", k, 2,
                        ctx->a, &rows, e);
        if (rc == RF_DB_OK && rows.nrows == 1)
            ctx->found = RF_STORE_STALE;
        return rc;
    }
    if (rc != RF_DB_OK || rows.nrows == 0)
        return rc;
    if (in->set_external_id && in->external_id) {
        const char *identity_id;
        rc = identity_get_or_create(c, ctx->a, ctx->ws, in->external_id, &identity_id, e);
        if (rc != RF_DB_OK)
            return rc;
        struct rf_db_param q[] = {RF_TEXT(identity_id), RF_TEXT(ctx->key_id)};
        rc = rf_db_exec(c, "UPDATE api_keys SET identity_id = ? WHERE id = ?", q, 2, NULL, NULL,
                        e);
        if (rc != RF_DB_OK)
            return identity_gone_retry(rc, e);
    }
    return key_read(c, ctx, e);
}

int rf_store_key_update(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                        const char *key_id, const struct rf_key_input *in, struct rf_key *out,
                        int *found, struct rf_db_error *e)
{
    struct key_ctx ctx = {.a = a, .ws = ws, .key_id = key_id, .in = in, .out = out};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, key_update_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

static int key_get_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    return key_read(c, arg, e);
}

int rf_store_key_get(struct rf_db *db, struct rf_arena *a, const char *ws, const char *key_id,
                     struct rf_key *out, int *found, struct rf_db_error *e)
{
    struct key_ctx ctx = {.a = a, .ws = ws, .key_id = key_id, .out = out};
    int rc = rf_tx_run(db, NULL, RF_TX_READ, key_get_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

/* The answer for a key row, when it needs no write: everything but a
 * usable key with credits. Returns 1 when decided. */
static int verify_decided(struct key_ctx *ctx)
{
    const struct rf_key *k = ctx->out;
    if (!k->enabled)
        ctx->code = RF_VERIFY_DISABLED;
    else if (k->has_expires && k->expires <= ctx->now_ms)
        ctx->code = RF_VERIFY_EXPIRED;
    else if (!k->has_remaining)
        ctx->code = RF_VERIFY_VALID;
    else
        return 0;
    return 1;
}

static int key_verify_read(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct key_ctx *ctx = arg;
    struct rf_db_rows rows;
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->key_hash)};
    int rc = rf_db_exec(c, KEY_SELECT " WHERE k.workspace_id = ? AND k.key_hash = ?", p, 2,
                        ctx->a, &rows, e);
    ctx->found = rc == RF_DB_OK && rows.nrows > 0;
    if (ctx->found)
        key_from_row(&rows, 0, ctx->out);
    return rc;
}

/* Spends one credit. The conditional UPDATE is the whole race story: it
 * decrements only while remaining > 0, in one statement, and a CHECK
 * constraint keeps remaining from ever going below 0. The row read before
 * it only chooses the answer for keys that cannot be VALID. */
static int key_verify_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct key_ctx *ctx = arg;
    struct rf_db_rows rows;
    int rc;
    if (!ctx->found) { /* a retry: read the row again */
        rc = key_verify_read(c, ctx, e);
        if (rc != RF_DB_OK)
            return rc;
        if (!ctx->found) {
            ctx->code = RF_VERIFY_NOT_FOUND;
            return RF_DB_OK;
        }
        if (verify_decided(ctx))
            return RF_DB_OK;
    }
    struct rf_key *k = ctx->out;
    struct rf_db_param u[] = {RF_TEXT(k->id), RF_INT(ctx->now_ms)};
    rc = rf_db_exec(c,
                    "UPDATE api_keys SET remaining = remaining - 1, version = version + 1"
                    " WHERE id = ? AND remaining > 0 AND enabled = 1"
                    " AND (expires IS NULL OR expires > ?) RETURNING remaining",
                    u, 2, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows == 1) {
        ctx->code = RF_VERIFY_VALID;
        k->remaining = atoll(rf_db_cell(&rows, 0, 0));
    } else if (k->remaining <= 0) {
        ctx->code = RF_VERIFY_USAGE_EXCEEDED;
        k->remaining = 0;
    } else {
        /* The row changed since it was read (another verify spent the last
         * credit, a PATCH, …): decide again from a fresh read. */
        ctx->found = 0;
        return rf_db_fail(e, RF_DB_RETRY, "key changed during verify");
    }
    return RF_DB_OK;
}

/* Reads first, on a read connection: a missing, disabled, expired or
 * unlimited key is answered from that one SELECT and never queues for the
 * writer. Only a key with credits takes the write path. */
int rf_store_key_verify(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                        const char *key_hash, int64_t now_ms, enum rf_verify_code *code,
                        struct rf_key *out, struct rf_db_error *e)
{
    struct key_ctx ctx = {.a = a, .ws = ws, .key_hash = key_hash, .out = out, .now_ms = now_ms};
    int rc = rf_tx_run(db, NULL, RF_TX_READ, key_verify_read, &ctx, e);
    if (rc == RF_DB_OK && !ctx.found)
        ctx.code = RF_VERIFY_NOT_FOUND;
    else if (rc == RF_DB_OK && !verify_decided(&ctx))
        rc = rf_tx_run(db, outer, RF_TX_AUTOCOMMIT, key_verify_tx, &ctx, e);
    *code = ctx.code;
    return rc;
}

int rf_store_key_list(struct rf_db *db, struct rf_arena *a, const char *ws, const char *external_id,
                      const char *after_created, const char *after_id, int limit,
                      struct rf_key **out, int *n, int *more, struct rf_db_error *e)
{
    struct rf_db_rows rows;
    *n = 0;
    /* The identity's id by its unique (workspace, external id), then one
     * range of api_keys_identity_page. */
    int rc =
        rf_store_page_by(db, a,
                         KEY_SELECT " WHERE k.identity_id = (SELECT id FROM identities"
                                    " WHERE workspace_id = ? AND external_id = ?)"
                                    " ORDER BY k.created_at, k.id LIMIT ?",
                         KEY_SELECT " WHERE k.identity_id = (SELECT id FROM identities"
                                    " WHERE workspace_id = ? AND external_id = ?)"
                                    " AND (k.created_at > ? OR (k.created_at = ? AND k.id > ?))"
                                    " ORDER BY k.created_at, k.id LIMIT ?",
                         ws, external_id, after_created, after_id, limit, &rows, more, e);
    if (rc != RF_DB_OK)
        return rc;
    *out = rf_arena_alloc(a, sizeof(**out) * (size_t)(rows.nrows ? rows.nrows : 1));
    if (!*out)
        return rf_db_fail(e, RF_DB_ERROR, "out of memory");
    for (int i = 0; i < rows.nrows; i++)
        key_from_row(&rows, i, &(*out)[i]);
    *n = rows.nrows;
    return RF_DB_OK;
}
