#include "testsrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe/burst.h"
#include "probe/httpres.h"
#include "probe/probe.h"

static void ts_accept_all(struct tserver *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                s->thread_err = errno;
            if (errno == EINTR)
                continue;
            return;
        }
        size_t k = 0;
        while (k < TS_MAX_CONN && s->c[k].fd >= 0)
            k++;
        if (k == TS_MAX_CONN) {
            s->thread_err = EMFILE;
            close(fd);
            continue;
        }
        memset(&s->c[k], 0, sizeof(s->c[k]));
        s->c[k].fd = fd;
        s->accepted++;
    }
}

static void ts_drain(struct ts_conn *c)
{
    char buf[65536];
    while (c->fd >= 0 && !c->eof) {
        ssize_t got = recv(c->fd, buf, sizeof(buf), 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (got <= 0) {
            c->eof = 1;
            return;
        }
        size_t keep = TS_HEAD_MAX - c->head_len;
        if (keep > (size_t)got)
            keep = (size_t)got;
        memcpy(c->head + c->head_len, buf, keep);
        c->head_len += keep;
        c->head[c->head_len] = '\0';
        c->total += (size_t)got;
        char *end = c->need ? NULL : strstr(c->head, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(c->head, "\r\nContent-Length:");
            size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            c->need = (size_t)(end + 4 - c->head) + body;
        }
    }
}

void ts_send(struct ts_conn *c, const char *d, size_t len)
{
    while (len > 0) {
        ssize_t w = send(c->fd, d, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the client's problem shows up in its results */
        d += w;
        len -= (size_t)w;
    }
}

void ts_close(struct ts_conn *c)
{
    close(c->fd);
    c->fd = -1;
}

static void ts_process(struct tserver *s)
{
    int fresh = 0;
    for (size_t k = 0; k < TS_MAX_CONN; k++) {
        struct ts_conn *c = &s->c[k];
        if (c->fd >= 0 && !c->complete && c->need && c->total >= c->need)
            fresh = 1;
    }
    if (fresh && !s->first_seen) {
        /* The barrier check: at the first complete request, every other
         * connection must already be established and hold its prefix. Pull in
         * whatever the kernel has queued so the count reflects arrivals. */
        s->first_seen = 1;
        ts_accept_all(s);
        for (size_t k = 0; k < TS_MAX_CONN; k++)
            if (s->c[k].fd >= 0)
                ts_drain(&s->c[k]);
        s->accepted_at_first = s->accepted;
        for (size_t k = 0; k < TS_MAX_CONN; k++)
            if (s->c[k].fd >= 0 && s->c[k].total >= s->prefix_len)
                s->ready_at_first++;
    }
    for (size_t k = 0; k < TS_MAX_CONN; k++) {
        struct ts_conn *c = &s->c[k];
        if (c->fd >= 0 && !c->complete && c->need && c->total >= c->need) {
            c->complete = 1;
            s->completed++;
            s->respond(s, c);
        }
        if (c->fd >= 0 && c->eof)
            ts_close(c);
    }
}

static void *ts_main(void *arg)
{
    struct tserver *s = arg;
    struct pollfd pf[TS_MAX_CONN + 2];
    size_t idx[TS_MAX_CONN + 2];
    for (;;) {
        nfds_t np = 0;
        uint64_t now = rf_burst_now_ns();
        int stalled = now < s->stall_until_ns;
        pf[np++] = (struct pollfd){.fd = s->stop[0], .events = POLLIN};
        pf[np++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        for (size_t k = 0; k < TS_MAX_CONN && !stalled; k++) {
            if (s->c[k].fd >= 0) {
                idx[np] = k;
                pf[np++] = (struct pollfd){.fd = s->c[k].fd, .events = POLLIN};
            }
        }
        int wait = stalled ? (int)((s->stall_until_ns - now) / 1000000) + 1 : -1;
        if (poll(pf, np, wait) < 0) {
            if (errno == EINTR)
                continue;
            s->thread_err = errno;
            break;
        }
        if (pf[0].revents)
            break;
        if (pf[1].revents)
            ts_accept_all(s);
        for (nfds_t j = 2; j < np; j++)
            if (pf[j].revents)
                ts_drain(&s->c[idx[j]]);
        ts_process(s);
    }
    for (size_t k = 0; k < TS_MAX_CONN; k++)
        if (s->c[k].fd >= 0)
            ts_close(&s->c[k]);
    return NULL;
}

struct tserver *ts_start(size_t prefix_len, int stall_ms, ts_respond_fn respond, void *arg)
{
    struct tserver *s = calloc(1, sizeof(*s));
    socklen_t al = sizeof(s->addr);
    if (!s)
        return NULL;
    for (size_t k = 0; k < TS_MAX_CONN; k++)
        s->c[k].fd = -1;
    s->prefix_len = prefix_len;
    s->respond = respond;
    s->arg = arg;
    s->stall_until_ns = stall_ms > 0 ? rf_burst_now_ns() + (uint64_t)stall_ms * 1000000 : 0;
    s->addr.sin_family = AF_INET;
    s->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&s->addr, sizeof(s->addr)) < 0 ||
        listen(s->lfd, 256) < 0 || getsockname(s->lfd, (struct sockaddr *)&s->addr, &al) < 0 ||
        pipe2(s->stop, O_CLOEXEC) < 0) {
        perror("ts_start");
        if (s->lfd >= 0)
            close(s->lfd);
        free(s);
        return NULL;
    }
    if (pthread_create(&s->th, NULL, ts_main, s) != 0) {
        close(s->lfd);
        close(s->stop[0]);
        close(s->stop[1]);
        free(s);
        return NULL;
    }
    return s;
}

void ts_stop(struct tserver *s)
{
    if (write(s->stop[1], "x", 1) != 1)
        perror("ts_stop");
    pthread_join(s->th, NULL);
    close(s->lfd);
    close(s->stop[0]);
    close(s->stop[1]);
}

int ts_port(const struct tserver *s)
{
    return ntohs(s->addr.sin_port);
}

void ts_reply(struct ts_conn *c, int status, const char *body)
{
    char buf[512];
    int k = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     status, strlen(body), body);
    if (k > 0 && (size_t)k < sizeof(buf))
        ts_send(c, buf, (size_t)k);
}

int ts_is(const struct ts_conn *c, const char *method, const char *path)
{
    size_t ml = strlen(method);
    return strncmp(c->head, method, ml) == 0 && c->head[ml] == ' ' &&
           strncmp(c->head + ml + 1, path, strlen(path)) == 0;
}

int ts_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof(a);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
             getsockname(fd, (struct sockaddr *)&a, &al) == 0;
    close(fd);
    return ok ? ntohs(a.sin_port) : 0;
}

void ts_fake_res(struct rf_burst_res *r, int status, const char *body)
{
    memset(r, 0, sizeof(*r));
    rf_httpres_init(&r->http, 0);
    r->http.status = status;
    if (body) {
        r->http.body = strdup(body);
        r->http.body_len = strlen(body);
    }
}

int ts_run_probe(const char *const *args, char **out, char **err)
{
    char *argv[64];
    int argc = 0;
    size_t ol = 0, el = 0;
    for (; args[argc] && argc < 63; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    *out = *err = NULL;
    FILE *o = open_memstream(out, &ol), *e = open_memstream(err, &el);
    if (!o || !e) {
        if (o)
            fclose(o);
        if (e)
            fclose(e);
        return -1;
    }
    int code = rf_probe_run(argc, argv, o, e);
    fclose(o);
    fclose(e);
    return code;
}

char *ts_temp_file(const char *name, const char *content)
{
    char tmpl[96];
    snprintf(tmpl, sizeof(tmpl), "/tmp/rf-%s-XXXXXX", name);
    char *path = strdup(tmpl);
    if (!path)
        return NULL;
    int fd = mkstemp(path);
    if (fd < 0) {
        free(path);
        return NULL;
    }
    size_t n = content ? strlen(content) : 0;
    if (n && write(fd, content, n) != (ssize_t)n) {
        close(fd);
        unlink(path);
        free(path);
        return NULL;
    }
    close(fd);
    return path;
}
