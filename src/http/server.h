/* The libmicrohttpd glue: listens, turns each request into a struct rf_req,
 * runs the route table, sends struct rf_resp, stops gracefully on
 * SIGTERM/SIGINT. */
#ifndef RF_SERVER_H
#define RF_SERVER_H

#include "http/http.h"

struct rf_server_opts {
    const char *listen; /* "host:port"; port 0 picks a free one */
    int threads;        /* workers: the size of the database connection pool */
    const struct rf_route *routes;
    size_t nroutes;
    struct rf_app *app;
    /* Sets r->ws for a valid token; leaves it NULL for an unknown one; may
     * answer itself (r->resp) when the database fails. */
    void (*authenticate)(struct rf_req *r, const char *token);
    /* authenticate from what is cached, without blocking: returns 1 when it
     * decided (r->ws set, or NULL for a key known to be bad), 0 when only
     * authenticate (on a worker) can. */
    int (*auth_cached)(struct rf_req *r, const char *token);
    int drain_seconds; /* on SIGTERM: how long in-flight requests may finish */
    /* Connection limits (README "Limits"; http/conns.h for how they act). */
    unsigned max_connections;                       /* over it the longest waiter is closed */
    unsigned max_connections_per_ip;                /* 0: none; libmicrohttpd refuses the excess */
    int header_timeout, body_timeout, idle_timeout; /* seconds */
    size_t header_bytes; /* per-connection buffer: request head + response headers */
    /* For RF_ROUTE_IDEMPOTENT routes: idem_begin returns 1 when it answered
     * (replay, conflict, bad key) and the handler must not run; otherwise
     * idem_finish runs after the handler, whatever it answered, and returns
     * 1 when the handler must run again (its transaction met a retryable
     * conflict at commit and was rolled back; the reservation is kept). */
    int (*idem_begin)(struct rf_req *r, const char *header, const char *body, size_t len);
    int (*idem_finish)(struct rf_req *r, int attempt);
};

/* Runs until SIGTERM or SIGINT. Returns 0 after a clean stop, -1 when it
 * could not start (the reason is logged). The caller must have blocked
 * SIGTERM, SIGINT in every thread (rf_server_block_signals) first. */
int rf_server_run(const struct rf_server_opts *o);
void rf_server_block_signals(void);

#endif
