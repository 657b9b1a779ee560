/* Synchronised request burst: opens one connection per request and fires all
 * requests as close to the same instant as possible, so that a server with a
 * check-then-act race sees them interleave. Single-threaded (epoll); the
 * sockets are raw so nothing buffers or reorders bytes behind our back. */
#ifndef RF_PROBE_BURST_H
#define RF_PROBE_BURST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "probe/httpres.h"

/* Upper bound on n: each request holds a socket for the whole burst. */
#define RF_BURST_MAX 10000
#define RF_BURST_DEFAULT_TIMEOUT_MS 10000

enum rf_burst_sync {
    /* Send all but the final byte everywhere, then release the final bytes
     * back to back: request arrival is then bounded by one tiny packet each.
     * A connection that never gets ready holds back the release until the
     * timeout, since releasing early would break the synchronisation. */
    RF_BURST_LASTBYTE = 0,
    /* Send each request whole as soon as its connection is up. */
    RF_BURST_NONE = 1,
    /* HTTP/2 single-packet (probe/h2.h): the requests share a few
     * connections; every final frame of a connection leaves in one write. */
    RF_BURST_PACKET = 2,
};

struct rf_tls_ctx;

/* rf_burst_res.err values that are not errno codes. */
enum rf_burst_err {
    RF_BURST_ERR_PROTO = -1,     /* response malformed or over max_response */
    RF_BURST_ERR_TRUNCATED = -2, /* peer closed before the response was complete */
    RF_BURST_ERR_TLS = -3,       /* TLS handshake failed: certificate, protocol, ALPN */
    RF_BURST_ERR_RESET = -4,     /* HTTP/2: stream reset (RST_STREAM) or refused (GOAWAY) */
};

struct rf_burst_req {
    struct sockaddr_storage addr; /* target; requests may target different servers */
    socklen_t addrlen;
    const char *data; /* complete raw request bytes */
    size_t len;       /* >= 1; 0 fails that request with EINVAL */
    int head_request; /* response has no body */
    /* With rf_burst_opts.tls: the name the certificate must match, sent as
     * SNI; must outlive the run. */
    const char *host;
    /* rf_burst_opts.warmup > 0: sent whole that many times, each answered
     * in full and with the connection kept alive, before data. */
    const char *warmup;
    size_t warmup_len;
    int warmup_head; /* the warm-up's response has no body */
};

struct rf_burst_res {
    /* 0 ok; else an errno (ECONNREFUSED, ECONNRESET, ETIMEDOUT, EMFILE, ...) or
     * an rf_burst_err; err_msg says what happened either way. */
    int err;
    char err_msg[128];
    struct rf_httpres http; /* parsed response (status 0 if none) */
    /* CLOCK_MONOTONIC ns (see rf_burst_now_ns); 0 when never reached.
     * t_lastbyte: final request byte handed to the kernel; t_firstbyte: first
     * response bytes read; t_done: response complete or request failed. */
    uint64_t t_connected_ns, t_lastbyte_ns, t_firstbyte_ns, t_done_ns;
};

struct rf_burst_opts {
    enum rf_burst_sync sync;
    int timeout_ms;      /* whole burst, from its start; 0 = RF_BURST_DEFAULT_TIMEOUT_MS */
    size_t max_response; /* per response; 0 = RF_HTTPRES_DEFAULT_MAX */
    /* Non-NULL: every connection is TLS (probe/tls.h), its handshake part of
     * the connection phase; the run does not own it. */
    struct rf_tls_ctx *tls;
    /* Warm-up requests per connection before the raced one, so that the
     * server has accepted the connection and a thread of its own is parked
     * reading it when the release comes. A server that closes after a
     * warm-up fails that request (it cannot be kept alive). */
    unsigned warmup;
};

/* Runs the burst; res must have n entries. o may be NULL for defaults.
 * Returns 0 when the burst ran (individual requests may still have res[i].err
 * set), or -1 with errbuf filled on setup failure (n > RF_BURST_MAX, bad
 * options, RLIMIT_NOFILE too low, epoll failure). On -1 nothing is allocated;
 * res is untouched if n or o was rejected, else reset.
 * May raise the soft RLIMIT_NOFILE (process-wide) to fit n sockets.
 * Caller frees with rf_burst_res_free. */
int rf_burst_run(const struct rf_burst_req *reqs, size_t n, const struct rf_burst_opts *o,
                 struct rf_burst_res *res, char *errbuf, size_t errlen);
void rf_burst_res_free(struct rf_burst_res *res, size_t n);

/* A non-blocking TCP_NODELAY socket connecting to q's address (both
 * engines): the fd, or -errno with why ("connect: …") filled. */
int rf_burst_dial(const struct rf_burst_req *q, char *why, size_t whylen);

/* Raises the soft RLIMIT_NOFILE to fit n sockets and a reserve. strict: a
 * hard limit too low or a refused raise is -1 with errbuf filled; otherwise
 * the limit goes as high as it may and the sockets that do not fit fail
 * one by one. Returns 0, or -1 when the limit cannot even be read. */
int rf_burst_raise_nofile(size_t n, int strict, char *errbuf, size_t errlen);

/* CLOCK_MONOTONIC in nanoseconds, the clock of every t_*_ns field. */
uint64_t rf_burst_now_ns(void);

#endif
