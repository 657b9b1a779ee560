/* Error classification with codes produced by a real SQLite, and the driver
 * end to end on a temporary file. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "db/db.h"
#include "store/store.h"
#include "unit.h"

void test_sqlite_classify_codes(void);
void test_sqlite_real_busy(void);
void test_sqlite_driver_unique(void);
void test_tx_run_retries_then_gives_up(void);
int unit_dup_tx(struct rf_db_conn *c, void *ctx, struct rf_db_error *e);

void test_sqlite_classify_codes(void)
{
    CHECK_INT(rf_sqlite_classify(SQLITE_OK), RF_DB_OK);
    CHECK_INT(rf_sqlite_classify(SQLITE_DONE), RF_DB_OK);
    CHECK_INT(rf_sqlite_classify(SQLITE_CONSTRAINT_UNIQUE), RF_DB_UNIQUE);
    CHECK_INT(rf_sqlite_classify(SQLITE_CONSTRAINT_PRIMARYKEY), RF_DB_UNIQUE);
    CHECK_INT(rf_sqlite_classify(SQLITE_CONSTRAINT_NOTNULL), RF_DB_ERROR);
    CHECK_INT(rf_sqlite_classify(SQLITE_CONSTRAINT_FOREIGNKEY), RF_DB_FOREIGN);
    CHECK_INT(rf_sqlite_classify(SQLITE_BUSY), RF_DB_RETRY);
    CHECK_INT(rf_sqlite_classify(SQLITE_BUSY_SNAPSHOT), RF_DB_RETRY);
    CHECK_INT(rf_sqlite_classify(SQLITE_BUSY_RECOVERY), RF_DB_RETRY);
    CHECK_INT(rf_sqlite_classify(SQLITE_LOCKED), RF_DB_RETRY);
    CHECK_INT(rf_sqlite_classify(SQLITE_LOCKED_SHAREDCACHE), RF_DB_RETRY);
    CHECK_INT(rf_sqlite_classify(SQLITE_CANTOPEN), RF_DB_UNAVAILABLE);
    CHECK_INT(rf_sqlite_classify(SQLITE_IOERR_FSYNC), RF_DB_UNAVAILABLE);
    CHECK_INT(rf_sqlite_classify(SQLITE_FULL), RF_DB_FULL);
    CHECK_INT(rf_sqlite_classify(SQLITE_READONLY), RF_DB_UNAVAILABLE);
    CHECK_INT(rf_sqlite_classify(SQLITE_ERROR), RF_DB_ERROR);
    CHECK_INT(rf_sqlite_classify(SQLITE_MISUSE), RF_DB_ERROR);
    /* What /metrics counts each retry as. */
    CHECK_INT(rf_sqlite_retry_reason(SQLITE_BUSY), RF_DB_RETRY_BUSY);
    CHECK_INT(rf_sqlite_retry_reason(SQLITE_BUSY_SNAPSHOT), RF_DB_RETRY_BUSY);
    CHECK_INT(rf_sqlite_retry_reason(SQLITE_BUSY_RECOVERY), RF_DB_RETRY_BUSY);
    CHECK_INT(rf_sqlite_retry_reason(SQLITE_PROTOCOL), RF_DB_RETRY_BUSY);
    CHECK_INT(rf_sqlite_retry_reason(SQLITE_LOCKED), RF_DB_RETRY_LOCKED);
    CHECK_INT(rf_sqlite_retry_reason(SQLITE_LOCKED_SHAREDCACHE), RF_DB_RETRY_LOCKED);
    CHECK_INT(rf_sqlite_retry_reason(SQLITE_CONSTRAINT_FOREIGNKEY), RF_DB_RETRY_OTHER);
    CHECK_INT(rf_sqlite_retry_reason(SQLITE_IOERR_FSYNC), RF_DB_RETRY_OTHER);
}

static void tmpname(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/rf-unit-%s-%d.db", tag, (int)getpid());
    char side[300];
    unlink(buf);
    snprintf(side, sizeof(side), "%s-wal", buf);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", buf);
    unlink(side);
}

/* Two raw connections on one file: the second writer gets a real
 * SQLITE_BUSY, which must classify as retryable. */
void test_sqlite_real_busy(void)
{
    char path[256];
    tmpname(path, sizeof(path), "busy");
    sqlite3 *a, *b;
    CHECK_INT(sqlite3_open(path, &a), SQLITE_OK);
    CHECK_INT(sqlite3_open(path, &b), SQLITE_OK);
    sqlite3_extended_result_codes(b, 1);
    CHECK_INT(sqlite3_exec(a, "PRAGMA journal_mode=WAL; CREATE TABLE t(x)", 0, 0, 0), SQLITE_OK);
    CHECK_INT(sqlite3_exec(a, "BEGIN IMMEDIATE", 0, 0, 0), SQLITE_OK);
    int rc = sqlite3_exec(b, "BEGIN IMMEDIATE", 0, 0, 0);
    int ext = sqlite3_extended_errcode(b);
    sqlite3_exec(a, "ROLLBACK", 0, 0, 0);
    sqlite3_close(a);
    sqlite3_close(b);
    tmpname(path, sizeof(path), "busy");
    CHECK_INT(rc & 0xff, SQLITE_BUSY);
    CHECK_INT(rf_sqlite_classify(ext), RF_DB_RETRY);
    CHECK_INT(rf_sqlite_retry_reason(ext), RF_DB_RETRY_BUSY);
}

/* Inserts 'x' into u twice; test_pg.c runs it on PostgreSQL too. */
int unit_dup_tx(struct rf_db_conn *c, void *ctx, struct rf_db_error *e)
{
    (void)ctx;
    struct rf_db_param p[] = {RF_TEXT("x")};
    int rc = rf_db_exec(c, "INSERT INTO u (k) VALUES (?)", p, 1, NULL, NULL, e);
    if (rc == RF_DB_OK)
        rc = rf_db_exec(c, "INSERT INTO u (k) VALUES (?)", p, 1, NULL, NULL, e);
    return rc;
}

static int create_tx(struct rf_db_conn *c, void *ctx, struct rf_db_error *e)
{
    (void)ctx;
    return rf_db_exec(c, "CREATE TABLE u (k TEXT, CONSTRAINT u_k_key UNIQUE (k))", NULL, 0, NULL,
                      NULL, e);
}

/* The driver on a fresh temporary file named by tag. */
static int tmp_open(const char *tag, int nconn, struct rf_db **db, struct rf_db_error *e)
{
    char path[256], url[300];
    tmpname(path, sizeof(path), tag);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    return rf_db_open(url, nconn, db, e);
}

static void tmp_close(const char *tag, struct rf_db *db)
{
    char path[256];
    rf_db_close(db);
    tmpname(path, sizeof(path), tag);
}

void test_sqlite_driver_unique(void)
{
    struct rf_db *db;
    struct rf_db_error e;
    CHECK_INT(tmp_open("uniq", 2, &db, &e), RF_DB_OK);
    int rc1 = rf_tx_run(db, NULL, RF_TX_WRITE, create_tx, NULL, &e);
    int rc2 = rf_tx_run(db, NULL, RF_TX_WRITE, unit_dup_tx, NULL, &e);
    tmp_close("uniq", db);
    CHECK_INT(rc1, RF_DB_OK);
    CHECK_INT(rc2, RF_DB_UNIQUE);
    CHECK(strstr(e.constraint, "u.k") != NULL);
}

static int always_busy(struct rf_db_conn *c, void *ctx, struct rf_db_error *e)
{
    (void)c;
    ++*(int *)ctx;
    return rf_db_fail(e, RF_DB_RETRY, "simulated busy");
}

void test_tx_run_retries_then_gives_up(void)
{
    struct rf_db *db;
    struct rf_db_error e;
    int runs = 0;
    CHECK_INT(tmp_open("retry", 1, &db, &e), RF_DB_OK);
    int rc = rf_tx_run(db, NULL, RF_TX_WRITE, always_busy, &runs, &e);
    tmp_close("retry", db);
    CHECK_INT(rc, RF_DB_RETRY);
    CHECK_INT(runs, RF_TX_MAX_ATTEMPTS);
    CHECK_INT(rf_db_open("mysql://x", 1, &db, &e), RF_DB_ERROR);
}
