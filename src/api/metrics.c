/* GET /metrics: the Prometheus text exposition of core/metrics.
 *
 * Unauthenticated, as scrapers expect: every label is a route name, status,
 * reason or outcome from a closed set, never a workspace id, key or path,
 * so the page shows load and errors but nothing of any workspace's data
 * (docs/ARCHITECTURE.md, "Operating"). */
#include "core/metrics.h"
#include "api/api.h"

/* Big enough for every route's histogram at once, so one pass suffices. */
#define FIRST_GUESS (64 * 1024)

void rf_api_metrics(struct rf_req *r)
{
    const char **names = rf_arena_alloc(r->a, (rf_nroutes + 1) * sizeof(*names));
    if (!names) {
        rf_reply_problem(r, RF_P_INTERNAL_ERROR, "Out of memory.");
        return;
    }
    for (size_t i = 0; i < rf_nroutes; i++)
        names[i] = rf_routes[i].name;
    size_t cap = FIRST_GUESS;
    /* Counters move between passes, so a retry leaves room to spare. */
    for (int pass = 0; pass < 3; pass++) {
        char *buf = rf_arena_alloc(r->a, cap);
        if (!buf)
            break;
        size_t n = rf_metrics_format(buf, cap, names, rf_nroutes);
        if (n < cap) {
            rf_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf, n);
            return;
        }
        cap = n + n / 4 + 1024;
    }
    rf_reply_problem(r, RF_P_INTERNAL_ERROR, "Out of memory.");
}
