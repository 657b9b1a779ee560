/* The worker pool and the timer thread (core/pool.c, core/timer.c): every
 * pushed job runs once, on several workers at a time; timers fire in the
 * order of their deadlines, not of their adding, and not early. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "core/pool.h"
#include "core/timer.h"
#include "core/util.h"
#include "unit.h"

void test_pool_runs_every_job_in_parallel(void);
void test_pool_timers_fire_in_deadline_order(void);

#define JOBS 64
#define WORKERS 4

struct pjob {
    struct rf_job job;
    int runs;
};

static atomic_int running, peak, done;

static void pjob_run(struct rf_job *j)
{
    struct pjob *p = (struct pjob *)j;
    int now = atomic_fetch_add(&running, 1) + 1;
    for (int seen = atomic_load(&peak);
         now > seen && !atomic_compare_exchange_weak(&peak, &seen, now);)
        ;
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL); /* long enough that the others overlap */
    p->runs++;
    atomic_fetch_sub(&running, 1);
    atomic_fetch_add(&done, 1);
}

void test_pool_runs_every_job_in_parallel(void)
{
    static struct pjob jobs[JOBS];
    atomic_store(&running, 0);
    atomic_store(&peak, 0);
    atomic_store(&done, 0);
    CHECK(rf_pool_start(WORKERS) == 0);
    for (int i = 0; i < JOBS; i++) {
        jobs[i] = (struct pjob){.job.run = pjob_run};
        rf_pool_push(&jobs[i].job);
    }
    uint64_t until = rf_mono_ns() + 5000000000ull;
    while (atomic_load(&done) < JOBS && rf_mono_ns() < until) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    rf_pool_stop();
    CHECK_INT(atomic_load(&done), JOBS);
    for (int i = 0; i < JOBS; i++)
        CHECK_INT(jobs[i].runs, 1);
    CHECK(atomic_load(&peak) > 1 && atomic_load(&peak) <= WORKERS);
}

#define TIMERS 5

struct ptimer {
    struct rf_timer t;
    int id;
    uint64_t added;
};

static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static int order[TIMERS], nfired, early;

static void ptimer_fire(struct rf_timer *t)
{
    struct ptimer *p = (struct ptimer *)t;
    pthread_mutex_lock(&order_mu);
    if (rf_mono_ns() < p->t.at)
        early++;
    order[nfired++] = p->id;
    pthread_mutex_unlock(&order_mu);
}

void test_pool_timers_fire_in_deadline_order(void)
{
    /* Added out of order; deadlines 10 ms apart. */
    static const int delay_ms[TIMERS] = {40, 10, 50, 20, 30};
    static struct ptimer tm[TIMERS];
    nfired = early = 0;
    CHECK(rf_timer_start() == 0);
    for (int i = 0; i < TIMERS; i++) {
        tm[i] = (struct ptimer){.t.fire = ptimer_fire, .id = delay_ms[i] / 10};
        CHECK(rf_timer_add(&tm[i].t, delay_ms[i]) == 0);
    }
    uint64_t until = rf_mono_ns() + 5000000000ull;
    for (;;) {
        pthread_mutex_lock(&order_mu);
        int n = nfired;
        pthread_mutex_unlock(&order_mu);
        if (n == TIMERS || rf_mono_ns() > until)
            break;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    rf_timer_stop();
    CHECK_INT(nfired, TIMERS);
    CHECK_INT(early, 0);
    for (int i = 0; i < TIMERS; i++)
        CHECK_INT(order[i], i + 1);
}
