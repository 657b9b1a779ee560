/* Storage drivers behind one vtable (after curl's struct Curl_ssl).
 *
 * Callers write SQL once with '?' placeholders in the subset SQLite and
 * PostgreSQL share (INSERT … ON CONFLICT … RETURNING); a driver hides
 * placeholders, BEGIN flavour and error classification. Every database error
 * is mapped here, at the boundary, into enum rf_db_err, so no caller ever
 * looks at an SQLite code or SQLSTATE. */
#ifndef RF_DB_H
#define RF_DB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

enum rf_db_err {
    RF_DB_OK = 0,
    RF_DB_UNIQUE,      /* a unique/primary key was violated; constraint names it */
    RF_DB_RETRY,       /* busy, locked, serialization failure, deadlock: run the tx again */
    RF_DB_UNAVAILABLE, /* cannot reach or open the database */
    RF_DB_FULL,        /* disk or quota full: waits for an operator, not a retry */
    RF_DB_ERROR,       /* anything else: a bug or corrupt state */
    /* A foreign key was violated. Only a race explains one in this schema
     * (a referenced row deleted by a concurrent transaction), so the store
     * code that can meet it turns it into RF_DB_RETRY; anywhere else it is
     * a bug, answered like RF_DB_ERROR. */
    RF_DB_FOREIGN,
};

/* Why an RF_DB_RETRY happened, decided where the driver still knows its own
 * codes (SQLite result code, SQLSTATE), so that nobody above reads it back
 * out of the text. The values and their order are those of the reason
 * label of racefree_db_retries_total. */
enum rf_db_retry_reason {
    RF_DB_RETRY_BUSY,          /* SQLITE_BUSY, SQLITE_PROTOCOL */
    RF_DB_RETRY_LOCKED,        /* SQLITE_LOCKED */
    RF_DB_RETRY_SERIALIZATION, /* 40001 */
    RF_DB_RETRY_DEADLOCK,      /* 40P01 */
    RF_DB_RETRY_LOCK_TIMEOUT,  /* 55P03 */
    RF_DB_RETRY_GROUP_COMMIT,  /* another member of an SQLite group commit failed */
    RF_DB_RETRY_OTHER,         /* raised above the driver, or not a retry at all */
    RF_DB_RETRY_N
};

struct rf_db_error {
    enum rf_db_err code;
    char constraint[96];           /* RF_DB_UNIQUE: index/constraint or "table.col, …" */
    char detail[256];              /* driver text, for logs only: never sent to clients */
    enum rf_db_retry_reason retry; /* with RF_DB_RETRY; rf_db_fail sets OTHER */
};

const char *rf_db_strerror(enum rf_db_err e);
/* Sets e and returns code, for one-line error returns. */
int rf_db_fail(struct rf_db_error *e, enum rf_db_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum rf_db_type { RF_DB_NULL = 0, RF_DB_TEXT, RF_DB_INT };
struct rf_db_param {
    enum rf_db_type type;
    const char *s;
    int64_t i;
};
/* A NULL string binds SQL NULL. */
static inline struct rf_db_param RF_TEXT(const char *s) {
    return (struct rf_db_param){s ? RF_DB_TEXT : RF_DB_NULL, s, 0};
} static inline struct rf_db_param RF_INT(int64_t i) {
    return (struct rf_db_param){RF_DB_INT, NULL, i};
}

/* Result rows, every cell as text (NULL pointer for SQL NULL); all memory
 * lives in the arena passed to exec. */
struct rf_db_rows {
    int nrows, ncols;
    const char **cells;
};
static inline const char *rf_db_cell(const struct rf_db_rows *r, int row, int col)
{
    return (row < r->nrows && col < r->ncols) ? r->cells[row * r->ncols + col] : NULL;
}

struct rf_db;      /* a database: its connections and settings */
struct rf_db_conn; /* one connection, owned by one thread between acquire and release */

/* What a driver offers beyond the SQL both accept (after curl's
 * SSLSUPP_* bits in struct Curl_ssl's `supports`); callers test them with
 * rf_db_has, never which driver they have. */
enum {
    /* Writes may run statement by statement in autocommit (RF_TX_AUTOCOMMIT):
     * cheaper where each statement is a round trip. */
    RF_DB_CAP_AUTOCOMMIT_WRITES = 1u << 0,
    /* Concurrent creates pay to be coalesced into one statement (each one
     * is a round trip), and the driver takes the PostgreSQL array SQL that
     * does it (unnest(?::text[])): store/user_batch.c. */
    RF_DB_CAP_BATCH_CREATE = 1u << 1,
};

struct rf_db_driver {
    const char *name;
    unsigned caps; /* RF_DB_CAP_* */
    /* url without the scheme's meaning changed; nreaders: read connections. */
    int (*open)(const char *url, int nreaders, struct rf_db **out, struct rf_db_error *e);
    void (*close)(struct rf_db *db);
    /* write=1: the connection that may write (SQLite: the one writer, held
     * under a mutex until release). Blocks until one is free. */
    /* deadline_ms: CLOCK_MONOTONIC milliseconds after which waiting for the
     * writer (and SQLite's busy wait at BEGIN) gives up with RF_DB_RETRY;
     * 0 waits as long as it takes. */
    int (*acquire)(struct rf_db *db, int write, int64_t deadline_ms, struct rf_db_conn **out,
                   struct rf_db_error *e);
    void (*release)(struct rf_db *db, struct rf_db_conn *c);
    int (*begin)(struct rf_db_conn *c, int write, struct rf_db_error *e);
    int (*commit)(struct rf_db_conn *c, struct rf_db_error *e);
    void (*rollback)(struct rf_db_conn *c);
    /* One statement. out may be NULL when no rows are wanted. */
    int (*exec)(struct rf_db_conn *c, const char *sql, const struct rf_db_param *p, int np,
                struct rf_arena *a, struct rf_db_rows *out, struct rf_db_error *e);
    /* Inside a write tx: serialise schema migration across processes. */
    int (*migrate_lock)(struct rf_db_conn *c, struct rf_db_error *e);
};

/* Every driver's handle begins with this, so wrappers can find the vtable. */
struct rf_db {
    const struct rf_db_driver *drv;
};
struct rf_db_conn {
    const struct rf_db_driver *drv;
    struct rf_db_conn *next_free; /* while in its pool's free list */
};

/* For drivers: the free connections of a pool, LIFO (the one released last
 * is reused first), which acquire waits on until one is there. */
struct rf_db_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rf_db_conn *free;
};
void rf_db_pool_init(struct rf_db_pool *p);
void rf_db_pool_destroy(struct rf_db_pool *p);
/* Blocks until a connection is free. */
struct rf_db_conn *rf_db_pool_take(struct rf_db_pool *p);
void rf_db_pool_put(struct rf_db_pool *p, struct rf_db_conn *c);

extern const struct rf_db_driver rf_db_sqlite;
extern const struct rf_db_driver rf_db_pg;

/* Picks the driver from the URL scheme ("sqlite:PATH", "postgres://…"). */
int rf_db_open(const char *url, int nreaders, struct rf_db **out, struct rf_db_error *e)
    __attribute__((warn_unused_result));

static inline int rf_db_has(const struct rf_db *db, unsigned cap)
{
    return (db->drv->caps & cap) == cap;
}
static inline void rf_db_close(struct rf_db *db)
{
    if (db)
        db->drv->close(db);
}
static inline int rf_db_acquire(struct rf_db *db, int write, struct rf_db_conn **c,
                                struct rf_db_error *e)
{
    return db->drv->acquire(db, write, 0, c, e);
}
static inline int rf_db_acquire_by(struct rf_db *db, int write, int64_t deadline_ms,
                                   struct rf_db_conn **c, struct rf_db_error *e)
{
    return db->drv->acquire(db, write, deadline_ms, c, e);
}
static inline void rf_db_release(struct rf_db *db, struct rf_db_conn *c)
{
    db->drv->release(db, c);
}
static inline int rf_db_exec(struct rf_db_conn *c, const char *sql, const struct rf_db_param *p,
                             int np, struct rf_arena *a, struct rf_db_rows *out,
                             struct rf_db_error *e)
{
    return c->drv->exec(c, sql, p, np, a, out, e);
}
static inline int rf_db_begin(struct rf_db_conn *c, int write, struct rf_db_error *e)
{
    return c->drv->begin(c, write, e);
}
static inline int rf_db_commit(struct rf_db_conn *c, struct rf_db_error *e)
{
    return c->drv->commit(c, e);
}
static inline void rf_db_rollback(struct rf_db_conn *c)
{
    c->drv->rollback(c);
}
static inline int rf_db_migrate_lock(struct rf_db_conn *c, struct rf_db_error *e)
{
    return c->drv->migrate_lock(c, e);
}

/* Classifies an SQLite result code (primary or extended) into rf_db_err;
 * exposed for unit tests. */
enum rf_db_err rf_sqlite_classify(int extended_rc);
/* The reason of a result code rf_sqlite_classify calls RF_DB_RETRY. */
enum rf_db_retry_reason rf_sqlite_retry_reason(int extended_rc);

/* SQLite group commit, process-wide since start: batches committed and the
 * write transactions (members) they carried. For /metrics and tests. */
void rf_sqlite_group_stats(unsigned long long *batches, unsigned long long *members);

#endif
