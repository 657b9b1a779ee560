#include "core/service.h"

#include <time.h>

#include "core/util.h"

int rf_service_start(struct rf_service *s, void *(*run)(void *), const char *what)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&s->mu);
    s->stop = 0;
    pthread_mutex_unlock(&s->mu);
    if (pthread_create(&s->thread, NULL, run, NULL) != 0) {
        rf_log(RF_LOG_ERROR, "cannot start the %s", what);
        pthread_cond_destroy(&s->cv);
        return -1;
    }
    s->running = 1;
    return 0;
}

void rf_service_stop(struct rf_service *s)
{
    if (!s->running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    s->running = 0;
}
