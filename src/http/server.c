#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/hooks.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "core/timer.h"
#include "core/util.h"
#include "http/conns.h"
#include "http/linger.h"

#define ARENA_LIMIT (16u * 1024 * 1024)
#define DISCARD_MAX (8u * RF_BODY_MAX)
/* After the drain: how long workers get to end what they hold (a write
 * budget, RF_TX_BUDGET_MS, and a little). */
#define RF_DRAIN_FINAL_S 5

/* One request, from its first header callback to on_completed. Owned by
 * the event-loop thread, except between rf_pool_push and the worker's
 * MHD_resume_connection (or while its timer waits), when a worker owns it
 * and the connection is suspended: nobody else touches it then. */
struct conn_req {
    struct rf_job job;     /* the worker pool's link */
    struct rf_timer timer; /* a deferred handler's wait */
    struct rf_req r;
    struct rf_arena arena;
    const struct rf_route *route;
    struct MHD_Connection *conn;
    char *body;
    size_t body_len, body_cap;
    size_t seen;       /* body bytes received, kept or not */
    const char *token; /* root key the auth cache did not know: checked on a worker */
    /* A root key the cache knew when the head arrived: checked again on the
     * worker if that knowledge (r->auth_until) has run out meanwhile, so a
     * body sent slowly cannot outlive a rotation of its key. */
    const char *cached_token;
    const char *idem_header;
    int idem_headers; /* how many Idempotency-Key lines: more than one is 400 */
    int bad_ctype;    /* 415, answered once the key is known to be valid */
    rf_handler stage; /* the part of the handler to run next; NULL: not begun */
    int attempt;      /* of the idempotency layer's whole-handler retry */
    int worked;       /* the worker has answered: send r.resp on the next call */
    uint64_t t0;
    char rid[RF_ID_MAX];
};

static const struct rf_server_opts *opts;
static atomic_int inflight;
/* Connections suspended for a worker or a timer: libmicrohttpd 0.9.75 aborts
 * (MHD_PANIC) when stopped with one, so a stop waits for this to be 0. */
static atomic_int suspended;
/* On SIGTERM: DRAIN_CLOSE refuses new connections and closes each kept-alive
 * one after its answer; DRAIN_FINAL also closes a connection that starts a
 * new request, so that the suspended ones can only end. */
enum { DRAIN_NONE, DRAIN_CLOSE, DRAIN_FINAL };
static atomic_int draining;

void rf_server_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static struct rf_conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static const char *query_get(const struct rf_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static int ctype_is_json(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", 16) != 0)
        return 0;
    ct += 16;
    while (*ct == ' ')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* Everything decidable from the request line and headers, before reading a
 * body: unknown route, 401, 415, declared 413. Sets r->resp when it answers. */
static void preflight(struct conn_req *cr, struct MHD_Connection *conn)
{
    struct rf_req *r = &cr->r;
    int path_known;
    char allow[64];
    cr->route = rf_route_match(opts->routes, opts->nroutes, r->method, r->path, r, &path_known,
                               allow, sizeof(allow));
    if (!cr->route) {
        if (path_known) {
            rf_reply_problem(r, RF_P_METHOD_NOT_ALLOWED, "%s is not allowed here; use %s.",
                             r->method, allow);
            r->resp.allow = rf_arena_strdup(r->a, allow);
        } else {
            rf_reply_problem(r, RF_P_NOT_FOUND, "No route for this path.");
        }
        return;
    }
    if (cr->route->flags & RF_ROUTE_AUTH) {
        const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !h[7]) {
            rf_reply_problem(r, RF_P_UNAUTHORIZED,
                             "Send 'Authorization: Bearer <rootKey>' with every /v1 request.");
            return;
        }
        /* A key seen recently is known here without the database; any
         * other is looked up on a worker, as the loop must never block. */
        if (!opts->auth_cached(r, h + 7)) {
            cr->token = rf_arena_strdup(r->a, h + 7);
            if (!cr->token) {
                rf_reply_problem(r, RF_P_INTERNAL_ERROR, "Out of memory.");
                return;
            }
        } else if (!r->ws) {
            rf_reply_problem(r, RF_P_UNAUTHORIZED, "Unknown root key.");
            return;
        } else if (!(cr->cached_token = rf_arena_strdup(r->a, h + 7))) {
            rf_reply_problem(r, RF_P_INTERNAL_ERROR, "Out of memory.");
            return;
        }
    }
    if (cr->route->flags & RF_ROUTE_JSON) {
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        /* 401 goes before 415: with the key still unchecked, the 415
         * waits for the worker that checks it. */
        if (!ctype_is_json(ct)) {
            if (!cr->token) {
                rf_reply_problem(r, RF_P_UNSUPPORTED_MEDIA_TYPE,
                                 "Send the body as 'Content-Type: application/json'.");
                return;
            }
            cr->bad_ctype = 1;
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > RF_BODY_MAX) {
            rf_reply_problem(r, RF_P_PAYLOAD_TOO_LARGE, "Bodies are limited to %d bytes.",
                             RF_BODY_MAX);
            return;
        }
    }
}

static int has_body(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding") ||
           (cl && strtoull(cl, NULL, 10) > 0);
}

static int body_append(struct conn_req *cr, const char *data, size_t n)
{
    if (cr->body_len + n > RF_BODY_MAX)
        return -1;
    if (cr->body_len + n > cr->body_cap) {
        size_t cap = cr->body_cap ? cr->body_cap : 1024;
        while (cap < cr->body_len + n)
            cap *= 2;
        if (cap > RF_BODY_MAX)
            cap = RF_BODY_MAX;
        char *b = realloc(cr->body, cap);
        if (!b)
            return -1;
        cr->body = b;
        cr->body_cap = cap;
    }
    memcpy(cr->body + cr->body_len, data, n);
    cr->body_len += n;
    return 0;
}

enum { STAGE_ANSWERED, STAGE_TIMER, STAGE_PARKED };

#define PARKED (-1) /* then_ms of rf_req_park */

/* The conn_req that holds ptr, a pointer to its member. */
#define CR_OF(ptr, member) ((struct conn_req *)((char *)(ptr)-offsetof(struct conn_req, member)))

static void queue_req(struct rf_req *r)
{
    rf_pool_push(&CR_OF(r, r)->job);
}

/* Runs the current stage of the handler and the idempotency layer's end of
 * it. Returns STAGE_TIMER or STAGE_PARKED when the handler deferred the
 * rest (rf_req_defer, rf_req_park): the stage to run next is set and
 * nothing is answered yet. */
static int run_stage(struct conn_req *cr)
{
    struct rf_req *r = &cr->r;
    int idem = (cr->route->flags & RF_ROUTE_IDEMPOTENT) && opts->idem_begin;
    /* Test builds: faults may fire anywhere in request handling, never in
     * start-up work. They are armed per thread: a stage arms them on the
     * worker it runs on. */
    rf_fault_arm(1);
    for (;;) {
        if (!r->resp.status) {
            r->then = NULL;
            cr->stage(r);
            if (!r->resp.status && r->then) {
                cr->stage = r->then;
                rf_fault_arm(0);
                return r->then_ms == PARKED ? STAGE_PARKED : STAGE_TIMER;
            }
        }
        if (!r->resp.status) {
            rf_log(RF_LOG_ERROR, "request %s: handler %s gave no response", r->request_id,
                   cr->route->name);
            rf_reply_problem(r, RF_P_INTERNAL_ERROR, "Internal error; reference request %s.",
                             r->request_id);
        }
        if (!idem || !opts->idem_finish(r, cr->attempt++))
            break;
        memset(&r->resp, 0, sizeof(r->resp)); /* run the stage again */
    }
    rf_fault_arm(0);
    return STAGE_ANSWERED;
}

/* The first stage's prologue: what the loop left to a worker (the root key,
 * then 415), the idempotency reservation, the JSON body. Returns 1 when it
 * answered and the handler must not run. */
static int begin_request(struct conn_req *cr)
{
    struct rf_req *r = &cr->r;
    if (cr->cached_token && rf_mono_ns() > r->auth_until) {
        r->ws = NULL;
        cr->token = cr->cached_token;
    }
    if (cr->token) {
        opts->authenticate(r, cr->token);
        if (r->resp.status)
            return 1;
        if (!r->ws) {
            rf_reply_problem(r, RF_P_UNAUTHORIZED, "Unknown root key.");
            return 1;
        }
    }
    if (cr->bad_ctype) {
        rf_reply_problem(r, RF_P_UNSUPPORTED_MEDIA_TYPE,
                         "Send the body as 'Content-Type: application/json'.");
        return 1;
    }
    int idem = (cr->route->flags & RF_ROUTE_IDEMPOTENT) && opts->idem_begin;
    if (idem && cr->idem_headers > 1) {
        /* Which one would the client mean? Neither is guessed. */
        rf_reply_problem(r, RF_P_INVALID_IDEMPOTENCY_KEY, "Send one Idempotency-Key header.");
        return 1;
    }
    /* The body is parsed before a key is reserved: a request refused as
     * invalid JSON never ran, so it takes no reservation and a corrected
     * retry with the same key runs (docs/API.md, Idempotency). */
    if (cr->route->flags & RF_ROUTE_JSON) {
        char err[256];
        r->body = rf_json_parse_object(cr->body, cr->body_len, err, sizeof(err));
        if (!r->body) {
            rf_reply_problem(r, RF_P_INVALID_JSON, "Invalid JSON: %s.", err);
            return 1;
        }
    }
    if (idem && opts->idem_begin(r, cr->idem_header, cr->body ? cr->body : "", cr->body_len))
        return 1;
    return 0;
}

static void on_timer(struct rf_timer *t);

/* On a worker: the request's next stage; then the connection is resumed
 * and the loop sends the answer, or a timer is set for the stage after. */
static void run_job(struct rf_job *j)
{
    struct conn_req *cr = CR_OF(j, job);
    if (!cr->stage) {
        cr->stage = cr->route->fn;
        if (begin_request(cr))
            goto answered;
    }
    switch (run_stage(cr)) {
    case STAGE_PARKED:
        /* Not a field of cr may be touched after this: the wake may have
         * come, and another worker may be running the next stage. */
        rf_req_wake(&cr->r);
        return;
    case STAGE_TIMER:
        if (rf_timer_add(&cr->timer, cr->r.then_ms) == 0)
            return;
        rf_reply_problem(&cr->r, RF_P_INTERNAL_ERROR, "Out of memory; reference request %s.",
                         cr->r.request_id);
        if (cr->r.idem)
            opts->idem_finish(&cr->r, cr->attempt++); /* a 5xx: released, never retried */
        break;
    case STAGE_ANSWERED:
        break;
    }
answered:
    cr->worked = 1;
    atomic_fetch_sub(&suspended, 1);
    MHD_resume_connection(cr->conn);
}

static void on_timer(struct rf_timer *t)
{
    rf_pool_push(&CR_OF(t, timer)->job);
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, struct conn_req *cr)
{
    struct rf_resp *rs = &cr->r.resp;
    struct MHD_Response *m = MHD_create_response_from_buffer(
        rs->body_len, (void *)(rs->body ? rs->body : ""), MHD_RESPMEM_MUST_COPY);
    if (!m)
        return MHD_NO;
    if (rs->body_len && rs->ctype)
        MHD_add_response_header(m, "Content-Type", rs->ctype);
    MHD_add_response_header(m, "X-Request-Id", cr->rid);
    MHD_add_response_header(m, "Cache-Control", "no-store");
    if (rs->retry_after) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", rs->retry_after);
        MHD_add_response_header(m, "Retry-After", ra);
    }
    if (rs->allow)
        MHD_add_response_header(m, "Allow", rs->allow);
    if (rs->replayed)
        MHD_add_response_header(m, "Idempotent-Replayed", "true");
    if (rs->etag)
        MHD_add_response_header(m, "ETag", rs->etag);
    if (rs->status == 401)
        MHD_add_response_header(m, "WWW-Authenticate", "Bearer");
    if (atomic_load(&draining) != DRAIN_NONE)
        MHD_add_response_header(m, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)rs->status, m);
    /* Counted before the bytes leave (a client that saw its response sees
     * it in the next scrape), and once: a second queue attempt fails. */
    if (ret == MHD_YES)
        rf_metrics_request(cr->route ? (size_t)(cr->route - opts->routes) : RF_METRICS_UNMATCHED,
                           rs->status, rf_mono_ns() - cr->t0);
    MHD_destroy_response(m);
    return ret;
}

/* Collects every field line of one name, joined with ", " (RFC 9110 §5.3:
 * the same as one line with a comma-separated list), and counts them; n is
 * -1 when the arena ran out. */
struct hdr_join {
    struct rf_arena *a;
    const char *name;
    char *out;
    int n;
};

static enum MHD_Result join_values(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct hdr_join *hj = cls;
    (void)kind;
    if (hj->n < 0 || !key || strcasecmp(key, hj->name) != 0)
        return MHD_YES;
    if (!value)
        value = "";
    size_t ol = hj->out ? strlen(hj->out) : 0, vl = strlen(value);
    char *s = rf_arena_alloc(hj->a, ol + 2 + vl + 1);
    if (!s) {
        hj->n = -1;
        return MHD_NO;
    }
    if (hj->out) {
        memcpy(s, hj->out, ol);
        memcpy(s + ol, ", ", 2);
        ol += 2;
    }
    memcpy(s + ol, value, vl + 1);
    hj->out = s;
    hj->n++;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct conn_req *cr = *con_cls;
    (void)cls;
    (void)version;
    if (!cr) {
        /* First call: headers only. Answering here would make libmicrohttpd
         * close the connection (docs/ARCHITECTURE.md, HTTP), so decide now,
         * answer next call. */
        struct rf_conn *tc = conn_of(conn);
        if (rf_conns_refused(tc) || atomic_load(&draining) == DRAIN_FINAL)
            return MHD_NO; /* answered 503 at accept (conns.c), or stopping */
        rf_conns_phase(tc, RF_CONN_BODY);
        cr = calloc(1, sizeof(*cr));
        if (!cr)
            return MHD_NO;
        atomic_fetch_add(&inflight, 1);
        *con_cls = cr;
        cr->t0 = rf_mono_ns();
        cr->conn = conn;
        cr->job.run = run_job;
        cr->timer.fire = on_timer;
        rf_arena_init(&cr->arena, ARENA_LIMIT);
        if (rf_id_new(cr->rid, sizeof(cr->rid), "req_", 12))
            return MHD_NO;
        cr->r.a = &cr->arena;
        cr->r.app = opts->app;
        cr->r.request_id = cr->rid;
        cr->r.method = rf_arena_strdup(&cr->arena, method);
        cr->r.path = rf_arena_strdup(&cr->arena, url);
        cr->r.query = query_get;
        cr->r.queue = queue_req;
        cr->r.conn = conn;
        if (!cr->r.method || !cr->r.path)
            return MHD_NO;
        preflight(cr, conn);
        /* An early answer to a request that carries a body goes out now:
         * libmicrohttpd accepts a response only before the body is read or
         * after all of it, and answering now makes it close the connection
         * instead of reading (and sending 100 Continue for) a body nobody
         * wants. The close lingers (linger.c), so a client still sending
         * reads this answer rather than a reset. Without a body we answer
         * on the next call and keep-alive. */
        if (cr->r.resp.status && has_body(conn)) {
            rf_conns_linger(tc);
            rf_conns_phase(tc, RF_CONN_BUSY);
            return send_resp(conn, cr);
        }
        if (cr->route && (cr->route->flags & RF_ROUTE_IDEMPOTENT)) {
            const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
            if (h && !(cr->idem_header = rf_arena_strdup(&cr->arena, h)))
                return MHD_NO;
            struct hdr_join hj = {&cr->arena, "Idempotency-Key", NULL, 0};
            MHD_get_connection_values(conn, MHD_HEADER_KIND, join_values, &hj);
            cr->idem_headers = hj.n;
        }
        if (cr->route) {
            struct hdr_join hj = {&cr->arena, "If-Match", NULL, 0};
            MHD_get_connection_values(conn, MHD_HEADER_KIND, join_values, &hj);
            if (hj.n < 0)
                return MHD_NO;
            cr->r.if_match = hj.out;
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* A body without a declared length that grows past the limit: the
         * response can only be queued once the body ends, so discard the
         * rest, up to a bound past which the connection is simply closed. */
        cr->seen += *upload_data_size;
        if (cr->seen > DISCARD_MAX) {
            rf_conns_linger(conn_of(conn));
            return MHD_NO;
        }
        if (!cr->r.resp.status && cr->route && (cr->route->flags & RF_ROUTE_JSON) &&
            body_append(cr, upload_data, *upload_data_size) != 0)
            rf_reply_problem(&cr->r, RF_P_PAYLOAD_TOO_LARGE, "Bodies are limited to %d bytes.",
                             RF_BODY_MAX);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cr->worked || cr->r.resp.status)
        return send_resp(conn, cr);
    rf_conns_phase(conn_of(conn), RF_CONN_BUSY);
    if (cr->route->flags & RF_ROUTE_LOOP) {
        cr->stage = cr->route->fn;
        run_stage(cr);
        return send_resp(conn, cr);
    }
    /* Suspended before it is queued: a worker may resume it at once. */
    atomic_fetch_add(&suspended, 1);
    MHD_suspend_connection(conn);
    rf_pool_push(&cr->job);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct conn_req *cr = *con_cls;
    (void)cls;
    rf_conns_phase(conn_of(conn), RF_CONN_IDLE);
    if (!cr)
        return;
    if (rf_log_min <= RF_LOG_INFO) {
        char ts[RF_TIME_MAX];
        rf_now_rfc3339(ts);
        json_int_t us = (json_int_t)((rf_mono_ns() - cr->t0) / 1000);
        json_t *line =
            json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:i, s:I, s:s?, s:i}", "time", ts, "level",
                      "info", "requestId", cr->rid, "method", cr->r.method, "path", cr->r.path,
                      "route", cr->route ? cr->route->name : NULL, "status", cr->r.resp.status,
                      "durationUs", us, "workspaceId", cr->r.ws, "termination", (int)toe);
        char *s = line ? json_dumps(line, JSON_COMPACT) : NULL;
        /* The whole line is JSON, unlike rf_log's, so log shippers can take
         * it as is; one fprintf on unbuffered stderr is one write. */
        if (s)
            fprintf(stderr, "%s\n", s);
        free(s);
        json_decref(line);
    }
    json_decref(cr->r.body);
    free(cr->body);
    rf_arena_free(&cr->arena);
    free(cr);
    *con_cls = NULL;
    atomic_fetch_sub(&inflight, 1);
}

/* The one NOTIFY_CONNECTION callback (libmicrohttpd keeps only the last one
 * given): every per-connection concern gets a call here — the open
 * connections gauge (metrics) and the limits (conns.c). Add to it; do not
 * register a second one. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    rf_metrics_connection(toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? rf_conns_open(ci->connect_fd) : NULL;
    } else {
        /* Called before libmicrohttpd closes the socket, whose write side
         * it has shut. Bytes still unread (or a body we stopped reading)
         * would turn close() into a reset: a duplicate of the descriptor
         * keeps the socket open while linger.c drains it. */
        int pending = 0;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci && (rf_conns_lingers(*socket_context) ||
                   (ioctl(ci->connect_fd, FIONREAD, &pending) == 0 && pending > 0))) {
            int fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
            if (fd >= 0)
                rf_linger_add(fd);
        }
        rf_conns_close(*socket_context);
        *socket_context = NULL;
    }
}

/* Called when a request line has been read, before its headers: starts the
 * head deadline of a kept-alive connection. The NULL returned is the
 * request's initial con_cls, which on_request relies on. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)uri;
    rf_conns_request_line(conn_of(conn));
    return NULL;
}

/* libmicrohttpd's own messages (refused connections, malformed requests)
 * arrive once per event: under an attack, a few lines then a count, not a
 * line per connection. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t window;
    static unsigned shown, dropped;
    enum { WINDOW_S = 10, PER_WINDOW = 5 };
    (void)cls;
    uint64_t now = rf_mono_ns() / 1000000000u;
    pthread_mutex_lock(&mu);
    if (now >= window + WINDOW_S) {
        if (dropped)
            rf_log(RF_LOG_WARN, "libmicrohttpd: %u more messages in %d s", dropped, WINDOW_S);
        window = now;
        shown = dropped = 0;
    }
    int show = shown < PER_WINDOW;
    if (show)
        shown++;
    else
        dropped++;
    pthread_mutex_unlock(&mu);
    if (!show)
        return;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    rf_log(RF_LOG_WARN, "libmicrohttpd: %s", msg);
}

/* While draining, a new connection is closed as soon as it is accepted.
 * (MHD_quiesce_daemon would close the listening socket instead, but with a
 * thread pool and epoll it races the loops for the listening socket's epoll
 * registration and aborts when it loses.) */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
    (void)cls;
    (void)addr;
    (void)len;
    return atomic_load(&draining) == DRAIN_NONE ? MHD_YES : MHD_NO;
}

static void sleep_until(int (*done)(void), uint64_t deadline)
{
    while (!done() && rf_mono_ns() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int no_inflight(void)
{
    return atomic_load(&inflight) == 0;
}

static int none_suspended(void)
{
    return atomic_load(&suspended) == 0;
}

/* The threads around libmicrohttpd's, on a start that failed midway (each
 * stop is a no-op for what never started). */
static void stop_threads(void)
{
    rf_linger_stop();
    rf_timer_stop();
    rf_pool_stop();
    rf_conns_stop();
}

/* Binds the listening socket ourselves so that port 0 works and the real
 * port can be printed for scripts and tests. */
static int listen_on(const char *spec, char *shown, size_t shownlen)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof(host)) {
        rf_log(RF_LOG_ERROR, "--listen wants HOST:PORT, got '%s'", spec);
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    int gai = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res);
    if (gai) {
        rf_log(RF_LOG_ERROR, "--listen %s: %s", spec, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
            rf_log(RF_LOG_ERROR, "--listen %s: %s", spec, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
            port = ntohs(s4->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
            port = ntohs(s6->sin6_port);
        }
    }
    snprintf(shown, shownlen, ss.ss_family == AF_INET6 ? "http://[%s]:%d" : "http://%s:%d", addr,
             port);
    return fd;
}

int rf_server_run(const struct rf_server_opts *o)
{
    char shown[128];
    opts = o;
    int fd = listen_on(o->listen, shown, sizeof(shown));
    if (fd < 0)
        return -1;
    /* A few event-loop threads (libmicrohttpd's thread pool, each its own
     * epoll) own every connection and answer what needs no database; the
     * rest runs on the worker pool, one worker per database connection,
     * while its connection is suspended (docs/ARCHITECTURE.md, "Threads"). */
    struct rf_conns_limits lim = {
        .max = o->max_connections,
        .header_timeout = o->header_timeout,
        .body_timeout = o->body_timeout,
        .idle_timeout = o->idle_timeout,
    };
    if (rf_conns_start(&lim)) {
        close(fd);
        return -1;
    }
    if (rf_pool_start(o->threads) || rf_timer_start() || rf_linger_start()) {
        stop_threads();
        close(fd);
        return -1;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned loops = ncpu > 0 ? (unsigned)ncpu : 1;
    /* libmicrohttpd's own limit is a backstop above ours: connections we
     * evicted or refused still hold a socket until their loop closes them.
     * It is split between the loops, so it gets a loop's worth of slack.
     * Its inactivity timeout is the only guard while a response is sent. */
    unsigned hard_limit = o->max_connections + o->max_connections / 4 + 16 * loops;
    struct MHD_Daemon *d = MHD_start_daemon(
        /* TURBO skips libmicrohttpd's shutdown() before every close: a
         * close that would lose an answer to a reset lingers instead
         * (on_connection), with a shutdown of its own. */
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
            MHD_USE_ERROR_LOG,
        /* The logger first: libmicrohttpd reports options it parses before
         * it through its own logger. */
        0, on_accept, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, loops,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, NULL, MHD_OPTION_URI_LOG_CALLBACK, on_request_line, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->idle_timeout, MHD_OPTION_CONNECTION_LIMIT,
        hard_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_connections_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->header_bytes, MHD_OPTION_END);
    if (!d) {
        rf_log(RF_LOG_ERROR, "cannot start the HTTP daemon");
        stop_threads();
        close(fd);
        return -1;
    }
    rf_log(RF_LOG_INFO, "listening on %s (%u event loops, %d workers and database connections)",
           shown, loops, o->threads);

    sigset_t set;
    int sig = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    while (sigwait(&set, &sig) != 0)
        ;
    rf_log(RF_LOG_INFO, "signal %d: draining", sig);
    /* Stop accepting; let in-flight requests finish (bounded), closing each
     * kept-alive connection after its answer. */
    atomic_store(&draining, DRAIN_CLOSE);
    uint64_t deadline =
        rf_mono_ns() + (uint64_t)(o->drain_seconds > 0 ? o->drain_seconds : 10) * 1000000000u;
    sleep_until(no_inflight, deadline);
    /* Then no new request starts, waits are cut short, and what a worker
     * holds finishes: each database call has its own 5 s budget. */
    atomic_store(&draining, DRAIN_FINAL);
    rf_timer_flush();
    sleep_until(none_suspended, rf_mono_ns() + (RF_DRAIN_FINAL_S + 1) * 1000000000ull);
    if (!none_suspended()) {
        /* Stopping the daemon now would abort in libmicrohttpd; closing
         * the database under running workers would be worse. */
        rf_log(RF_LOG_ERROR, "%d requests still running after the drain; exiting",
               atomic_load(&suspended));
        _exit(1);
    }
    rf_timer_stop();
    rf_pool_stop();
    MHD_stop_daemon(d);
    rf_linger_stop();
    rf_conns_stop();
    rf_log(RF_LOG_INFO, "stopped");
    return 0;
}
