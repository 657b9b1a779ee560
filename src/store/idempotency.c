#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/store.h"

#define IDEM_WHERE "workspace_id = ? AND kind = ? AND idem_key = ?"

struct reserve_ctx {
    struct rf_arena *a;
    struct rf_idem *k;
    int64_t now, lease;
    enum rf_idem_outcome out;
};

/* Never read-then-write: the reservation is the insert itself. Only when it
 * conflicts is the existing row read, to choose the answer; a take-over of
 * an expired lease or of a finished-and-expired key is again one
 * conditional UPDATE naming the state it saw, so two requests can never
 * both take it over. */
static int reserve_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct reserve_ctx *ctx = arg;
    struct rf_idem *k = ctx->k;
    struct rf_db_rows rows;
    int rc;
    int64_t lease_end = ctx->now + ctx->lease;

    struct rf_db_param ins[] = {RF_TEXT(k->ws),          RF_TEXT(k->kind),  RF_TEXT(k->key),
                                RF_TEXT(k->fingerprint), RF_TEXT(k->owner), RF_INT(lease_end),
                                RF_INT(ctx->now)};
    int n;
    rc = rf_store_count(c,
                        "INSERT INTO idempotency_keys (workspace_id, kind, idem_key, fingerprint,"
                        " state, owner, lease_expires, created_at)"
                        " VALUES (?, ?, ?, ?, 'in_flight', ?, ?, ?)"
                        " ON CONFLICT (workspace_id, kind, idem_key) DO NOTHING RETURNING owner",
                        ins, 7, &n, e);
    if (rc != RF_DB_OK)
        return rc;
    if (n == 1) {
        ctx->out = RF_IDEM_RESERVED;
        return RF_DB_OK;
    }
    struct rf_db_param sel[] = {RF_TEXT(k->ws), RF_TEXT(k->kind), RF_TEXT(k->key)};
    rc = rf_db_exec(c,
                    "SELECT fingerprint, state, owner, lease_expires, status, resp_ctype,"
                    " resp_body, expires_at, resp_etag FROM idempotency_keys WHERE " IDEM_WHERE,
                    sel, 3, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows == 0) /* purged in between: start over */
        return rf_db_fail(e, RF_DB_RETRY, "idempotency row vanished");
    const char *fp = rf_db_cell(&rows, 0, 0), *state = rf_db_cell(&rows, 0, 1);
    const char *old_owner = rf_db_cell(&rows, 0, 2);
    int64_t lease = atoll(rf_db_cell(&rows, 0, 3));
    const char *exp = rf_db_cell(&rows, 0, 7);
    int done = strcmp(state, "done") == 0;
    int dead = done ? (exp && atoll(exp) <= ctx->now) : lease <= ctx->now;

    if (!(done && dead) && strcmp(fp, k->fingerprint) != 0) {
        ctx->out = RF_IDEM_MISMATCH;
        return RF_DB_OK;
    }
    if (done && !dead) {
        ctx->out = RF_IDEM_REPLAY;
        k->status = atoi(rf_db_cell(&rows, 0, 4));
        k->ctype = rf_db_cell(&rows, 0, 5);
        k->body = rf_db_cell(&rows, 0, 6);
        k->etag = rf_db_cell(&rows, 0, 8);
        return RF_DB_OK;
    }
    if (!dead) {
        ctx->out = RF_IDEM_IN_PROGRESS;
        return RF_DB_OK;
    }
    struct rf_db_param up[] = {RF_TEXT(k->fingerprint), RF_TEXT(k->owner),  RF_INT(lease_end),
                               RF_INT(ctx->now),        RF_TEXT(k->ws),     RF_TEXT(k->kind),
                               RF_TEXT(k->key),         RF_TEXT(old_owner), RF_TEXT(state)};
    rc = rf_store_count(
        c,
        "UPDATE idempotency_keys SET fingerprint = ?, state = 'in_flight', owner = ?,"
        " lease_expires = ?, created_at = ?, status = NULL, resp_ctype = NULL,"
        " resp_body = NULL, resp_etag = NULL, expires_at = NULL"
        " WHERE " IDEM_WHERE " AND owner = ? AND state = ? RETURNING owner",
        up, 9, &n, e);
    if (rc != RF_DB_OK)
        return rc;
    if (n == 0) /* someone else took it over first: look again */
        return rf_db_fail(e, RF_DB_RETRY, "idempotency take-over lost");
    ctx->out = done ? RF_IDEM_RESERVED : RF_IDEM_TAKEN_OVER;
    return RF_DB_OK;
}

int rf_store_idem_reserve(struct rf_db *db, struct rf_arena *a, struct rf_idem *k, int64_t now_ms,
                          int64_t lease_ms, enum rf_idem_outcome *out, struct rf_db_error *e)
{
    if (rf_id_new(k->owner, sizeof(k->owner), "own_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "owner token generation failed");
    struct reserve_ctx ctx = {a, k, now_ms, lease_ms, RF_IDEM_IN_PROGRESS};
    int rc = rf_tx_run(db, NULL, RF_TX_WRITE, reserve_tx, &ctx, e);
    *out = ctx.out;
    return rc;
}

int rf_store_idem_complete_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rf_idem_done *d = arg;
    const struct rf_idem *k = d->k;
    int n;
    /* The owner token in the WHERE clause: a request completes only the
     * reservation it took itself, never one taken over from it. */
    struct rf_db_param p[] = {RF_INT(d->status), RF_TEXT(d->ctype),     RF_TEXT(d->body),
                              RF_TEXT(d->etag),  RF_INT(d->expires_ms), RF_TEXT(k->ws),
                              RF_TEXT(k->kind),  RF_TEXT(k->key),       RF_TEXT(k->owner)};
    int rc = rf_store_count(c,
                            "UPDATE idempotency_keys SET state = 'done', status = ?,"
                            " resp_ctype = ?, resp_body = ?, resp_etag = ?, expires_at = ?"
                            " WHERE " IDEM_WHERE " AND owner = ? AND state = 'in_flight'"
                            " RETURNING owner",
                            p, 9, &n, e);
    if (rc == RF_DB_OK && n == 0)
        rc = rf_db_fail(e, RF_DB_UNIQUE, "reservation no longer ours (lease taken over)");
    return rc;
}

static int release_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    const struct rf_idem *k = arg;
    struct rf_db_param p[] = {RF_TEXT(k->ws), RF_TEXT(k->kind), RF_TEXT(k->key), RF_TEXT(k->owner)};
    return rf_db_exec(c,
                      "DELETE FROM idempotency_keys WHERE " IDEM_WHERE
                      " AND owner = ? AND state = 'in_flight'",
                      p, 4, NULL, NULL, e);
}

int rf_store_idem_release(struct rf_db *db, const struct rf_idem *k, struct rf_db_error *e)
{
    return rf_tx_run(db, NULL, RF_TX_WRITE, release_tx, (void *)k, e);
}

struct purge_ctx {
    int64_t now, grace;
    int limit, purged;
};

static int purge_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct purge_ctx *ctx = arg;
    int n, rc;
    /* Two bounded deletes, each an index range. The condition is repeated
     * outside the subquery: on PostgreSQL READ COMMITTED a row taken over
     * (made in_flight again) after the subquery ran is re-checked against
     * the outer WHERE and survives. */
    struct rf_db_param done[] = {RF_INT(ctx->now), RF_INT(ctx->limit), RF_INT(ctx->now)};
    rc = rf_store_count(c,
                        "DELETE FROM idempotency_keys WHERE (workspace_id, kind, idem_key) IN ("
                        " SELECT workspace_id, kind, idem_key FROM idempotency_keys"
                        " WHERE state = 'done' AND expires_at <= ? LIMIT ?)"
                        " AND state = 'done' AND expires_at <= ? RETURNING kind",
                        done, 3, &n, e);
    ctx->purged = n;
    if (rc == RF_DB_OK) {
        int64_t cutoff = ctx->now - ctx->grace;
        struct rf_db_param dead[] = {RF_INT(cutoff), RF_INT(ctx->limit), RF_INT(cutoff)};
        rc = rf_store_count(c,
                            "DELETE FROM idempotency_keys WHERE (workspace_id, kind, idem_key) IN"
                            " (SELECT workspace_id, kind, idem_key FROM idempotency_keys"
                            " WHERE state = 'in_flight' AND lease_expires <= ? LIMIT ?)"
                            " AND state = 'in_flight' AND lease_expires <= ? RETURNING kind",
                            dead, 3, &n, e);
        ctx->purged += n;
    }
    return rc;
}

/* Whether anything is due, on a read connection: a sweep with nothing to
 * purge (the common case) takes no write lock, so it neither queues behind
 * the writer nor opens a batch that requests would join. Only a hint: the
 * deletes decide, by the same conditions. */
static int purge_due_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct purge_ctx *ctx = arg;
    struct rf_db_param p[] = {RF_INT(ctx->now), RF_INT(ctx->now - ctx->grace)};
    return rf_store_count(c,
                          "SELECT 1 FROM idempotency_keys WHERE state = 'done' AND expires_at <= ?"
                          " UNION ALL SELECT 1 FROM idempotency_keys"
                          " WHERE state = 'in_flight' AND lease_expires <= ? LIMIT 1",
                          p, 2, &ctx->purged, e);
}

int rf_store_idem_purge(struct rf_db *db, int64_t now_ms, int64_t grace_ms, int limit, int *purged,
                        struct rf_db_error *e)
{
    struct purge_ctx ctx = {now_ms, grace_ms, limit, 0};
    int rc = rf_tx_run(db, NULL, RF_TX_READ, purge_due_tx, &ctx, e);
    if (rc == RF_DB_OK && ctx.purged)
        rc = rf_tx_run(db, NULL, RF_TX_WRITE, purge_tx, &ctx, e);
    else
        ctx.purged = 0;
    *purged = ctx.purged;
    return rc;
}
