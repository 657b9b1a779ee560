/* PostgreSQL driver: error classification and placeholder rewriting always;
 * the driver end to end only when RF_TEST_PG_URL names a server (e.g. from
 * scripts/pg.sh start DIR), else those tests pass without running. Each of
 * them works in a schema of its own, so runs can share one server. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "db/db.h"
#include "store/store.h"
#include "unit.h"

/* Not in db.h: src/db/pg.c exposes these for tests only. */
enum rf_db_err rf_pg_classify(const char *sqlstate, int connection_ok);
enum rf_db_retry_reason rf_pg_retry_reason(const char *sqlstate);
int rf_pg_placeholders(const char *sql, char *out, size_t outlen);
/* From test_db.c: inserts 'x' into u twice. */
int unit_dup_tx(struct rf_db_conn *c, void *ctx, struct rf_db_error *e);

void test_pg_classify(void);
void test_pg_placeholders(void);
void test_pg_open_unreachable(void);
void test_pg_open_bad_url(void);
void test_pg_unique(void);
void test_pg_params(void);
void test_pg_returning(void);
void test_pg_serialization_retry(void);
void test_pg_migrate_concurrent(void);
void test_pg_store_users(void);
void test_pg_stale_statement(void);
void test_pg_reconnect(void);
void test_pg_reconnect_prepare(void);
void test_pg_pool_threads(void);
void test_pg_recycled_sql(void);
void test_pg_user_batch(void);

void test_pg_classify(void)
{
    static const struct {
        const char *state;
        int ok;
        enum rf_db_err want;
    } cases[] = {
        {"23505", 1, RF_DB_UNIQUE},
        {"40001", 1, RF_DB_RETRY},
        {"40P01", 1, RF_DB_RETRY},
        {"55P03", 1, RF_DB_RETRY},
        {"08006", 1, RF_DB_UNAVAILABLE},
        {"08001", 1, RF_DB_UNAVAILABLE},
        {"08003", 1, RF_DB_UNAVAILABLE},
        {"57P01", 1, RF_DB_UNAVAILABLE},
        {"57P02", 1, RF_DB_UNAVAILABLE},
        {"57P03", 1, RF_DB_UNAVAILABLE},
        {"53300", 1, RF_DB_UNAVAILABLE},
        {"53100", 1, RF_DB_FULL},
        {"25006", 1, RF_DB_UNAVAILABLE},
        {"22P02", 1, RF_DB_ERROR},
        {"42P01", 1, RF_DB_ERROR},
        {"42601", 1, RF_DB_ERROR},
        {"23503", 1, RF_DB_FOREIGN},
        {"23502", 1, RF_DB_ERROR},
        {"40002", 1, RF_DB_ERROR},
        {"57014", 1, RF_DB_ERROR},
        {"0A000", 1, RF_DB_ERROR},
        {"00000", 1, RF_DB_OK},
        {"", 1, RF_DB_ERROR},
        {"235", 1, RF_DB_ERROR},
        {NULL, 1, RF_DB_ERROR},
        {NULL, 0, RF_DB_UNAVAILABLE},
        {"23505", 0, RF_DB_UNAVAILABLE},
        {"57P01", 0, RF_DB_UNAVAILABLE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum rf_db_err got = rf_pg_classify(cases[i].state, cases[i].ok);
        if (got != cases[i].want) {
            unit_fail(__FILE__, __LINE__, "classify(%s, %d) == %d, want %d",
                      cases[i].state ? cases[i].state : "NULL", cases[i].ok, got, cases[i].want);
            return;
        }
    }
    /* What /metrics counts each retry as. */
    CHECK_INT(rf_pg_retry_reason("40001"), RF_DB_RETRY_SERIALIZATION);
    CHECK_INT(rf_pg_retry_reason("40P01"), RF_DB_RETRY_DEADLOCK);
    CHECK_INT(rf_pg_retry_reason("55P03"), RF_DB_RETRY_LOCK_TIMEOUT);
    CHECK_INT(rf_pg_retry_reason("23505"), RF_DB_RETRY_OTHER);
    CHECK_INT(rf_pg_retry_reason("0A000"), RF_DB_RETRY_OTHER);
    CHECK_INT(rf_pg_retry_reason(NULL), RF_DB_RETRY_OTHER);
}

void test_pg_placeholders(void)
{
    static const struct {
        const char *in, *out;
        int n;
    } cases[] = {
        {"SELECT 1", "SELECT 1", 0},
        {"SELECT ?, ?", "SELECT $1, $2", 2},
        {"INSERT INTO t (a, b) VALUES (?, '?') RETURNING ?",
         "INSERT INTO t (a, b) VALUES ($1, '?') "
         "RETURNING $2",
         2},
        {"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1},
        {"SELECT E'a\\'?', ?", "SELECT E'a\\'?', $1", 1},
        {"SELECT \"col?\" FROM t WHERE x = ?", "SELECT \"col?\" FROM t WHERE x = $1", 1},
        {"SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2", 2},
        {"SELECT /* a ? /* b ? */ c ? */ ?", "SELECT /* a ? /* b ? */ c ? */ $1", 1},
        {"SELECT $$a ? b$$, $q$ ? $$ ? $q$, ?", "SELECT $$a ? b$$, $q$ ? $$ ? $q$, $1", 1},
        {"SELECT a$b, ?", "SELECT a$b, $1", 1},
        {"SELECT 'unterminated ?", "SELECT 'unterminated ?", 0},
        {"?????????????", "$1$2$3$4$5$6$7$8$9$10$11$12$13", 13},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_INT(rf_pg_placeholders(cases[i].in, NULL, 0), cases[i].n);
        CHECK_INT(rf_pg_placeholders(cases[i].in, buf, sizeof(buf)), cases[i].n);
        CHECK_STR(buf, cases[i].out);
        CHECK(strlen(buf) <= strlen(cases[i].in) + 6 * (size_t)cases[i].n);
    }
    /* A short buffer truncates, still terminated. */
    CHECK_INT(rf_pg_placeholders("SELECT ?, ?", buf, 9), 2);
    CHECK_STR(buf, "SELECT $");
}

/* Nothing listens on port 1: open fails at once as an outage, and the
 * message does not carry the password. */
void test_pg_open_unreachable(void)
{
    struct rf_db *db = (struct rf_db *)1;
    struct rf_db_error e;
    CHECK_INT(rf_db_open("postgres://u:s3cr3tPW@127.0.0.1:1/db?connect_timeout=3", 2, &db, &e),
              RF_DB_UNAVAILABLE);
    CHECK(db == NULL);
    CHECK(strstr(e.detail, "s3cr3tPW") == NULL);
    CHECK(strstr(e.detail, "pg: cannot connect") != NULL);
    CHECK(strchr(e.detail, '\n') == NULL);
    CHECK_INT(rf_db_open("postgres://u@127.0.0.1:1/db?password=an0therSecret&connect_timeout=3", 1,
                         &db, &e),
              RF_DB_UNAVAILABLE);
    CHECK(strstr(e.detail, "an0therSecret") == NULL);
}

void test_pg_open_bad_url(void)
{
    struct rf_db *db;
    struct rf_db_error e;
    CHECK_INT(rf_db_open("postgresql://u:pw@127.0.0.1:1/db?nosuchparam=1", 1, &db, &e),
              RF_DB_ERROR);
    CHECK(db == NULL);
    CHECK(strstr(e.detail, "nosuchparam") != NULL);
    /* A parse error may quote the raw text back: the password is cut out. */
    CHECK_INT(rf_db_open("postgres://u:pw%zzSecret@127.0.0.1:1/db", 1, &db, &e), RF_DB_ERROR);
    CHECK(strstr(e.detail, "zzSecret") == NULL);
    CHECK(strstr(e.detail, "invalid URL") != NULL);
}

/* ---- against a real server ---- */

static const char *server_url(void)
{
    const char *u = getenv("RF_TEST_PG_URL");
    return u && *u ? u : NULL;
}

/* One statement outside any transaction, on a connection of its own. */
static int admin_exec(const char *sql)
{
    struct rf_db *db;
    struct rf_db_conn *c;
    struct rf_db_error e;
    int rc = rf_db_open(server_url(), 1, &db, &e);
    if (rc != RF_DB_OK) {
        fprintf(stderr, "  test_pg: %s\n", e.detail);
        return rc;
    }
    rc = rf_db_acquire(db, 1, &c, &e);
    if (rc == RF_DB_OK) {
        rc = rf_db_exec(c, sql, NULL, 0, NULL, NULL, &e);
        rf_db_release(db, c);
    }
    if (rc != RF_DB_OK)
        fprintf(stderr, "  test_pg: %s: %s\n", sql, e.detail);
    rf_db_close(db);
    return rc;
}

/* A test's private schema, first on its search_path. */
struct scratch {
    char schema[64];
    char url[1024];
};

static int scratch_open(struct scratch *s, const char *tag, int nconn, struct rf_db **db)
{
    static int seq;
    char sql[200];
    struct rf_db_error e;
    const char *base = server_url();
    snprintf(s->schema, sizeof(s->schema), "rf_unit_%s_%d_%d", tag, (int)getpid(), ++seq);
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", s->schema);
    if (admin_exec(sql) != RF_DB_OK)
        return -1;
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", s->schema);
    if (admin_exec(sql) != RF_DB_OK)
        return -1;
    snprintf(s->url, sizeof(s->url), "%s%soptions=-csearch_path%%3D%s", base,
             strchr(base, '?') ? "&" : "?", s->schema);
    if (!db)
        return 0;
    if (rf_db_open(s->url, nconn, db, &e) != RF_DB_OK) {
        fprintf(stderr, "  test_pg: %s\n", e.detail);
        return -1;
    }
    return 0;
}

static void scratch_close(struct scratch *s, struct rf_db *db)
{
    char sql[200];
    rf_db_close(db);
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", s->schema);
    admin_exec(sql);
}

static int exec_tx(struct rf_db_conn *c, void *sql, struct rf_db_error *e)
{
    return rf_db_exec(c, sql, NULL, 0, NULL, NULL, e);
}

void test_pg_unique(void)
{
    struct scratch s;
    struct rf_db *db;
    struct rf_db_error e;
    if (!server_url())
        return;
    CHECK(scratch_open(&s, "uniq", 2, &db) == 0);
    int rc1 = rf_tx_run(db, NULL, RF_TX_WRITE, exec_tx,
                        "CREATE TABLE u (k TEXT, CONSTRAINT u_k_key UNIQUE (k))", &e);
    int rc2 = rf_tx_run(db, NULL, RF_TX_WRITE, unit_dup_tx, NULL, &e);
    struct rf_db_error e2 = e;
    /* The failed transaction left nothing behind and the connection works. */
    int rc3 = rf_tx_run(db, NULL, RF_TX_WRITE, exec_tx, "INSERT INTO u (k) VALUES ('x')", &e);
    scratch_close(&s, db);
    CHECK_INT(rc1, RF_DB_OK);
    CHECK_INT(rc2, RF_DB_UNIQUE);
    CHECK_STR(e2.constraint, "u_k_key");
    CHECK(strstr(e2.detail, "(23505)") != NULL);
    CHECK_INT(rc3, RF_DB_OK);
}

struct rows_ctx {
    struct rf_arena *a;
    struct rf_db_rows rows;
};

/* What a test against the server works in: its scratch schema with a pool
 * on it, an arena, and rows for a transaction to fill. */
struct pg_fix {
    struct scratch s;
    struct rf_db *db;
    struct rf_db_error e;
    struct rf_arena a;
    struct rows_ctx ctx;
};

/* 1: go on. 0: return at once, the test skipped (no server) or failed (no
 * scratch schema). The caller closes t->s and frees t->a. */
static int fix_open(struct pg_fix *t, const char *tag, int nconn)
{
    if (!server_url())
        return 0;
    if (scratch_open(&t->s, tag, nconn, &t->db) != 0) {
        unit_fail(__FILE__, __LINE__, "scratch_open(\"%s\", %d) failed", tag, nconn);
        return 0;
    }
    rf_arena_init(&t->a, 0);
    t->ctx = (struct rows_ctx){.a = &t->a};
    return 1;
}

static int params_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rows_ctx *ctx = arg;
    struct rf_db_param p[] = {
        RF_TEXT("it's \"quoted\" ?"),
        RF_INT(-9007199254740993LL),
        RF_TEXT(NULL),
        RF_TEXT("é ü ß"),
        RF_INT(1),
        RF_TEXT(""),
    };
    int rc = rf_db_exec(c,
                        "SELECT ?, CAST(? AS BIGINT), ?, 'lit?''x', ?,"
                        " CASE WHEN ? = 1 THEN ? ELSE 'no' END, NULL, 1 = 1",
                        p, 6, ctx->a, &ctx->rows, e);
    return rc;
}

void test_pg_params(void)
{
    struct pg_fix t;
    if (!fix_open(&t, "params", 1))
        return;
    int rc = rf_tx_run(t.db, NULL, RF_TX_READ, params_tx, &t.ctx, &t.e);
    /* Twice: the second run goes through the prepared statement. */
    int rc2 = rc == RF_DB_OK ? rf_tx_run(t.db, NULL, RF_TX_READ, params_tx, &t.ctx, &t.e) : rc;
    scratch_close(&t.s, t.db);
    if (rc2 != RF_DB_OK)
        fprintf(stderr, "  %s\n", t.e.detail);
    CHECK_INT(rc, RF_DB_OK);
    CHECK_INT(rc2, RF_DB_OK);
    const struct rf_db_rows *r = &t.ctx.rows;
    CHECK_INT(r->nrows, 1);
    CHECK_INT(r->ncols, 8);
    CHECK_STR(rf_db_cell(r, 0, 0), "it's \"quoted\" ?");
    CHECK_STR(rf_db_cell(r, 0, 1), "-9007199254740993");
    CHECK(rf_db_cell(r, 0, 2) == NULL);
    CHECK_STR(rf_db_cell(r, 0, 3), "lit?'x");
    CHECK_STR(rf_db_cell(r, 0, 4), "é ü ß");
    CHECK_STR(rf_db_cell(r, 0, 5), "");
    CHECK(rf_db_cell(r, 0, 6) == NULL);
    CHECK_STR(rf_db_cell(r, 0, 7), "t");
    rf_arena_free(&t.a);
}

static int returning_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rows_ctx *ctx = arg;
    int rc = rf_db_exec(c, "CREATE TABLE r (k TEXT PRIMARY KEY, n BIGINT NOT NULL)", NULL, 0, NULL,
                        NULL, e);
    for (int i = 0; i < 3 && rc == RF_DB_OK; i++) {
        struct rf_db_param p[] = {RF_TEXT("a"), RF_INT(10)};
        /* A counter row: insert, then bump on conflict (the slug pattern). */
        rc = rf_db_exec(c,
                        "INSERT INTO r (k, n) VALUES (?, ?)"
                        " ON CONFLICT (k) DO UPDATE SET n = r.n + 1 RETURNING k, n",
                        p, 2, ctx->a, &ctx->rows, e);
    }
    if (rc != RF_DB_OK || ctx->rows.nrows != 1 || strcmp(rf_db_cell(&ctx->rows, 0, 1), "12"))
        return rc != RF_DB_OK ? rc : rf_db_fail(e, RF_DB_ERROR, "counter not 12");
    struct rf_db_param q[] = {RF_TEXT("a")};
    rc = rf_db_exec(c, "INSERT INTO r (k, n) VALUES (?, 0) ON CONFLICT (k) DO NOTHING RETURNING k",
                    q, 1, ctx->a, &ctx->rows, e);
    if (rc != RF_DB_OK || ctx->rows.nrows != 0 || ctx->rows.ncols != 1)
        return rc != RF_DB_OK ? rc : rf_db_fail(e, RF_DB_ERROR, "DO NOTHING returned a row");
    rc = rf_db_exec(c, "INSERT INTO r (k, n) VALUES ('b', 1), ('c', 2) RETURNING k, n", NULL, 0,
                    ctx->a, &ctx->rows, e);
    return rc;
}

void test_pg_returning(void)
{
    struct pg_fix t;
    if (!fix_open(&t, "ret", 1))
        return;
    int rc = rf_tx_run(t.db, NULL, RF_TX_WRITE, returning_tx, &t.ctx, &t.e);
    scratch_close(&t.s, t.db);
    if (rc != RF_DB_OK)
        fprintf(stderr, "  %s\n", t.e.detail);
    CHECK_INT(rc, RF_DB_OK);
    CHECK_INT(t.ctx.rows.nrows, 2);
    CHECK_INT(t.ctx.rows.ncols, 2);
    CHECK_STR(rf_db_cell(&t.ctx.rows, 0, 0), "b");
    CHECK_STR(rf_db_cell(&t.ctx.rows, 1, 1), "2");
    rf_arena_free(&t.a);
}

/* Write skew under SERIALIZABLE (the on-call doctors example): both read
 * that two are on call, each takes one off; PostgreSQL fails the second
 * COMMIT with 40001, which must come back as RETRY. */
void test_pg_serialization_retry(void)
{
    struct scratch s;
    struct rf_db *db;
    struct rf_db_error e;
    struct rf_db_error e2 = {0};
    struct rf_db_conn *c[2] = {NULL, NULL};
    int rc;
    if (!server_url())
        return;
    CHECK(scratch_open(&s, "skew", 2, &db) == 0);
    rc = rf_tx_run(db, NULL, RF_TX_WRITE, exec_tx,
                   "CREATE TABLE oncall (id BIGINT PRIMARY KEY, on_call BIGINT)", &e);
    if (rc == RF_DB_OK)
        rc = rf_tx_run(db, NULL, RF_TX_WRITE, exec_tx, "INSERT INTO oncall VALUES (1, 1), (2, 1)",
                       &e);
    for (int i = 0; i < 2 && rc == RF_DB_OK; i++) {
        rc = rf_db_acquire(db, 1, &c[i], &e);
        if (rc == RF_DB_OK)
            rc = rf_db_begin(c[i], 1, &e);
        if (rc == RF_DB_OK)
            rc = rf_db_exec(c[i], "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", NULL, 0, NULL,
                            NULL, &e);
    }
    for (int i = 0; i < 2 && rc == RF_DB_OK; i++)
        rc = rf_db_exec(c[i], "SELECT count(*) FROM oncall WHERE on_call = 1", NULL, 0, NULL, NULL,
                        &e);
    int setup = rc, rc_update[2] = {-1, -1}, rc_commit[2] = {-1, -1};
    /* Both write before either commits: the conflict surfaces at COMMIT. */
    for (int i = 0; i < 2 && setup == RF_DB_OK; i++) {
        struct rf_db_param p[] = {RF_INT(i + 1)};
        rc_update[i] =
            rf_db_exec(c[i], "UPDATE oncall SET on_call = 0 WHERE id = ?", p, 1, NULL, NULL, &e);
    }
    for (int i = 0; i < 2 && setup == RF_DB_OK; i++) {
        rc_commit[i] = rf_db_commit(c[i], &e);
        if (rc_commit[i] != RF_DB_OK)
            e2 = e;
    }
    for (int i = 0; i < 2; i++) {
        if (c[i]) {
            rf_db_rollback(c[i]);
            rf_db_release(db, c[i]);
        }
    }
    scratch_close(&s, db);
    CHECK_INT(setup, RF_DB_OK);
    CHECK_INT(rc_update[0], RF_DB_OK);
    CHECK_INT(rc_update[1], RF_DB_OK);
    CHECK_INT(rc_commit[0], RF_DB_OK);
    CHECK_INT(rc_commit[1], RF_DB_RETRY);
    CHECK(strstr(e2.detail, "(40001)") != NULL);
    CHECK_INT(e2.retry, RF_DB_RETRY_SERIALIZATION);
}

struct migrate_arg {
    const char *url;
    pthread_barrier_t *start;
    int rc, applied;
};

/* Each thread stands for a process: its own pool, its own connections. */
static void *migrate_thread(void *p)
{
    struct migrate_arg *m = p;
    struct rf_db *db;
    struct rf_db_error e;
    m->rc = rf_db_open(m->url, 1, &db, &e);
    pthread_barrier_wait(m->start);
    if (m->rc != RF_DB_OK)
        return NULL;
    m->rc = rf_store_migrate(db, &m->applied, &e);
    if (m->rc != RF_DB_OK)
        fprintf(stderr, "  migrate: %s\n", e.detail);
    rf_db_close(db);
    return NULL;
}

static int count_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rows_ctx *ctx = arg;
    return rf_db_exec(c, "SELECT count(*), count(DISTINCT version) FROM schema_migrations", NULL, 0,
                      ctx->a, &ctx->rows, e);
}

void test_pg_migrate_concurrent(void)
{
    enum { N = 4 };
    struct scratch s;
    struct rf_db *db;
    struct rf_db_error e;
    struct rf_arena a;
    struct migrate_arg m[N];
    pthread_t th[N];
    pthread_barrier_t start;
    if (!server_url())
        return;
    CHECK(scratch_open(&s, "mig", 0, NULL) == 0);
    pthread_barrier_init(&start, NULL, N);
    for (int i = 0; i < N; i++) {
        m[i] = (struct migrate_arg){.url = s.url, .start = &start, .rc = -1};
        pthread_create(&th[i], NULL, migrate_thread, &m[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);

    int applied = 0, appliers = 0, rc = rf_db_open(s.url, 1, &db, &e);
    rf_arena_init(&a, 0);
    struct rows_ctx ctx = {.a = &a};
    if (rc == RF_DB_OK)
        rc = rf_tx_run(db, NULL, RF_TX_READ, count_tx, &ctx, &e);
    else
        db = NULL;
    /* Again, now that it is done: nothing to apply. */
    int again = -1, rc_again = db ? rf_store_migrate(db, &again, &e) : rc;
    scratch_close(&s, db);
    for (int i = 0; i < N; i++) {
        CHECK_INT(m[i].rc, RF_DB_OK);
        applied += m[i].applied;
        appliers += m[i].applied > 0;
    }
    CHECK_INT(rc, RF_DB_OK);
    CHECK_INT(appliers, 1);
    CHECK(applied >= 1);
    CHECK_INT(atoi(rf_db_cell(&ctx.rows, 0, 0)), applied);
    CHECK_INT(atoi(rf_db_cell(&ctx.rows, 0, 1)), applied);
    CHECK_INT(rc_again, RF_DB_OK);
    CHECK_INT(again, 0);
    rf_arena_free(&a);
}

/* The store's own SQL, unchanged, on PostgreSQL: create-if-missing, the
 * CASE-with-int-parameters update, a username conflict. */
void test_pg_store_users(void)
{
    struct rf_user u1, u2, u3;
    char ws[64], key[RF_ROOT_KEY_MAX], ws2[64], key2[RF_ROOT_KEY_MAX];
    int applied, exists = -1, exists2 = -1, created1 = -1, created2 = -1, created3 = -1;
    int found = -1, found2 = -1;
    struct pg_fix t;
    if (!fix_open(&t, "store", 2))
        return;
    CHECK_INT(rf_util_init(), 0);
    int rc = rf_store_migrate(t.db, &applied, &t.e);
    if (rc == RF_DB_OK)
        rc = rf_store_workspace_create(t.db, "w1", ws, key, &exists, &t.e);
    if (rc == RF_DB_OK)
        rc = rf_store_workspace_create(t.db, "w1", ws2, key2, &exists2, &t.e);
    if (rc == RF_DB_OK)
        rc = rf_store_user_create(t.db, NULL, &t.a, ws, "ann@example.com", "Ann", &u1, &created1,
                                  &t.e);
    if (rc == RF_DB_OK)
        rc = rf_store_user_create(t.db, NULL, &t.a, ws, "ann@example.com", NULL, &u2, &created2,
                                  &t.e);
    if (rc == RF_DB_OK)
        rc = rf_store_user_create(t.db, NULL, &t.a, ws, "bob@example.com", NULL, &u3, &created3,
                                  &t.e);
    struct rf_user_patch claim = {.set_username = 1, .username = "Ann-1"};
    struct rf_user_patch steal = {.set_username = 1, .username = "ANN-1"};
    struct rf_user upd;
    if (rc == RF_DB_OK)
        rc = rf_store_user_update(t.db, NULL, &t.a, ws, u1.id, &claim, &upd, &found, &t.e);
    int rc_steal = RF_DB_ERROR;
    struct rf_db_error es = {0};
    if (rc == RF_DB_OK)
        rc_steal = rf_store_user_update(t.db, NULL, &t.a, ws, u3.id, &steal, &u3, &found2, &es);
    const char *auth_ws = NULL;
    int64_t auth_expires = -1;
    if (rc == RF_DB_OK)
        rc = rf_store_auth(t.db, &t.a, key, &auth_ws, &auth_expires, &t.e);
    if (rc == RF_DB_OK)
        rc = rf_store_ping(t.db, &t.e);
    scratch_close(&t.s, t.db);
    if (rc != RF_DB_OK)
        fprintf(stderr, "  %s\n", t.e.detail);
    CHECK_INT(rc, RF_DB_OK);
    CHECK(applied >= 1);
    CHECK_INT(exists, 0);
    CHECK_INT(exists2, 1);
    CHECK_INT(created1, 1);
    CHECK_INT(created2, 0);
    CHECK_INT(created3, 1);
    CHECK_STR(u2.id, u1.id);
    CHECK_STR(u2.name, "Ann");
    CHECK_INT(found, 1);
    CHECK_STR(upd.username, "Ann-1");
    CHECK_STR(upd.name, "Ann");
    CHECK_INT(rc_steal, RF_DB_UNIQUE);
    CHECK_STR(es.constraint, "users_ws_username_key");
    CHECK_STR(auth_ws, ws);
    rf_arena_free(&t.a);
}

static const char *const sel_t = "SELECT * FROM t WHERE a = ?";

static int sel_t_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rows_ctx *ctx = arg;
    struct rf_db_param p[] = {RF_INT(1)};
    return rf_db_exec(c, sel_t, p, 1, ctx->a, &ctx->rows, e);
}

/* A prepared "SELECT *" whose table gains a column fails with 0A000
 * ("cached plan must not change result type"): outside a transaction the
 * driver prepares it again at once, inside one tx_run retries. */
void test_pg_stale_statement(void)
{
    struct rf_db_conn *c;
    struct pg_fix t;
    if (!fix_open(&t, "stale", 1))
        return;
    struct rf_tx_stats before, after;
    int rc = rf_tx_run(t.db, NULL, RF_TX_WRITE, exec_tx, "CREATE TABLE t (a BIGINT)", &t.e);
    if (rc == RF_DB_OK)
        rc = rf_tx_run(t.db, NULL, RF_TX_WRITE, exec_tx, "INSERT INTO t VALUES (1)", &t.e);
    if (rc == RF_DB_OK)
        rc = rf_tx_run(t.db, NULL, RF_TX_READ, sel_t_tx, &t.ctx, &t.e);
    int cols1 = t.ctx.rows.ncols;
    if (rc == RF_DB_OK)
        rc = rf_tx_run(t.db, NULL, RF_TX_WRITE, exec_tx,
                       "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'", &t.e);
    rf_tx_stats_get(&before);
    /* Inside a transaction (write=1: reads run in autocommit) the stale
     * plan aborts it: tx_run must run it again. */
    if (rc == RF_DB_OK)
        rc = rf_tx_run(t.db, NULL, RF_TX_WRITE, sel_t_tx, &t.ctx, &t.e);
    rf_tx_stats_get(&after);
    int cols2 = t.ctx.rows.ncols;
    /* Autocommit, no tx_run: the driver's own re-prepare. */
    if (rc == RF_DB_OK)
        rc = rf_tx_run(t.db, NULL, RF_TX_WRITE, exec_tx,
                       "ALTER TABLE t ADD COLUMN c TEXT DEFAULT 'y'", &t.e);
    if (rc == RF_DB_OK && (rc = rf_db_acquire(t.db, 0, &c, &t.e)) == RF_DB_OK) {
        rc = sel_t_tx(c, &t.ctx, &t.e);
        rf_db_release(t.db, c);
    }
    int cols3 = t.ctx.rows.ncols;
    scratch_close(&t.s, t.db);
    if (rc != RF_DB_OK)
        fprintf(stderr, "  %s\n", t.e.detail);
    CHECK_INT(rc, RF_DB_OK);
    CHECK_INT(cols1, 1);
    CHECK_INT(cols2, 2);
    CHECK(after.retries >= before.retries + 1);
    CHECK_INT(cols3, 3);
    CHECK_STR(rf_db_cell(&t.ctx.rows, 0, 2), "y");
    rf_arena_free(&t.a);
}

static int pid_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rows_ctx *ctx = arg;
    return rf_db_exec(c, "SELECT pg_backend_pid()", NULL, 0, ctx->a, &ctx->rows, e);
}

static int pid_param_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rows_ctx *ctx = arg;
    struct rf_db_param q[] = {RF_TEXT("x")};
    return rf_db_exec(c, "SELECT pg_backend_pid(), ?::text", q, 1, ctx->a, &ctx->rows, e);
}

/* The server ends our idle session (as a restart would); then `next` must
 * run on a fresh session instead of failing. */
static void reconnect_after_kill(const char *schema, rf_tx_fn next)
{
    char sql[128];
    struct pg_fix t;
    if (!fix_open(&t, schema, 1))
        return;
    int rc = rf_tx_run(t.db, NULL, RF_TX_READ, pid_tx, &t.ctx, &t.e);
    const char *pid1 = rc == RF_DB_OK ? rf_db_cell(&t.ctx.rows, 0, 0) : "0";
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%s)", pid1);
    int rc_kill = admin_exec(sql);
    usleep(100 * 1000);
    int rc2 = rf_tx_run(t.db, NULL, RF_TX_READ, next, &t.ctx, &t.e);
    const char *pid2 = rc2 == RF_DB_OK ? rf_db_cell(&t.ctx.rows, 0, 0) : "0";
    scratch_close(&t.s, t.db);
    if (rc2 != RF_DB_OK)
        fprintf(stderr, "  %s\n", t.e.detail);
    CHECK_INT(rc, RF_DB_OK);
    CHECK_INT(rc_kill, RF_DB_OK);
    CHECK_INT(rc2, RF_DB_OK);
    CHECK(strcmp(pid1, pid2) != 0);
    rf_arena_free(&t.a);
}

/* A statement without parameters (never prepared): the dropped session
 * shows at execute. */
void test_pg_reconnect(void)
{
    reconnect_after_kill("reconn", pid_tx);
}

/* A statement with parameters this session never prepared: the dropped
 * session shows at PREPARE, which must replace it too (it once answered
 * 503 in the first seconds after a restart). */
void test_pg_reconnect_prepare(void)
{
    reconnect_after_kill("reconnp", pid_param_tx);
}

struct pool_arg {
    struct rf_db *db;
    int id, rc;
};

static int pool_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct pool_arg *p = arg;
    struct rf_arena a;
    struct rf_db_rows rows;
    char k[32];
    /* A row per thread: under SERIALIZABLE a shared hot row would turn this
     * into a retry-budget test. */
    snprintf(k, sizeof(k), "t%d", p->id);
    struct rf_db_param q[] = {RF_TEXT(k)};
    rf_arena_init(&a, 0);
    int rc = rf_db_exec(c,
                        "INSERT INTO c (k, n) VALUES (?, 1)"
                        " ON CONFLICT (k) DO UPDATE SET n = c.n + 1 RETURNING n",
                        q, 1, &a, &rows, e);
    if (rc == RF_DB_OK && rows.nrows != 1)
        rc = rf_db_fail(e, RF_DB_ERROR, "no row returned");
    rf_arena_free(&a);
    return rc;
}

static void *pool_thread(void *arg)
{
    struct pool_arg *p = arg;
    struct rf_db_error e;
    for (int i = 0; i < 50 && p->rc == RF_DB_OK; i++) {
        p->rc = rf_tx_run(p->db, NULL, RF_TX_WRITE, pool_tx, p, &e);
        if (p->rc != RF_DB_OK)
            fprintf(stderr, "  pool: %s\n", e.detail);
    }
    return NULL;
}

/* Eight threads on a pool of three: they wait for a connection, never share
 * one, and every increment lands. */
void test_pg_pool_threads(void)
{
    enum { N = 8 };
    struct pool_arg p[N];
    pthread_t th[N];
    struct pg_fix t;
    if (!fix_open(&t, "pool", 3))
        return;
    int rc = rf_tx_run(t.db, NULL, RF_TX_WRITE, exec_tx,
                       "CREATE TABLE c (k TEXT PRIMARY KEY, n BIGINT)", &t.e);
    for (int i = 0; i < N; i++) {
        p[i] = (struct pool_arg){.db = t.db, .id = i, .rc = rc};
        pthread_create(&th[i], NULL, pool_thread, &p[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    struct rf_db_conn *c;
    if (rc == RF_DB_OK && (rc = rf_db_acquire(t.db, 0, &c, &t.e)) == RF_DB_OK) {
        rc = rf_db_exec(c, "SELECT sum(n), count(*) FROM c", NULL, 0, &t.a, &t.ctx.rows, &t.e);
        rf_db_release(t.db, c);
    }
    scratch_close(&t.s, t.db);
    CHECK_INT(rc, RF_DB_OK);
    for (int i = 0; i < N; i++)
        CHECK_INT(p[i].rc, RF_DB_OK);
    CHECK_STR(rf_db_cell(&t.ctx.rows, 0, 0), "400");
    CHECK_STR(rf_db_cell(&t.ctx.rows, 0, 1), "8");
    rf_arena_free(&t.a);
}

/* The statement cache is keyed by address; SQL built in a reused buffer
 * must still run as written, never as the statement prepared before. */
void test_pg_recycled_sql(void)
{
    struct rf_db_conn *c;
    struct rf_db_rows r1 = {0}, r2 = {0};
    char sql[64];
    struct pg_fix t;
    if (!fix_open(&t, "recyc", 1))
        return;
    struct rf_db_param p[] = {RF_TEXT("x")};
    int rc = rf_db_acquire(t.db, 0, &c, &t.e);
    if (rc == RF_DB_OK) {
        snprintf(sql, sizeof(sql), "SELECT ? || 'a'");
        rc = rf_db_exec(c, sql, p, 1, &t.a, &r1, &t.e);
        snprintf(sql, sizeof(sql), "SELECT ? || 'b'");
        if (rc == RF_DB_OK)
            rc = rf_db_exec(c, sql, p, 1, &t.a, &r2, &t.e);
        rf_db_release(t.db, c);
    }
    scratch_close(&t.s, t.db);
    CHECK_INT(rc, RF_DB_OK);
    CHECK_STR(rf_db_cell(&r1, 0, 0), "xa");
    CHECK_STR(rf_db_cell(&r2, 0, 0), "xb");
    rf_arena_free(&t.a);
}

/* Coalesced user creates (store/users.c): many threads creating an
 * overlapping set of emails in two workspaces at once. Whatever batches
 * form, each (workspace, email) is created exactly once, every call for it
 * returns that row, and a duplicate inside one batch is "existing". */
#define UB_THREADS 12
#define UB_CALLS 40
#define UB_EMAILS 8

struct ub_arg {
    struct rf_db *db;
    const char *ws[2];
    pthread_barrier_t *start;
    char ids[UB_CALLS][RF_ID_MAX];
    int wsi[UB_CALLS], email[UB_CALLS], created[UB_CALLS], rc;
};

static void *ub_worker(void *p)
{
    struct ub_arg *u = p;
    struct rf_arena a;
    rf_arena_init(&a, 0);
    pthread_barrier_wait(u->start);
    for (int j = 0; j < UB_CALLS && u->rc == RF_DB_OK; j++) {
        char email[64];
        struct rf_user out = {0};
        struct rf_db_error e;
        u->wsi[j] = (j / UB_EMAILS) % 2;
        u->email[j] = j % UB_EMAILS;
        snprintf(email, sizeof(email), "e%d@batch.example", u->email[j]);
        u->rc = rf_store_user_create(u->db, NULL, &a, u->ws[u->wsi[j]], email, NULL, &out,
                                     &u->created[j], &e);
        if (u->rc == RF_DB_OK)
            snprintf(u->ids[j], sizeof(u->ids[j]), "%s", out.id);
        else
            fprintf(stderr, "  create: %s\n", e.detail);
    }
    rf_arena_free(&a);
    return NULL;
}

void test_pg_user_batch(void)
{
    struct scratch s;
    struct rf_db *db;
    struct rf_db_error e;
    char ws[2][64], key[RF_ROOT_KEY_MAX];
    int applied, exists;
    if (!server_url())
        return;
    CHECK_INT(rf_util_init(), 0);
    CHECK(scratch_open(&s, "batch", UB_THREADS, &db) == 0);
    int rc = rf_store_migrate(db, &applied, &e);
    if (rc == RF_DB_OK)
        rc = rf_store_workspace_create(db, "b1", ws[0], key, &exists, &e);
    if (rc == RF_DB_OK)
        rc = rf_store_workspace_create(db, "b2", ws[1], key, &exists, &e);
    if (rc != RF_DB_OK) {
        scratch_close(&s, db);
        CHECK_INT(rc, RF_DB_OK);
    }
    static struct ub_arg args[UB_THREADS];
    pthread_t th[UB_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, UB_THREADS);
    for (int t = 0; t < UB_THREADS; t++) {
        memset(&args[t], 0, sizeof(args[t]));
        args[t].db = db;
        args[t].ws[0] = ws[0];
        args[t].ws[1] = ws[1];
        args[t].start = &start;
        pthread_create(&th[t], NULL, ub_worker, &args[t]);
    }
    for (int t = 0; t < UB_THREADS; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);
    scratch_close(&s, db);

    const char *id_of[2][UB_EMAILS] = {{0}};
    int creates[2][UB_EMAILS] = {{0}};
    for (int t = 0; t < UB_THREADS; t++) {
        CHECK_INT(args[t].rc, RF_DB_OK);
        for (int j = 0; j < UB_CALLS; j++) {
            int w = args[t].wsi[j], m = args[t].email[j];
            creates[w][m] += args[t].created[j];
            if (!id_of[w][m])
                id_of[w][m] = args[t].ids[j];
            CHECK_STR(args[t].ids[j], id_of[w][m]);
        }
    }
    for (int w = 0; w < 2; w++)
        for (int m = 0; m < UB_EMAILS; m++) {
            CHECK_INT(creates[w][m], 1);
            CHECK(strcmp(id_of[0][m], id_of[1][m]) != 0);
        }
}
