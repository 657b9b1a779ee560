#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/rules.h"
#include "core/util.h"
#include "store/store.h"

#define USER_COLS "id, email, name, username, created_at, updated_at"

static void user_from_row(const struct rf_db_rows *r, int row, struct rf_user *u)
{
    u->id = rf_db_cell(r, row, 0);
    u->email = rf_db_cell(r, row, 1);
    u->name = rf_db_cell(r, row, 2);
    u->username = rf_db_cell(r, row, 3);
    u->created_at = rf_db_cell(r, row, 4);
    u->updated_at = rf_db_cell(r, row, 5);
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

struct ucreate {
    struct ucreate *next;
    struct rf_db *db;
    struct rf_arena *a; /* the requester's: written only while it waits */
    const char *ws, *email, *name;
    char id[RF_ID_MAX], now[RF_TIME_MAX];
    struct rf_user *out;
    int created, resolved, done, rc;
    char detail[256];
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ucreate *head;
    int leaders;
} uq = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0};

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
                !strcmp(open[i]->ws, rf_db_cell(&rows, r, 6))) {
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

/* Where u sits in the queue (the pointer that points at it), or NULL once a
 * leader took it. Called with uq.mu held; never kept across a wait. */
static struct ucreate **queue_slot(const struct ucreate *u)
{
    struct ucreate **pp = &uq.head;
    while (*pp && *pp != u)
        pp = &(*pp)->next;
    return *pp ? pp : NULL;
}

static int user_create_batched(struct rf_db *db, struct rf_arena *a, const char *ws,
                               const char *email, const char *name, struct rf_user *out,
                               int *created, struct rf_db_error *e)
{
    struct ucreate me = {.db = db, .a = a, .ws = ws, .email = email, .name = name, .out = out};
    if (rf_id_new(me.id, sizeof(me.id), "usr_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(me.now);

    /* Waiting in the queue counts against the write budget: past it, a
     * create that no leader has taken yet leaves and is answered 503. (One
     * that was taken waits for its batch, whose own attempts are bounded.) */
    struct timespec deadline = rf_timespec_in(CLOCK_REALTIME, RF_TX_BUDGET_MS);

    pthread_mutex_lock(&uq.mu);
    struct ucreate **tail = &uq.head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = &me;
    while (!me.done) {
        struct ucreate **mine = queue_slot(&me);
        if (!mine) { /* taken by a leader: its batch's attempts are bounded */
            pthread_cond_wait(&uq.cv, &uq.mu);
            continue;
        }
        if (uq.leaders >= BATCH_LEADERS) {
            if (pthread_cond_timedwait(&uq.cv, &uq.mu, &deadline) == ETIMEDOUT &&
                (mine = queue_slot(&me)) != NULL) {
                *mine = me.next;
                pthread_mutex_unlock(&uq.mu);
                return rf_db_fail(e, RF_DB_RETRY, "timed out queued for a batched create");
            }
            continue;
        }
        /* Lead: take every queued create of this database, oldest first. */
        struct ucreate *batch[BATCH_MAX];
        int n = 0;
        for (struct ucreate **pp = &uq.head; *pp && n < BATCH_MAX;) {
            if ((*pp)->db == db) {
                batch[n++] = *pp;
                *pp = (*pp)->next;
            } else {
                pp = &(*pp)->next;
            }
        }
        uq.leaders++;
        pthread_mutex_unlock(&uq.mu);
        ubatch_run(db, batch, n);
        pthread_mutex_lock(&uq.mu);
        uq.leaders--;
        for (int i = 0; i < n; i++)
            batch[i]->done = 1;
        pthread_cond_broadcast(&uq.cv);
    }
    pthread_mutex_unlock(&uq.mu);
    *created = me.created;
    if (me.rc != RF_DB_OK)
        return rf_db_fail(e, me.rc, "%s", me.detail);
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
    };
    int rc = rf_db_exec(c,
                        "UPDATE users SET"
                        " name = CASE WHEN ? = 1 THEN ? ELSE name END,"
                        " username = CASE WHEN ? = 1 THEN ? ELSE username END,"
                        " username_key = CASE WHEN ? = 1 THEN ? ELSE username_key END,"
                        " updated_at = ?"
                        " WHERE workspace_id = ? AND id = ? RETURNING " USER_COLS,
                        q, 9, ctx->a, &rows, e);
    if (rc == RF_DB_OK && rows.nrows == 1) {
        user_from_row(&rows, 0, ctx->out);
        ctx->found = 1;
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
