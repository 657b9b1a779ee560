#include "probe/h2.h"
#include "core/util.h"
#include "probe/sock.h"
#include "probe/tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define READ_CHUNK 16384
/* Our receive windows: responses should never wait for a WINDOW_UPDATE. */
#define LOCAL_WINDOW ((int32_t)1 << 30)
#define STREAM_WINDOW ((uint32_t)1 << 24)

enum cphase {
    C_IDLE,       /* not opened (yet): the first connection's SETTINGS decide */
    C_CONNECTING, /* TCP connect under way */
    C_HANDSHAKE,  /* TLS handshake */
    C_SETTINGS,   /* preface sent, waiting for the server's SETTINGS */
    C_SENDING,    /* requests submitted; their prefixes are going out */
    C_PINGED,     /* prefixes written; waiting for our PING's ACK */
    C_HELD,       /* the server has read every prefix; finals wait for release */
    C_RELEASING,  /* the final write hit a full socket buffer */
    C_READING,    /* released; reading responses */
    C_DONE,       /* closed */
};

struct h2burst;

struct h2req {
    size_t conn;
    int32_t id;
    const char *body;
    size_t body_len, body_sent;
    int release;    /* the final frame may go */
    int final_sent; /* END_STREAM handed to nghttp2's output */
    int finished;
    nghttp2_nv *nv;
    size_t nnv;
    char *names; /* lower-cased header names behind nv */
    size_t head_cap, body_cap;
    int in_trailers;
};

struct h2conn {
    struct h2burst *b;
    size_t idx;
    int fd;
    enum cphase phase;
    uint32_t events;
    int unready;
    struct rf_tls *tls;
    nghttp2_session *s;
    size_t first, count, open;
    char *out; /* h2c: bytes for the socket, out[off, len) */
    size_t olen, ooff, ocap;
    int settings_seen, ping_acked;
    int32_t goaway_last; /* -1 until a GOAWAY */
    uint32_t goaway_code;
    int sent_goaway; /* nghttp2 ended the session: the peer broke the protocol */
    uint32_t sent_goaway_code;
    uint64_t t_connected;
};

struct h2burst {
    const struct rf_burst_req *reqs;
    struct rf_burst_res *res;
    struct h2req *q;
    struct h2conn *c;
    size_t n, nconn, per_conn;
    int ep;
    struct rf_tls_ctx *tls;
    size_t max_response;
    size_t unready; /* connections opened and not yet held (or done) */
    size_t active;  /* requests without an outcome */
    int released;
};

/* ---- requests and responses --------------------------------------------- */

static void req_fail(struct h2burst *b, size_t i, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void req_fail(struct h2burst *b, size_t i, int err, const char *fmt, ...)
{
    struct h2req *q = &b->q[i];
    struct rf_burst_res *r = &b->res[i];
    va_list ap;
    if (q->finished)
        return;
    q->finished = 1;
    r->err = err;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof(r->err_msg), fmt, ap);
    va_end(ap);
    r->t_done_ns = rf_burst_now_ns();
    b->active--;
    if (b->c)
        b->c[q->conn].open--;
}

static int grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *np = realloc(*p, c);
    if (!np)
        return -1;
    *p = np;
    *cap = c;
    return 0;
}

/* Bytes of response a stream holds, framing excluded: the bound the
 * HTTP/1.1 reader applies to the same response. */
static int over_limit(struct h2burst *b, size_t i, size_t more)
{
    const struct rf_httpres *h = &b->res[i].http;
    return h->head_len + h->body_len + more + 2 > b->max_response;
}

static int head_append(struct h2burst *b, size_t i, const char *s, size_t n)
{
    struct rf_httpres *h = &b->res[i].http;
    struct h2req *q = &b->q[i];
    if (grow(&h->head, &q->head_cap, h->head_len + n + 3) < 0)
        return -1;
    memcpy(h->head + h->head_len, s, n);
    h->head_len += n;
    h->head[h->head_len] = '\0';
    return 0;
}

/* An HTTP/1.1-shaped head, so rf_httpres_header and the reports read it. */
static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    struct h2burst *b = ((struct h2conn *)ud)->b;
    struct h2req *q = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!q || f->hd.type != NGHTTP2_HEADERS || q->finished)
        return 0;
    size_t i = (size_t)(q - b->q);
    struct rf_httpres *h = &b->res[i].http;
    if (over_limit(b, i, namelen + valuelen + 4)) {
        req_fail(b, i, RF_BURST_ERR_PROTO, "bad response: larger than %zu bytes", b->max_response);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (namelen == 7 && !memcmp(name, ":status", 7)) {
        int st = 0;
        for (size_t k = 0; k < valuelen && k < 3; k++)
            st = st * 10 + (value[k] - '0');
        /* nghttp2 has checked it is three digits. An interim 1xx is
         * forgotten, as the HTTP/1.1 reader forgets it. */
        h->head_len = 0;
        h->status = st >= 200 ? st : 0;
        char line[32];
        int ln = snprintf(line, sizeof(line), "HTTP/2 %d\r\n", st);
        return head_append(b, i, line, (size_t)ln) < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
    }
    if (q->in_trailers || h->status == 0)
        return 0;
    if (head_append(b, i, (const char *)name, namelen) < 0 || head_append(b, i, ": ", 2) < 0 ||
        head_append(b, i, (const char *)value, valuelen) < 0 || head_append(b, i, "\r\n", 2) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct h2burst *b = ((struct h2conn *)ud)->b;
    struct h2req *q = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!q || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    size_t i = (size_t)(q - b->q);
    if (!b->res[i].t_firstbyte_ns)
        b->res[i].t_firstbyte_ns = rf_burst_now_ns();
    /* Headers after the final status are trailers: not part of the head. */
    if (b->res[i].http.status >= 200)
        q->in_trailers = 1;
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
    struct h2burst *b = ((struct h2conn *)ud)->b;
    struct h2req *q = nghttp2_session_get_stream_user_data(s, id);
    if (!q || q->finished)
        return 0;
    size_t i = (size_t)(q - b->q);
    struct rf_httpres *h = &b->res[i].http;
    if (!b->res[i].t_firstbyte_ns)
        b->res[i].t_firstbyte_ns = rf_burst_now_ns();
    if (over_limit(b, i, len)) {
        req_fail(b, i, RF_BURST_ERR_PROTO, "bad response: larger than %zu bytes", b->max_response);
        /* Resetting the stream stops the server sending the rest. */
        (void)nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        return 0;
    }
    if (grow(&h->body, &q->body_cap, h->body_len + len + 1) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    memcpy(h->body + h->body_len, data, len);
    h->body_len += len;
    h->body[h->body_len] = '\0';
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct h2burst *b = ((struct h2conn *)ud)->b;
    struct h2req *q = nghttp2_session_get_stream_user_data(s, id);
    if (!q || q->finished)
        return 0;
    size_t i = (size_t)(q - b->q);
    struct h2conn *c = ud;
    struct rf_burst_res *r = &b->res[i];
    if (code != NGHTTP2_NO_ERROR) {
        if (c->goaway_last >= 0 && id > c->goaway_last)
            req_fail(b, i, RF_BURST_ERR_RESET,
                     "not processed: the server sent GOAWAY (%s) before stream %d",
                     nghttp2_http2_strerror(c->goaway_code), (int)id);
        else
            req_fail(b, i, RF_BURST_ERR_RESET, "stream reset: %s", nghttp2_http2_strerror(code));
        return 0;
    }
    if (r->http.status == 0) {
        req_fail(b, i, RF_BURST_ERR_PROTO, "bad response: stream ended without a final status");
        return 0;
    }
    if (head_append(b, i, "\r\n", 2) < 0 ||
        grow(&r->http.body, &q->body_cap, r->http.body_len + 1) < 0) {
        req_fail(b, i, ENOMEM, "out of memory for the response");
        return 0;
    }
    r->http.body[r->http.body_len] = '\0';
    q->finished = 1;
    if (!r->t_done_ns)
        r->t_done_ns = rf_burst_now_ns();
    b->active--;
    c->open--;
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct h2conn *c = ud;
    /* The response is complete with the server's END_STREAM, even when the
     * stream closes later: an early answer, before our own END_STREAM. */
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct h2req *q = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (q && !q->finished)
            c->b->res[q - c->b->q].t_done_ns = rf_burst_now_ns();
    }
    switch (f->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            c->settings_seen = 1;
        break;
    case NGHTTP2_PING:
        if (f->hd.flags & NGHTTP2_FLAG_ACK)
            c->ping_acked = 1;
        break;
    case NGHTTP2_GOAWAY:
        c->goaway_last = f->goaway.last_stream_id;
        c->goaway_code = f->goaway.error_code;
        break;
    default:
        break;
    }
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct h2conn *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->sent_goaway = 1;
        c->sent_goaway_code = f->goaway.error_code;
    }
    return 0;
}

/* After input: a session that wants neither to read nor to write is over,
 * and every request still on it has lost its answer. */
static int session_over(struct h2burst *b, struct h2conn *c);

/* Body bytes for nghttp2: all but the last before the release, then the
 * last one (or nothing) with END_STREAM. */
static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    struct h2req *q = src->ptr;
    size_t hold = q->release || q->body_len == 0 ? 0 : 1;
    size_t limit = q->body_len - hold;
    size_t k = limit - q->body_sent;
    if (k > len)
        k = len;
    if (k == 0 && !q->release)
        return NGHTTP2_ERR_DEFERRED;
    memcpy(buf, q->body + q->body_sent, k);
    q->body_sent += k;
    if (q->release && q->body_sent == q->body_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        q->final_sent = 1;
    }
    return (ssize_t)k;
}

static int nv_is_connection_header(const char *n, size_t l)
{
    static const char *const drop[] = {"connection",        "keep-alive", "proxy-connection",
                                       "transfer-encoding", "upgrade",    "host"};
    for (size_t k = 0; k < sizeof(drop) / sizeof(drop[0]); k++)
        if (strlen(drop[k]) == l && !strncasecmp(drop[k], n, l))
            return 1;
    return 0;
}

static void nv_set(nghttp2_nv *nv, const char *name, size_t nl, const char *value, size_t vl)
{
    nv->name = (uint8_t *)(uintptr_t)name;
    nv->namelen = nl;
    nv->value = (uint8_t *)(uintptr_t)value;
    nv->valuelen = vl;
    nv->flags = NGHTTP2_NV_FLAG_NONE;
}

/* HTTP/1.1 request bytes (as request.c makes them) to HTTP/2 headers that
 * point into data, and the body. */
static int convert(struct h2req *q, const char *data, size_t len, int tls, char *err, size_t errlen)
{
    const char *end = NULL;
    for (size_t k = 0; k + 3 < len; k++)
        if (!memcmp(data + k, "\r\n\r\n", 4)) {
            end = data + k + 2; /* the last header line's CRLF included */
            break;
        }
    const char *eol = memchr(data, '\r', len);
    const char *sp1 = memchr(data, ' ', len);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(data + len - sp1 - 1)) : NULL;
    if (!end || !eol || !sp1 || !sp2 || sp2 > eol) {
        rf_errf(err, errlen, "request is not an HTTP/1.1 request");
        return -1;
    }
    size_t lines = 0;
    for (const char *l = eol; l && l < end; l = memchr(l + 1, '\n', (size_t)(end - l - 1)))
        lines++;
    q->names = malloc((size_t)(end - data));
    q->nv = calloc(lines + 4, sizeof(*q->nv));
    if (!q->names || !q->nv) {
        rf_errf(err, errlen, "out of memory");
        return -1;
    }
    const char *authority = NULL;
    size_t alen = 0, nn = 4;
    for (const char *l = eol + 2; l < end;) {
        const char *le = memchr(l, '\r', (size_t)(end - l));
        const char *colon = memchr(l, ':', (size_t)(le - l));
        if (!colon) {
            rf_errf(err, errlen, "malformed request header");
            return -1;
        }
        size_t nl = (size_t)(colon - l);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        size_t vl = (size_t)(le - v);
        if (nl == 4 && !strncasecmp(l, "host", 4)) {
            authority = v;
            alen = vl;
        } else if (!nv_is_connection_header(l, nl)) {
            if (nn >= lines + 4) {
                rf_errf(err, errlen, "malformed request header");
                return -1;
            }
            char *lower = q->names + (l - data);
            for (size_t k = 0; k < nl; k++)
                lower[k] = (char)((l[k] >= 'A' && l[k] <= 'Z') ? l[k] + 32 : l[k]);
            nv_set(&q->nv[nn++], lower, nl, v, vl);
        }
        l = le + 2;
    }
    if (!authority) {
        rf_errf(err, errlen, "request has no Host header");
        return -1;
    }
    nv_set(&q->nv[0], ":method", 7, data, (size_t)(sp1 - data));
    nv_set(&q->nv[1], ":scheme", 7, tls ? "https" : "http", tls ? 5 : 4);
    nv_set(&q->nv[2], ":authority", 10, authority, alen);
    nv_set(&q->nv[3], ":path", 5, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    q->nnv = nn;
    q->body = end + 2;
    q->body_len = (size_t)(data + len - q->body);
    return 0;
}

static nghttp2_session *session_new(struct h2conn *c)
{
    nghttp2_session_callbacks *cb;
    nghttp2_session *s = NULL;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return NULL;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    if (nghttp2_session_client_new(&s, cb, c) != 0)
        s = NULL;
    nghttp2_session_callbacks_del(cb);
    if (!s)
        return NULL;
    /* Pushes would only cost memory; large windows keep responses flowing. */
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    if (nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
        nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, LOCAL_WINDOW) != 0) {
        nghttp2_session_del(s);
        return NULL;
    }
    return s;
}

/* ---- connections --------------------------------------------------------- */

static void conn_close(struct h2burst *b, struct h2conn *c)
{
    if (c->phase == C_DONE)
        return;
    if (c->fd >= 0) {
        (void)close(c->fd);
        c->fd = -1;
    }
    if (c->unready) {
        c->unready = 0;
        b->unready--;
    }
    c->phase = C_DONE;
}

/* The connection is lost: every request on it that has no outcome fails. */
static void conn_fail(struct h2burst *b, struct h2conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void conn_fail(struct h2burst *b, struct h2conn *c, int err, const char *fmt, ...)
{
    char m[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    for (size_t i = c->first; i < c->first + c->count; i++)
        req_fail(b, i, err, "%s", m);
    conn_close(b, c);
}

static int set_events(struct h2burst *b, struct h2conn *c, uint32_t ev)
{
    if (c->fd < 0)
        return 0;
    if (rf_epoll_set(b->ep, EPOLL_CTL_MOD, c->fd, &c->events, ev, c->idx) < 0) {
        int e = errno;
        conn_fail(b, c, e, "epoll_ctl: %s", strerror(e));
        return -1;
    }
    return 0;
}

static void conn_start(struct h2burst *b, struct h2conn *c)
{
    const struct rf_burst_req *q = &b->reqs[c->first];
    char why[96];
    c->phase = C_CONNECTING;
    c->unready = 1;
    b->unready++;
    /* Frames of the connection phase go at once; Nagle comes back for the
     * release only. */
    c->fd = rf_burst_dial(q, why, sizeof(why));
    if (c->fd < 0) {
        int e = -c->fd;
        c->fd = -1;
        conn_fail(b, c, e, "%s", why);
        return;
    }
    if (rf_epoll_set(b->ep, EPOLL_CTL_ADD, c->fd, &c->events, EPOLLIN | EPOLLOUT, c->idx) < 0) {
        int e = errno;
        conn_fail(b, c, e, "epoll_ctl: %s", strerror(e));
        return;
    }
}

/* Queues whatever nghttp2 has to send, encrypted when TLS. */
static int conn_collect(struct h2burst *b, struct h2conn *c)
{
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(c->s, &p);
        if (n < 0) {
            conn_fail(b, c, RF_BURST_ERR_PROTO, "HTTP/2: %s", nghttp2_strerror((int)n));
            return -1;
        }
        if (n == 0)
            return 0;
        if (c->tls) {
            char e[160];
            if (rf_tls_encrypt(c->tls, p, (size_t)n, e, sizeof(e)) < 0) {
                conn_fail(b, c, RF_BURST_ERR_PROTO, "%s", e);
                return -1;
            }
        } else {
            if (c->ooff == c->olen)
                c->ooff = c->olen = 0;
            if (grow(&c->out, &c->ocap, c->olen + (size_t)n) < 0) {
                conn_fail(b, c, ENOMEM, "out of memory");
                return -1;
            }
            memcpy(c->out + c->olen, p, (size_t)n);
            c->olen += (size_t)n;
        }
    }
}

/* Sends what is queued: 1 all sent, 0 socket full, -1 connection failed. */
static int conn_flush(struct h2burst *b, struct h2conn *c)
{
    int e = 0;
    int st = c->tls ? rf_tls_flush(c->tls, c->fd, &e)
                    : rf_send_from(c->fd, c->out, c->olen, &c->ooff, &e);
    if (st < 0)
        conn_fail(b, c, e, "send: %s", strerror(e));
    return st;
}

static size_t conn_pending(const struct h2conn *c)
{
    return c->tls ? rf_tls_pending(c->tls) : c->olen - c->ooff;
}

/* Whether every request on c has sent all it may before the release, and
 * the windows leave room for the final bytes. */
static int prefixes_done(struct h2burst *b, struct h2conn *c)
{
    size_t need = 0;
    if (conn_pending(c) > 0)
        return 0;
    for (size_t i = c->first; i < c->first + c->count; i++) {
        struct h2req *q = &b->q[i];
        if (q->finished)
            continue;
        if (q->id <= 0 || q->body_sent + (q->body_len ? 1 : 0) < q->body_len)
            return 0;
        if (q->body_len) {
            need++;
            if (nghttp2_session_get_stream_remote_window_size(c->s, q->id) < 1)
                return 0;
        }
    }
    return nghttp2_session_get_remote_window_size(c->s) >= (int32_t)need;
}

static void submit_requests(struct h2burst *b, struct h2conn *c)
{
    for (size_t i = c->first; i < c->first + c->count; i++) {
        struct h2req *q = &b->q[i];
        if (q->finished)
            continue;
        nghttp2_data_provider prd = {.source.ptr = q, .read_callback = read_body};
        int32_t id = nghttp2_submit_request(c->s, NULL, q->nv, q->nnv, &prd, q);
        if (id < 0) {
            req_fail(b, i, RF_BURST_ERR_PROTO, "HTTP/2: %s", nghttp2_strerror(id));
            continue;
        }
        q->id = id;
    }
}

static void open_others(struct h2burst *b);

/* A final frame that could not join the release (the server shrank a
 * window meanwhile) is stamped when it does leave. */
static void stamp_late_finals(struct h2burst *b, struct h2conn *c)
{
    uint64_t t = 0;
    for (size_t i = c->first; i < c->first + c->count; i++)
        if (b->q[i].final_sent && !b->res[i].t_lastbyte_ns && !b->q[i].finished) {
            if (!t)
                t = rf_burst_now_ns();
            b->res[i].t_lastbyte_ns = t;
        }
}

static int session_over(struct h2burst *b, struct h2conn *c)
{
    if (nghttp2_session_want_read(c->s) || nghttp2_session_want_write(c->s))
        return 0;
    if (c->sent_goaway && c->sent_goaway_code != NGHTTP2_NO_ERROR)
        conn_fail(b, c, RF_BURST_ERR_PROTO, "bad response: HTTP/2 connection error %s%s",
                  nghttp2_http2_strerror(c->sent_goaway_code),
                  c->sent_goaway_code == NGHTTP2_PROTOCOL_ERROR ? " (not an HTTP/2 server?)" : "");
    else
        conn_fail(b, c, RF_BURST_ERR_TRUNCATED, "the HTTP/2 session ended before the response");
    return 1;
}

/* Moves c through its connection phase as far as it can go now. */
static void advance(struct h2burst *b, struct h2conn *c)
{
    if (c->phase == C_SETTINGS && c->settings_seen) {
        if (c->idx == 0)
            open_others(b);
        submit_requests(b, c);
        c->phase = C_SENDING;
    }
    if (c->phase == C_SENDING || c->phase == C_PINGED || c->phase == C_SETTINGS ||
        c->phase == C_READING) {
        if (conn_collect(b, c) < 0)
            return;
    }
    if (c->phase == C_SENDING && prefixes_done(b, c)) {
        /* In order after every prefix: its ACK proves the server has read
         * them all, so only the final frames remain to cross. */
        if (nghttp2_submit_ping(c->s, NGHTTP2_FLAG_NONE, NULL) != 0) {
            conn_fail(b, c, RF_BURST_ERR_PROTO, "HTTP/2: cannot send PING");
            return;
        }
        c->ping_acked = 0;
        c->phase = C_PINGED;
        if (conn_collect(b, c) < 0)
            return;
    }
    if (c->phase == C_PINGED && c->ping_acked) {
        c->phase = C_HELD;
        c->unready = 0;
        b->unready--;
    }
    if (c->phase != C_DONE && c->phase != C_CONNECTING && c->phase != C_HANDSHAKE &&
        c->phase != C_HELD) {
        int st = conn_flush(b, c);
        if (st < 0)
            return;
        set_events(b, c, st == 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
        if (st == 1 && c->phase == C_READING)
            stamp_late_finals(b, c);
        /* The prefixes are out only now that the queue is empty: the PING
         * can follow without waiting for an event that may never come. */
        if (st == 1 && c->phase == C_SENDING && prefixes_done(b, c)) {
            advance(b, c);
            return;
        }
    }
    if (c->phase != C_DONE && c->open == 0 && c->count > 0 && c->phase != C_IDLE)
        conn_close(b, c);
}

/* The first connection's SETTINGS say how many streams a connection may
 * carry; the remaining requests get connections of their own. */
static void open_others(struct h2burst *b)
{
    uint32_t max =
        nghttp2_session_get_remote_settings(b->c[0].s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    size_t per = max < RF_H2_STREAMS_PER_CONN ? (size_t)max : RF_H2_STREAMS_PER_CONN;
    if (per == 0)
        per = 1;
    b->per_conn = per;
    b->nconn = (b->n + per - 1) / per;
    for (size_t k = 0; k < b->nconn; k++) {
        struct h2conn *c = &b->c[k];
        c->first = k * per;
        c->count = k + 1 < b->nconn ? per : b->n - k * per;
        c->open = 0;
        for (size_t i = c->first; i < c->first + c->count; i++) {
            b->q[i].conn = k;
            if (!b->q[i].finished)
                c->open++;
        }
    }
    for (size_t k = 1; k < b->nconn; k++)
        conn_start(b, &b->c[k]);
}

static void conn_ready(struct h2burst *b, struct h2conn *c)
{
    if (c->tls) {
        const char *p = rf_tls_alpn(c->tls);
        if (strcmp(p, "h2") != 0) {
            conn_fail(b, c, RF_BURST_ERR_TLS,
                      "the server does not offer HTTP/2 (ALPN: %s); --sync packet needs h2, "
                      "use --sync lastbyte",
                      p[0] ? p : "none");
            return;
        }
    }
    c->s = session_new(c);
    if (!c->s) {
        conn_fail(b, c, ENOMEM, "HTTP/2: cannot create a session");
        return;
    }
    c->phase = C_SETTINGS;
    advance(b, c);
}

static void nodelay(struct h2burst *b, struct h2conn *c, int on)
{
    int fam = b->reqs[c->first].addr.ss_family;
    if (c->fd >= 0 && (fam == AF_INET || fam == AF_INET6))
        (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

static void on_writable(struct h2burst *b, struct h2conn *c)
{
    if (c->phase == C_CONNECTING) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr) {
            conn_fail(b, c, soerr, "connect: %s", strerror(soerr));
            return;
        }
        c->t_connected = rf_burst_now_ns();
        for (size_t i = c->first; i < c->first + c->count; i++)
            b->res[i].t_connected_ns = c->t_connected;
        if (!b->tls) {
            conn_ready(b, c);
            return;
        }
        char e[128];
        c->tls =
            rf_tls_new(b->tls, b->reqs[c->first].host ? b->reqs[c->first].host : "", e, sizeof(e));
        if (!c->tls) {
            conn_fail(b, c, RF_BURST_ERR_PROTO, "%s", e);
            return;
        }
        c->phase = C_HANDSHAKE;
    }
    if (c->phase == C_HANDSHAKE) {
        char e[128];
        int want_write = 0;
        int st = rf_tls_handshake(c->tls, c->fd, &want_write, e, sizeof(e));
        if (st < 0) {
            conn_fail(b, c, RF_BURST_ERR_TLS, "%s", e);
            return;
        }
        if (st == 0) {
            set_events(b, c, want_write ? EPOLLIN | EPOLLOUT : EPOLLIN);
            return;
        }
        conn_ready(b, c);
        return;
    }
    if (c->phase == C_RELEASING) {
        int st = conn_flush(b, c);
        if (st < 0)
            return;
        if (st == 1) {
            uint64_t t = rf_burst_now_ns();
            for (size_t i = c->first; i < c->first + c->count; i++)
                if (!b->q[i].finished && b->q[i].final_sent)
                    b->res[i].t_lastbyte_ns = t;
            c->phase = C_READING;
            nodelay(b, c, 1);
        }
        set_events(b, c, st == 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
        return;
    }
    advance(b, c);
}

static void on_readable(struct h2burst *b, struct h2conn *c)
{
    char buf[READ_CHUNK];
    char e[128];
    /* At most 16 reads before the other connections get a turn, but never
     * while TLS holds bytes already taken off the socket: epoll would not
     * report them again, and the streams in them would time out. */
    for (int rounds = 0; c->phase != C_DONE && (rounds < 16 || (c->tls && rf_tls_buffered(c->tls)));
         rounds++) {
        long got;
        if (c->tls) {
            got = rf_tls_recv(c->tls, c->fd, buf, sizeof(buf), e, sizeof(e));
            if (got == -2) {
                conn_fail(b, c, RF_BURST_ERR_PROTO, "%s", e);
                return;
            }
        } else {
            got = recv(c->fd, buf, sizeof(buf), 0);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                int en = errno;
                conn_fail(b, c, en, "recv: %s", strerror(en));
                return;
            }
        }
        if (got < 0)
            break;
        if (got == 0) {
            conn_fail(b, c, RF_BURST_ERR_TRUNCATED,
                      "the server closed the HTTP/2 connection before the response");
            return;
        }
        ssize_t rv = nghttp2_session_mem_recv(c->s, (const uint8_t *)buf, (size_t)got);
        if (rv < 0) {
            conn_fail(b, c, RF_BURST_ERR_PROTO, "bad response: HTTP/2: %s",
                      nghttp2_strerror((int)rv));
            return;
        }
    }
    if (c->phase == C_HELD || c->phase == C_RELEASING)
        return; /* the queue holds the final frames: nothing may be sent now */
    advance(b, c);
    if (c->phase != C_DONE && conn_pending(c) == 0)
        (void)session_over(b, c);
}

/* Prepares every held connection's final frames, then writes them: one
 * send() per connection, back to back. */
static void release(struct h2burst *b)
{
    for (size_t k = 0; k < b->nconn; k++) {
        struct h2conn *c = &b->c[k];
        if (c->phase != C_HELD)
            continue;
        /* Ahead of the final frames in the same write, as Kettle's
         * single-packet attack does: the server's stack is busy with the
         * connection already when the DATA frames arrive. */
        if (nghttp2_submit_ping(c->s, NGHTTP2_FLAG_NONE, NULL) != 0) {
            conn_fail(b, c, RF_BURST_ERR_PROTO, "HTTP/2: cannot send PING");
            continue;
        }
        for (size_t i = c->first; i < c->first + c->count; i++) {
            struct h2req *q = &b->q[i];
            if (q->finished || q->id <= 0)
                continue;
            q->release = 1;
            (void)nghttp2_session_resume_data(c->s, q->id);
        }
        if (conn_collect(b, c) < 0)
            continue;
        /* Nagle back on: should the write outgrow one segment, the kernel
         * fills whole segments rather than pushing a small tail early. */
        nodelay(b, c, 0);
    }
    for (size_t k = 0; k < b->nconn; k++) {
        struct h2conn *c = &b->c[k];
        if (c->phase != C_HELD)
            continue;
        int st = conn_flush(b, c);
        uint64_t t = rf_burst_now_ns();
        if (st < 0)
            continue;
        if (st == 0) {
            c->phase = C_RELEASING;
            set_events(b, c, EPOLLIN | EPOLLOUT);
            continue;
        }
        c->phase = C_READING;
        for (size_t i = c->first; i < c->first + c->count; i++)
            if (!b->q[i].finished && b->q[i].final_sent)
                b->res[i].t_lastbyte_ns = t;
    }
    b->released = 1;
    /* Only after every write: the small frames that follow (WINDOW_UPDATE,
     * ACKs) must not wait for Nagle behind a delayed ACK. */
    for (size_t k = 0; k < b->nconn; k++)
        if (b->c[k].phase == C_READING)
            nodelay(b, &b->c[k], 1);
}

static const char *timeout_what(enum cphase ph)
{
    switch (ph) {
    case C_IDLE:
        return "waiting for the first connection's SETTINGS";
    case C_CONNECTING:
        return "connecting";
    case C_HANDSHAKE:
        return "in the TLS handshake";
    case C_SETTINGS:
        return "waiting for the server's SETTINGS";
    case C_SENDING:
        return "sending the request";
    case C_PINGED:
        return "waiting for the PING acknowledgement";
    case C_HELD:
        return "waiting for the other connections to be ready";
    default:
        return "waiting for the response";
    }
}

static void burst_free(struct h2burst *b)
{
    for (size_t k = 0; b->c && k < b->n; k++) {
        conn_close(b, &b->c[k]);
        nghttp2_session_del(b->c[k].s);
        rf_tls_free(b->c[k].tls);
        free(b->c[k].out);
    }
    for (size_t i = 0; b->q && i < b->n; i++) {
        free(b->q[i].names);
        free(b->q[i].nv);
    }
    free(b->c);
    free(b->q);
}

static int burst_init(struct h2burst *b, const struct rf_burst_req *reqs, size_t n,
                      const struct rf_burst_opts *o, struct rf_burst_res *res)
{
    memset(b, 0, sizeof(*b));
    b->reqs = reqs;
    b->res = res;
    b->n = n;
    b->ep = -1;
    b->tls = o ? o->tls : NULL;
    b->max_response = o && o->max_response ? o->max_response : RF_HTTPRES_DEFAULT_MAX;
    b->q = calloc(n ? n : 1, sizeof(*b->q));
    b->c = calloc(n ? n : 1, sizeof(*b->c));
    if (!b->q || !b->c)
        return -1;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        rf_httpres_init(&res[i].http, b->max_response);
        res[i].http.head_request = reqs ? reqs[i].head_request : 0;
    }
    for (size_t k = 0; k < n; k++) {
        b->c[k].b = b;
        b->c[k].idx = k;
        b->c[k].fd = -1;
        b->c[k].goaway_last = -1;
        b->c[k].phase = C_IDLE;
    }
    b->active = n;
    return 0;
}

int rf_h2_run(const struct rf_burst_req *reqs, size_t n, const struct rf_burst_opts *o,
              struct rf_burst_res *res, char *errbuf, size_t errlen)
{
    struct h2burst b;
    int timeout_ms = o->timeout_ms ? o->timeout_ms : RF_BURST_DEFAULT_TIMEOUT_MS;

    if (n > RF_BURST_MAX) {
        rf_errf(errbuf, errlen, "too many requests: %zu (max %d)", n, RF_BURST_MAX);
        return -1;
    }
    if (o->timeout_ms < 0) {
        rf_errf(errbuf, errlen, "negative timeout_ms %d", o->timeout_ms);
        return -1;
    }
    if (burst_init(&b, reqs, n, o, res) < 0) {
        rf_errf(errbuf, errlen, "out of memory for %zu requests", n);
        burst_free(&b);
        return -1;
    }
    if (n == 0) {
        burst_free(&b);
        return 0;
    }
    (void)rf_burst_raise_nofile(n, 0, errbuf, errlen);
    b.ep = epoll_create1(EPOLL_CLOEXEC);
    if (b.ep < 0) {
        rf_errf(errbuf, errlen, "epoll_create1: %s", strerror(errno));
        burst_free(&b);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char e[128];
        if (convert(&b.q[i], reqs[i].data, reqs[i].len, b.tls != NULL, e, sizeof(e)) < 0)
            req_fail(&b, i, EINVAL, "%s", e);
    }
    uint64_t t0 = rf_burst_now_ns();
    uint64_t deadline = t0 + (uint64_t)timeout_ms * 1000000ull;
    /* Until the first SETTINGS arrive, connection 0 carries every request. */
    b.nconn = 1;
    b.c[0].first = 0;
    b.c[0].count = n;
    b.c[0].open = b.active;
    conn_start(&b, &b.c[0]);

    struct epoll_event evs[MAX_EVENTS];
    while (b.active > 0) {
        uint64_t now = rf_burst_now_ns();
        if (now >= deadline)
            break;
        if (!b.released && b.unready == 0) {
            release(&b);
            continue;
        }
        uint64_t ms = (deadline - now + 999999) / 1000000;
        int ne = epoll_wait(b.ep, evs, MAX_EVENTS, ms > 1000000 ? 1000000 : (int)ms);
        if (ne < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            for (size_t k = 0; k < b.nconn; k++)
                conn_fail(&b, &b.c[k], e, "epoll_wait: %s", strerror(e));
            break;
        }
        for (int k = 0; k < ne; k++) {
            struct h2conn *c = &b.c[evs[k].data.u64];
            uint32_t ev = evs[k].events;
            if (c->phase == C_DONE)
                continue;
            if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                on_writable(&b, c);
            if (c->phase != C_DONE && c->phase != C_CONNECTING && c->phase != C_HANDSHAKE &&
                (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->s)
                on_readable(&b, c);
            else if (c->phase == C_HANDSHAKE && (ev & EPOLLIN))
                on_writable(&b, c);
        }
    }
    for (size_t k = 0; k < b.nconn; k++) {
        struct h2conn *c = &b.c[k];
        for (size_t i = c->first; i < c->first + c->count; i++)
            req_fail(&b, i, ETIMEDOUT, "timed out after %d ms %s", timeout_ms,
                     timeout_what(c->phase));
    }
    for (size_t i = 0; i < n; i++)
        req_fail(&b, i, ETIMEDOUT, "timed out after %d ms", timeout_ms);
    burst_free(&b);
    (void)close(b.ep);
    return 0;
}

/* ---- offline response path ------------------------------------------------ */

int rf_h2_parse_responses(const uint8_t *data, size_t len, size_t chunk, size_t n,
                          size_t max_response, struct rf_burst_res *res)
{
    struct h2burst b;
    struct rf_burst_opts o = {.max_response = max_response};
    static const char get[] = "GET / HTTP/1.1\r\nHost: fuzz\r\nAccept: */*\r\n\r\n";
    int rc = -1;
    if (burst_init(&b, NULL, n, &o, res) < 0)
        goto out;
    b.nconn = 1;
    b.c[0].first = 0;
    b.c[0].count = n;
    b.c[0].open = n;
    b.c[0].s = session_new(&b.c[0]);
    if (!b.c[0].s)
        goto out;
    for (size_t i = 0; i < n; i++) {
        char e[128];
        if (convert(&b.q[i], get, sizeof(get) - 1, 1, e, sizeof(e)) < 0)
            goto out;
        b.q[i].release = 1;
    }
    submit_requests(&b, &b.c[0]);
    const uint8_t *p;
    while (nghttp2_session_mem_send(b.c[0].s, &p) > 0)
        ;
    size_t off = 0;
    while (off < len) {
        size_t k = chunk && chunk < len - off ? chunk : len - off;
        ssize_t rv = nghttp2_session_mem_recv(b.c[0].s, data + off, k);
        if (rv < 0) {
            conn_fail(&b, &b.c[0], RF_BURST_ERR_PROTO, "bad response: HTTP/2: %s",
                      nghttp2_strerror((int)rv));
            break;
        }
        off += k;
        /* What the session owes the server (ACKs, WINDOW_UPDATE) goes nowhere. */
        while (nghttp2_session_mem_send(b.c[0].s, &p) > 0)
            ;
        if (b.c[0].phase != C_DONE && session_over(&b, &b.c[0]))
            break;
    }
    for (size_t i = 0; i < n; i++)
        req_fail(&b, i, RF_BURST_ERR_TRUNCATED, "the server closed the HTTP/2 connection");
    rc = 0;
out:
    burst_free(&b);
    return rc;
}
