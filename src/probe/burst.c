#include "probe/burst.h"
#include "core/util.h"
#include "probe/h2.h"
#include "probe/sock.h"
#include "probe/tls.h"

#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Descriptors kept free for the epoll fd and whatever the caller holds. */
#define FD_RESERVE 64
#define MAX_EVENTS 256
#define READ_CHUNK 16384
/* Upper bound on waiting, without any further prefix being acknowledged,
 * for the peer to acknowledge every prefix before the release. An unacked
 * prefix is usually not a delayed ACK but a connection the server has not
 * taken yet: a listen backlog of 5 (Python's socketserver) drops the
 * handshake's final ACK, and the connection gets in only at a retransmission,
 * 200 ms, 400 ms, 800 ms, 1.6 s, 3.2 s later. Releasing before then lands
 * those requests seconds apart, and the server resets the ones it never
 * took. Long enough for the fifth backed-off retransmission (2 s was not:
 * measured, it released with 30 of 50 unacked and reset), and still bounded
 * by the burst's timeout when a receive window never opens. */
#define SETTLE_MAX_NS (5000ull * 1000 * 1000)

enum phase {
    PH_CONNECTING,
    PH_HANDSHAKE, /* TLS: connected, handshake under way */
    PH_SENDING,   /* writing the request (LASTBYTE: all but its final byte) */
    PH_HELD,      /* LASTBYTE: everything but the final byte is written */
    PH_LAST,      /* LASTBYTE: final byte hit a full send buffer; waiting for room */
    PH_READING,   /* request fully written */
    PH_FINISHED,  /* socket closed; res holds the outcome */
    /* --warmup, between PH_CONNECTING and PH_SENDING: writing a warm-up
     * request, then reading its response (plain TCP only: cli.c refuses
     * --warmup over TLS). */
    PH_WARM_SEND,
    PH_WARM_READ,
};

struct conn {
    int fd;
    enum phase phase;
    int unready;     /* counted in burst.unready */
    uint32_t events; /* current epoll interest */
    size_t sent;
    struct rf_tls *tls; /* https only */
    unsigned warm_left; /* warm-up requests still to send */
    size_t wsent;
    struct rf_httpres wres; /* the warm-up response being read */
};

struct burst {
    const struct rf_burst_req *reqs;
    struct rf_burst_res *res;
    struct conn *c;
    size_t n;
    int ep;
    enum rf_burst_sync sync;
    struct rf_tls_ctx *tls;
    unsigned warmup;
    size_t max_response;
    size_t unready;     /* LASTBYTE: connections still connecting or sending their prefix */
    size_t active;      /* connections not finished */
    size_t settle_next; /* first connection not yet known to have its prefix acked */
};

uint64_t rf_burst_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return 0; /* cannot happen for CLOCK_MONOTONIC on Linux */
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void finish(struct burst *b, size_t i)
{
    struct conn *c = &b->c[i];
    if (c->phase == PH_FINISHED)
        return;
    rf_httpres_free(&c->wres);
    if (c->fd >= 0) {
        /* close() releases the descriptor even when it reports an error, and
         * nothing is left to flush on a socket we are done with. */
        (void)close(c->fd);
        c->fd = -1;
    }
    rf_tls_free(c->tls);
    c->tls = NULL;
    if (c->unready) {
        c->unready = 0;
        b->unready--;
    }
    c->phase = PH_FINISHED;
    b->res[i].t_done_ns = rf_burst_now_ns();
    b->active--;
}

static void fail(struct burst *b, size_t i, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct burst *b, size_t i, int err, const char *fmt, ...)
{
    struct rf_burst_res *r = &b->res[i];
    va_list ap;
    if (b->c[i].phase == PH_FINISHED)
        return;
    r->err = err;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof(r->err_msg), fmt, ap);
    va_end(ap);
    finish(b, i);
}

static int set_events(struct burst *b, size_t i, uint32_t ev)
{
    struct conn *c = &b->c[i];
    if (rf_epoll_set(b->ep, EPOLL_CTL_MOD, c->fd, &c->events, ev, i) < 0) {
        int e = errno;
        fail(b, i, e, "epoll_ctl: %s", strerror(e));
        return -1;
    }
    return 0;
}

/* Without NODELAY, Nagle would hold the final byte until the prefix is
 * acked, which is exactly the skew the burst exists to avoid (the HTTP/2
 * engine turns Nagle back on for its one release write). */
int rf_burst_dial(const struct rf_burst_req *q, char *why, size_t whylen)
{
    int one = 1, fam = q->addr.ss_family, fd, e;
    const char *what = "socket";
    fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    what = "setsockopt(TCP_NODELAY)";
    if ((fam == AF_INET || fam == AF_INET6) &&
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        goto fail;
    what = "connect";
    if (connect(fd, (const struct sockaddr *)&q->addr, q->addrlen) < 0 && errno != EINPROGRESS)
        goto fail;
    return fd;
fail:
    e = errno;
    snprintf(why, whylen, "%s: %s", what, strerror(e));
    if (fd >= 0)
        close(fd);
    return -e;
}

static void start(struct burst *b, size_t i)
{
    const struct rf_burst_req *q = &b->reqs[i];
    struct conn *c = &b->c[i];

    if (!q->data || q->len == 0) {
        fail(b, i, EINVAL, "empty request");
        return;
    }
    if (q->addrlen == 0 || q->addrlen > sizeof(q->addr)) {
        fail(b, i, EINVAL, "bad address length %u", (unsigned)q->addrlen);
        return;
    }
    char why[96];
    c->fd = rf_burst_dial(q, why, sizeof(why));
    if (c->fd < 0) {
        int e = -c->fd;
        c->fd = -1;
        fail(b, i, e, "%s", why);
        return;
    }
    /* EPOLLIN from the start: a server may answer (and close) before it has
     * the whole request, and that answer is the result we want to keep. */
    if (rf_epoll_set(b->ep, EPOLL_CTL_ADD, c->fd, &c->events, EPOLLIN | EPOLLOUT, i) < 0) {
        int e = errno;
        fail(b, i, e, "epoll_ctl: %s", strerror(e));
        return;
    }
    c->phase = PH_CONNECTING;
}

/* Writes data[sent, limit). Returns 1 when done, 0 when the socket is full, -1
 * after failing the request. */
static int send_upto(struct burst *b, size_t i, size_t limit)
{
    struct conn *c = &b->c[i];
    const char *d = b->reqs[i].data;
    if (c->tls) {
        char e[160];
        int en = 0, st;
        if (c->sent < limit &&
            rf_tls_encrypt(c->tls, d + c->sent, limit - c->sent, e, sizeof(e)) < 0) {
            fail(b, i, RF_BURST_ERR_PROTO, "%s", e);
            return -1;
        }
        c->sent = limit;
        st = rf_tls_flush(c->tls, c->fd, &en);
        if (st < 0)
            fail(b, i, en, "send: %s", strerror(en));
        return st;
    }
    int en = 0, st = rf_send_from(c->fd, d, limit, &c->sent, &en);
    if (st < 0)
        fail(b, i, en, "send: %s", strerror(en));
    return st;
}

/* Returns 1 once the handshake is done, else 0 (waiting, or failed). */
static int handshake(struct burst *b, size_t i)
{
    struct conn *c = &b->c[i];
    char e[sizeof(b->res[i].err_msg)];
    int want_write = 0;
    if (!c->tls) {
        c->tls = rf_tls_new(b->tls, b->reqs[i].host ? b->reqs[i].host : "", e, sizeof(e));
        if (!c->tls) {
            fail(b, i, RF_BURST_ERR_PROTO, "%s", e);
            return 0;
        }
    }
    int st = rf_tls_handshake(c->tls, c->fd, &want_write, e, sizeof(e));
    if (st < 0) {
        fail(b, i, RF_BURST_ERR_TLS, "%s", e);
        return 0;
    }
    if (st == 0) {
        set_events(b, i, want_write ? EPOLLIN | EPOLLOUT : EPOLLIN);
        return 0;
    }
    c->phase = PH_SENDING;
    set_events(b, i, EPOLLIN | EPOLLOUT);
    return 1;
}

static void on_writable(struct burst *b, size_t i)
{
    struct conn *c = &b->c[i];
    struct rf_burst_res *r = &b->res[i];
    size_t len = b->reqs[i].len;

    if (c->phase == PH_CONNECTING) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
            int e = errno;
            fail(b, i, e, "getsockopt(SO_ERROR): %s", strerror(e));
            return;
        }
        if (soerr) {
            fail(b, i, soerr, "connect: %s", strerror(soerr));
            return;
        }
        r->t_connected_ns = rf_burst_now_ns();
        c->phase = b->tls ? PH_HANDSHAKE : PH_SENDING;
        if (!b->tls && c->warm_left) {
            c->phase = PH_WARM_SEND;
            c->wsent = 0;
        }
    }
    if (c->phase == PH_WARM_SEND) {
        const struct rf_burst_req *q = &b->reqs[i];
        int en = 0, st = rf_send_from(c->fd, q->warmup, q->warmup_len, &c->wsent, &en);
        if (st < 0)
            fail(b, i, en, "send (warm-up): %s", strerror(en));
        if (st <= 0)
            return;
        rf_httpres_init(&c->wres, b->max_response);
        c->wres.head_request = q->warmup_head;
        c->phase = PH_WARM_READ;
        set_events(b, i, EPOLLIN);
        return;
    }
    if (c->phase == PH_HANDSHAKE && !handshake(b, i))
        return;
    if (c->phase == PH_SENDING) {
        int lastbyte = b->sync == RF_BURST_LASTBYTE;
        int st = send_upto(b, i, lastbyte ? len - 1 : len);
        if (st <= 0)
            return;
        /* The final byte becomes a finished record now, so the release
         * sends bytes that are ready, as for plain TCP. */
        if (lastbyte && c->tls &&
            rf_tls_encrypt(c->tls, b->reqs[i].data + len - 1, 1, r->err_msg, sizeof(r->err_msg)) <
                0) {
            fail(b, i, RF_BURST_ERR_PROTO, "%s", r->err_msg);
            return;
        }
        if (lastbyte) {
            c->phase = PH_HELD;
            c->unready = 0;
            b->unready--;
        } else {
            r->t_lastbyte_ns = rf_burst_now_ns();
            c->phase = PH_READING;
        }
        set_events(b, i, EPOLLIN);
        return;
    }
    if (c->phase == PH_LAST) {
        if (send_upto(b, i, c->tls ? len - 1 : len) <= 0)
            return;
        r->t_lastbyte_ns = rf_burst_now_ns();
        c->phase = PH_READING;
        set_events(b, i, EPOLLIN);
    }
}

/* A warm-up answer: the connection must survive it, or the raced request
 * would go on a fresh one after all. */
static void on_warm_readable(struct burst *b, size_t i)
{
    struct conn *c = &b->c[i];
    char buf[READ_CHUNK];
    unsigned nth = b->warmup - c->warm_left + 1;
    for (;;) {
        ssize_t got = recv(c->fd, buf, sizeof(buf), 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (got < 0) {
            int e = errno;
            fail(b, i, e, "recv (warm-up %u): %s", nth, strerror(e));
            return;
        }
        if (got == 0) {
            fail(b, i, RF_BURST_ERR_TRUNCATED,
                 "server closed the connection during warm-up %u; --warmup needs keep-alive", nth);
            return;
        }
        int st = rf_httpres_feed(&c->wres, buf, (size_t)got);
        if (st == RF_HTTPRES_ERROR) {
            fail(b, i, RF_BURST_ERR_PROTO, "bad warm-up response: %s", c->wres.err);
            return;
        }
        if (st == RF_HTTPRES_DONE)
            break;
    }
    if (!c->wres.keep_alive || c->wres.extra) {
        fail(b, i, RF_BURST_ERR_PROTO,
             "warm-up %u answered %d %s; --warmup needs a server that keeps the connection "
             "alive",
             nth, c->wres.status,
             c->wres.extra ? "with more bytes than asked for" : "and closes the connection");
        return;
    }
    rf_httpres_free(&c->wres);
    memset(&c->wres, 0, sizeof(c->wres));
    c->warm_left--;
    c->wsent = 0;
    c->phase = c->warm_left ? PH_WARM_SEND : PH_SENDING;
    set_events(b, i, EPOLLIN | EPOLLOUT);
}

static void on_readable(struct burst *b, size_t i)
{
    struct conn *c = &b->c[i];
    struct rf_burst_res *r = &b->res[i];
    char buf[READ_CHUNK];

    while (c->phase != PH_FINISHED && c->phase != PH_CONNECTING) {
        ssize_t got;
        if (c->tls) {
            got = rf_tls_recv(c->tls, c->fd, buf, sizeof(buf), r->err_msg, sizeof(r->err_msg));
            if (got == -1)
                return;
            if (got == -2) {
                fail(b, i, RF_BURST_ERR_PROTO, "%s", r->err_msg);
                return;
            }
        } else {
            got = recv(c->fd, buf, sizeof(buf), 0);
        }
        if (got > 0) {
            if (!r->t_firstbyte_ns)
                r->t_firstbyte_ns = rf_burst_now_ns();
            int st = rf_httpres_feed(&r->http, buf, (size_t)got);
            if (st == RF_HTTPRES_DONE) {
                finish(b, i);
            } else if (st == RF_HTTPRES_ERROR) {
                fail(b, i, RF_BURST_ERR_PROTO, "bad response: %s", r->http.err);
            } else if ((size_t)got < sizeof(buf) && !(c->tls && rf_tls_buffered(c->tls))) {
                return; /* drained; level-triggered epoll reports the rest */
            }
        } else if (got == 0) {
            if (rf_httpres_eof(&r->http) == RF_HTTPRES_DONE)
                finish(b, i);
            else
                fail(b, i, RF_BURST_ERR_TRUNCATED, "%s", r->http.err);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else if (errno != EINTR) {
            int e = errno;
            fail(b, i, e, "recv: %s", strerror(e));
        }
    }
}

/* Whether every held prefix has been acknowledged by its peer, so that only
 * the final bytes remain in flight when they are released. *left receives
 * how many are still unacknowledged: the whole range is scanned, since a
 * backlog lets connections in out of order and the caller waits on progress. */
static int settled(struct burst *b, size_t *left)
{
    size_t unacked = 0;
    for (size_t i = b->settle_next; i < b->n; i++) {
        struct conn *c = &b->c[i];
        int fam = b->reqs[i].addr.ss_family, outq = 0;
        /* SIOCOUTQ counts unacknowledged bytes; if the kernel cannot say,
         * there is nothing better to wait for. */
        if (c->phase == PH_HELD && (fam == AF_INET || fam == AF_INET6) &&
            ioctl(c->fd, SIOCOUTQ, &outq) == 0 && outq > 0)
            unacked++;
        else if (unacked == 0)
            b->settle_next = i + 1;
    }
    *left = unacked;
    return unacked == 0;
}

/* The moment of the burst: kept to one send and one clock read per request. */
static void release(struct burst *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct conn *c = &b->c[i];
        if (c->phase != PH_HELD)
            continue;
        ssize_t w;
        int en = 0;
        if (c->tls) {
            /* One send of the record encrypted in the connection phase. */
            int st = rf_tls_flush(c->tls, c->fd, &en);
            w = st > 0 ? 1 : st == 0 ? -1 : -2;
            errno = st == 0 ? EAGAIN : en;
        } else {
            w = send(c->fd, b->reqs[i].data + b->reqs[i].len - 1, 1, MSG_NOSIGNAL);
        }
        uint64_t t = rf_burst_now_ns();
        if (w == 1) {
            c->sent++;
            b->res[i].t_lastbyte_ns = t;
            c->phase = PH_READING;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            c->phase = PH_LAST;
            set_events(b, i, EPOLLIN | EPOLLOUT);
        } else {
            int e = w < 0 ? errno : EIO;
            fail(b, i, e, "send: %s", strerror(e));
        }
    }
}

static void on_event(struct burst *b, size_t i, uint32_t ev)
{
    enum phase ph = b->c[i].phase;
    if (ph == PH_HANDSHAKE) {
        on_writable(b, i);
        ph = b->c[i].phase;
        if (ph == PH_HANDSHAKE || ph == PH_FINISHED)
            return;
    }
    if (ph == PH_WARM_READ) {
        if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_warm_readable(b, i);
        return;
    }
    if (ph == PH_WARM_SEND && (ev & EPOLLIN) && !(ev & EPOLLOUT)) {
        /* An answer before the warm-up was even sent: nothing to keep. */
        fail(b, i, RF_BURST_ERR_PROTO, "server answered before the warm-up request was sent");
        return;
    }
    if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
        (ph == PH_CONNECTING || ph == PH_WARM_SEND || ph == PH_SENDING || ph == PH_LAST))
        on_writable(b, i);
    ph = b->c[i].phase;
    if (ph == PH_WARM_SEND || ph == PH_WARM_READ)
        return;
    if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && ph != PH_CONNECTING && ph != PH_FINISHED)
        on_readable(b, i);
}

static const char *timeout_what(enum phase ph)
{
    switch (ph) {
    case PH_CONNECTING:
        return "connecting";
    case PH_HANDSHAKE:
        return "in the TLS handshake";
    case PH_WARM_SEND:
    case PH_WARM_READ:
        return "warming the connection up";
    case PH_SENDING:
    case PH_LAST:
        return "sending the request";
    case PH_HELD:
        return "waiting for the other connections to be ready";
    default:
        return "waiting for the response";
    }
}

int rf_burst_raise_nofile(size_t n, int strict, char *errbuf, size_t errlen)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)n + FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        rf_errf(errbuf, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return -1;
    }
    if (rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max < need) {
        if (strict) {
            rf_errf(errbuf, errlen,
                    "RLIMIT_NOFILE hard limit %llu is below the %llu descriptors needed for %zu "
                    "connections",
                    (unsigned long long)rl.rlim_max, (unsigned long long)need, n);
            return -1;
        }
        need = rl.rlim_max;
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && strict) {
        rf_errf(errbuf, errlen, "setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)need,
                strerror(errno));
        return -1;
    }
    return 0;
}

static int ms_until(uint64_t now, uint64_t deadline)
{
    uint64_t ms = (deadline - now + 999999) / 1000000;
    return ms > 1000000 ? 1000000 : (int)ms;
}

/* LASTBYTE with --warmup: when every connection not yet ready is stuck in
 * its warm-up, the server has not taken those connections (a small listen
 * backlog leaves some in limbo, answered by nobody), and waiting for them
 * would hold the whole release until the timeout. They fail; the others
 * race. Returns how many failed. */
static size_t drop_stuck_warmups(struct burst *b)
{
    size_t dropped = 0;
    for (size_t i = 0; i < b->n; i++) {
        enum phase ph = b->c[i].phase;
        if (b->c[i].unready && ph != PH_WARM_SEND && ph != PH_WARM_READ)
            return 0;
    }
    for (size_t i = 0; i < b->n; i++)
        if (b->c[i].phase == PH_WARM_SEND || b->c[i].phase == PH_WARM_READ) {
            fail(b, i, ETIMEDOUT,
                 "warm-up %u unanswered %llu s after the others were ready: the server never "
                 "took this connection",
                 b->warmup - b->c[i].warm_left + 1,
                 (unsigned long long)(SETTLE_MAX_NS / 1000000000ull));
            dropped++;
        }
    return dropped;
}

static void run_loop(struct burst *b, uint64_t deadline, struct epoll_event *evs, int nevs)
{
    int released = b->sync != RF_BURST_LASTBYTE;
    uint64_t settle_deadline = 0, warm_deadline = 0;
    size_t settle_left = SIZE_MAX, warm_left = SIZE_MAX;

    while (b->active > 0) {
        uint64_t now = rf_burst_now_ns();
        if (now >= deadline)
            return;
        int wait_ms = ms_until(now, deadline);
        if (!released && b->unready > 0 && b->warmup > 0) {
            if (b->unready < warm_left) {
                warm_left = b->unready;
                warm_deadline = now + SETTLE_MAX_NS;
            } else if (now >= warm_deadline) {
                warm_deadline = now + SETTLE_MAX_NS;
                if (drop_stuck_warmups(b))
                    continue;
            }
            int w = ms_until(now, warm_deadline);
            wait_ms = w < wait_ms ? w : wait_ms;
        }
        if (!released && b->unready == 0) {
            size_t left;
            int all = settled(b, &left);
            /* The wait restarts whenever another prefix is acked. */
            if (left < settle_left) {
                settle_deadline = now + SETTLE_MAX_NS;
                settle_left = left;
            }
            if (all || now >= settle_deadline) {
                release(b);
                released = 1;
                continue;
            }
            /* Acks arrive without any epoll event, so poll for them. */
            wait_ms = 1;
        }
        int ne = epoll_wait(b->ep, evs, nevs, wait_ms);
        if (ne < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            for (size_t i = 0; i < b->n; i++)
                fail(b, i, e, "epoll_wait: %s", strerror(e));
            return;
        }
        for (int k = 0; k < ne; k++)
            on_event(b, (size_t)evs[k].data.u64, evs[k].events);
    }
}

int rf_burst_run(const struct rf_burst_req *reqs, size_t n, const struct rf_burst_opts *o,
                 struct rf_burst_res *res, char *errbuf, size_t errlen)
{
    struct rf_burst_opts def = {.sync = RF_BURST_LASTBYTE};
    struct burst b = {.reqs = reqs, .res = res, .n = n, .ep = -1};

    if (!o)
        o = &def;
    if (n > RF_BURST_MAX) {
        rf_errf(errbuf, errlen, "too many requests: %zu (max %d)", n, RF_BURST_MAX);
        return -1;
    }
    if (o->sync == RF_BURST_PACKET)
        return rf_h2_run(reqs, n, o, res, errbuf, errlen);
    if (o->sync != RF_BURST_LASTBYTE && o->sync != RF_BURST_NONE) {
        rf_errf(errbuf, errlen, "unknown sync mode %d", (int)o->sync);
        return -1;
    }
    if (o->timeout_ms < 0) {
        rf_errf(errbuf, errlen, "negative timeout_ms %d", o->timeout_ms);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        rf_httpres_init(&res[i].http, o->max_response);
        res[i].http.head_request = reqs[i].head_request;
    }
    if (n == 0)
        return 0;
    if (rf_burst_raise_nofile(n, 1, errbuf, errlen) < 0)
        return -1;

    int nevs = n < MAX_EVENTS ? (int)n : MAX_EVENTS;
    struct epoll_event *evs = calloc((size_t)nevs, sizeof(*evs));
    b.c = calloc(n, sizeof(*b.c));
    if (!evs || !b.c) {
        rf_errf(errbuf, errlen, "out of memory for %zu connections", n);
        free(evs);
        free(b.c);
        return -1;
    }
    b.ep = epoll_create1(EPOLL_CLOEXEC);
    if (b.ep < 0) {
        rf_errf(errbuf, errlen, "epoll_create1: %s", strerror(errno));
        free(evs);
        free(b.c);
        return -1;
    }

    uint64_t t0 = rf_burst_now_ns();
    uint64_t timeout_ns =
        (uint64_t)(o->timeout_ms ? o->timeout_ms : RF_BURST_DEFAULT_TIMEOUT_MS) * 1000000ull;
    b.sync = o->sync;
    b.tls = o->tls;
    b.warmup = o->warmup;
    b.max_response = o->max_response;
    b.active = n;
    b.unready = b.sync == RF_BURST_LASTBYTE ? n : 0;
    for (size_t i = 0; i < n; i++) {
        b.c[i].fd = -1;
        b.c[i].phase = PH_CONNECTING;
        b.c[i].unready = b.sync == RF_BURST_LASTBYTE;
        b.c[i].warm_left = reqs[i].warmup && reqs[i].warmup_len ? o->warmup : 0;
    }
    for (size_t i = 0; i < n; i++)
        start(&b, i);

    run_loop(&b, t0 + timeout_ns, evs, nevs);

    for (size_t i = 0; i < n; i++)
        fail(&b, i, ETIMEDOUT, "timed out after %d ms %s",
             o->timeout_ms ? o->timeout_ms : RF_BURST_DEFAULT_TIMEOUT_MS,
             timeout_what(b.c[i].phase));
    /* Every socket is closed by now; the epoll fd holds nothing to flush. */
    (void)close(b.ep);
    free(evs);
    free(b.c);
    return 0;
}

void rf_burst_res_free(struct rf_burst_res *res, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rf_httpres_free(&res[i].http);
}
