#include "probe/request.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- URLs ---------------------------------------------------------------- */

int rf_probe_url_parse(const char *url, struct rf_probe_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    if (strncasecmp(url, "https://", 8) == 0) {
        u->tls = 1;
    } else if (strncasecmp(url, "http://", 7) != 0) {
        rf_errf(err, errlen, "URL must start with http:// or https:// (got \"%.60s\")", url);
        return -1;
    }
    const char *a = url + (u->tls ? 8 : 7);
    size_t al = strcspn(a, "/?#");
    const char *rest = a + al;
    if (memchr(a, '@', al)) {
        rf_errf(err, errlen, "user:password@ in the URL is not supported; pass -H Authorization");
        return -1;
    }
    if (al == 0) {
        rf_errf(err, errlen, "URL has no host: \"%.60s\"", url);
        return -1;
    }
    if (al >= sizeof(u->authority)) {
        rf_errf(err, errlen, "URL host part longer than %zu bytes", sizeof(u->authority) - 1);
        return -1;
    }
    memcpy(u->authority, a, al);
    u->authority[al] = '\0';

    const char *h = a, *port = NULL;
    size_t hl;
    if (*a == '[') {
        const char *rb = memchr(a, ']', al);
        if (!rb) {
            rf_errf(err, errlen, "unterminated [IPv6] address in URL");
            return -1;
        }
        h = a + 1;
        hl = (size_t)(rb - h);
        if (rb + 1 < a + al) {
            if (rb[1] != ':') {
                rf_errf(err, errlen, "junk after ] in URL host \"%s\"", u->authority);
                return -1;
            }
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(a, ':', al);
        hl = colon ? (size_t)(colon - a) : al;
        if (colon)
            port = colon + 1;
    }
    if (hl == 0 || hl >= sizeof(u->host)) {
        rf_errf(err, errlen, "bad host in URL \"%s\"", u->authority);
        return -1;
    }
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    if (port) {
        size_t pl = (size_t)(a + al - port);
        unsigned long pv = 0;
        for (size_t k = 0; k < pl; k++) {
            if (port[k] < '0' || port[k] > '9' || pl > 5) {
                pv = 0;
                break;
            }
            pv = pv * 10 + (unsigned long)(port[k] - '0');
        }
        if (pv == 0 || pv > 65535) {
            rf_errf(err, errlen, "bad port in URL \"%s\"", u->authority);
            return -1;
        }
        snprintf(u->port, sizeof(u->port), "%lu", pv);
    } else {
        snprintf(u->port, sizeof(u->port), "%s", u->tls ? "443" : "80");
    }
    u->path = rest;
    u->path_len = strcspn(rest, "#");
    for (size_t k = 0; k < u->path_len; k++) {
        unsigned char c = (unsigned char)rest[k];
        if (c <= 0x20 || c == 0x7f) {
            rf_errf(err, errlen,
                    "URL path contains a space or control character (byte %zu); "
                    "percent-encode it",
                    k);
            return -1;
        }
    }
    return 0;
}

/* ---- resolution ---------------------------------------------------------- */

/* 0 when a TCP connection to ai is accepted within timeout_ms. */
static int try_connect(const struct addrinfo *ai, int timeout_ms, int *err_out)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err_out = errno;
        return -1;
    }
    int rc = -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        rc = 0;
    } else if (errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int pr;
        do
            pr = poll(&p, 1, timeout_ms);
        while (pr < 0 && errno == EINTR);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (pr == 0)
            *err_out = ETIMEDOUT;
        else if (pr < 0)
            *err_out = errno;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            *err_out = errno;
        else if (soerr)
            *err_out = soerr;
        else
            rc = 0;
    } else {
        *err_out = errno;
    }
    close(fd);
    return rc;
}

int rf_probe_resolve(const char *host, const char *port, int timeout_ms,
                     struct sockaddr_storage *addr, socklen_t *addrlen, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g == EAI_BADFLAGS || (g != 0 && !res)) {
        /* AI_ADDRCONFIG hides ::1 on hosts whose only IPv6 is loopback. */
        hints.ai_flags = AI_NUMERICSERV;
        g = getaddrinfo(host, port, &hints, &res);
    }
    if (g != 0) {
        rf_errf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(g));
        return -1;
    }
    const struct addrinfo *pick = NULL;
    if (!res->ai_next) {
        pick = res;
    } else {
        char why[192] = "";
        for (const struct addrinfo *ai = res; ai && !pick; ai = ai->ai_next) {
            int e = 0;
            if (ai->ai_addrlen > sizeof(*addr))
                continue;
            if (try_connect(ai, timeout_ms, &e) == 0) {
                pick = ai;
            } else {
                size_t used = strlen(why);
                snprintf(why + used, sizeof(why) - used, "%s%s", used ? "; " : "", strerror(e));
            }
        }
        if (!pick) {
            rf_errf(err, errlen, "cannot connect to %s port %s (%s)", host, port, why);
            freeaddrinfo(res);
            return -1;
        }
    }
    if (pick->ai_addrlen > sizeof(*addr)) {
        rf_errf(err, errlen, "address of %s too long", host);
        freeaddrinfo(res);
        return -1;
    }
    memset(addr, 0, sizeof(*addr));
    memcpy(addr, pick->ai_addr, pick->ai_addrlen);
    *addrlen = (socklen_t)pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* ---- requests ------------------------------------------------------------ */

static int is_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int rf_probe_reqspec_header(struct rf_probe_reqspec *s, const char *h,
                            const struct rf_probe_vars *vs, char *err, size_t errlen)
{
    const char *colon = strchr(h, ':');
    size_t nl = colon ? (size_t)(colon - h) : 0;
    for (size_t k = 0; k < nl; k++)
        if (!is_tchar(h[k]))
            nl = 0;
    if (nl == 0) {
        rf_errf(err, errlen, "-H wants \"Name: value\", got \"%.60s\"", h);
        return -1;
    }
    if (s->nhdr >= RF_PROBE_HEADERS_MAX) {
        rf_errf(err, errlen, "more than %d -H headers", RF_PROBE_HEADERS_MAX);
        return -1;
    }
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(h, name, nl) == 0)
    if (IS("Content-Length") || IS("Transfer-Encoding")) {
        rf_errf(err, errlen, "-H %.*s: the probe frames the body itself (use -d)", (int)nl, h);
        return -1;
    }
    if (IS("Host"))
        s->user_host = 1;
    else if (IS("Content-Type"))
        s->user_ctype = 1;
    else if (IS("Connection"))
        s->user_connection = 1;
    else if (IS("User-Agent"))
        s->user_agent = 1;
#undef IS
    /* The value's leading whitespace is cosmetic; send one space. */
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vl = strlen(v);
    size_t len = nl + 2 + vl;
    char *line = malloc(len + 1);
    if (!line) {
        rf_errf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(line, h, nl);
    memcpy(line + nl, ": ", 2);
    memcpy(line + nl + 2, v, vl + 1);
    int rc = rf_probe_tpl_compile(&s->hdr[s->nhdr], line, len, vs, err, errlen);
    free(line);
    if (rc < 0)
        return -1;
    s->nhdr++;
    return 0;
}

void rf_probe_reqspec_free(struct rf_probe_reqspec *s)
{
    rf_probe_tpl_free(&s->url);
    for (size_t k = 0; k < s->nhdr; k++)
        rf_probe_tpl_free(&s->hdr[k]);
    s->nhdr = 0;
    if (s->has_body)
        rf_probe_tpl_free(&s->body);
    s->has_body = 0;
}

static int method_wants_length(const char *m)
{
    return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
}

int rf_probe_request_build(const struct rf_probe_reqspec *s, const char *method, int with_body,
                           const struct rf_probe_tpl *url, const struct rf_probe_tpl_ctx *c,
                           struct rf_probe_buf *url_buf, struct rf_probe_url *u,
                           struct rf_probe_buf *out, char *err, size_t errlen)
{
    char sub[192];
    struct rf_probe_buf body;
    int rc = -1;
    rf_probe_buf_init(&body, RF_PROBE_BODY_MAX);

    url_buf->len = 0;
    if (rf_probe_tpl_expand(url, c, url_buf, sub, sizeof(sub)) < 0) {
        rf_errf(err, errlen, "URL: %s", sub);
        goto out;
    }
    if (rf_probe_url_parse(url_buf->p, u, err, errlen) < 0)
        goto out;
    int send_body = with_body && s->has_body;
    if (send_body && rf_probe_tpl_expand(&s->body, c, &body, sub, sizeof(sub)) < 0) {
        rf_errf(err, errlen, "body: %s", sub);
        goto out;
    }

    out->len = 0;
    int ok = rf_probe_buf_addf(out, "%s ", method) == 0;
    if (u->path_len == 0 || u->path[0] == '?')
        ok = ok && rf_probe_buf_add(out, "/", 1) == 0;
    ok = ok && rf_probe_buf_add(out, u->path, u->path_len) == 0 &&
         rf_probe_buf_adds(out, " HTTP/1.1\r\n") == 0;
    if (!s->user_host)
        ok = ok && rf_probe_buf_addf(out, "Host: %s\r\n", u->authority) == 0;
    if (!s->user_agent)
        ok = ok && rf_probe_buf_adds(out, "User-Agent: racefree-probe\r\n") == 0;
    for (size_t k = 0; ok && k < s->nhdr; k++) {
        size_t start = out->len;
        if (rf_probe_tpl_expand(&s->hdr[k], c, out, sub, sizeof(sub)) < 0) {
            ok = 0;
            break;
        }
        /* A line break from a variable would smuggle in headers of its own. */
        for (size_t j = start; j < out->len; j++)
            if (out->p[j] == '\r' || out->p[j] == '\n' || out->p[j] == '\0') {
                rf_errf(err, errlen, "-H %.*s contains a line break or NUL after expansion",
                        (int)strcspn(out->p + start, ":"), out->p + start);
                goto out;
            }
        ok = rf_probe_buf_adds(out, "\r\n") == 0;
    }
    if (send_body && !s->user_ctype)
        ok = ok && rf_probe_buf_adds(out, "Content-Type: application/json\r\n") == 0;
    if (send_body || (with_body && method_wants_length(method)))
        ok = ok && rf_probe_buf_addf(out, "Content-Length: %zu\r\n", body.len) == 0;
    if (!s->user_connection)
        ok = ok && rf_probe_buf_adds(out, "Connection: close\r\n") == 0;
    ok = ok && rf_probe_buf_adds(out, "\r\n") == 0;
    if (!ok || out->len > RF_PROBE_HEAD_MAX) {
        rf_errf(err, errlen, "request head longer than %zu bytes", RF_PROBE_HEAD_MAX);
        goto out;
    }
    if (send_body && rf_probe_buf_add(out, body.p, body.len) < 0) {
        rf_errf(err, errlen, "request longer than %zu bytes", out->max);
        goto out;
    }
    rc = 0;
out:
    rf_probe_buf_free(&body);
    return rc;
}
