/* A deliberately racy HTTP server for testing `racefree probe`.
 *
 * POST /v1/users {"email": "..."} does what seed 002's service did: look the
 * email up, and if it is absent, wait a moment (the "database round trip")
 * and insert. The lookup and the insert each take the lock, but nothing holds
 * it across the gap, so simultaneous requests all see "absent" and all
 * insert: duplicates, the bug the probe must catch. One thread per connection,
 * like a thread-pool server, so requests really do run concurrently.
 *
 * It also records when each request's final byte arrived (kernel receive
 * timestamp, ns) so the benchmark can measure how tightly a client's burst
 * lands:
 *   GET  /v1/users?email=E  {"data":[...]} every row with that email
 *   GET  /arrivals          {"arrivals":[ns,...]} of the POSTs since /reset
 *   POST /reset             forget users and arrivals (204)
 *   GET  /hang              never answers (until the client leaves, or 30 s)
 *   GET  /close             closes without answering
 *   GET  /chunked           a chunked {"user":{"id":"c1"}}
 *   GET  /fail              500
 *
 * usage: probe-fixture [--port N] [--delay-us US] [--max-seconds S]
 * Listens on 127.0.0.1 only; prints "listening on http://127.0.0.1:PORT" on
 * stderr; exits on SIGTERM/SIGINT or after --max-seconds (default 600). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_USERS 200000
#define MAX_ARRIVALS 200000
#define REQ_MAX 65536
#define EMAIL_MAX 256
#define RESP_MAX (4 << 20)

struct user {
    char email[EMAIL_MAX];
    unsigned id;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct user *users;
static size_t nusers;
static unsigned next_id = 1;
static uint64_t *arrivals;
static size_t narrivals;
/* Arrivals stamped by us rather than the kernel (no timestamp on the data). */
static size_t nfallback;
static long delay_us = 1000;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, int status, const char *body)
{
    const char *reason = status == 200   ? "OK"
                         : status == 201 ? "Created"
                         : status == 204 ? "No Content"
                         : status == 404 ? "Not Found"
                         : status == 400 ? "Bad Request"
                                         : "Internal Server Error";
    char head[256];
    size_t bl = body ? strlen(body) : 0;
    int k = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, reason, bl);
    send_all(fd, head, (size_t)k);
    if (bl)
        send_all(fd, body, bl);
}

/* Naive on purpose: finds "email" and takes the string after it. */
static int extract_email(const char *body, char *out, size_t outlen)
{
    const char *p = strstr(body, "\"email\"");
    if (!p)
        return -1;
    p = strchr(p + 7, ':');
    if (!p)
        return -1;
    p = strchr(p, '"');
    if (!p)
        return -1;
    p++;
    size_t n = strcspn(p, "\"");
    if (p[n] != '"' || n == 0 || n >= outlen)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static void url_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < outlen; i++) {
        if (s[i] == '%' && i + 2 < n) {
            char hx[3] = {s[i + 1], s[i + 2], 0};
            out[k++] = (char)strtol(hx, NULL, 16);
            i += 2;
        } else {
            out[k++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[k] = '\0';
}

static void user_json(char *out, size_t len, const struct user *u)
{
    snprintf(out, len, "{\"id\":\"u%u\",\"email\":\"%s\"}", u->id, u->email);
}

static void create_user(int fd, const char *body)
{
    char email[EMAIL_MAX], resp[600], uj[400];
    struct user found;
    int have = 0;
    if (extract_email(body, email, sizeof(email)) < 0) {
        respond(fd, 400, "{\"error\":\"email required\"}");
        return;
    }
    /* check ... */
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nusers; i++)
        if (!strcmp(users[i].email, email)) {
            found = users[i];
            have = 1;
            break;
        }
    pthread_mutex_unlock(&mu);
    if (have) {
        user_json(uj, sizeof(uj), &found);
        snprintf(resp, sizeof(resp), "{\"user\":%s,\"created\":false}", uj);
        respond(fd, 200, resp);
        return;
    }
    /* ... then act, after the moment a real database round trip takes. */
    if (delay_us > 0)
        usleep((useconds_t)delay_us);
    pthread_mutex_lock(&mu);
    if (nusers >= MAX_USERS) {
        pthread_mutex_unlock(&mu);
        respond(fd, 500, "{\"error\":\"full\"}");
        return;
    }
    struct user *u = &users[nusers++];
    snprintf(u->email, sizeof(u->email), "%s", email);
    u->id = next_id++;
    found = *u;
    pthread_mutex_unlock(&mu);
    user_json(uj, sizeof(uj), &found);
    snprintf(resp, sizeof(resp), "{\"user\":%s,\"created\":true}", uj);
    respond(fd, 201, resp);
}

static void list_users(int fd, const char *query)
{
    char email[EMAIL_MAX] = "", uj[400];
    const char *q = query ? strstr(query, "email=") : NULL;
    if (q) {
        q += 6;
        url_decode(q, strcspn(q, "&"), email, sizeof(email));
    }
    char *out = malloc(RESP_MAX);
    if (!out)
        return;
    size_t k = (size_t)snprintf(out, RESP_MAX, "{\"data\":[");
    int first = 1;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nusers && k + 512 < RESP_MAX; i++) {
        if (email[0] && strcmp(users[i].email, email) != 0)
            continue;
        user_json(uj, sizeof(uj), &users[i]);
        k += (size_t)snprintf(out + k, RESP_MAX - k, "%s%s", first ? "" : ",", uj);
        first = 0;
    }
    pthread_mutex_unlock(&mu);
    snprintf(out + k, RESP_MAX - k, "]}");
    respond(fd, 200, out);
    free(out);
}

static void list_arrivals(int fd)
{
    char *out = malloc(RESP_MAX);
    if (!out)
        return;
    size_t k = (size_t)snprintf(out, RESP_MAX, "{\"arrivals\":[");
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < narrivals && k + 32 < RESP_MAX; i++)
        k += (size_t)snprintf(out + k, RESP_MAX - k, "%s%llu", i ? "," : "",
                              (unsigned long long)arrivals[i]);
    size_t fallback = nfallback;
    pthread_mutex_unlock(&mu);
    snprintf(out + k, RESP_MAX - k, "],\"not_kernel_stamped\":%zu}", fallback);
    respond(fd, 200, out);
    free(out);
}

/* recv that also returns the kernel's receive timestamp of the data, which
 * is when the bytes reached this host, unaffected by thread scheduling. */
static ssize_t recv_ts(int fd, char *buf, size_t len, uint64_t *ts, int *kernel)
{
    char ctl[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
    ssize_t got;
    do
        got = recvmsg(fd, &mh, 0);
    while (got < 0 && errno == EINTR);
    if (got > 0) {
        *ts = realtime_ns();
        *kernel = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec t;
                memcpy(&t, CMSG_DATA(c), sizeof(t));
                *ts = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
                *kernel = 1;
            }
    }
    return got;
}

static void *serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *req = malloc(REQ_MAX + 1);
    size_t len = 0;
    uint64_t ts = 0;
    int kernel = 0;
    struct timeval tv = {.tv_sec = 10};
    /* SO_TIMESTAMPNS comes from the listening socket, so data that arrived
     * before this thread ran is stamped too. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (!req)
        goto out;
    /* Read the head, then Content-Length bytes of body. */
    char *end = NULL;
    size_t need = 0;
    for (;;) {
        if (len == REQ_MAX)
            goto out;
        ssize_t got = recv_ts(fd, req + len, REQ_MAX - len, &ts, &kernel);
        if (got <= 0)
            goto out;
        len += (size_t)got;
        req[len] = '\0';
        if (!end && (end = strstr(req, "\r\n\r\n"))) {
            const char *cl = strcasestr(req, "\r\nContent-Length:");
            need = (size_t)(end + 4 - req) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
            if (need > REQ_MAX)
                goto out;
        }
        if (end && len >= need)
            break;
    }
    char method[16] = "", path[2048] = "";
    if (sscanf(req, "%15s %2047s", method, path) != 2)
        goto out;
    char *query = strchr(path, '?');
    if (query)
        *query++ = '\0';
    const char *body = end + 4;

    if (!strcmp(method, "POST") && !strcmp(path, "/v1/users")) {
        pthread_mutex_lock(&mu);
        if (narrivals < MAX_ARRIVALS) {
            arrivals[narrivals++] = ts;
            nfallback += !kernel;
        }
        pthread_mutex_unlock(&mu);
        create_user(fd, body);
    } else if (!strcmp(method, "GET") && !strcmp(path, "/v1/users")) {
        list_users(fd, query);
    } else if (!strcmp(method, "GET") && !strcmp(path, "/arrivals")) {
        list_arrivals(fd);
    } else if (!strcmp(method, "POST") && !strcmp(path, "/reset")) {
        pthread_mutex_lock(&mu);
        nusers = 0;
        narrivals = 0;
        nfallback = 0;
        pthread_mutex_unlock(&mu);
        respond(fd, 204, NULL);
    } else if (!strcmp(path, "/hang")) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 30000);
    } else if (!strcmp(path, "/close")) {
        /* nothing: the close below is the answer */
    } else if (!strcmp(path, "/chunked")) {
        static const char r[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                "9\r\n{\"user\":{\r\n"
                                "c\r\n\"id\":\"c1\"}}\n\r\n"
                                "0\r\n\r\n";
        send_all(fd, r, sizeof(r) - 1);
    } else if (!strcmp(path, "/fail")) {
        respond(fd, 500, "{\"error\":\"fail\"}");
    } else {
        respond(fd, 404, "{\"error\":\"not found\"}");
    }
out:
    free(req);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0, max_seconds = 600;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--delay-us") && i + 1 < argc)
            delay_us = atol(argv[++i]);
        else if (!strcmp(argv[i], "--max-seconds") && i + 1 < argc)
            max_seconds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--port N] [--delay-us US] [--max-seconds S]\n", argv[0]);
            return 2;
        }
    }
    users = calloc(MAX_USERS, sizeof(*users));
    arrivals = calloc(MAX_ARRIVALS, sizeof(*arrivals));
    if (!users || !arrivals)
        return 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Inherited by accepted sockets; it also keeps the kernel stamping every
     * packet on arrival for as long as this socket lives. */
    setsockopt(ls, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4096) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
        perror("probe-fixture: listen");
        return 1;
    }
    fprintf(stderr, "listening on http://127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stderr);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 << 10);
    time_t deadline = time(NULL) + max_seconds;
    while (!stop && time(NULL) < deadline) {
        struct pollfd p = {.fd = ls, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_t t;
        if (pthread_create(&t, &attr, serve_conn, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
    close(ls);
    return 0;
}
