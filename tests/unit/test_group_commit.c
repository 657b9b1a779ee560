/* SQLite group commit (db/sqlite.c): concurrent write transactions share
 * commits, and one member's failure leaves the others' writes intact. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "db/db.h"
#include "store/store.h"
#include "unit.h"

void test_sqlite_group_commit(void);

#define GC_THREADS 8
#define GC_TX 200

struct gc_arg {
    struct rf_db *db;
    pthread_barrier_t *start;
    int thread;
    int ok, unique, failed, other;
};

struct gc_tx {
    char key[64];
    int fail_after_insert;
};

static int gc_insert(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct gc_tx *t = arg;
    struct rf_db_param p[] = {RF_TEXT(t->key)};
    int rc = rf_db_exec(c, "INSERT INTO gc (k) VALUES (?)", p, 1, NULL, NULL, e);
    if (rc == RF_DB_OK && t->fail_after_insert)
        return rf_db_fail(e, RF_DB_ERROR, "handler failed after its insert");
    return rc;
}

static void *gc_worker(void *p)
{
    struct gc_arg *a = p;
    pthread_barrier_wait(a->start);
    for (int j = 0; j < GC_TX; j++) {
        struct gc_tx t = {.fail_after_insert = j % 50 == 7};
        struct rf_db_error e;
        if (j == 100)
            snprintf(t.key, sizeof(t.key), "shared");
        else
            snprintf(t.key, sizeof(t.key), "t%d-%d", a->thread, j);
        int rc = rf_tx_run(a->db, NULL, RF_TX_WRITE, gc_insert, &t, &e);
        if (rc == RF_DB_OK)
            a->ok++;
        else if (rc == RF_DB_UNIQUE)
            a->unique++;
        else if (rc == RF_DB_ERROR && t.fail_after_insert)
            a->failed++;
        else
            a->other++;
    }
    return NULL;
}

void test_sqlite_group_commit(void)
{
    char path[256], url[300];
    snprintf(path, sizeof(path), "/tmp/rf-unit-gc-%d.db", (int)getpid());
    snprintf(url, sizeof(url), "sqlite:%s", path);
    struct rf_db *db;
    struct rf_db_error e;
    CHECK_INT(rf_db_open(url, 2, &db, &e), RF_DB_OK);
    struct rf_db_conn *c;
    CHECK_INT(rf_db_acquire(db, 1, &c, &e), RF_DB_OK);
    int rc = rf_db_exec(c, "CREATE TABLE IF NOT EXISTS gc (k TEXT NOT NULL UNIQUE)", NULL, 0, NULL,
                        NULL, &e);
    rf_db_release(db, c);
    CHECK_INT(rc, RF_DB_OK);

    unsigned long long b0, m0, b1, m1;
    rf_sqlite_group_stats(&b0, &m0);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, GC_THREADS);
    pthread_t th[GC_THREADS];
    struct gc_arg args[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++) {
        args[i] = (struct gc_arg){.db = db, .start = &start, .thread = i};
        pthread_create(&th[i], NULL, gc_worker, &args[i]);
    }
    int ok = 0, unique = 0, failed = 0, other = 0;
    for (int i = 0; i < GC_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += args[i].ok;
        unique += args[i].unique;
        failed += args[i].failed;
        other += args[i].other;
    }
    pthread_barrier_destroy(&start);
    rf_sqlite_group_stats(&b1, &m1);

    struct rf_arena a;
    rf_arena_init(&a, 0);
    struct rf_db_rows rows = {0};
    CHECK_INT(rf_db_acquire(db, 0, &c, &e), RF_DB_OK);
    rc = rf_db_exec(c, "SELECT count(*) FROM gc", NULL, 0, &a, &rows, &e);
    rf_db_release(db, c);
    long long nrows = rc == RF_DB_OK && rows.nrows == 1 ? atoll(rf_db_cell(&rows, 0, 0)) : -1;
    rf_arena_free(&a);
    rf_db_close(db);
    unlink(path);

    /* Per thread: 4 failing handlers (j = 7, 57, 107, 157), one "shared". */
    CHECK_INT(other, 0);
    CHECK_INT(failed, GC_THREADS * 4);
    CHECK_INT(unique, GC_THREADS - 1);
    CHECK_INT(ok, GC_THREADS * (GC_TX - 4) - (GC_THREADS - 1));
    /* Exactly the committed transactions are in the table: a failing member
     * took nothing of its batch with it, and left nothing behind. */
    CHECK_INT(nrows, ok);
    CHECK_INT(m1 - m0, ok);
    /* Eight threads on one writer: commits were shared. */
    CHECK(b1 - b0 < m1 - m0);
}
