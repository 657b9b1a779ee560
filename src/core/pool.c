#include "core/pool.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/util.h"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rf_job *head, *tail;
    pthread_t *threads;
    int n, stop;
    unsigned pending; /* queued + running */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.mu);
    for (;;) {
        while (!g.head && !g.stop)
            pthread_cond_wait(&g.cv, &g.mu);
        if (g.stop)
            break;
        struct rf_job *j = g.head;
        g.head = j->next;
        if (!g.head)
            g.tail = NULL;
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
    free(g.threads);
    g.threads = NULL;
    g.n = 0;
    g.head = g.tail = NULL;
    g.pending = 0;
}
