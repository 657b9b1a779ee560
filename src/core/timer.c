#include "core/timer.h"

#include <errno.h>
#include <stdlib.h>

#include "core/service.h"
#include "core/util.h"

/* A binary min-heap on the deadline. */
static struct {
    struct rf_service s;
    int flush;
    struct rf_timer **heap;
    size_t n, cap;
} g = {.s = {.mu = PTHREAD_MUTEX_INITIALIZER}};

static void swap(size_t i, size_t j)
{
    struct rf_timer *t = g.heap[i];
    g.heap[i] = g.heap[j];
    g.heap[j] = t;
}

static void sift_up(size_t i)
{
    while (i > 0 && g.heap[(i - 1) / 2]->at > g.heap[i]->at) {
        swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sift_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < g.n && g.heap[l]->at < g.heap[m]->at)
            m = l;
        if (r < g.n && g.heap[r]->at < g.heap[m]->at)
            m = r;
        if (m == i)
            return;
        swap(i, m);
        i = m;
    }
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.s.mu);
    while (!g.s.stop) {
        uint64_t now = rf_mono_ns();
        if (g.n && (g.flush || g.heap[0]->at <= now)) {
            struct rf_timer *t = g.heap[0];
            g.heap[0] = g.heap[--g.n];
            sift_down(0);
            pthread_mutex_unlock(&g.s.mu);
            t->fire(t);
            pthread_mutex_lock(&g.s.mu);
            continue;
        }
        if (!g.n) {
            pthread_cond_wait(&g.s.cv, &g.s.mu);
        } else {
            struct timespec ts =
                rf_timespec_in(CLOCK_MONOTONIC, (int64_t)((g.heap[0]->at - now) / 1000000u) + 1);
            pthread_cond_timedwait(&g.s.cv, &g.s.mu, &ts);
        }
    }
    pthread_mutex_unlock(&g.s.mu);
    return NULL;
}

int rf_timer_start(void)
{
    return rf_service_start(&g.s, timer_main, "timer thread");
}

int rf_timer_add(struct rf_timer *t, int64_t delay_ms)
{
    t->at = rf_mono_ns() + (uint64_t)(delay_ms > 0 ? delay_ms : 0) * 1000000u;
    pthread_mutex_lock(&g.s.mu);
    if (g.n == g.cap) {
        size_t cap = g.cap ? 2 * g.cap : 256;
        struct rf_timer **h = realloc(g.heap, cap * sizeof(*h));
        if (!h) {
            pthread_mutex_unlock(&g.s.mu);
            return -1;
        }
        g.heap = h;
        g.cap = cap;
    }
    g.heap[g.n] = t;
    sift_up(g.n++);
    /* Only a new earliest deadline changes how long the thread sleeps. */
    if (g.heap[0] == t || g.flush)
        pthread_cond_signal(&g.s.cv);
    pthread_mutex_unlock(&g.s.mu);
    return 0;
}

void rf_timer_flush(void)
{
    pthread_mutex_lock(&g.s.mu);
    g.flush = 1;
    pthread_cond_signal(&g.s.cv);
    pthread_mutex_unlock(&g.s.mu);
}

void rf_timer_stop(void)
{
    if (!g.s.running)
        return;
    rf_service_stop(&g.s);
    free(g.heap);
    g.heap = NULL;
    g.n = g.cap = 0;
    g.flush = 0;
}
