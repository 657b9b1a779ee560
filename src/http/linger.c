#include "http/linger.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/util.h"

/* nginx: lingering_time 30 s, lingering_timeout 5 s. A client that reads
 * its response after sending needs far less here; these bound what a client
 * that never stops sending can cost. */
#define LINGER_TIME_NS (5ull * 1000000000u)
#define LINGER_QUIET_NS (1ull * 1000000000u)
#define LINGER_BYTES (16u * 1024 * 1024)
#define LINGER_SOCKETS 1024

struct lsock {
    struct lsock *prev, *next;
    int fd;
    uint64_t until, quiet_until;
    size_t bytes;
};

static struct {
    pthread_mutex_t mu;
    pthread_t thread;
    int running;
    int ep, wake;
    struct lsock *first; /* every lingering socket, for the deadline scan */
    unsigned n;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .ep = -1, .wake = -1};

static void drop(struct lsock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        g.first = s->next;
    if (s->next)
        s->next->prev = s->prev;
    g.n--;
    epoll_ctl(g.ep, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    free(s);
}

/* Reads what is there; 1 when the socket is done (EOF, error, bound). */
static int drain(struct lsock *s, uint64_t now)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            s->bytes += (size_t)n;
            s->quiet_until = now + LINGER_QUIET_NS;
            if (s->bytes >= LINGER_BYTES)
                return 1;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return 1;
    }
}

static void *linger_main(void *arg)
{
    (void)arg;
    struct epoll_event ev[64];
    for (;;) {
        int n = epoll_wait(g.ep, ev, 64, 100);
        uint64_t now = rf_mono_ns();
        pthread_mutex_lock(&g.mu);
        for (int i = 0; i < n; i++) {
            struct lsock *s = ev[i].data.ptr;
            if (!s) {
                pthread_mutex_unlock(&g.mu);
                return NULL; /* rf_linger_stop */
            }
            if (drain(s, now))
                drop(s);
        }
        for (struct lsock *s = g.first, *next; s; s = next) {
            next = s->next;
            if (now >= s->until || now >= s->quiet_until)
                drop(s);
        }
        pthread_mutex_unlock(&g.mu);
    }
}

int rf_linger_start(void)
{
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    g.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (g.ep < 0 || g.wake < 0 || epoll_ctl(g.ep, EPOLL_CTL_ADD, g.wake, &ev) != 0 ||
        pthread_create(&g.thread, NULL, linger_main, NULL) != 0) {
        rf_log(RF_LOG_ERROR, "cannot start the lingering-close thread");
        if (g.ep >= 0)
            close(g.ep);
        if (g.wake >= 0)
            close(g.wake);
        g.ep = g.wake = -1;
        return -1;
    }
    g.running = 1;
    return 0;
}

void rf_linger_add(int fd)
{
    struct lsock *s = NULL;
    pthread_mutex_lock(&g.mu);
    if (g.running && g.n < LINGER_SOCKETS)
        s = calloc(1, sizeof(*s));
    if (!s) {
        pthread_mutex_unlock(&g.mu);
        close(fd);
        return;
    }
    uint64_t now = rf_mono_ns();
    s->fd = fd;
    s->until = now + LINGER_TIME_NS;
    s->quiet_until = now + LINGER_QUIET_NS;
    shutdown(fd, SHUT_WR);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        pthread_mutex_unlock(&g.mu);
        close(fd);
        free(s);
        return;
    }
    s->next = g.first;
    if (g.first)
        g.first->prev = s;
    g.first = s;
    g.n++;
    pthread_mutex_unlock(&g.mu);
}

void rf_linger_stop(void)
{
    if (!g.running)
        return;
    uint64_t one = 1;
    (void)!write(g.wake, &one, sizeof(one));
    pthread_join(g.thread, NULL);
    pthread_mutex_lock(&g.mu);
    while (g.first)
        drop(g.first);
    g.running = 0;
    pthread_mutex_unlock(&g.mu);
    close(g.ep);
    close(g.wake);
    g.ep = g.wake = -1;
}
