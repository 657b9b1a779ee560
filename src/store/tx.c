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
    rf_metrics_db_retry(e->retry);
    rf_tx_backoff(attempt - 1);
    return 1;
}

void rf_tx_open(struct rf_tx *tx, struct rf_db *db)
{
    tx->db = db;
    tx->c = NULL;
}

static void tx_close(struct rf_tx *tx, int commit_ok)
{
    if (tx->c) {
        if (!commit_ok)
            rf_db_rollback(tx->c);
        rf_db_release(tx->db, tx->c);
    }
    tx->c = NULL;
}

int rf_tx_end(struct rf_tx *tx, rf_tx_fn fn, void *ctx, int keep_writes, struct rf_db_error *e)
{
    if (tx->c && keep_writes) {
        int rc = fn(tx->c, ctx, e);
        if (rc == RF_DB_OK)
            rc = rf_db_commit(tx->c, e);
        tx_close(tx, rc == RF_DB_OK);
        return rc;
    }
    tx_close(tx, 0);
    return fn ? rf_tx_run(tx->db, NULL, RF_TX_WRITE, fn, ctx, e) : RF_DB_OK;
}

/* The first write to join tx begins it and leaves it open; its RETRY
 * restarts it like any other, which is safe because nothing else was
 * written in tx yet. Later writes join the open transaction. */
static int joined_write(struct rf_tx *tx, rf_tx_fn fn, void *ctx, struct rf_db_error *e)
{
    if (tx->c)
        return fn(tx->c, ctx, e);
    int rc = RF_DB_ERROR;
    int64_t deadline = mono_ms() + RF_TX_BUDGET_MS;
    for (int attempt = 0; attempt == 0 || retry_again(attempt, deadline, e); attempt++) {
        struct rf_db_conn *c;
        rc = rf_db_acquire_by(tx->db, 1, deadline, &c, e);
        if (rc == RF_DB_RETRY)
            continue;
        if (rc != RF_DB_OK)
            return rc;
        rc = rf_db_begin(c, 1, e);
        if (rc == RF_DB_OK)
            rc = fn(c, ctx, e);
        if (rc == RF_DB_OK) {
            tx->c = c;
            return RF_DB_OK;
        }
        rf_db_rollback(c);
        rf_db_release(tx->db, c);
        if (rc != RF_DB_RETRY)
            return rc;
    }
    atomic_fetch_add(&tx_exhausted, 1);
    return rc;
}

int rf_tx_run(struct rf_db *db, struct rf_tx *outer, enum rf_tx_mode mode, rf_tx_fn fn, void *ctx,
              struct rf_db_error *e)
{
    int rc = RF_DB_ERROR;
    int write = mode != RF_TX_READ;
    if (write && outer)
        return joined_write(outer, fn, ctx, e);
    int64_t deadline = mono_ms() + RF_TX_BUDGET_MS;
    for (int attempt = 0; attempt == 0 || retry_again(attempt, deadline, e); attempt++) {
        struct rf_db_conn *c;
        rc = rf_db_acquire_by(db, write, write ? deadline : 0, &c, e);
        if (rc == RF_DB_RETRY)
            continue;
        if (rc != RF_DB_OK)
            return rc;
        /* Every read body is one statement, consistent on its own: it runs
         * in autocommit, which on PostgreSQL saves the BEGIN and COMMIT
         * round trips (two of three). So do RF_TX_AUTOCOMMIT writes there. */
        int tx = mode == RF_TX_WRITE ||
                 (mode == RF_TX_AUTOCOMMIT && !rf_db_has(db, RF_DB_CAP_AUTOCOMMIT_WRITES));
        rc = tx ? rf_db_begin(c, 1, e) : RF_DB_OK;
        if (rc == RF_DB_OK)
            rc = fn(c, ctx, e);
        if (rc == RF_DB_OK && tx)
            rc = rf_db_commit(c, e);
        if (rc != RF_DB_OK)
            rf_db_rollback(c);
        rf_db_release(db, c);
        if (rc != RF_DB_RETRY)
            return rc;
    }
    atomic_fetch_add(&tx_exhausted, 1);
    rf_log(RF_LOG_WARN, "transaction retry budget exhausted: %s", e->detail);
    return rc;
}

int rf_store_ref_write(struct rf_db *db, struct rf_tx *outer, rf_tx_fn fn, const char *ws,
                       const char *id, int *found, struct rf_db_error *e)
{
    struct rf_store_ref ref = {ws, id, 0};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, fn, &ref, e);
    *found = ref.found;
    return rc;
}

struct get_ctx {
    struct rf_arena *a;
    const char *sql, *ws, *id;
    rf_store_row_fn from_row;
    void *item;
    int found;
};

static int get_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct get_ctx *ctx = arg;
    struct rf_db_rows rows;
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->id)};
    int rc = rf_db_exec(c, ctx->sql, p, 2, ctx->a, &rows, e);
    ctx->found = rc == RF_DB_OK && rows.nrows == 1;
    if (ctx->found)
        ctx->from_row(&rows, 0, ctx->item);
    return rc;
}

int rf_store_get(struct rf_db *db, struct rf_arena *a, const char *sql, const char *ws,
                 const char *id, rf_store_row_fn from_row, void *item, int *found,
                 struct rf_db_error *e)
{
    struct get_ctx ctx = {a, sql, ws, id, from_row, item, 0};
    int rc = rf_tx_run(db, NULL, RF_TX_READ, get_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

int rf_store_count(struct rf_db_conn *c, const char *sql, const struct rf_db_param *p, int np,
                   int *nrows, struct rf_db_error *e)
{
    struct rf_arena a;
    struct rf_db_rows rows;
    rf_arena_init(&a, 0);
    int rc = rf_db_exec(c, sql, p, np, &a, &rows, e);
    *nrows = rc == RF_DB_OK ? rows.nrows : 0;
    rf_arena_free(&a);
    return rc;
}

int rf_store_exists(struct rf_db_conn *c, const char *sql, const char *ws, const char *id,
                    int *exists, struct rf_db_error *e)
{
    struct rf_db_param p[] = {RF_TEXT(ws), RF_TEXT(id)};
    int n;
    int rc = rf_store_count(c, sql, p, 2, &n, e);
    *exists = n > 0;
    return rc;
}

struct page_ctx {
    struct rf_arena *a;
    const char *sql_first, *sql_after, *ws, *filter, *after_created, *after_id;
    int limit;
    struct rf_db_rows *rows;
};

static int page_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct page_ctx *ctx = arg;
    /* Keyset pagination on (created_at, id): a page starts strictly after
     * the last row shown, by value, so rows inserted or deleted meanwhile
     * never shift a row into a page twice or out of every page (as an
     * OFFSET would); and each page is one index range scan however deep
     * it is. */
    struct rf_db_param p[6];
    int n = 0;
    p[n++] = RF_TEXT(ctx->ws);
    if (ctx->filter)
        p[n++] = RF_TEXT(ctx->filter);
    if (ctx->after_created) {
        p[n++] = RF_TEXT(ctx->after_created);
        p[n++] = RF_TEXT(ctx->after_created);
        p[n++] = RF_TEXT(ctx->after_id);
    }
    p[n++] = RF_INT(ctx->limit + 1);
    if (!ctx->after_created)
        return rf_db_exec(c, ctx->sql_first, p, n, ctx->a, ctx->rows, e);
    return rf_db_exec(c, ctx->sql_after, p, n, ctx->a, ctx->rows, e);
}

int rf_store_page_by(struct rf_db *db, struct rf_arena *a, const char *sql_first,
                     const char *sql_after, const char *ws, const char *filter,
                     const char *after_created, const char *after_id, int limit,
                     struct rf_db_rows *rows, int *more, struct rf_db_error *e)
{
    struct page_ctx ctx = {a,        sql_first, sql_after, ws, filter, after_created,
                           after_id, limit,     rows};
    *more = 0;
    int rc = rf_tx_run(db, NULL, RF_TX_READ, page_tx, &ctx, e);
    if (rc == RF_DB_OK && rows->nrows > limit) {
        rows->nrows = limit;
        *more = 1;
    }
    return rc;
}

int rf_store_list(struct rf_db *db, struct rf_arena *a, const char *sql_first,
                  const char *sql_after, const char *ws, const char *after_created,
                  const char *after_id, int limit, size_t size, rf_store_row_fn from_row,
                  void **items, int *n, int *more, struct rf_db_error *e)
{
    struct rf_db_rows rows;
    *items = NULL;
    *n = 0;
    int rc = rf_store_page_by(db, a, sql_first, sql_after, ws, NULL, after_created, after_id, limit,
                              &rows, more, e);
    if (rc != RF_DB_OK)
        return rc;
    char *out = rf_arena_alloc(a, size * (size_t)(rows.nrows ? rows.nrows : 1));
    if (!out)
        return rf_db_fail(e, RF_DB_ERROR, "out of memory");
    for (int i = 0; i < rows.nrows; i++)
        from_row(&rows, i, out + size * (size_t)i);
    *items = out;
    *n = rows.nrows;
    return RF_DB_OK;
}
