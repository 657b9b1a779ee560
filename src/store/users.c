#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pool.h"
#include "core/rules.h"
#include "core/util.h"
#include "store/store.h"

#define USER_COLS "id, email, name, username, created_at, updated_at, version"

static void user_from_row(const struct rf_db_rows *r, int row, struct rf_user *u)
{
    u->id = rf_db_cell(r, row, 0);
    u->email = rf_db_cell(r, row, 1);
    u->name = rf_db_cell(r, row, 2);
    u->username = rf_db_cell(r, row, 3);
    u->created_at = rf_db_cell(r, row, 4);
    u->updated_at = rf_db_cell(r, row, 5);
    u->version = atoll(rf_db_cell(r, row, 6) ? rf_db_cell(r, row, 6) : "0");
}

struct user_ctx {
    struct rf_arena *a;
    const char *ws, *id, *email, *name;
    const struct rf_user_patch *patch;
    struct rf_user *out;
    int created, found;
};

/* Seed 002 done right: the insert either creates the row or, when (ws,
 * email) exists, does nothing and returns nothing; then the winner is read.
 * The pair needs no transaction around it (RF_TX_AUTOCOMMIT): on SQLite the
 * write lock makes it atomic anyway; on PostgreSQL the conflicting insert
 * waits for the winner's commit, and the next statement, with a snapshot of
 * its own, sees the row. */
static int user_create_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct user_ctx *ctx = arg;
    char id[RF_ID_MAX], now[RF_TIME_MAX];
    struct rf_db_rows rows;
    int rc;

    ctx->created = ctx->found = 0;
    if (rf_id_new(id, sizeof(id), "usr_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(now);
    struct rf_db_param ins[] = {RF_TEXT(id),        RF_TEXT(ctx->ws), RF_TEXT(ctx->email),
                                RF_TEXT(ctx->name), RF_TEXT(now),     RF_TEXT(now)};
    rc = rf_db_exec(c,
                    "INSERT INTO users (id, workspace_id, email, name, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (workspace_id, email) DO NOTHING RETURNING " USER_COLS,
                    ins, 6, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows == 1) {
        user_from_row(&rows, 0, ctx->out);
        ctx->created = ctx->found = 1;
        return RF_DB_OK;
    }
    struct rf_db_param sel[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->email)};
    rc = rf_db_exec(c, "SELECT " USER_COLS " FROM users WHERE workspace_id = ? AND email = ?", sel,
                    2, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows != 1)
        /* The conflicting row vanished between the two statements (a delete
         * committed in between): run the whole transaction again. */
        return rf_db_fail(e, RF_DB_RETRY, "conflicting user row not visible");
    user_from_row(&rows, 0, ctx->out);
    ctx->found = 1;
    return RF_DB_OK;
}

/* PostgreSQL: concurrent creates coalesced into one statement.
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
    user_from_row(r, row, &tmp);
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
                        " ON CONFLICT (workspace_id, email) DO NOTHING RETURNING " USER_COLS,
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
                    "SELECT " USER_COLS ", workspace_id FROM users"
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

static int user_create_batched(struct rf_db *db, struct rf_arena *a, const char *ws,
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
    if (me.rc != RF_DB_OK)
        return rf_db_fail(e, me.rc, "%s", me.detail);
    return RF_DB_OK;
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
    if (db->drv != &rf_db_pg)
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
    if (w->u.rc != RF_DB_OK)
        return rf_db_fail(e, w->u.rc, "%s", w->u.detail);
    return RF_DB_OK;
}

int rf_store_user_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                         const char *email, const char *name, struct rf_user *out, int *created,
                         struct rf_db_error *e)
{
    /* Inside someone else's transaction the create must join it, so it
     * cannot ride in a shared statement. */
    if (db->drv == &rf_db_pg && !outer)
        return user_create_batched(db, a, ws, email, name, out, created, e);
    struct user_ctx ctx = {.a = a, .ws = ws, .email = email, .name = name, .out = out};
    int rc = rf_tx_run(db, outer, RF_TX_AUTOCOMMIT, user_create_tx, &ctx, e);
    *created = ctx.created;
    return rc;
}

static int user_get_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct user_ctx *ctx = arg;
    struct rf_db_rows rows;
    int rc;
    ctx->found = 0;
    if (ctx->id) {
        struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->id)};
        rc = rf_db_exec(c, "SELECT " USER_COLS " FROM users WHERE workspace_id = ? AND id = ?", p,
                        2, ctx->a, &rows, e);
    } else {
        struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->email)};
        rc = rf_db_exec(c, "SELECT " USER_COLS " FROM users WHERE workspace_id = ? AND email = ?",
                        p, 2, ctx->a, &rows, e);
    }
    if (rc == RF_DB_OK && rows.nrows == 1) {
        user_from_row(&rows, 0, ctx->out);
        ctx->found = 1;
    }
    return rc;
}

int rf_store_user_get(struct rf_db *db, struct rf_arena *a, const char *ws, const char *id,
                      struct rf_user *out, int *found, struct rf_db_error *e)
{
    struct user_ctx ctx = {.a = a, .ws = ws, .id = id, .out = out};
    int rc = rf_tx_run(db, NULL, RF_TX_READ, user_get_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

int rf_store_user_by_email(struct rf_db *db, struct rf_arena *a, const char *ws, const char *email,
                           struct rf_user *out, int *found, struct rf_db_error *e)
{
    struct user_ctx ctx = {.a = a, .ws = ws, .email = email, .out = out};
    int rc = rf_tx_run(db, NULL, RF_TX_READ, user_get_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

/* Seed 001 done right: one UPDATE; the unique constraint on
 * (workspace_id, username_key) rejects the loser, whom the caller answers
 * with 409. Setting one's own username again changes nothing the index
 * cares about, so it succeeds. */
static int user_update_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct user_ctx *ctx = arg;
    const struct rf_user_patch *p = ctx->patch;
    char now[RF_TIME_MAX], key[RF_USERNAME_MAX + 1];
    struct rf_db_rows rows;

    ctx->found = 0;
    rf_now_rfc3339(now);
    const char *ukey = NULL;
    if (p->set_username && p->username) {
        size_t n = strlen(p->username);
        if (n > RF_USERNAME_MAX)
            return rf_db_fail(e, RF_DB_ERROR, "username too long");
        rf_username_key(p->username, n, key);
        ukey = key;
    }
    /* CASE keeps columns the patch leaves alone, so one statement serves
     * every combination of fields. */
    struct rf_db_param q[] = {
        RF_INT(p->name != NULL),
        RF_TEXT(p->name),
        RF_INT(p->set_username),
        RF_TEXT(p->username),
        RF_INT(p->set_username),
        RF_TEXT(ukey),
        RF_TEXT(now),
        RF_TEXT(ctx->ws),
        RF_TEXT(ctx->id),
        RF_TEXT(p->if_versions),
        RF_TEXT(p->if_versions),
    };
    int rc =
        rf_db_exec(c,
                   "UPDATE users SET"
                   " name = CASE WHEN ? = 1 THEN ? ELSE name END,"
                   " username = CASE WHEN ? = 1 THEN ? ELSE username END,"
                   " username_key = CASE WHEN ? = 1 THEN ? ELSE username_key END,"
                   " updated_at = ?, version = version + 1"
                   " WHERE workspace_id = ? AND id = ?" RF_IF_VERSION_SQL " RETURNING " USER_COLS,
                   q, 11, ctx->a, &rows, e);
    if (rc == RF_DB_OK && rows.nrows == 1) {
        user_from_row(&rows, 0, ctx->out);
        ctx->found = RF_STORE_FOUND;
    } else if (rc == RF_DB_OK && p->if_versions) {
        /* Nothing matched: a missing user (404) or one whose version moved
         * on (412). The write above already decided; this only names why. */
        struct rf_db_param k[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->id)};
        rc = rf_db_exec(c, "SELECT id FROM users WHERE workspace_id = ? AND id = ?", k, 2, ctx->a,
                        &rows, e);
        if (rc == RF_DB_OK && rows.nrows == 1)
            ctx->found = RF_STORE_STALE;
    }
    return rc;
}

int rf_store_user_update(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                         const char *id, const struct rf_user_patch *p, struct rf_user *out,
                         int *found, struct rf_db_error *e)
{
    struct user_ctx ctx = {.a = a, .ws = ws, .id = id, .patch = p, .out = out};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, user_update_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

int rf_store_user_list(struct rf_db *db, struct rf_arena *a, const char *ws,
                       const char *after_created, const char *after_id, int limit,
                       struct rf_user **out, int *n, int *more, struct rf_db_error *e)
{
    struct rf_db_rows rows;
    *n = 0;
    int rc = rf_store_page(db, a,
                           "SELECT " USER_COLS " FROM users WHERE workspace_id = ?"
                           " ORDER BY created_at, id LIMIT ?",
                           "SELECT " USER_COLS " FROM users WHERE workspace_id = ?"
                           " AND (created_at > ? OR (created_at = ? AND id > ?))"
                           " ORDER BY created_at, id LIMIT ?",
                           ws, after_created, after_id, limit, &rows, more, e);
    if (rc != RF_DB_OK)
        return rc;
    *out = rf_arena_alloc(a, sizeof(**out) * (size_t)(rows.nrows ? rows.nrows : 1));
    if (!*out)
        return rf_db_fail(e, RF_DB_ERROR, "out of memory");
    for (int i = 0; i < rows.nrows; i++)
        user_from_row(&rows, i, &(*out)[i]);
    *n = rows.nrows;
    return RF_DB_OK;
}

struct user_delete_ctx {
    const char *ws, *id;
    int found;
};

/* One DELETE: the row, and with it the (workspace, email) and (workspace,
 * username_key) entries of the unique constraints, go at commit. A create
 * with that email or a claim of that username racing it waits for this
 * transaction on PostgreSQL (the index entry is locked) and on SQLite for
 * the write lock, so of several claimants exactly one gets the freed value. */
static int user_delete_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct user_delete_ctx *ctx = arg;
    struct rf_arena a;
    struct rf_db_rows rows;
    rf_arena_init(&a, 0);
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->id)};
    int rc = rf_db_exec(c, "DELETE FROM users WHERE workspace_id = ? AND id = ? RETURNING id", p, 2,
                        &a, &rows, e);
    ctx->found = rc == RF_DB_OK && rows.nrows == 1;
    rf_arena_free(&a);
    return rc;
}

int rf_store_user_delete(struct rf_db *db, const char *ws, const char *id, int *found,
                         struct rf_db_error *e)
{
    struct user_delete_ctx ctx = {ws, id, 0};
    int rc = rf_tx_run(db, NULL, RF_TX_WRITE, user_delete_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}
