#include <stdatomic.h>
#include <time.h>

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
static void backoff(int attempt)
{
    uint32_t cap_us = 1000u << (attempt < 6 ? attempt : 6);
    uint32_t us = 100 + rf_rand_below(cap_us);
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

int rf_tx_run(struct rf_db *db, int write, rf_tx_fn fn, void *ctx, struct rf_db_error *e)
{
    int rc = RF_DB_ERROR;
    for (int attempt = 0; attempt < RF_TX_MAX_ATTEMPTS; attempt++) {
        struct rf_db_conn *c;
        if (attempt > 0) {
            atomic_fetch_add(&tx_retries, 1);
            backoff(attempt - 1);
        }
        rc = rf_db_acquire(db, write, &c, e);
        if (rc != RF_DB_OK)
            return rc;
        rc = c->drv->begin(c, write, e);
        if (rc == RF_DB_OK)
            rc = fn(c, ctx, e);
        if (rc == RF_DB_OK)
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
