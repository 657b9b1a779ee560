#include "core/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/util.h"

/* Waking a sleeping worker is a context switch for it and one more when it
 * sleeps again, the largest cost per request on the machines we measure
 * (bench/PROFILE.md). So one worker at a time, finding the queue empty,
 * polls it for up to SPIN_NS before it sleeps, and a job pushed meanwhile
 * wakes nobody: under load, jobs pass from loop to worker without a
 * switch. (Go's scheduler keeps spinning threads for the same reason.) */
#define SPIN_NS 20000

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rf_job *head, *tail;
    pthread_t *threads;
    int n, stop;
    unsigned pending;   /* queued + running */
    int spinning;       /* a worker polls the queue (under mu) */
    atomic_uint queued; /* jobs in the queue, for the spinner's unlocked look */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Called with g.mu held and the queue empty; returns with it held. */
static void spin_for_work(void)
{
    g.spinning = 1;
    pthread_mutex_unlock(&g.mu);
    uint64_t until = rf_mono_ns() + SPIN_NS;
    while (atomic_load_explicit(&g.queued, memory_order_relaxed) == 0 && rf_mono_ns() < until)
        sched_yield();
    pthread_mutex_lock(&g.mu);
    g.spinning = 0;
}

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.mu);
    for (;;) {
        if (!g.head && !g.stop && !g.spinning)
            spin_for_work();
        while (!g.head && !g.stop)
            pthread_cond_wait(&g.cv, &g.mu);
        if (g.stop)
            break;
        struct rf_job *j = g.head;
        g.head = j->next;
        if (!g.head)
            g.tail = NULL;
        atomic_fetch_sub(&g.queued, 1);
        /* Jobs pushed while a worker spun woke nobody. Each running worker
         * takes another when it is done, without sleeping; only a backlog
         * larger than that wakes a sleeper (never lost: the running ones
         * get to the rest). */
        unsigned left = atomic_load(&g.queued);
        if (left > g.pending - left)
            pthread_cond_signal(&g.cv);
        pthread_mutex_unlock(&g.mu);
        j->next = NULL;
        j->run(j);
        pthread_mutex_lock(&g.mu);
        g.pending--;
    }
    pthread_mutex_unlock(&g.mu);
    return NULL;
}

int rf_pool_start(int n)
{
    g.threads = calloc((size_t)n, sizeof(*g.threads));
    if (!g.threads) {
        rf_log(RF_LOG_ERROR, "worker pool: out of memory");
        return -1;
    }
    g.stop = 0;
    for (g.n = 0; g.n < n; g.n++) {
        if (pthread_create(&g.threads[g.n], NULL, worker_main, NULL) != 0) {
            rf_log(RF_LOG_ERROR, "worker pool: cannot start thread %d of %d", g.n + 1, n);
            rf_pool_stop();
            return -1;
        }
    }
    return 0;
}

void rf_pool_push(struct rf_job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&g.mu);
    if (g.tail)
        g.tail->next = j;
    else
        g.head = j;
    g.tail = j;
    g.pending++;
    atomic_fetch_add(&g.queued, 1);
    if (!g.spinning)
        pthread_cond_signal(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

unsigned rf_pool_pending(void)
{
    pthread_mutex_lock(&g.mu);
    unsigned n = g.pending;
    pthread_mutex_unlock(&g.mu);
    return n;
}

void rf_pool_stop(void)
{
    pthread_mutex_lock(&g.mu);
    g.stop = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    for (int i = 0; i < g.n; i++)
        pthread_join(g.threads[i], NULL);
    pthread_mutex_lock(&g.mu);
    free(g.threads);
    g.threads = NULL;
    g.n = 0;
    g.head = g.tail = NULL;
    g.pending = 0;
    atomic_store(&g.queued, 0);
    pthread_mutex_unlock(&g.mu);
}
