/* One thread that fires timers at their deadline: a request that must wait
 * (the simulated provisioning call) sets a timer instead of holding a worker
 * asleep, so a thousand waiting requests cost a thousand heap entries, not a
 * thousand threads. A fired timer should only hand work on (rf_pool_push):
 * it runs on the timer thread and delays every timer behind it. */
#ifndef RF_TIMER_H
#define RF_TIMER_H

#include <stddef.h>
#include <stdint.h>

struct rf_timer {
    uint64_t at; /* CLOCK_MONOTONIC ns */
    void (*fire)(struct rf_timer *t);
};

/* Returns 0, or -1 (logged). */
int rf_timer_start(void);
/* Fires t->fire(t) once, delay_ms from now. t must stay valid until it
 * fires or rf_timer_stop returns. Returns -1 when out of memory. */
int rf_timer_add(struct rf_timer *t, int64_t delay_ms);
/* Fires every timer now, and any added later at once (for a stop). */
void rf_timer_flush(void);
/* Joins the thread; timers not yet due are dropped. */
void rf_timer_stop(void);

#endif
