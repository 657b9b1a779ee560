/* PostgreSQL driver (libpq): a pool of connections, any of which may write
 * (PostgreSQL has row locks, not one writer), plain BEGIN so the server's
 * default isolation applies, '?' rewritten to $n and prepared once per
 * connection. A connection lost to a restart or failover is replaced on the
 * next acquire or, when the loss shows up at BEGIN, at once: nothing of the
 * transaction has run yet, so no request sees an error after an outage ends.
 *
 * A failed statement aborts the whole PostgreSQL transaction (SQLite would
 * carry on): callers return the error from their tx body and let tx_run end
 * the transaction, never run another statement after RF_DB_UNIQUE. */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"

/* Exposed for unit tests (prototypes repeated in tests/unit/test_pg.c). */
enum rf_db_err rf_pg_classify(const char *sqlstate, int connection_ok);
enum rf_db_retry_reason rf_pg_retry_reason(const char *sqlstate);
int rf_pg_placeholders(const char *sql, char *out, size_t outlen);

#define STMT_CACHE 64
#define MAX_CONNS 1024
#define STACK_PARAMS 32
#define INT_TEXT 24 /* "-9223372036854775808" and a NUL */
/* "racefree" in ASCII: one lock id shared by every racefree process. */
#define MIGRATE_LOCK_SQL                                                                           \
    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED;"                                              \
    " SELECT pg_advisory_xact_lock(8241978080226338149)"

struct pg_db;

struct pg_conn {
    struct rf_db_conn base;
    struct pg_db *db;
    PGconn *h; /* NULL until first used, or after a failed reconnect */
    unsigned next_name;
    int dealloc_pending; /* cache dropped inside an aborted tx: DEALLOCATE ALL when idle */
    int ncache;
    struct {
        const char *sql; /* statements are string literals: the pointer is the key */
        uint64_t hash;   /* ...checked, so a recycled buffer never runs a stale plan */
        char name[16];
    } cache[STMT_CACHE];
};

struct pg_db {
    struct rf_db base;
    char *url;
    char *secret[2]; /* password as written in the URL and decoded: scrubbed from errors */
    struct rf_db_pool pool;
    struct pg_conn *conns;
    int nconns;
};

const struct rf_db_driver rf_db_pg;

/* SQLSTATEs with a meaning of their own here; other states go by class. */
static const struct {
    const char *state;
    enum rf_db_err code;
    enum rf_db_retry_reason retry;
} pg_states[] = {
    {"00000", RF_DB_OK, RF_DB_RETRY_OTHER},
    {"23505", RF_DB_UNIQUE, RF_DB_RETRY_OTHER},
    {"23503", RF_DB_FOREIGN, RF_DB_RETRY_OTHER},
    {"40001", RF_DB_RETRY, RF_DB_RETRY_SERIALIZATION},
    {"40P01", RF_DB_RETRY, RF_DB_RETRY_DEADLOCK},
    /* lock_timeout / NOWAIT: like SQLITE_BUSY */
    {"55P03", RF_DB_RETRY, RF_DB_RETRY_LOCK_TIMEOUT},
    /* disk_full, as SQLITE_FULL */
    {"53100", RF_DB_FULL, RF_DB_RETRY_OTHER},
    /* Shutdown and crash recovery, and 25006 (a standby after failover). */
    {"57P01", RF_DB_UNAVAILABLE, RF_DB_RETRY_OTHER},
    {"57P02", RF_DB_UNAVAILABLE, RF_DB_RETRY_OTHER},
    {"57P03", RF_DB_UNAVAILABLE, RF_DB_RETRY_OTHER},
    {"25006", RF_DB_UNAVAILABLE, RF_DB_RETRY_OTHER},
};
#define NSTATES (sizeof(pg_states) / sizeof(pg_states[0]))

/* Index in pg_states, or NSTATES. */
static size_t pg_state(const char *sqlstate)
{
    size_t i = 0;
    while (i < NSTATES && !(sqlstate && strcmp(sqlstate, pg_states[i].state) == 0))
        i++;
    return i;
}

enum rf_db_err rf_pg_classify(const char *sqlstate, int connection_ok)
{
    /* Once the connection is gone nothing else about the statement is known. */
    if (!connection_ok)
        return RF_DB_UNAVAILABLE;
    if (!sqlstate || strlen(sqlstate) != 5)
        return RF_DB_ERROR;
    size_t i = pg_state(sqlstate);
    if (i < NSTATES)
        return pg_states[i].code;
    /* Class 08 connection exceptions and the rest of class 53 (too many
     * connections, out of memory: the SQLite driver maps NOMEM alike). */
    if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "53", 2) == 0)
        return RF_DB_UNAVAILABLE;
    return RF_DB_ERROR;
}

enum rf_db_retry_reason rf_pg_retry_reason(const char *sqlstate)
{
    size_t i = pg_state(sqlstate);
    return i < NSTATES ? pg_states[i].retry : RF_DB_RETRY_OTHER;
}

/* libpq messages span lines and end in '\n'; a log line wants one line.
 * The password is cut out in case a message quotes the URL back. */
static void clean_message(const struct pg_db *db, const char *msg, char *out, size_t outlen)
{
    size_t o = 0;
    int space = 0;
    if (!msg)
        msg = "";
    while (*msg && o + 1 < outlen) {
        size_t skip = 0;
        for (int i = 0; db && i < 2 && !skip; i++) {
            size_t n = db->secret[i] ? strlen(db->secret[i]) : 0;
            if (n && strncmp(msg, db->secret[i], n) == 0)
                skip = n;
        }
        if (skip) {
            for (const char *r = "***"; *r && o + 1 < outlen; r++)
                out[o++] = *r;
            msg += skip;
            space = 0;
            continue;
        }
        char ch = *msg++;
        if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
            space = o > 0;
            continue;
        }
        if (space && o + 2 < outlen)
            out[o++] = ' ';
        space = 0;
        out[o++] = ch;
    }
    out[o] = '\0';
}

static int pg_fail_msg(struct pg_db *db, struct rf_db_error *e, enum rf_db_err code,
                       const char *what, const char *msg, const char *sqlstate)
{
    char clean[200];
    clean_message(db, msg, clean, sizeof(clean));
    if (sqlstate)
        return rf_db_fail(e, code, "pg: %s%s (%s)", what, clean, sqlstate);
    return rf_db_fail(e, code, "pg: %s%s", what, clean);
}

/* res may be NULL (libpq out of memory, or the connection broke before a
 * result arrived). */
static int pg_fail(struct pg_conn *c, const PGresult *res, struct rf_db_error *e)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    enum rf_db_err code = rf_pg_classify(state, PQstatus(c->h) == CONNECTION_OK);
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg && res)
        msg = PQresultErrorMessage(res);
    if (!msg || !*msg)
        msg = PQerrorMessage(c->h);
    pg_fail_msg(c->db, e, code, "", msg, state);
    if (code == RF_DB_RETRY)
        e->retry = rf_pg_retry_reason(state);
    if (code == RF_DB_UNIQUE) {
        const char *name = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        snprintf(e->constraint, sizeof(e->constraint), "%s", name ? name : "");
    }
    return code;
}

static int res_ok(const PGresult *res)
{
    if (!res)
        return 0;
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

/* One statement without parameters or rows. */
static int pg_simple(struct pg_conn *c, const char *sql, struct rf_db_error *e)
{
    PGresult *res = PQexec(c->h, sql);
    int rc = res_ok(res) ? RF_DB_OK : pg_fail(c, res, e);
    PQclear(res);
    return rc;
}

static void pg_disconnect(struct pg_conn *c)
{
    PQfinish(c->h); /* NULL-safe */
    c->h = NULL;
    /* Prepared statements die with the session. */
    c->ncache = 0;
    c->dealloc_pending = 0;
}

/* Notices are expected chatter ("already exists, skipping" from every
 * migration check): libpq's default would print each one on stderr. */
static void ignore_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static int pg_connect(struct pg_conn *c, struct rf_db_error *e)
{
    /* Later entries override earlier ones, and the URL's own parameters
     * override the defaults placed before it (expand_dbname). Keepalives: a
     * peer that vanished without a FIN (failover, partition) would otherwise
     * hold a pooled connection for the kernel's two hours. */
    static const char *const keys[] = {
        "client_encoding",  "connect_timeout", "keepalives_idle",           "keepalives_interval",
        "keepalives_count", "dbname",          "fallback_application_name", NULL};
    const char *vals[] = {"UTF8", "5", "30", "10", "3", c->db->url, "racefree", NULL};
    pg_disconnect(c);
    c->h = PQconnectdbParams(keys, vals, 1);
    if (c->h && PQstatus(c->h) == CONNECTION_OK) {
        PQsetNoticeProcessor(c->h, ignore_notice, NULL);
        return RF_DB_OK;
    }
    pg_fail_msg(c->db, e, RF_DB_UNAVAILABLE,
                "cannot connect: ", c->h ? PQerrorMessage(c->h) : "out of memory", NULL);
    pg_disconnect(c);
    return RF_DB_UNAVAILABLE;
}

/* The password as the URL spells it (user:PASSWORD@host), so that parse
 * errors quoting the raw text cannot leak it either; NULL if none. */
static char *raw_password(const char *url)
{
    const char *p = strstr(url, "://");
    if (!p)
        return NULL;
    p += 3;
    size_t auth = strcspn(p, "/?");
    const char *at = memchr(p, '@', auth);
    if (!at)
        return NULL;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon || at - colon - 1 <= 0)
        return NULL;
    return strndup(colon + 1, (size_t)(at - colon - 1));
}

static void pg_close(struct rf_db *base)
{
    struct pg_db *db = (struct pg_db *)base;
    if (!db)
        return;
    for (int i = 0; i < db->nconns; i++)
        pg_disconnect(&db->conns[i]);
    free(db->conns);
    free(db->url);
    free(db->secret[0]);
    free(db->secret[1]);
    rf_db_pool_destroy(&db->pool);
    free(db);
}

static int pg_open(const char *url, int nconns, struct rf_db **out, struct rf_db_error *e)
{
    int rc;
    char *err = NULL;
    *out = NULL;
    if (!PQisthreadsafe())
        return rf_db_fail(e, RF_DB_ERROR, "pg: libpq was built without thread safety");
    if (nconns < 1)
        nconns = 1;
    if (nconns > MAX_CONNS)
        nconns = MAX_CONNS;
    struct pg_db *db = calloc(1, sizeof(*db));
    if (!db)
        return rf_db_fail(e, RF_DB_UNAVAILABLE, "out of memory");
    db->base.drv = &rf_db_pg;
    rf_db_pool_init(&db->pool);
    db->url = strdup(url);
    db->conns = calloc((size_t)nconns, sizeof(*db->conns));
    if (!db->url || !db->conns) {
        rc = rf_db_fail(e, RF_DB_UNAVAILABLE, "out of memory");
        goto fail;
    }
    db->secret[0] = raw_password(url);
    PQconninfoOption *opts = PQconninfoParse(url, &err);
    if (!opts) {
        /* A malformed URL is a configuration error, not an outage. */
        rc = pg_fail_msg(db, e, RF_DB_ERROR, "invalid URL: ", err ? err : "out of memory", NULL);
        PQfreemem(err);
        goto fail;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
            db->secret[1] = strdup(o->val);
    PQconninfoFree(opts);

    db->nconns = nconns;
    /* LIFO free list: released connections are reused first. */
    for (int i = nconns - 1; i >= 0; i--) {
        struct pg_conn *c = &db->conns[i];
        c->base.drv = &rf_db_pg;
        c->db = db;
        rf_db_pool_put(&db->pool, &c->base);
    }
    /* The whole pool connects now: a PostgreSQL backend costs milliseconds
     * of CPU to start, which a burst of first requests should not pay (it
     * serialised a 32-request race on a 2-core machine). A connection lost
     * later is reconnected on acquire. */
    for (int i = 0; i < nconns; i++) {
        rc = pg_connect(&db->conns[i], e);
        if (rc != RF_DB_OK)
            goto fail;
    }
    *out = &db->base;
    return RF_DB_OK;
fail:
    pg_close(&db->base);
    return rc;
}

static int pg_acquire(struct rf_db *base, int write, int64_t deadline_ms, struct rf_db_conn **out,
                      struct rf_db_error *e)
{
    struct pg_db *db = (struct pg_db *)base;
    /* The pool has a connection per server thread, so waiting for one is
     * short; the server itself bounds its waits (statement and lock
     * timeouts are its settings). */
    (void)write;
    (void)deadline_ms;
    struct pg_conn *c = (struct pg_conn *)rf_db_pool_take(&db->pool);
    /* Connecting happens outside the lock: a slow server must not stall
     * threads that could use an already connected one. */
    if (!c->h || PQstatus(c->h) != CONNECTION_OK) {
        int rc = pg_connect(c, e);
        if (rc != RF_DB_OK) {
            rf_db_pool_put(&db->pool, &c->base);
            *out = NULL;
            return rc;
        }
    }
    *out = &c->base;
    return RF_DB_OK;
}

static int in_tx(const struct pg_conn *c)
{
    PGTransactionStatusType ts = PQtransactionStatus(c->h);
    return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;
}

static void pg_rollback(struct rf_db_conn *cb)
{
    struct pg_conn *c = (struct pg_conn *)cb;
    if (!c->h)
        return;
    if (in_tx(c))
        PQclear(PQexec(c->h, "ROLLBACK"));
    if (c->dealloc_pending && PQtransactionStatus(c->h) == PQTRANS_IDLE) {
        PQclear(PQexec(c->h, "DEALLOCATE ALL"));
        c->dealloc_pending = 0;
    }
}

static void pg_release(struct rf_db *base, struct rf_db_conn *cb)
{
    struct pg_conn *c = (struct pg_conn *)cb;
    /* A caller that forgot to end its transaction must not hand it, with its
     * locks, to the next user of the connection. */
    if (c->h && in_tx(c))
        pg_rollback(cb);
    rf_db_pool_put(&((struct pg_db *)base)->pool, cb);
}

static int pg_begin(struct rf_db_conn *cb, int write, struct rf_db_error *e)
{
    struct pg_conn *c = (struct pg_conn *)cb;
    int rc = RF_DB_UNAVAILABLE;
    (void)write;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!c->h || PQstatus(c->h) != CONNECTION_OK) {
            rc = pg_connect(c, e);
            if (rc != RF_DB_OK)
                return rc;
        }
        if (c->dealloc_pending)
            pg_rollback(cb);
        rc = pg_simple(c, "BEGIN", e);
        /* An idle connection whose server restarted only finds out now;
         * nothing of this transaction has run, so a new session may take
         * over instead of failing the request. */
        if (rc != RF_DB_UNAVAILABLE || PQstatus(c->h) == CONNECTION_OK)
            return rc;
    }
    return rc;
}

static int pg_commit(struct rf_db_conn *cb, struct rf_db_error *e)
{
    struct pg_conn *c = (struct pg_conn *)cb;
    /* COMMIT of an aborted transaction "succeeds" with the tag ROLLBACK:
     * never report that as a commit. */
    if (PQtransactionStatus(c->h) == PQTRANS_INERROR)
        return rf_db_fail(e, RF_DB_ERROR,
                          "pg: COMMIT of a transaction an earlier statement aborted");
    PGresult *res = PQexec(c->h, "COMMIT");
    int rc;
    if (!res_ok(res))
        rc = pg_fail(c, res, e);
    else if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0)
        rc = rf_db_fail(e, RF_DB_ERROR, "pg: COMMIT rolled back");
    else
        rc = RF_DB_OK;
    PQclear(res);
    return rc;
}

static void put_char(char *out, size_t outlen, size_t *o, char ch)
{
    if (out && *o + 1 < outlen)
        out[*o] = ch;
    (*o)++;
}

static int ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '$' || (unsigned char)ch >= 0x80;
}

/* Length of a dollar-quote tag ("$$", "$tag$") at s, or 0 if s starts none. */
static size_t dollar_tag(const char *s)
{
    size_t n = 1;
    if (s[n] >= '0' && s[n] <= '9')
        return 0; /* $1: a positional parameter */
    while (s[n] && s[n] != '$' && ident_char(s[n]))
        n++;
    return s[n] == '$' ? n + 1 : 0;
}

/* Rewrites '?' as $1..$n. Quoted literals, quoted identifiers, comments and
 * dollar-quoted bodies are copied untouched: a '?' there is text. Returns
 * the number of placeholders; writes at most outlen bytes (NUL-terminated)
 * when out is not NULL. strlen(sql) + 6 * n + 1 bytes always suffice. */
int rf_pg_placeholders(const char *sql, char *out, size_t outlen)
{
    size_t i = 0, o = 0;
    int n = 0;
    while (sql[i]) {
        char ch = sql[i];
        size_t end = i + 1; /* one past the region copied verbatim */
        if (ch == '\'') {
            int esc = i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                      (i < 2 || !ident_char(sql[i - 2]));
            for (; sql[end]; end++) {
                if (esc && sql[end] == '\\' && sql[end + 1]) {
                    end++;
                } else if (sql[end] == '\'') {
                    if (sql[end + 1] != '\'') {
                        end++;
                        break;
                    }
                    end++;
                }
            }
        } else if (ch == '"') {
            while (sql[end] && sql[end] != '"')
                end++;
            if (sql[end])
                end++;
        } else if (ch == '-' && sql[i + 1] == '-') {
            while (sql[end] && sql[end] != '\n')
                end++;
        } else if (ch == '/' && sql[i + 1] == '*') {
            int depth = 1;
            end = i + 2;
            while (sql[end] && depth) {
                if (sql[end] == '/' && sql[end + 1] == '*') {
                    depth++;
                    end += 2;
                } else if (sql[end] == '*' && sql[end + 1] == '/') {
                    depth--;
                    end += 2;
                } else {
                    end++;
                }
            }
        } else if (ch == '$' && (i == 0 || !ident_char(sql[i - 1])) && dollar_tag(sql + i)) {
            size_t tag = dollar_tag(sql + i);
            const char *fin = strchr(sql + i + tag, '$');
            while (fin && strncmp(fin, sql + i, tag) != 0)
                fin = strchr(fin + 1, '$');
            end = fin ? (size_t)(fin - sql) + tag : strlen(sql);
        } else if (ch == '?') {
            char num[16];
            int len = snprintf(num, sizeof(num), "$%d", ++n);
            for (int k = 0; k < len; k++)
                put_char(out, outlen, &o, num[k]);
            i++;
            continue;
        }
        for (; i < end; i++)
            put_char(out, outlen, &o, sql[i]);
    }
    if (out && outlen)
        out[o < outlen ? o : outlen - 1] = '\0';
    return n;
}

/* Converted SQL in a malloc'd buffer the caller frees; NULL on a count
 * mismatch or out of memory (e says which). */
static char *rewrite(const char *sql, int np, struct rf_db_error *e)
{
    int n = rf_pg_placeholders(sql, NULL, 0);
    if (n != np) {
        rf_db_fail(e, RF_DB_ERROR, "pg: %d placeholders but %d parameters", n, np);
        return NULL;
    }
    size_t len = strlen(sql) + 6 * (size_t)n + 1;
    char *conv = malloc(len);
    if (!conv) {
        rf_db_fail(e, RF_DB_ERROR, "pg: out of memory");
        return NULL;
    }
    rf_pg_placeholders(sql, conv, len);
    return conv;
}

/* FNV-1a: cheap next to a network round trip. */
static uint64_t sql_hash(const char *sql)
{
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static int find_cached(struct pg_conn *c, const char *sql, uint64_t hash)
{
    for (int i = 0; i < c->ncache; i++) {
        if (c->cache[i].sql != sql)
            continue;
        if (c->cache[i].hash == hash)
            return i;
        /* Same address, other text: a caller built SQL in a buffer that was
         * reused. Drop the old statement (DEALLOCATE is not transactional). */
        char sqlbuf[32];
        snprintf(sqlbuf, sizeof(sqlbuf), "DEALLOCATE %s", c->cache[i].name);
        PQclear(PQexec(c->h, sqlbuf));
        c->cache[i] = c->cache[--c->ncache];
        return -1;
    }
    return -1;
}

/* Index of sql's prepared statement on c, preparing it if there is room;
 * -1 with *rc == RF_DB_OK means "cache full, run it unnamed". */
static int prepared(struct pg_conn *c, const char *sql, uint64_t hash, const char *conv, int np,
                    int *rc, struct rf_db_error *e)
{
    *rc = RF_DB_OK;
    if (c->ncache == STMT_CACHE)
        return -1;
    int slot = c->ncache;
    snprintf(c->cache[slot].name, sizeof(c->cache[slot].name), "rf%u", c->next_name++);
    PGresult *res = PQprepare(c->h, c->cache[slot].name, conv, np, NULL);
    if (!res_ok(res)) {
        *rc = pg_fail(c, res, e);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    c->cache[slot].sql = sql;
    c->cache[slot].hash = hash;
    c->ncache++;
    return slot;
}

static int copy_rows(const PGresult *res, struct rf_arena *a, struct rf_db_rows *out,
                     struct rf_db_error *e)
{
    int nrows = PQntuples(res), ncols = PQnfields(res);
    out->nrows = 0;
    out->ncols = ncols;
    out->cells = NULL;
    if (nrows == 0 || ncols == 0) {
        out->nrows = nrows;
        return RF_DB_OK;
    }
    if (!a)
        return rf_db_fail(e, RF_DB_ERROR, "pg: rows wanted without an arena");
    const char **cells = rf_arena_alloc(a, sizeof(char *) * (size_t)nrows * (size_t)ncols);
    if (!cells)
        return rf_db_fail(e, RF_DB_ERROR, "pg: out of memory for rows");
    for (int r = 0; r < nrows; r++) {
        for (int col = 0; col < ncols; col++) {
            const char *v = NULL;
            if (!PQgetisnull(res, r, col)) {
                v = rf_arena_strndup(a, PQgetvalue(res, r, col), (size_t)PQgetlength(res, r, col));
                if (!v)
                    return rf_db_fail(e, RF_DB_ERROR, "pg: out of memory for cell");
            }
            cells[r * ncols + col] = v;
        }
    }
    out->cells = cells;
    out->nrows = nrows;
    return RF_DB_OK;
}

/* A cached plan went stale (a migration changed a table's columns) or a
 * pooler dropped it: forget every prepared statement of this session. */
static int stale_statement(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return state && (strcmp(state, "0A000") == 0 || strcmp(state, "26000") == 0);
}

/* Outside a transaction, a session the server dropped while it sat idle
 * is replaced once: 1 to run the statement again on the new one, 0 when
 * that does not apply (rc untouched), -1 when reconnecting failed (rc, e
 * set). */
static int replace_dropped(struct pg_conn *c, int autocommit, int *reconnected, int *rc,
                           struct rf_db_error *e)
{
    if (!autocommit || *reconnected || PQstatus(c->h) == CONNECTION_OK)
        return 0;
    *rc = pg_connect(c, e);
    if (*rc != RF_DB_OK)
        return -1;
    *reconnected = 1;
    return 1;
}

static int pg_exec(struct rf_db_conn *cb, const char *sql, const struct rf_db_param *p, int np,
                   struct rf_arena *a, struct rf_db_rows *out, struct rf_db_error *e)
{
    struct pg_conn *c = (struct pg_conn *)cb;
    const char *stack_vals[STACK_PARAMS];
    char stack_ints[STACK_PARAMS][INT_TEXT];
    const char **vals = stack_vals;
    char(*ints)[INT_TEXT] = stack_ints;
    char *conv = NULL;
    PGresult *res = NULL;
    int rc = RF_DB_OK;

    if (out) {
        out->nrows = out->ncols = 0;
        out->cells = NULL;
    }
    if (np < 0)
        return rf_db_fail(e, RF_DB_ERROR, "pg: negative parameter count");
    if (np > STACK_PARAMS) {
        vals = malloc(sizeof(*vals) * (size_t)np);
        ints = malloc(sizeof(*ints) * (size_t)np);
        if (!vals || !ints) {
            rc = rf_db_fail(e, RF_DB_ERROR, "pg: out of memory");
            goto out;
        }
    }
    for (int i = 0; i < np; i++) {
        switch (p[i].type) {
        case RF_DB_NULL:
            vals[i] = NULL;
            break;
        case RF_DB_TEXT:
            vals[i] = p[i].s;
            break;
        case RF_DB_INT:
            snprintf(ints[i], INT_TEXT, "%lld", (long long)p[i].i);
            vals[i] = ints[i];
            break;
        }
    }

    /* Outside a transaction (reads run in autocommit) a statement is the
     * first thing a session does after an idle spell: a session the server
     * dropped meanwhile is replaced once, as BEGIN does for transactions. */
    int autocommit =
        !c->h || PQtransactionStatus(c->h) == PQTRANS_IDLE || PQstatus(c->h) != CONNECTION_OK;
    int reconnected = 0;
    if (autocommit && (!c->h || PQstatus(c->h) != CONNECTION_OK)) {
        rc = pg_connect(c, e);
        if (rc != RF_DB_OK)
            goto out;
        reconnected = 1;
    }
    for (int attempt = 0;; attempt++) {
        int reused = 0; /* prepared by an earlier call, so possibly stale */
        if (np == 0) {
            res = PQexec(c->h, sql);
        } else {
            uint64_t hash = sql_hash(sql);
            int slot = find_cached(c, sql, hash);
            reused = slot >= 0;
            if (slot < 0) {
                if (!conv && !(conv = rewrite(sql, np, e))) {
                    rc = e->code;
                    goto out;
                }
                slot = prepared(c, sql, hash, conv, np, &rc, e);
                if (rc != RF_DB_OK) {
                    /* The first call of a statement on a session the server
                     * dropped fails at PREPARE, not at execute. */
                    int again = replace_dropped(c, autocommit, &reconnected, &rc, e);
                    if (again > 0)
                        continue;
                    goto out;
                }
            }
            if (slot >= 0)
                res = PQexecPrepared(c->h, c->cache[slot].name, np, vals, NULL, NULL, 0);
            else
                res = PQexecParams(c->h, conv, np, NULL, vals, NULL, NULL, 0);
        }
        if (res_ok(res))
            break;
        int again = replace_dropped(c, autocommit, &reconnected, &rc, e);
        if (again != 0) {
            PQclear(res);
            res = NULL;
            if (again > 0)
                continue;
            goto out;
        }
        if (!reused || attempt > 0 || !stale_statement(res)) {
            rc = pg_fail(c, res, e);
            goto out;
        }
        c->ncache = 0;
        if (PQtransactionStatus(c->h) != PQTRANS_IDLE) {
            /* The error aborted the transaction: tx_run runs it again and
             * the statements are prepared anew then. */
            char why[sizeof(e->detail)];
            c->dealloc_pending = 1;
            pg_fail(c, res, e);
            snprintf(why, sizeof(why), "%s", e->detail);
            rc = rf_db_fail(e, RF_DB_RETRY, "%s; statement prepared again on retry", why);
            goto out;
        }
        PQclear(res);
        res = NULL;
        PQclear(PQexec(c->h, "DEALLOCATE ALL"));
    }
    if (out)
        rc = copy_rows(res, a, out, e);
out:
    PQclear(res);
    free(conv);
    if (vals != stack_vals)
        free(vals);
    if (ints != stack_ints)
        free(ints);
    return rc;
}

static int pg_migrate_lock(struct rf_db_conn *cb, struct rf_db_error *e)
{
    /* Under REPEATABLE READ or SERIALIZABLE the snapshot is taken by the
     * first statement, before the lock is granted, and would miss the
     * winner's migration; READ COMMITTED reads it once the lock is ours.
     * The lock serialises migrations, so nothing is lost. This must be the
     * transaction's first statement. */
    return pg_simple((struct pg_conn *)cb, MIGRATE_LOCK_SQL, e);
}

const struct rf_db_driver rf_db_pg = {
    .name = "postgres",
    .caps = RF_DB_CAP_AUTOCOMMIT_WRITES | RF_DB_CAP_BATCH_CREATE,
    .open = pg_open,
    .close = pg_close,
    .acquire = pg_acquire,
    .release = pg_release,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .exec = pg_exec,
    .migrate_lock = pg_migrate_lock,
};
