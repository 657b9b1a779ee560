#include "db/db.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rf_db_strerror(enum rf_db_err e)
{
    switch (e) {
    case RF_DB_OK:
        return "ok";
    case RF_DB_UNIQUE:
        return "unique violation";
    case RF_DB_RETRY:
        return "retryable conflict";
    case RF_DB_UNAVAILABLE:
        return "database unavailable";
    case RF_DB_FULL:
        return "database storage full";
    case RF_DB_ERROR:
        return "database error";
    case RF_DB_FOREIGN:
        return "foreign key violation";
    }
    return "unknown";
}

int rf_db_fail(struct rf_db_error *e, enum rf_db_err code, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    e->retry = RF_DB_RETRY_OTHER;
    e->constraint[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
    return code;
}

void rf_db_pool_init(struct rf_db_pool *p)
{
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->free = NULL;
}

void rf_db_pool_destroy(struct rf_db_pool *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

struct rf_db_conn *rf_db_pool_take(struct rf_db_pool *p)
{
    pthread_mutex_lock(&p->mu);
    while (!p->free)
        pthread_cond_wait(&p->cv, &p->mu);
    struct rf_db_conn *c = p->free;
    p->free = c->next_free;
    pthread_mutex_unlock(&p->mu);
    return c;
}

void rf_db_pool_put(struct rf_db_pool *p, struct rf_db_conn *c)
{
    pthread_mutex_lock(&p->mu);
    c->next_free = p->free;
    p->free = c;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int rf_db_open(const char *url, int nreaders, struct rf_db **out, struct rf_db_error *e)
{
    *out = NULL;
    if (strncmp(url, "sqlite:", 7) == 0)
        return rf_db_sqlite.open(url + 7, nreaders, out, e);
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return rf_db_pg.open(url, nreaders, out, e);
    return rf_db_fail(e, RF_DB_ERROR, "unknown database URL (want sqlite:PATH or postgres://…)");
}
