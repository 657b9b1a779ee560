/* Process-wide counters for GET /metrics (Prometheus text format 0.0.4).
 *
 * Every series is a preallocated atomic, bumped with relaxed ordering: the
 * request path takes no lock and allocates nothing. Every label comes from
 * a closed set (route index, a fixed list of status codes, reasons, problem
 * codes, outcomes), so the number of series is bounded whatever clients
 * send. Nothing here knows the route table: routes are indices, and the
 * formatter is given their names. */
#ifndef RF_METRICS_H
#define RF_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

/* Routes beyond this share the "unmatched" series; the table has ~25. */
#define RF_METRICS_ROUTES 64
#define RF_METRICS_UNMATCHED ((size_t)RF_METRICS_ROUTES)

/* One response queued: route index (or RF_METRICS_UNMATCHED), HTTP status,
 * nanoseconds since the request's headers arrived. */
void rf_metrics_request(size_t route, int status, uint64_t ns);
/* A connection opened (+1) or closed (-1). */
void rf_metrics_connection(int delta);
/* A transaction runs again after RF_DB_RETRY, for the reason the driver
 * gave (rf_db_error.retry). */
void rf_metrics_db_retry(enum rf_db_retry_reason reason);
/* A 409 answered with this problem code. */
void rf_metrics_conflict(const char *code);

enum rf_metrics_existing {
    RF_METRICS_EXISTING_USER, /* POST /v1/users returned the user it found */
    RF_METRICS_EXISTING_N
};
/* A create-if-missing call answered with the existing object. */
void rf_metrics_create_existing(enum rf_metrics_existing what);

enum rf_metrics_idem {
    RF_METRICS_IDEM_RESERVED,    /* key reserved; the handler runs */
    RF_METRICS_IDEM_REPLAYED,    /* stored response sent again */
    RF_METRICS_IDEM_IN_PROGRESS, /* 409: another request holds the key */
    RF_METRICS_IDEM_REUSED,      /* 422: same key, different request */
    RF_METRICS_IDEM_COMPLETED,   /* response stored with the handler's writes */
    RF_METRICS_IDEM_RELEASED,    /* not storable: reservation given up */
    RF_METRICS_IDEM_TAKEN_OVER,  /* an expired lease taken over; the handler runs */
    RF_METRICS_IDEM_N
};
void rf_metrics_idem(enum rf_metrics_idem outcome);

enum rf_metrics_ratelimit {
    RF_METRICS_RL_PASSED,  /* a verify's limits all had room: spent */
    RF_METRICS_RL_LIMITED, /* one had none: RATE_LIMITED, nothing spent */
    RF_METRICS_RL_N
};
/* A verify that counted against ratelimits, by outcome. */
void rf_metrics_ratelimit(enum rf_metrics_ratelimit outcome);

/* Transactions committed together by one group commit. */
void rf_metrics_batch(unsigned n);

/* Writes the whole exposition into buf (always NUL-terminated when cap > 0)
 * and returns its length, like snprintf: a return >= cap means it was cut
 * and a buffer of return + 1 bytes would hold it. route_names[i] names
 * route index i (i < nroutes ≤ RF_METRICS_ROUTES). */
size_t rf_metrics_format(char *buf, size_t cap, const char *const *route_names, size_t nroutes);

/* Zeroes every counter except open connections: for unit tests only. */
void rf_metrics_reset(void);

#endif
