/* PostgreSQL only: concurrent user creates coalesced into one statement,
 * for drivers with RF_DB_CAP_BATCH_CREATE (rf_store_user_create and
 * rf_store_user_create_async test it; nothing else reaches this file). The
 * SQL here is PostgreSQL's dialect (text array parameters, unnest), which
 * is why it lives apart from store/users.c and its SQL both drivers accept.
 *
 * Each create is a round trip and a statement for the server to parse,
 * plan and run; under load those dominate. Creates that arrive while others
 * are in flight queue here, and a leader (one of at most BATCH_LEADERS
 * threads at a time, each on its own pooled connection) sends all that are
 * queued as one INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING
 * RETURNING, then one SELECT for those that found a row. The semantics are
 * those of the single statement: the unique constraint decides, within the
 * batch too (a second row with the same email conflicts with the first and
 * is skipped), so the first item gets 201 and the others that row. An idle
 * server sends a batch of one at once. Each item keeps its own id, so an
 * attempt that failed (atomically) can be sent again; items already
 * answered by an earlier attempt are left out of it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "core/util.h"
#include "store/store.h"

#define BATCH_LEADERS 4
#define BATCH_MAX 256
/* Batches a leader runs for others before it hands the rest of the queue
 * to a worker of its own: the request it leads for is answered meanwhile. */
#define LEAD_BATCHES 4

struct ucreate {
    struct ucreate *next;
    struct rf_db *db;
    struct rf_arena *a; /* the requester's: written only while it waits */
    const char *ws, *email, *name;
    char id[RF_ID_MAX], now[RF_TIME_MAX];
    struct rf_user *out;
    int created, resolved, rc;
    enum rf_db_retry_reason retry; /* with rc RF_DB_RETRY */
    char detail[256];
    uint64_t queued; /* monotonic ns */
    /* Called once the create is done; the leader never touches the item
     * after, as its memory goes with the request. */
    void (*done)(void *arg);
    void *arg;
};

static struct {
    pthread_mutex_t mu;
    struct ucreate *head;
    int leaders;
} uq = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

struct ubatch {
    struct ucreate **it;
    int n;
    struct rf_arena *a; /* the leader's scratch */
};

enum ufield { F_ID, F_WS, F_EMAIL, F_NAME, F_NOW };

static const char *ufield(const struct ucreate *u, enum ufield f)
{
    switch (f) {
    case F_ID:
        return u->id;
    case F_WS:
        return u->ws;
    case F_EMAIL:
        return u->email;
    case F_NAME:
        return u->name;
    case F_NOW:
        return u->now;
    }
    return NULL;
}

/* A PostgreSQL array literal of texts, quoted and escaped: {"a","b\\"c",NULL}. */
static const char *pg_text_array(struct rf_arena *a, struct ucreate **it, int n, enum ufield f)
{
    size_t cap = 3;
    for (int i = 0; i < n; i++) {
        const char *v = ufield(it[i], f);
        cap += v ? 2 * strlen(v) + 3 : 5;
    }
    char *buf = rf_arena_alloc(a, cap), *p = buf;
    if (!buf)
        return NULL;
    *p++ = '{';
    for (int i = 0; i < n; i++) {
        const char *v = ufield(it[i], f);
        if (i)
            *p++ = ',';
        if (!v) {
            memcpy(p, "NULL", 4);
            p += 4;
            continue;
        }
        *p++ = '"';
        for (; *v; v++) {
            if (*v == '"' || *v == '\\')
                *p++ = '\\';
            *p++ = *v;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return buf;
}

static void copy_user(struct ucreate *u, const struct rf_db_rows *r, int row)
{
    struct rf_user tmp;
    rf_store_user_from_row(r, row, &tmp);
    u->out->id = rf_arena_strdup(u->a, tmp.id);
    u->out->email = rf_arena_strdup(u->a, tmp.email);
    u->out->name = tmp.name ? rf_arena_strdup(u->a, tmp.name) : NULL;
    u->out->username = tmp.username ? rf_arena_strdup(u->a, tmp.username) : NULL;
    u->out->created_at = rf_arena_strdup(u->a, tmp.created_at);
    u->out->updated_at = rf_arena_strdup(u->a, tmp.updated_at);
    u->out->version = tmp.version;
    u->resolved = 1;
}

static int ubatch_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct ubatch *b = arg;
    struct ucreate *open[BATCH_MAX];
    int n = 0;
    for (int i = 0; i < b->n; i++)
        if (!b->it[i]->resolved)
            open[n++] = b->it[i];
    if (n == 0)
        return RF_DB_OK;
    struct rf_db_param ins[] = {RF_TEXT(pg_text_array(b->a, open, n, F_ID)),
                                RF_TEXT(pg_text_array(b->a, open, n, F_WS)),
                                RF_TEXT(pg_text_array(b->a, open, n, F_EMAIL)),
                                RF_TEXT(pg_text_array(b->a, open, n, F_NAME)),
                                RF_TEXT(pg_text_array(b->a, open, n, F_NOW))};
    for (int i = 0; i < 5; i++)
        if (!ins[i].s)
            return rf_db_fail(e, RF_DB_ERROR, "out of memory");
    struct rf_db_rows rows;
    int rc = rf_db_exec(c,
                        "INSERT INTO users (id, workspace_id, email, name, created_at, updated_at)"
                        " SELECT i, w, m, n, t, t FROM unnest(?::text[], ?::text[], ?::text[],"
                        " ?::text[], ?::text[]) AS v(i, w, m, n, t)"
                        /* one global order: concurrent batches with the same
                         * emails never wait on each other in a cycle */
                        " ORDER BY w, m"
                        " ON CONFLICT (workspace_id, email) DO NOTHING RETURNING " RF_USER_COLS,
                        ins, 5, b->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    for (int r = 0; r < rows.nrows; r++)
        for (int i = 0; i < n; i++)
            if (!open[i]->resolved && !strcmp(open[i]->id, rf_db_cell(&rows, r, 0))) {
                copy_user(open[i], &rows, r);
                open[i]->created = 1;
                break;
            }
    int left = 0;
    for (int i = 0; i < n; i++)
        if (!open[i]->resolved)
            open[left++] = open[i];
    if (left == 0)
        return RF_DB_OK;
    /* Found rows: committed by others (the conflicting insert waited for
     * them), or by this very statement for a duplicate within the batch. */
    struct rf_db_param sel[] = {RF_TEXT(pg_text_array(b->a, open, left, F_WS)),
                                RF_TEXT(pg_text_array(b->a, open, left, F_EMAIL))};
    if (!sel[0].s || !sel[1].s)
        return rf_db_fail(e, RF_DB_ERROR, "out of memory");
    rc = rf_db_exec(c,
                    "SELECT " RF_USER_COLS ", workspace_id FROM users"
                    " WHERE (workspace_id, email) IN"
                    " (SELECT * FROM unnest(?::text[], ?::text[]))",
                    sel, 2, b->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    for (int i = 0; i < left; i++)
        for (int r = 0; r < rows.nrows; r++)
            if (!strcmp(open[i]->email, rf_db_cell(&rows, r, 1)) &&
                !strcmp(open[i]->ws, rf_db_cell(&rows, r, 7))) {
                copy_user(open[i], &rows, r);
                break;
            }
    for (int i = 0; i < left; i++)
        if (!open[i]->resolved)
            return rf_db_fail(e, RF_DB_RETRY, "conflicting user row not visible");
    return RF_DB_OK;
}

static void ubatch_run(struct rf_db *db, struct ucreate **it, int n)
{
    struct rf_arena a;
    struct rf_db_error e = {0};
    rf_arena_init(&a, 0);
    struct ubatch b = {it, n, &a};
    int rc = rf_tx_run(db, NULL, RF_TX_AUTOCOMMIT, ubatch_tx, &b, &e);
    for (int i = 0; i < n; i++) {
        if (it[i]->resolved && (it[i]->out->id == NULL || it[i]->out->email == NULL)) {
            it[i]->resolved = 0; /* out of memory in the requester's arena */
            rc = rf_db_fail(&e, RF_DB_ERROR, "out of memory");
        }
        it[i]->rc = it[i]->resolved ? RF_DB_OK : (rc != RF_DB_OK ? rc : RF_DB_ERROR);
        it[i]->retry = e.retry;
        snprintf(it[i]->detail, sizeof(it[i]->detail), "%s", e.detail);
    }
    rf_arena_free(&a);
}

/* Takes db's queued creates, oldest first, up to BATCH_MAX. Under uq.mu. */
static int take_batch(struct rf_db *db, struct ucreate **batch)
{
    int n = 0;
    for (struct ucreate **pp = &uq.head; *pp && n < BATCH_MAX;) {
        if ((*pp)->db == db) {
            batch[n++] = *pp;
            *pp = (*pp)->next;
        } else {
            pp = &(*pp)->next;
        }
    }
    return n;
}

/* Under uq.mu. */
static int queued_for(const struct rf_db *db)
{
    for (const struct ucreate *u = uq.head; u; u = u->next)
        if (u->db == db)
            return 1;
    return 0;
}

struct lead_job {
    struct rf_job job;
    struct rf_db *db;
};

static void lead(struct rf_db *db, int hand_off);

static void lead_job_run(struct rf_job *j)
{
    struct lead_job *lj = (struct lead_job *)j;
    struct rf_db *db = lj->db;
    free(lj);
    lead(db, 1);
}

/* Runs batches of db's queued creates in one of the BATCH_LEADERS places
 * (taken by the caller) and gives the place up once the queue is empty. A
 * leader that may hand off (a worker of the server: hand_off=1) passes the
 * place, after LEAD_BATCHES batches, to a worker-pool job of its own, so a
 * queue that keeps filling never keeps one request waiting; the job does
 * the same. Nothing queued is ever left without a leader. */
static void lead(struct rf_db *db, int hand_off)
{
    for (int batches = 0;; batches++) {
        struct ucreate *batch[BATCH_MAX];
        pthread_mutex_lock(&uq.mu);
        if (!queued_for(db)) {
            /* Creates of another database (tests open several) may have
             * queued behind the leaders of this one: lead those next. */
            if (!uq.head) {
                uq.leaders--;
                pthread_mutex_unlock(&uq.mu);
                return;
            }
            db = uq.head->db;
        }
        if (hand_off && batches >= LEAD_BATCHES) {
            struct lead_job *lj = malloc(sizeof(*lj));
            if (lj) {
                pthread_mutex_unlock(&uq.mu);
                *lj = (struct lead_job){.job.run = lead_job_run, .db = db};
                rf_pool_push(&lj->job);
                return;
            }
        }
        int n = take_batch(db, batch);
        pthread_mutex_unlock(&uq.mu);
        /* Waiting in the queue counts against the write budget: a create
         * queued for longer is answered 503 without being sent. */
        uint64_t now = rf_mono_ns();
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (now - batch[i]->queued > (uint64_t)RF_TX_BUDGET_MS * 1000000u) {
                batch[i]->rc = RF_DB_RETRY;
                batch[i]->retry = RF_DB_RETRY_OTHER;
                snprintf(batch[i]->detail, sizeof(batch[i]->detail),
                         "timed out queued for a batched create");
                batch[i]->done(batch[i]->arg);
            } else {
                batch[m++] = batch[i];
            }
        }
        if (m)
            ubatch_run(db, batch, m);
        for (int i = 0; i < m; i++)
            batch[i]->done(batch[i]->arg);
    }
}

/* Queues u; the caller leads when a place is free. */
static void submit(struct ucreate *u, int hand_off)
{
    u->queued = rf_mono_ns();
    pthread_mutex_lock(&uq.mu);
    struct ucreate **tail = &uq.head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = u;
    int leads = uq.leaders < BATCH_LEADERS;
    if (leads)
        uq.leaders++;
    pthread_mutex_unlock(&uq.mu);
    if (leads)
        lead(u->db, hand_off);
}

static int ucreate_init(struct ucreate *u, struct rf_db *db, struct rf_arena *a, const char *ws,
                        const char *email, const char *name, struct rf_user *out)
{
    *u = (struct ucreate){.db = db, .a = a, .ws = ws, .email = email, .name = name, .out = out};
    if (rf_id_new(u->id, sizeof(u->id), "usr_", 16))
        return -1;
    rf_now_rfc3339(u->now);
    return 0;
}

/* A done create's outcome, as the driver reported it to the batch. */
static int ucreate_result(const struct ucreate *u, struct rf_db_error *e)
{
    if (u->rc == RF_DB_OK)
        return RF_DB_OK;
    rf_db_fail(e, u->rc, "%s", u->detail);
    e->retry = u->retry;
    return u->rc;
}

/* A thread that waits for its own create (outside the server: tests, and
 * any caller without a way to be woken). It leads without handing off, so
 * it needs no worker pool. */
struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void sync_done(void *arg)
{
    struct sync_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int rf_store_user_create_batched(struct rf_db *db, struct rf_arena *a, const char *ws,
                                 const char *email, const char *name, struct rf_user *out,
                                 int *created, struct rf_db_error *e)
{
    struct ucreate me;
    struct sync_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    if (ucreate_init(&me, db, a, ws, email, name, out))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    me.done = sync_done;
    me.arg = &w;
    submit(&me, 0);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    *created = me.created;
    return ucreate_result(&me, e);
}

struct rf_user_wait {
    struct ucreate u;
};

int rf_store_user_create_async(struct rf_db *db, struct rf_arena *a, const char *ws,
                               const char *email, const char *name, struct rf_user *out,
                               void (*wake)(void *arg), void *arg, struct rf_user_wait **wait,
                               struct rf_db_error *e)
{
    *wait = NULL;
    if (!rf_db_has(db, RF_DB_CAP_BATCH_CREATE))
        return RF_DB_OK;
    /* A failure here is answered, never turned into the blocking create:
     * on the server's workers that could wait for a leader job queued
     * behind them. */
    struct rf_user_wait *w = rf_arena_alloc(a, sizeof(*w));
    if (!w)
        return rf_db_fail(e, RF_DB_ERROR, "out of memory");
    if (ucreate_init(&w->u, db, a, ws, email, name, out))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    w->u.done = wake;
    w->u.arg = arg;
    *wait = w;
    submit(&w->u, 1);
    return RF_DB_OK;
}

int rf_store_user_create_result(const struct rf_user_wait *w, const struct rf_user **out,
                                int *created, struct rf_db_error *e)
{
    *out = w->u.out;
    *created = w->u.created;
    return ucreate_result(&w->u, e);
}
