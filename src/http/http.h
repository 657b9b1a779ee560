/* HTTP layer: one request's state, the response a handler fills in, RFC 9457
 * problem details, input checks, and the route table type. libmicrohttpd is
 * confined to server.c; handlers see only struct rf_req. */
#ifndef RF_HTTP_H
#define RF_HTTP_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/problems.h"

#define RF_BODY_MAX (1024 * 1024) /* docs/API.md, Conventions: larger bodies get 413 */
#define RF_JSON_DEPTH_MAX 32
#define RF_MAX_PATH_PARAMS 4

struct rf_app; /* defined by the api layer: database, settings */
struct rf_tx;  /* store/store.h: a transaction opened by the idempotency layer */
struct rf_req;
typedef void (*rf_handler)(struct rf_req *r);

struct rf_resp {
    int status;        /* 0 until a handler answers */
    const char *ctype; /* arena or static */
    const char *body;  /* arena; may be NULL for 204 */
    size_t body_len;
    int retry_after;   /* seconds; 0 = no header */
    const char *allow; /* 405: Allow header */
    int replayed;      /* Idempotent-Replayed: true */
    int secret_key;    /* body's "key" is a new key's plaintext: never stored */
    const char *etag;  /* ETag header (quoted), or NULL; stored for replays too */
};

struct rf_req {
    struct rf_arena *a;
    struct rf_app *app;
    const char *method, *path, *request_id;
    const char *params[RF_MAX_PATH_PARAMS]; /* {name} segments, in order (arena) */
    int nparams;
    const char *ws;      /* authenticated workspace id, or NULL */
    uint64_t auth_until; /* CLOCK_MONOTONIC ns: ws stands until then, then asks again */
    /* Every If-Match field line, joined with ", " as RFC 9110 §5.3 allows
     * (arena), or NULL when the request has none. */
    const char *if_match;
    json_t *body; /* parsed JSON object, or NULL; owned by server.c */
    /* Query string lookup (libmicrohttpd behind it); NULL when absent. */
    const char *(*query)(const struct rf_req *r, const char *name);
    void *conn;
    void *idem; /* the idempotency layer's state for this request, or NULL */
    /* The write transaction the idempotency layer opened for this request:
     * store writes the handler makes join it (and commit with the stored
     * response), or NULL: each store call commits on its own. */
    struct rf_tx *tx;
    /* Set by rf_req_defer or rf_req_park: the rest of the handler, run
     * after then_ms (< 0: when woken). */
    rf_handler then;
    int then_ms;
    void *wait; /* what a parked handler keeps for its next stage */
    atomic_int park;
    void (*queue)(struct rf_req *r); /* the server's: runs r->then on a worker */
    struct rf_resp resp;
};

/* Ends this part of a handler without an answer: fn(r) runs on a worker
 * after ms milliseconds, holding no thread while it waits. Call it before
 * the handler writes anything (the request's transaction must open and end
 * on one worker); fn may answer, or defer again. */
static inline void rf_req_defer(struct rf_req *r, int ms, rf_handler fn)
{
    r->then = fn;
    r->then_ms = ms;
}
/* Ends this part of a handler without an answer until rf_req_wake(r) is
 * called, once, from any thread (e.g. by the leader of a batch the request
 * joined); fn(r) then runs on a worker. Park before handing r to the waker,
 * which may wake it at once; a handler that parked and then finds nothing
 * will wake it clears r->then instead. The same rule about writes as for
 * rf_req_defer. */
static inline void rf_req_park(struct rf_req *r, rf_handler fn)
{
    atomic_store(&r->park, 2);
    r->then = fn;
    r->then_ms = -1;
}
/* Of the parked stage's return and its wake, the later queues the next. */
static inline void rf_req_wake(void *arg)
{
    struct rf_req *r = arg;
    if (atomic_fetch_sub(&r->park, 1) == 1)
        r->queue(r);
}

enum rf_route_flags {
    RF_ROUTE_AUTH = 1 << 0,       /* needs a root key: sets r->ws */
    RF_ROUTE_JSON = 1 << 1,       /* takes a JSON object body */
    RF_ROUTE_IDEMPOTENT = 1 << 2, /* Idempotency-Key layer (docs/API.md, Idempotency) */
    /* Touches no database and never blocks: answered on the event-loop
     * thread that read it, without a trip through the worker pool. */
    RF_ROUTE_LOOP = 1 << 3,
};

struct rf_route {
    const char *method;
    const char *pattern; /* "/v1/users/{id}": {x} matches one non-empty segment */
    rf_handler fn;
    unsigned flags;
    const char *name; /* label for logs/metrics, e.g. "users.create" */
};

/* Finds the route for method+path. Path params are copied into r->params.
 * Returns NULL when nothing matches; then *path_known says whether the path
 * exists under another method (→ 405, with those methods in allow). */
const struct rf_route *rf_route_match(const struct rf_route *routes, size_t n, const char *method,
                                      const char *path, struct rf_req *r, int *path_known,
                                      char *allow, size_t allowlen);

/* ---- responses ---- */

/* A response without a body (204). */
void rf_reply_empty(struct rf_req *r, int status);
/* Serialises j (compact) into the response and takes ownership of j. */
void rf_reply_json(struct rf_req *r, int status, json_t *j);
/* A body that is already bytes (arena or static, not copied): e.g. text/plain. */
void rf_reply_text(struct rf_req *r, int status, const char *ctype, const char *body, size_t len);
/* An RFC 9457 problem: type urn:racefree:error:<code>, the status and title
 * of its row in core/problems.h, detail formatted, requestId. Extra members
 * (e.g. "field") via rf_reply_problem_field. */
void rf_reply_problem(struct rf_req *r, enum rf_problem p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rf_reply_problem_field(struct rf_req *r, enum rf_problem p, const char *field, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));
/* 503 database_unavailable with Retry-After, or 500 (logged) for a bug,
 * chosen from the rf_db_err code. */
void rf_reply_db_error(struct rf_req *r, int db_code, const char *detail);

/* ---- input ---- */

/* Parses a request body that must be one JSON object, depth ≤
 * RF_JSON_DEPTH_MAX, no duplicate keys, valid UTF-8. On failure returns NULL
 * and writes where and why into err. */
json_t *rf_json_parse_object(const char *buf, size_t len, char *err, size_t errlen);

enum rf_field_type {
    RF_F_STRING,         /* JSON string */
    RF_F_STRING_OR_NULL, /* string or null */
    RF_F_INT,
    RF_F_INT_OR_NULL,
    RF_F_BOOL,
    RF_F_OBJECT,
    RF_F_OBJECT_OR_NULL,
    RF_F_ARRAY,
};
struct rf_field {
    const char *name;
    enum rf_field_type type;
    int required;
};
enum rf_input_err { RF_INPUT_OK = 0, RF_INPUT_UNKNOWN, RF_INPUT_MISSING, RF_INPUT_TYPE };
/* Checks obj against the field list; on error *bad points at the offending
 * field name (inside obj or fields: valid while both live). */
enum rf_input_err rf_input_check(json_t *obj, const struct rf_field *fields, size_t n,
                                 const char **bad);
/* rf_input_check on r->body; on error replies 422 and returns -1. */
int rf_input_require(struct rf_req *r, const struct rf_field *fields, size_t n);
#define RF_NFIELDS(f) (sizeof(f) / sizeof((f)[0]))
/* Replies 422 for a non-OK rf_input_check result. */
void rf_reply_input_error(struct rf_req *r, enum rf_input_err err, const char *field,
                          const struct rf_field *fields, size_t n);

#endif
