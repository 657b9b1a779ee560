#include <stdatomic.h>
#include <time.h>

#include "core/metrics.h"
#include "core/util.h"
#include "store/store.h"

static atomic_ulong tx_retries, tx_exhausted;

void rf_tx_stats_get(struct rf_tx_stats *out)
{
    out->retries = atomic_load(&tx_retries);
    out->exhausted = atomic_load(&tx_exhausted);
}

/* Full jitter (AWS architecture blog): sleep uniformly in [0, cap), cap
 * doubling from 1 ms to 64 ms, so that losers of one race do not collide
 * again in lockstep. */
void rf_tx_backoff(int attempt)
{
    uint32_t cap_us = 1000u << (attempt < 6 ? attempt : 6);
    uint32_t us = 100 + rf_rand_below(cap_us);
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    return (int64_t)(rf_mono_ns() / 1000000u);
}

/* Between attempts: whether another one fits in the request's time budget
 * (then after the backoff sleep) or the budget is spent. */
static int retry_again(int attempt, int64_t deadline_ms, struct rf_db_error *e)
{
    if (attempt >= RF_TX_MAX_ATTEMPTS || mono_ms() >= deadline_ms)
        return 0;
    atomic_fetch_add(&tx_retries, 1);
    rf_metrics_db_retry(e->detail);
    rf_tx_backoff(attempt - 1);
    return 1;
}

/* A deferred-commit scope (see store.h): the write transaction a handler
 * opens stays open on this thread until rf_tx_scope_end commits it together
 * with the idempotency record. */
static _Thread_local struct {
    int active;
    struct rf_db *db;
    struct rf_db_conn *c; /* non-NULL while a write transaction is open */
} scope;

void rf_tx_scope_begin(struct rf_db *db)
{
    scope.active = 1;
    scope.db = db;
    scope.c = NULL;
}

int rf_tx_in_scope(const struct rf_db *db)
{
    return scope.active && scope.db == db;
}

int rf_tx_scope_has_writes(void)
{
    return scope.c != NULL;
}

static void scope_close(int commit_ok)
{
    if (scope.c) {
        if (!commit_ok)
            scope.c->drv->rollback(scope.c);
        rf_db_release(scope.db, scope.c);
    }
    scope.c = NULL;
    scope.active = 0;
}

int rf_tx_scope_end(rf_tx_fn fn, void *ctx, int keep_writes, struct rf_db_error *e)
{
    struct rf_db *db = scope.db;
    if (scope.c && keep_writes) {
        int rc = fn(scope.c, ctx, e);
        if (rc == RF_DB_OK)
            rc = scope.c->drv->commit(scope.c, e);
        scope_close(rc == RF_DB_OK);
        return rc;
    }
    scope_close(0);
    return fn ? rf_tx_run(db, 1, fn, ctx, e) : RF_DB_OK;
}

/* Inside a scope the first write transaction is opened and left open; its
 * RETRY restarts it like any other, which is safe because nothing else was
 * written in the scope yet. Later write transactions of the same handler
 * join the open one. */
static int scoped_write(struct rf_db *db, rf_tx_fn fn, void *ctx, struct rf_db_error *e)
{
    if (scope.c)
        return fn(scope.c, ctx, e);
    int rc = RF_DB_ERROR;
    int64_t deadline = mono_ms() + RF_TX_BUDGET_MS;
    for (int attempt = 0; attempt == 0 || retry_again(attempt, deadline, e); attempt++) {
        struct rf_db_conn *c;
        rc = rf_db_acquire_by(db, 1, deadline, &c, e);
        if (rc == RF_DB_RETRY)
            continue;
        if (rc != RF_DB_OK)
            return rc;
        rc = c->drv->begin(c, 1, e);
        if (rc == RF_DB_OK)
            rc = fn(c, ctx, e);
        if (rc == RF_DB_OK) {
            scope.c = c;
            return RF_DB_OK;
        }
        c->drv->rollback(c);
        rf_db_release(db, c);
        if (rc != RF_DB_RETRY)
            return rc;
    }
    atomic_fetch_add(&tx_exhausted, 1);
    return rc;
}

int rf_tx_run(struct rf_db *db, int write, rf_tx_fn fn, void *ctx, struct rf_db_error *e)
{
    int rc = RF_DB_ERROR;
    if (write && scope.active && scope.db == db)
        return scoped_write(db, fn, ctx, e);
    int64_t deadline = mono_ms() + RF_TX_BUDGET_MS;
    for (int attempt = 0; attempt == 0 || retry_again(attempt, deadline, e); attempt++) {
        struct rf_db_conn *c;
        rc = rf_db_acquire_by(db, write != 0, write ? deadline : 0, &c, e);
        if (rc == RF_DB_RETRY)
            continue;
        if (rc != RF_DB_OK)
            return rc;
        /* Every read body is one statement, consistent on its own: it runs
         * in autocommit, which on PostgreSQL saves the BEGIN and COMMIT
         * round trips (two of three). So do RF_TX_AUTOCOMMIT writes there. */
        int tx = write && !(write == RF_TX_AUTOCOMMIT && c->drv->autocommit_writes);
        rc = tx ? c->drv->begin(c, 1, e) : RF_DB_OK;
        if (rc == RF_DB_OK)
            rc = fn(c, ctx, e);
        if (rc == RF_DB_OK && tx)
            rc = c->drv->commit(c, e);
        if (rc != RF_DB_OK)
            c->drv->rollback(c);
        rf_db_release(db, c);
        if (rc != RF_DB_RETRY)
            return rc;
    }
    atomic_fetch_add(&tx_exhausted, 1);
    rf_log(RF_LOG_WARN, "transaction retry budget exhausted: %s", e->detail);
    return rc;
}

struct page_ctx {
    struct rf_arena *a;
    const char *sql_first, *sql_after, *ws, *after_created, *after_id;
    int limit;
    struct rf_db_rows *rows;
};

static int page_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct page_ctx *ctx = arg;
    /* Keyset pagination on (created_at, id): stable under inserts, and
     * each page is one index range scan however deep it is. */
    if (!ctx->after_created) {
        struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_INT(ctx->limit + 1)};
        return rf_db_exec(c, ctx->sql_first, p, 2, ctx->a, ctx->rows, e);
    }
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->after_created),
                              RF_TEXT(ctx->after_created), RF_TEXT(ctx->after_id),
                              RF_INT(ctx->limit + 1)};
    return rf_db_exec(c, ctx->sql_after, p, 5, ctx->a, ctx->rows, e);
}

int rf_store_page(struct rf_db *db, struct rf_arena *a, const char *sql_first,
                  const char *sql_after, const char *ws, const char *after_created,
                  const char *after_id, int limit, struct rf_db_rows *rows, int *more,
                  struct rf_db_error *e)
{
    struct page_ctx ctx = {a, sql_first, sql_after, ws, after_created, after_id, limit, rows};
    *more = 0;
    int rc = rf_tx_run(db, 0, page_tx, &ctx, e);
    if (rc == RF_DB_OK && rows->nrows > limit) {
        rows->nrows = limit;
        *more = 1;
    }
    return rc;
}
