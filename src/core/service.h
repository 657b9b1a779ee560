/* A background thread that sleeps on a condition variable until there is
 * work or a stop: the timer thread and the connection reaper. The owner
 * keeps its own state under mu and waits on cv (CLOCK_MONOTONIC, so a
 * timed wait is not moved by a clock step) until stop is set. mu must be
 * initialised by the owner (PTHREAD_MUTEX_INITIALIZER); start sets up cv. */
#ifndef RF_SERVICE_H
#define RF_SERVICE_H

#include <pthread.h>

struct rf_service {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int running, stop;
};

/* Starts run(NULL) on a thread of its own. Returns 0, or -1 (logged as
 * "cannot start the <what>"). */
int rf_service_start(struct rf_service *s, void *(*run)(void *), const char *what);
/* Sets stop, wakes the thread and joins it; nothing when not running. */
void rf_service_stop(struct rf_service *s);

#endif
