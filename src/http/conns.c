#include "http/conns.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "core/service.h"
#include "core/util.h"

/* Each phase with a deadline has its own list, kept in order of phase start
 * (a connection is appended when it enters a phase), so the reaper only
 * looks at list heads and eviction finds the longest waiter at once: no
 * scan of ten thousand connections per accept during a flood. */
enum { L_HEAD, L_BODY, L_BUSY, L_IDLE, L_DYING, L_COUNT };

struct rf_conn {
    struct rf_conn *prev, *next;
    int list;
    int fd;
    int refused;
    int linger;
    uint64_t start; /* of the current phase, monotonic ns */
};

struct list {
    struct rf_conn *first, *last;
};

static struct {
    struct rf_service s;
    struct rf_conns_limits lim;
    struct list lists[L_COUNT];
    unsigned live; /* open and not being closed by us */
    unsigned total;
    /* Since the last summary line. */
    unsigned timed_out, evicted, refused;
} g = {.s = {.mu = PTHREAD_MUTEX_INITIALIZER}};

/* The answer to a connection over the limit when none can be evicted: the
 * problem shape every other error has (docs/API.md), written straight to the
 * fresh socket, whose empty send buffer takes it without blocking. */
#define OVERLOAD_BODY                                                                              \
    "{\"type\":\"urn:racefree:error:overloaded\",\"title\":\"Overloaded\",\"status\":503,"         \
    "\"detail\":\"Every connection slot is busy; retry shortly.\",\"code\":\"overloaded\"}"
static const char overload_resp[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                    "Content-Type: application/problem+json\r\n"
                                    "Retry-After: 1\r\n"
                                    "Cache-Control: no-store\r\n"
                                    "Connection: close\r\n"
                                    "Content-Length: 151\r\n"
                                    "\r\n" OVERLOAD_BODY;
_Static_assert(sizeof(OVERLOAD_BODY) - 1 == 151, "Content-Length of the 503 body");

static void unlink_conn(struct rf_conn *c)
{
    struct list *l = &g.lists[c->list];
    if (c->prev)
        c->prev->next = c->next;
    else
        l->first = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->last = c->prev;
    c->prev = c->next = NULL;
}

static void append(struct rf_conn *c, int list, uint64_t now)
{
    struct list *l = &g.lists[list];
    c->list = list;
    c->start = now;
    c->prev = l->last;
    c->next = NULL;
    if (l->last)
        l->last->next = c;
    else
        l->first = c;
    l->last = c;
}

/* Under g.s.mu, which is also what keeps c->fd from being closed and reused
 * meanwhile: libmicrohttpd reports a connection closed (rf_conns_close,
 * which takes g.s.mu) before it closes the socket. shutdown() rather than
 * close() wakes the event loop that owns the connection, which then closes it
 * as usual. */
static void kill_conn(struct rf_conn *c)
{
    unlink_conn(c);
    append(c, L_DYING, c->start);
    g.live--;
    shutdown(c->fd, SHUT_RDWR);
}

static struct rf_conn *oldest_waiting(const struct rf_conn *except)
{
    struct rf_conn *best = NULL;
    /* A connection between requests or still sending its head holds nothing
     * of ours; one sending a body is taken only when there is no other. */
    static const int order[] = {L_IDLE, L_HEAD};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        struct rf_conn *c = g.lists[order[i]].first;
        if (c == except)
            c = c->next;
        if (c && (!best || c->start < best->start))
            best = c;
    }
    if (!best) {
        best = g.lists[L_BODY].first;
        if (best == except)
            best = best->next;
    }
    return best;
}

struct rf_conn *rf_conns_open(int fd)
{
    struct rf_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->fd = fd;
    pthread_mutex_lock(&g.s.mu);
    append(c, L_HEAD, rf_mono_ns());
    g.live++;
    g.total++;
    if (g.lim.max && g.live > g.lim.max) {
        struct rf_conn *victim = oldest_waiting(c);
        if (victim) {
            kill_conn(victim);
            g.evicted++;
        } else {
            /* Everything is busy with real requests. The connection stays
             * in the head list (its deadline still applies); the request it
             * sends is refused by the caller. */
            c->refused = 1;
            g.refused++;
            (void)!send(fd, overload_resp, sizeof(overload_resp) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            shutdown(fd, SHUT_WR);
        }
    }
    pthread_mutex_unlock(&g.s.mu);
    return c;
}

void rf_conns_close(struct rf_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g.s.mu);
    if (c->list != L_DYING)
        g.live--;
    g.total--;
    unlink_conn(c);
    pthread_mutex_unlock(&g.s.mu);
    free(c);
}

void rf_conns_phase(struct rf_conn *c, enum rf_conn_phase p)
{
    static const int list_of[] = {[RF_CONN_HEAD] = L_HEAD,
                                  [RF_CONN_BODY] = L_BODY,
                                  [RF_CONN_BUSY] = L_BUSY,
                                  [RF_CONN_IDLE] = L_IDLE};
    if (!c)
        return;
    pthread_mutex_lock(&g.s.mu);
    if (c->list != L_DYING && c->list != list_of[p]) {
        unlink_conn(c);
        append(c, list_of[p], rf_mono_ns());
    }
    pthread_mutex_unlock(&g.s.mu);
}

void rf_conns_request_line(struct rf_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g.s.mu);
    if (c->list == L_IDLE) {
        unlink_conn(c);
        append(c, L_HEAD, rf_mono_ns());
    }
    pthread_mutex_unlock(&g.s.mu);
}

/* Only the connection's own loop thread sets and reads the flag. */
void rf_conns_linger(struct rf_conn *c)
{
    if (c)
        c->linger = 1;
}

int rf_conns_lingers(const struct rf_conn *c)
{
    return c && c->linger;
}

int rf_conns_refused(const struct rf_conn *c)
{
    return c && c->refused;
}

unsigned rf_conns_count(void)
{
    pthread_mutex_lock(&g.s.mu);
    unsigned n = g.total;
    pthread_mutex_unlock(&g.s.mu);
    return n;
}

#define REAP_PERIOD_MS 100
/* Thousands of connections timing out together (a flood opened in one
 * burst) would be closed by the loops all at once, and new connections
 * would wait behind them in the accept queue: spread the closing out
 * instead. 200 a tick is 2000 a second. */
#define REAP_MAX_PER_TICK 200
#define SUMMARY_PERIOD_NS (10ull * 1000000000u)

static void reap(uint64_t now)
{
    unsigned budget = REAP_MAX_PER_TICK;
    const struct {
        int list, seconds;
    } rules[] = {
        {L_HEAD, g.lim.header_timeout},
        {L_BODY, g.lim.body_timeout},
        {L_IDLE, g.lim.idle_timeout},
    };
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (rules[i].seconds <= 0)
            continue;
        uint64_t limit = (uint64_t)rules[i].seconds * 1000000000u;
        struct rf_conn *c;
        while (budget && (c = g.lists[rules[i].list].first) && now - c->start > limit) {
            budget--;
            kill_conn(c);
            g.timed_out++;
        }
    }
}

static void *reaper_main(void *arg)
{
    (void)arg;
    uint64_t next_summary = rf_mono_ns() + SUMMARY_PERIOD_NS;
    pthread_mutex_lock(&g.s.mu);
    while (!g.s.stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += REAP_PERIOD_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g.s.cv, &g.s.mu, &ts);
        if (g.s.stop)
            break;
        uint64_t now = rf_mono_ns();
        reap(now);
        /* One line per period, not one per connection: an attack must not
         * turn into a flood of log lines. */
        if (now >= next_summary) {
            next_summary = now + SUMMARY_PERIOD_NS;
            if (g.timed_out || g.evicted || g.refused)
                rf_log(RF_LOG_WARN,
                       "connections: %u closed past a deadline, %u evicted, %u refused in the "
                       "last %llu s; %u open",
                       g.timed_out, g.evicted, g.refused, SUMMARY_PERIOD_NS / 1000000000u, g.total);
            g.timed_out = g.evicted = g.refused = 0;
        }
    }
    pthread_mutex_unlock(&g.s.mu);
    return NULL;
}

int rf_conns_start(const struct rf_conns_limits *l)
{
    pthread_mutex_lock(&g.s.mu);
    g.lim = *l;
    pthread_mutex_unlock(&g.s.mu);
    return rf_service_start(&g.s, reaper_main, "connection reaper");
}

void rf_conns_stop(void)
{
    rf_service_stop(&g.s);
}
