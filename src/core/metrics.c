#include "core/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pool.h"
#include "core/problems.h"

typedef atomic_uint_fast64_t counter;

/* Only counts that clients can reach; anything else is "other", which keeps
 * the code label a closed set. */
static const int statuses[] = {200, 201, 202, 204, 206, 301, 302, 304, 400, 401,
                               403, 404, 405, 408, 409, 410, 412, 413, 414, 415,
                               422, 429, 431, 500, 501, 502, 503, 504};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

/* Upper bounds in ns, and the same as printed: from a primary-key lookup on
 * SQLite (~50 µs) to a handler stuck behind the 5 s busy timeout. */
static const uint64_t bucket_ns[] = {500000,     1000000,    2500000,    5000000,    10000000,
                                     25000000,   50000000,   100000000,  250000000,  500000000,
                                     1000000000, 2500000000, 5000000000, 10000000000};
static const char *const bucket_le[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                        "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                        "1",      "2.5",   "5",      "10"};
#define NBUCKET (sizeof(bucket_ns) / sizeof(bucket_ns[0]))

/* Indexed by enum rf_db_retry_reason. */
static const char *const retry_names[RF_DB_RETRY_N] = {
    "busy", "locked", "serialization", "deadlock", "lock_timeout", "group_commit", "other"};
#define NRETRY RF_DB_RETRY_N

/* The CONFLICT rows of core/problems.h, in its order, then "other". */
static const char *const conflict_codes[] = {
#define XX(e, status, code, title, label) RF_PROBLEM_IF_CONFLICT(label, #code, )
    RF_PROBLEM_MAP(XX)
#undef XX
        "other"};
#define NCONFLICT (sizeof(conflict_codes) / sizeof(conflict_codes[0]))

static const char *const existing_names[RF_METRICS_EXISTING_N] = {"users"};
static const char *const idem_names[RF_METRICS_IDEM_N] = {
    "reserved", "replayed", "in_progress", "reused", "completed", "released", "taken_over"};

static const char *const rl_names[RF_METRICS_RL_N] = {"passed", "limited"};

static const unsigned batch_le[] = {1, 2, 4, 8, 16, 32, 64, 128};
#define NBATCH (sizeof(batch_le) / sizeof(batch_le[0]))

struct route_stats {
    counter by_status[NSTATUS + 1]; /* last: "other" */
    counter bucket[NBUCKET + 1];    /* per bucket, not cumulative; last: above 10 s */
    counter sum_ns;
};

static struct {
    struct route_stats route[RF_METRICS_ROUTES + 1]; /* last: unmatched */
    counter retries[NRETRY];
    counter conflicts[NCONFLICT];
    counter existing[RF_METRICS_EXISTING_N];
    counter idem[RF_METRICS_IDEM_N];
    counter ratelimit[RF_METRICS_RL_N];
    counter batch[NBATCH + 1];
    counter batch_sum;
    counter conns_total;
    atomic_long conns_open;
} m;

static int64_t start_ms;

/* Stands for the process start time: constructors run before main. */
__attribute__((constructor)) static void note_start(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    start_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void inc(counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t get(counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void rf_metrics_request(size_t route, int status, uint64_t ns)
{
    struct route_stats *s = &m.route[route < RF_METRICS_ROUTES ? route : RF_METRICS_UNMATCHED];
    size_t i = 0, b = 0;
    while (i < NSTATUS && statuses[i] != status)
        i++;
    while (b < NBUCKET && ns > bucket_ns[b])
        b++;
    inc(&s->by_status[i], 1);
    inc(&s->bucket[b], 1);
    inc(&s->sum_ns, ns);
}

void rf_metrics_connection(int delta)
{
    if (delta > 0)
        inc(&m.conns_total, 1);
    atomic_fetch_add_explicit(&m.conns_open, delta, memory_order_relaxed);
}

void rf_metrics_db_retry(enum rf_db_retry_reason reason)
{
    inc(&m.retries[(unsigned)reason < NRETRY ? reason : RF_DB_RETRY_OTHER], 1);
}

void rf_metrics_conflict(const char *code)
{
    size_t i = 0;
    while (i < NCONFLICT - 1 && strcmp(conflict_codes[i], code ? code : "") != 0)
        i++;
    inc(&m.conflicts[i], 1);
}

void rf_metrics_create_existing(enum rf_metrics_existing what)
{
    if ((unsigned)what < RF_METRICS_EXISTING_N)
        inc(&m.existing[what], 1);
}

void rf_metrics_idem(enum rf_metrics_idem outcome)
{
    if ((unsigned)outcome < RF_METRICS_IDEM_N)
        inc(&m.idem[outcome], 1);
}

void rf_metrics_ratelimit(enum rf_metrics_ratelimit outcome)
{
    if ((unsigned)outcome < RF_METRICS_RL_N)
        inc(&m.ratelimit[outcome], 1);
}

void rf_metrics_batch(unsigned n)
{
    size_t b = 0;
    while (b < NBATCH && n > batch_le[b])
        b++;
    inc(&m.batch[b], 1);
    inc(&m.batch_sum, n);
}

void rf_metrics_reset(void)
{
    long open = atomic_load(&m.conns_open);
    memset(&m, 0, sizeof(m));
    atomic_store(&m.conns_open, open);
}

/* ---- exposition ---- */

struct out {
    char *buf;
    size_t cap, len;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *at = o->len < o->cap ? o->buf + o->len : NULL;
    int n = vsnprintf(at, at ? o->cap - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

/* Label values per the text format: backslash, quote and newline escaped.
 * Route names come from our own table, so this is a guard, not a path. */
static const char *esc(const char *s, char *tmp, size_t n)
{
    size_t o = 0;
    for (; *s && o + 3 < n; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            tmp[o++] = '\\';
            tmp[o++] = *s == '\n' ? 'n' : *s;
        } else {
            tmp[o++] = *s;
        }
    }
    tmp[o] = '\0';
    return tmp;
}

static void head(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void labelled(struct out *o, const char *name, const char *label, const char *const *values,
                     counter *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(o, "%s{%s=\"%s\"} %llu\n", name, label, values[i], (unsigned long long)get(&c[i]));
}

static const char *route_label(size_t i, const char *const *names, size_t nroutes, char *tmp,
                               size_t n)
{
    if (i == RF_METRICS_UNMATCHED)
        return "unmatched";
    if (i < nroutes && names[i])
        return esc(names[i], tmp, n);
    snprintf(tmp, n, "route_%zu", i);
    return tmp;
}

static void requests(struct out *o, const char *const *names, size_t nroutes)
{
    char tmp[128];
    head(o, "racefree_http_requests_total", "counter",
         "HTTP responses sent, by route name and status code.");
    for (size_t i = 0; i <= RF_METRICS_ROUTES; i++) {
        const char *route = NULL;
        for (size_t k = 0; k <= NSTATUS; k++) {
            uint64_t v = get(&m.route[i].by_status[k]);
            if (!v)
                continue;
            if (!route)
                route = route_label(i, names, nroutes, tmp, sizeof(tmp));
            if (k < NSTATUS)
                put(o, "racefree_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n", route,
                    statuses[k], (unsigned long long)v);
            else
                put(o, "racefree_http_requests_total{route=\"%s\",code=\"other\"} %llu\n", route,
                    (unsigned long long)v);
        }
    }
}

static void durations(struct out *o, const char *const *names, size_t nroutes)
{
    char tmp[128];
    const char *name = "racefree_http_request_duration_seconds";
    head(o, name, "histogram",
         "Time from request headers to the response being queued, by route name.");
    for (size_t i = 0; i <= RF_METRICS_ROUTES; i++) {
        struct route_stats *s = &m.route[i];
        /* One read per bucket, accumulated here: the buckets stay
         * cumulative and +Inf equals _count even while requests land. */
        uint64_t b[NBUCKET + 1], total = 0;
        for (size_t k = 0; k <= NBUCKET; k++)
            total += b[k] = get(&s->bucket[k]);
        if (!total)
            continue;
        const char *route = route_label(i, names, nroutes, tmp, sizeof(tmp));
        uint64_t cum = 0;
        for (size_t k = 0; k < NBUCKET; k++) {
            cum += b[k];
            put(o, "%s_bucket{route=\"%s\",le=\"%s\"} %llu\n", name, route, bucket_le[k],
                (unsigned long long)cum);
        }
        uint64_t sum = get(&s->sum_ns);
        put(o, "%s_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", name, route,
            (unsigned long long)total);
        put(o, "%s_sum{route=\"%s\"} %llu.%09llu\n", name, route,
            (unsigned long long)(sum / 1000000000u), (unsigned long long)(sum % 1000000000u));
        put(o, "%s_count{route=\"%s\"} %llu\n", name, route, (unsigned long long)total);
    }
}

static void batches(struct out *o)
{
    uint64_t b[NBATCH + 1], total = 0, cum = 0;
    for (size_t k = 0; k <= NBATCH; k++)
        total += b[k] = get(&m.batch[k]);
    if (!total) /* only a driver with group commit reports batches */
        return;
    const char *name = "racefree_db_group_commit_batch_size";
    head(o, name, "histogram", "Write transactions committed together by one group commit.");
    for (size_t k = 0; k < NBATCH; k++) {
        cum += b[k];
        put(o, "%s_bucket{le=\"%u\"} %llu\n", name, batch_le[k], (unsigned long long)cum);
    }
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)total);
    put(o, "%s_sum %llu\n", name, (unsigned long long)get(&m.batch_sum));
    put(o, "%s_count %llu\n", name, (unsigned long long)total);
}

size_t rf_metrics_format(char *buf, size_t cap, const char *const *route_names, size_t nroutes)
{
    struct out o = {buf, cap, 0};
    if (cap)
        buf[0] = '\0';
    requests(&o, route_names, nroutes);
    durations(&o, route_names, nroutes);

    head(&o, "racefree_db_retries_total", "counter",
         "Transactions run again after a retryable database conflict, by reason.");
    labelled(&o, "racefree_db_retries_total", "reason", retry_names, m.retries, NRETRY);
    head(&o, "racefree_http_conflicts_total", "counter", "409 responses, by problem code.");
    labelled(&o, "racefree_http_conflicts_total", "code", conflict_codes, m.conflicts, NCONFLICT);
    head(&o, "racefree_create_existing_total", "counter",
         "Create-if-missing requests answered with the object that already existed.");
    labelled(&o, "racefree_create_existing_total", "resource", existing_names, m.existing,
             RF_METRICS_EXISTING_N);
    head(&o, "racefree_idempotency_outcomes_total", "counter",
         "Idempotency-Key outcomes: reservations, replays, conflicts, completions, releases.");
    labelled(&o, "racefree_idempotency_outcomes_total", "outcome", idem_names, m.idem,
             RF_METRICS_IDEM_N);
    head(&o, "racefree_ratelimit_outcomes_total", "counter",
         "Key verifications that counted against ratelimits, by outcome.");
    labelled(&o, "racefree_ratelimit_outcomes_total", "outcome", rl_names, m.ratelimit,
             RF_METRICS_RL_N);
    batches(&o);

    head(&o, "racefree_http_open_connections", "gauge", "HTTP connections open now.");
    long open = atomic_load_explicit(&m.conns_open, memory_order_relaxed);
    put(&o, "racefree_http_open_connections %ld\n", open > 0 ? open : 0);
    head(&o, "racefree_http_connections_total", "counter", "HTTP connections accepted.");
    put(&o, "racefree_http_connections_total %llu\n", (unsigned long long)get(&m.conns_total));
    /* Above the worker count for long: the database work outruns the pool
     * (waits on timers and batches are not counted, they hold no worker). */
    head(&o, "racefree_worker_jobs", "gauge",
         "Requests queued for or running on the worker pool now.");
    put(&o, "racefree_worker_jobs %u\n", rf_pool_pending());
    head(&o, "process_start_time_seconds", "gauge",
         "Start time of the process since the Unix epoch in seconds.");
    put(&o, "process_start_time_seconds %lld.%03d\n", (long long)(start_ms / 1000),
        (int)(start_ms % 1000));
    return o.len;
}
