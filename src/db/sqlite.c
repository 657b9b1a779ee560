/* SQLite driver: WAL, one writer connection per process behind a mutex
 * (SQLite has one writer; several in-process writers would only sleep in
 * the busy handler), a pool of read connections, BEGIN IMMEDIATE for writes
 * so a transaction never has to upgrade its lock halfway through. Other
 * processes on the same file are serialised by SQLite's own file locks; the
 * busy timeout below turns their contention into waiting, and what outlasts
 * it becomes RF_DB_RETRY for tx_run.
 *
 * Group commit: each write transaction of a caller is a SAVEPOINT inside one
 * outer BEGIN IMMEDIATE … COMMIT shared by the writers that queued up behind
 * each other. A caller whose savepoint is released while others wait for the
 * writer hands the writer on and sleeps until the batch commits; the last one
 * (nobody waiting, or the batch full) commits for all. An idle server commits
 * at once. A member's failure rolls back only its savepoint; a failure of the
 * whole transaction makes every waiting member retry. Nobody is answered
 * before the COMMIT that holds their writes returned, so durability is
 * exactly that of one transaction per request (WAL, synchronous=NORMAL). */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hooks.h"
#include "core/metrics.h"
#include "core/util.h"
#include "db/db.h"

#define BUSY_TIMEOUT_MS 5000
#define STMT_CACHE 48
#define BATCH_MAX 64 /* members per group commit: bounds a member's wait */

struct sq_conn {
    struct rf_db_conn base;
    sqlite3 *h;
    int ncache;
    struct {
        const char *sql; /* statements are string literals: the pointer is the key */
        sqlite3_stmt *st;
    } cache[STMT_CACHE];
};

/* A member that handed the writer on, waiting for its batch's COMMIT. */
struct sq_waiter {
    struct sq_waiter *next;
    int done;
    int rc;
    enum rf_db_retry_reason retry;
    char detail[256];
};

struct sq_db {
    struct rf_db base;
    pthread_mutex_t wmu; /* owns the writer connection and the batch state */
    atomic_int wwaiting; /* threads blocked on wmu: a reason to defer COMMIT */
    struct sq_conn writer;
    int64_t deadline_ms;          /* the writer's holder gives up BEGIN then (0: never) */
    int batch_open;               /* the outer BEGIN IMMEDIATE is open */
    int batch_n;                  /* members whose savepoint was released into it */
    struct sq_waiter *batch_wait; /* of those, the ones sleeping until COMMIT */
    pthread_mutex_t bmu;          /* guards the waiters' done/rc, with bcv */
    pthread_cond_t bcv;
    struct rf_db_pool pool; /* the readers */
    struct sq_conn *readers;
    int nreaders;
};

const struct rf_db_driver rf_db_sqlite;

static atomic_ullong gc_batches, gc_members;

void rf_sqlite_group_stats(unsigned long long *batches, unsigned long long *members)
{
    *batches = atomic_load(&gc_batches);
    *members = atomic_load(&gc_members);
}

enum rf_db_err rf_sqlite_classify(int rc)
{
    switch (rc) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return RF_DB_OK;
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return RF_DB_UNIQUE;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return RF_DB_FOREIGN;
    }
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PROTOCOL: /* a WAL lock race between processes: try again */
        return RF_DB_RETRY;
    case SQLITE_FULL:
        return RF_DB_FULL;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_NOTADB:
    case SQLITE_PERM:
    case SQLITE_NOMEM:
        return RF_DB_UNAVAILABLE;
    default:
        return RF_DB_ERROR;
    }
}

enum rf_db_retry_reason rf_sqlite_retry_reason(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_PROTOCOL: /* a WAL lock race: a busy by another name */
        return RF_DB_RETRY_BUSY;
    case SQLITE_LOCKED:
        return RF_DB_RETRY_LOCKED;
    }
    return RF_DB_RETRY_OTHER;
}

static int sq_fail(sqlite3 *h, int rc, struct rf_db_error *e)
{
    enum rf_db_err code = rf_sqlite_classify(rc);
    const char *msg = h ? sqlite3_errmsg(h) : sqlite3_errstr(rc);
    rf_db_fail(e, code, "sqlite: %s (%d)", msg, rc);
    if (code == RF_DB_RETRY)
        e->retry = rf_sqlite_retry_reason(rc);
    if (code == RF_DB_UNIQUE) {
        /* "UNIQUE constraint failed: users.workspace_id, users.email" */
        const char *cols = strstr(msg, "failed: ");
        cols = cols ? cols + 8 : msg;
        size_t n = strlen(cols);
        if (n >= sizeof(e->constraint))
            n = sizeof(e->constraint) - 1;
        memcpy(e->constraint, cols, n);
        e->constraint[n] = '\0';
    }
    return code;
}

static int sq_conn_open(struct sq_conn *c, const char *path, int flags, struct rf_db_error *e)
{
    memset(c, 0, sizeof(*c));
    c->base.drv = &rf_db_sqlite;
    int rc = sqlite3_open_v2(path, &c->h, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        sq_fail(c->h, rc, e);
        e->code = RF_DB_UNAVAILABLE;
        sqlite3_close(c->h);
        c->h = NULL;
        return RF_DB_UNAVAILABLE;
    }
    sqlite3_extended_result_codes(c->h, 1);
    sqlite3_busy_timeout(c->h, BUSY_TIMEOUT_MS);
    /* NORMAL in WAL: a commit survives a crash of the process; a power cut
     * may lose the last few commits but never corrupts. See ARCHITECTURE.md. */
    static const char *const pragmas[] = {"PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"};
    for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++) {
        rc = sqlite3_exec(c->h, pragmas[i], NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return sq_fail(c->h, rc, e);
    }
    return RF_DB_OK;
}

static void sq_conn_close(struct sq_conn *c)
{
    for (int i = 0; i < c->ncache; i++)
        sqlite3_finalize(c->cache[i].st);
    c->ncache = 0;
    if (c->h)
        sqlite3_close(c->h);
    c->h = NULL;
}

static void sq_close(struct rf_db *base)
{
    struct sq_db *db = (struct sq_db *)base;
    if (!db)
        return;
    sq_conn_close(&db->writer);
    for (int i = 0; i < db->nreaders; i++)
        sq_conn_close(&db->readers[i]);
    free(db->readers);
    pthread_mutex_destroy(&db->wmu);
    pthread_mutex_destroy(&db->bmu);
    pthread_cond_destroy(&db->bcv);
    rf_db_pool_destroy(&db->pool);
    free(db);
}

/* Switching to WAL takes an exclusive lock; when several processes open a new
 * file at once one of them may see SQLITE_BUSY here despite the busy timeout. */
static int sq_set_wal(struct sq_conn *c, struct rf_db_error *e)
{
    int rc = SQLITE_OK;
    for (int attempt = 0; attempt < 50; attempt++) {
        rc = sqlite3_exec(c->h, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rf_sqlite_classify(rc) != RF_DB_RETRY)
            break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return rc == SQLITE_OK ? RF_DB_OK : sq_fail(c->h, rc, e);
}

static int sq_open(const char *path, int nreaders, struct rf_db **out, struct rf_db_error *e)
{
    int rc;
    if (!*path)
        return rf_db_fail(e, RF_DB_ERROR, "sqlite: empty path");
    if (nreaders < 1)
        nreaders = 1;
    struct sq_db *db = calloc(1, sizeof(*db));
    if (!db)
        return rf_db_fail(e, RF_DB_UNAVAILABLE, "out of memory");
    db->base.drv = &rf_db_sqlite;
    pthread_mutex_init(&db->wmu, NULL);
    pthread_mutex_init(&db->bmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the sleepers' 10 ms naps */
    pthread_cond_init(&db->bcv, &ca);
    pthread_condattr_destroy(&ca);
    rf_db_pool_init(&db->pool);
    rc = sq_conn_open(&db->writer, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, e);
    if (rc == RF_DB_OK)
        rc = sq_set_wal(&db->writer, e);
    if (rc != RF_DB_OK)
        goto fail;
    db->readers = calloc((size_t)nreaders, sizeof(*db->readers));
    if (!db->readers) {
        rc = rf_db_fail(e, RF_DB_UNAVAILABLE, "out of memory");
        goto fail;
    }
    for (int i = 0; i < nreaders; i++) {
        rc = sq_conn_open(&db->readers[i], path, SQLITE_OPEN_READWRITE, e);
        if (rc != RF_DB_OK)
            goto fail;
        db->nreaders++;
        rf_db_pool_put(&db->pool, &db->readers[i].base);
    }
    *out = &db->base;
    return RF_DB_OK;
fail:
    sq_close(&db->base);
    return rc;
}

/* The calling thread's part in the writer: whether it holds wmu and where
 * its own write transaction (a savepoint in the batch) stands. */
enum { MEMBER_NONE, MEMBER_OPEN, MEMBER_DONE };
static _Thread_local struct {
    struct sq_db *db; /* non-NULL while this thread holds wmu */
    int member;
} tl;

static int sq_simple(struct sq_conn *c, const char *sql, struct rf_db_error *e)
{
    int rc = sqlite3_exec(c->h, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? RF_DB_OK : sq_fail(c->h, rc, e);
}

/* Ends the batch with rc (and, for RF_DB_RETRY, its reason) for every
 * sleeping member. Called with wmu held. */
static void batch_wake(struct sq_db *db, int rc, enum rf_db_retry_reason retry, const char *detail)
{
    pthread_mutex_lock(&db->bmu);
    for (struct sq_waiter *w = db->batch_wait; w; w = w->next) {
        w->rc = rc;
        w->retry = retry;
        snprintf(w->detail, sizeof(w->detail), "%s", detail);
        w->done = 1;
    }
    pthread_cond_broadcast(&db->bcv);
    pthread_mutex_unlock(&db->bmu);
    db->batch_wait = NULL;
    db->batch_n = 0;
    db->batch_open = 0;
}

/* COMMITs the batch for all its members. Called with wmu held. */
static int batch_commit(struct sq_db *db, struct rf_db_error *e)
{
    int rc = sq_simple(&db->writer, "COMMIT", e);
    if (rc != RF_DB_OK && !sqlite3_get_autocommit(db->writer.h))
        sqlite3_exec(db->writer.h, "ROLLBACK", NULL, NULL, NULL);
    if (rc == RF_DB_OK && db->batch_n > 0) {
        rf_metrics_batch((unsigned)db->batch_n);
        atomic_fetch_add(&gc_batches, 1);
        atomic_fetch_add(&gc_members, (unsigned long long)db->batch_n);
    }
    if (rc == RF_DB_OK)
        batch_wake(db, rc, RF_DB_RETRY_OTHER, "");
    else
        batch_wake(db, rc, e->retry, e->detail);
    return rc;
}

/* Gives up wmu. The batch is committed first unless another writer is
 * about to join it (and it has room). */
static void writer_leave(struct sq_db *db)
{
    /* An empty batch is never left open: it would hold the file's write
     * lock with nobody asleep in it to commit it. */
    if (db->batch_open &&
        (db->batch_n == 0 || atomic_load(&db->wwaiting) == 0 || db->batch_n >= BATCH_MAX)) {
        struct rf_db_error e;
        if (batch_commit(db, &e) != RF_DB_OK)
            rf_log(RF_LOG_WARN, "sqlite: group commit failed: %s", e.detail);
    }
    tl.db = NULL;
    tl.member = MEMBER_NONE;
    pthread_mutex_unlock(&db->wmu);
}

static int sq_acquire(struct rf_db *base, int write, int64_t deadline_ms, struct rf_db_conn **out,
                      struct rf_db_error *e)
{
    struct sq_db *db = (struct sq_db *)base;
    if (write) {
        /* Bounded: when another process holds the file's write lock, the
         * writer here waits in BEGIN, and everyone queued behind it must
         * give up in time too, not one full busy timeout after another. */
        atomic_fetch_add(&db->wwaiting, 1);
        int lrc = 0;
        if (deadline_ms > 0) {
            /* pthread_mutex_timedlock takes CLOCK_REALTIME (clocklock
             * would take the monotonic deadline as is, but ThreadSanitizer
             * does not know it): convert the time left. */
            struct timespec ts =
                rf_timespec_in(CLOCK_REALTIME, deadline_ms - (int64_t)(rf_mono_ns() / 1000000u));
            lrc = pthread_mutex_timedlock(&db->wmu, &ts);
        } else {
            pthread_mutex_lock(&db->wmu);
        }
        atomic_fetch_sub(&db->wwaiting, 1);
        if (lrc != 0)
            return rf_db_fail(e, RF_DB_RETRY, "sqlite: timed out waiting for the writer");
        db->deadline_ms = deadline_ms;
        tl.db = db;
        tl.member = MEMBER_NONE;
        *out = &db->writer.base;
        return RF_DB_OK;
    }
    *out = rf_db_pool_take(&db->pool);
    return RF_DB_OK;
}

static void sq_release(struct rf_db *base, struct rf_db_conn *cb)
{
    struct sq_db *db = (struct sq_db *)base;
    struct sq_conn *c = (struct sq_conn *)cb;
    if (c == &db->writer) {
        if (tl.db == db) /* else it was handed on at commit */
            writer_leave(db);
        tl.member = MEMBER_NONE;
        return;
    }
    rf_db_pool_put(&db->pool, cb);
}

static struct sq_db *writer_db(struct sq_conn *c)
{
    return tl.db && &tl.db->writer == c ? tl.db : NULL;
}

static int sq_begin(struct rf_db_conn *cb, int write, struct rf_db_error *e)
{
    struct sq_conn *c = (struct sq_conn *)cb;
    struct sq_db *db = writer_db(c);
    if (!write || !db)
        return sq_simple(c, write ? "BEGIN IMMEDIATE" : "BEGIN", e);
    if (!db->batch_open) {
        /* Test builds: in WAL mode a writer meets SQLITE_BUSY here, when
         * BEGIN IMMEDIATE cannot take the write lock; simulate exactly that. */
        if (rf_fault("sqlite.busy")) {
            rf_db_fail(e, RF_DB_RETRY, "sqlite: injected SQLITE_BUSY");
            e->retry = RF_DB_RETRY_BUSY;
            return RF_DB_RETRY;
        }
        int64_t wait_ms = BUSY_TIMEOUT_MS;
        if (db->deadline_ms > 0) {
            wait_ms = db->deadline_ms - (int64_t)(rf_mono_ns() / 1000000u);
            if (wait_ms <= 0)
                return rf_db_fail(e, RF_DB_RETRY, "sqlite: out of time for the write lock");
            if (wait_ms > BUSY_TIMEOUT_MS)
                wait_ms = BUSY_TIMEOUT_MS;
        }
        sqlite3_busy_timeout(c->h, (int)wait_ms);
        int rc = sq_simple(c, "BEGIN IMMEDIATE", e);
        sqlite3_busy_timeout(c->h, BUSY_TIMEOUT_MS);
        if (rc != RF_DB_OK)
            return rc;
        db->batch_open = 1;
    }
    int rc = sq_simple(c, "SAVEPOINT rf_member", e);
    if (rc == RF_DB_OK)
        tl.member = MEMBER_OPEN;
    return rc;
}

static int sq_commit(struct rf_db_conn *cb, struct rf_db_error *e)
{
    struct sq_conn *c = (struct sq_conn *)cb;
    struct sq_db *db = writer_db(c);
    if (!db || tl.member != MEMBER_OPEN)
        return sq_simple(c, "COMMIT", e);
    int rc = sq_simple(c, "RELEASE rf_member", e);
    if (rc != RF_DB_OK)
        return rc; /* still a member: the caller's rollback undoes it */
    tl.member = MEMBER_DONE;
    db->batch_n++;
    if (atomic_load(&db->wwaiting) == 0 || db->batch_n >= BATCH_MAX)
        return batch_commit(db, e);

    /* Others queue for the writer: let them add to this transaction and
     * sleep until whoever comes last commits it. */
    struct sq_waiter w = {.next = db->batch_wait};
    db->batch_wait = &w;
    tl.db = NULL;
    pthread_mutex_unlock(&db->wmu);
    /* The writer counted in wwaiting may give up (its deadline passed)
     * without ever taking wmu, leaving this batch with nobody to commit it.
     * So a sleeper wakes now and then, and whoever finds wmu free while its
     * batch is still open commits it: early is always safe. */
    pthread_mutex_lock(&db->bmu);
    while (!w.done) {
        struct timespec ts = rf_timespec_in(CLOCK_MONOTONIC, 10);
        if (pthread_cond_timedwait(&db->bcv, &db->bmu, &ts) != ETIMEDOUT || w.done)
            continue;
        pthread_mutex_unlock(&db->bmu);
        if (pthread_mutex_trylock(&db->wmu) == 0) {
            if (db->batch_open && db->batch_wait) {
                struct rf_db_error e2;
                if (batch_commit(db, &e2) != RF_DB_OK)
                    rf_log(RF_LOG_WARN, "sqlite: group commit failed: %s", e2.detail);
            }
            pthread_mutex_unlock(&db->wmu);
        }
        pthread_mutex_lock(&db->bmu);
    }
    pthread_mutex_unlock(&db->bmu);
    if (w.rc != RF_DB_OK) {
        rf_db_fail(e, w.rc, "sqlite: group commit: %.200s", w.detail);
        e->retry = w.retry;
        return w.rc;
    }
    return RF_DB_OK;
}

static void sq_rollback(struct rf_db_conn *cb)
{
    struct sq_conn *c = (struct sq_conn *)cb;
    struct sq_db *db = writer_db(c);
    if (!db) {
        /* A reader, or a member that already handed the writer on. */
        if (tl.member == MEMBER_NONE && !sqlite3_get_autocommit(c->h))
            sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
        return;
    }
    if (tl.member != MEMBER_OPEN)
        return;
    tl.member = MEMBER_DONE;
    if (!sqlite3_get_autocommit(c->h) &&
        sqlite3_exec(c->h, "ROLLBACK TO rf_member; RELEASE rf_member", NULL, NULL, NULL) ==
            SQLITE_OK)
        return;
    /* SQLite rolled the whole transaction back itself (I/O error, full
     * disk, …) or could not undo the savepoint: the other members' writes
     * are gone too, and they must run again. */
    if (!sqlite3_get_autocommit(c->h))
        sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
    batch_wake(db, RF_DB_RETRY, RF_DB_RETRY_GROUP_COMMIT,
               "the batch was rolled back by another member's failure");
}

static int sq_prepare(struct sq_conn *c, const char *sql, sqlite3_stmt **st, struct rf_db_error *e)
{
    for (int i = 0; i < c->ncache; i++) {
        if (c->cache[i].sql == sql) {
            *st = c->cache[i].st;
            return RF_DB_OK;
        }
    }
    int rc = sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(c->h, rc, e);
    if (c->ncache < STMT_CACHE) {
        c->cache[c->ncache].sql = sql;
        c->cache[c->ncache].st = *st;
        c->ncache++;
    }
    return RF_DB_OK;
}

static int sq_exec(struct rf_db_conn *cb, const char *sql, const struct rf_db_param *p, int np,
                   struct rf_arena *a, struct rf_db_rows *out, struct rf_db_error *e)
{
    struct sq_conn *c = (struct sq_conn *)cb;
    sqlite3_stmt *st;
    int rc = sq_prepare(c, sql, &st, e);
    if (rc != RF_DB_OK)
        return rc;
    int cached = 0;
    for (int i = 0; i < c->ncache; i++)
        cached |= c->cache[i].st == st;

    int result = RF_DB_OK, cap = 0;
    if (out) {
        out->nrows = 0;
        out->ncols = sqlite3_column_count(st);
        out->cells = NULL;
    }
    for (int i = 0; i < np && result == RF_DB_OK; i++) {
        switch (p[i].type) {
        case RF_DB_NULL:
            rc = sqlite3_bind_null(st, i + 1);
            break;
        case RF_DB_TEXT:
            rc = sqlite3_bind_text(st, i + 1, p[i].s, -1, SQLITE_STATIC);
            break;
        case RF_DB_INT:
            rc = sqlite3_bind_int64(st, i + 1, p[i].i);
            break;
        }
        if (rc != SQLITE_OK)
            result = sq_fail(c->h, rc, e);
    }
    while (result == RF_DB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!out)
            continue;
        if (out->nrows == cap) {
            /* Rows are few (single-row writes, bounded pages): grow by doubling
             * in the arena; the old block is simply left there. */
            int ncap = cap ? cap * 2 : 4;
            const char **cells = rf_arena_alloc(a, sizeof(char *) * (size_t)ncap *
                                                       (size_t)(out->ncols ? out->ncols : 1));
            if (!cells) {
                result = rf_db_fail(e, RF_DB_ERROR, "out of memory for rows");
                break;
            }
            if (out->cells)
                memcpy(cells, out->cells, sizeof(char *) * (size_t)cap * (size_t)out->ncols);
            out->cells = cells;
            cap = ncap;
        }
        for (int col = 0; col < out->ncols; col++) {
            const unsigned char *t = sqlite3_column_text(st, col);
            const char *v = NULL;
            if (t) {
                v = rf_arena_strndup(a, (const char *)t, (size_t)sqlite3_column_bytes(st, col));
                if (!v) {
                    result = rf_db_fail(e, RF_DB_ERROR, "out of memory for cell");
                    break;
                }
            }
            out->cells[out->nrows * out->ncols + col] = v;
        }
        out->nrows++;
    }
    if (result == RF_DB_OK && rc != SQLITE_DONE)
        result = sq_fail(c->h, rc, e);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (!cached)
        sqlite3_finalize(st);
    return result;
}

static int sq_migrate_lock(struct rf_db_conn *c, struct rf_db_error *e)
{
    /* BEGIN IMMEDIATE already holds the file's write lock. */
    (void)c;
    (void)e;
    return RF_DB_OK;
}

const struct rf_db_driver rf_db_sqlite = {
    .name = "sqlite",
    .caps = 0, /* each statement is a call into the library, not a round trip */
    .open = sq_open,
    .close = sq_close,
    .acquire = sq_acquire,
    .release = sq_release,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .exec = sq_exec,
    .migrate_lock = sq_migrate_lock,
};
