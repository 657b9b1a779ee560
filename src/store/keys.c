#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hooks.h"
#include "core/util.h"
#include "store/store.h"

#define IDENTITY_COLS "id, external_id, meta, created_at, version"
#define KEY_COLS                                                                                   \
    "k.id, k.start, k.name, k.enabled, k.remaining, k.expires, k.meta, k.created_at,"              \
    " k.updated_at, k.refill_interval, k.refill_amount, k.refill_day, k.last_refill,"              \
    " k.rerolled_to, COALESCE(k.limits_owner, k.id), i.id, i.external_id, i.meta, i.created_at,"   \
    " i.version, k.version"
#define KEY_NCOLS 21
#define KEY_IDENTITY_COL 15
#define KEY_VERSION_COL 20
#define KEY_SELECT                                                                                 \
    "SELECT " KEY_COLS " FROM api_keys k LEFT JOIN identities i ON i.id = k.identity_id"

static void identity_from_row(const struct rf_db_rows *r, int row, int col, struct rf_identity *idn)
{
    idn->id = rf_db_cell(r, row, col);
    idn->external_id = rf_db_cell(r, row, col + 1);
    idn->meta = rf_db_cell(r, row, col + 2);
    idn->created_at = rf_db_cell(r, row, col + 3);
    idn->version = atoll(rf_db_cell(r, row, col + 4) ? rf_db_cell(r, row, col + 4) : "0");
}

static int64_t cell_int(const struct rf_db_rows *r, int row, int col, int *has)
{
    const char *v = rf_db_cell(r, row, col);
    if (has)
        *has = v != NULL;
    return v ? atoll(v) : 0;
}

static enum rf_refill refill_parse(const char *v)
{
    return !v ? RF_REFILL_NONE : !strcmp(v, "monthly") ? RF_REFILL_MONTHLY : RF_REFILL_DAILY;
}

static const char *refill_text(enum rf_refill r)
{
    return r == RF_REFILL_DAILY ? "daily" : r == RF_REFILL_MONTHLY ? "monthly" : NULL;
}

int64_t rf_refill_period_start(enum rf_refill interval, int day, int64_t now_ms)
{
    static const int64_t day_ms = 86400000;
    int64_t today = now_ms - (now_ms % day_ms + day_ms) % day_ms;
    if (interval != RF_REFILL_MONTHLY)
        return today;
    time_t t = (time_t)(today / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    for (int back = 0; back < 2; back++) {
        /* Day `day` of this month (or of the one before), cut to its length. */
        struct tm m = {.tm_year = tm.tm_year, .tm_mon = tm.tm_mon - back, .tm_mday = 1};
        time_t first = timegm(&m);
        struct tm next = {.tm_year = tm.tm_year, .tm_mon = tm.tm_mon - back + 1, .tm_mday = 1};
        int len = (int)((timegm(&next) - first) / 86400);
        int d = day < 1 ? 1 : day > len ? len : day;
        int64_t start = ((int64_t)first + (int64_t)(d - 1) * 86400) * 1000;
        if (start <= now_ms)
            return start;
    }
    return today; /* not reached: the month before always started earlier */
}

/* The start of the period a refill is due for, or 0 when none is due. */
static int64_t refill_due(const struct rf_key *k, int64_t now_ms)
{
    if (k->refill == RF_REFILL_NONE)
        return 0;
    int64_t p = rf_refill_period_start(k->refill, (int)k->refill_day, now_ms);
    return k->last_refill < p ? p : 0;
}

/* limits_owner: where the key's ratelimits live (may be NULL). now_ms
 * shows a refill that is due as done, as the next verify will make it. */
static void key_from_row(const struct rf_db_rows *r, int row, struct rf_key *k, int64_t now_ms,
                         const char **limits_owner)
{
    const char *v;
    memset(k, 0, sizeof(*k));
    k->id = rf_db_cell(r, row, 0);
    k->start = rf_db_cell(r, row, 1);
    k->name = rf_db_cell(r, row, 2);
    v = rf_db_cell(r, row, 3);
    k->enabled = v && (atoi(v) != 0 || v[0] == 't');
    k->remaining = cell_int(r, row, 4, &k->has_remaining);
    k->expires = cell_int(r, row, 5, &k->has_expires);
    k->meta = rf_db_cell(r, row, 6);
    k->created_at = rf_db_cell(r, row, 7);
    k->updated_at = rf_db_cell(r, row, 8);
    k->refill = refill_parse(rf_db_cell(r, row, 9));
    k->refill_amount = cell_int(r, row, 10, NULL);
    k->refill_day = cell_int(r, row, 11, NULL);
    k->last_refill = cell_int(r, row, 12, NULL);
    k->rerolled_to = rf_db_cell(r, row, 13);
    if (limits_owner)
        *limits_owner = rf_db_cell(r, row, 14);
    if (rf_db_cell(r, row, KEY_IDENTITY_COL)) {
        k->has_identity = 1;
        identity_from_row(r, row, KEY_IDENTITY_COL, &k->identity);
    }
    if (now_ms && refill_due(k, now_ms)) {
        k->has_remaining = 1;
        k->remaining = k->refill_amount;
    }
    k->version = cell_int(r, row, KEY_VERSION_COL, NULL);
}

/* Test builds: widen the window between reading a row and writing what
 * depends on it, so that races the tests check for happen every time. */
static void fault_pause(const char *name)
{
    if (rf_fault(name)) {
        struct timespec ts = {0, 30 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- identities ---- */

struct identity_ctx {
    struct rf_arena *a;
    const char *ws, *external_id, *meta;
    const struct rf_ratelimits *rl_in;
    struct rf_ratelimits *rl_out;
    struct rf_identity *out;
    int flag; /* create: exists; get: found */
};

static int identity_create_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct identity_ctx *ctx = arg;
    char id[RF_ID_MAX], now[RF_TIME_MAX];
    struct rf_db_rows rows;
    if (rf_id_new(id, sizeof(id), "idn_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(now);
    struct rf_db_param p[] = {RF_TEXT(id), RF_TEXT(ctx->ws), RF_TEXT(ctx->external_id),
                              RF_TEXT(ctx->meta), RF_TEXT(now)};
    int rc = rf_db_exec(c,
                        "INSERT INTO identities (id, workspace_id, external_id, meta, created_at)"
                        " VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (workspace_id, external_id) DO NOTHING"
                        " RETURNING " IDENTITY_COLS,
                        p, 5, ctx->a, &rows, e);
    ctx->flag = rc == RF_DB_OK && rows.nrows == 0;
    if (rc == RF_DB_OK && rows.nrows == 1) {
        identity_from_row(&rows, 0, 0, ctx->out);
        if (ctx->rl_in && ctx->rl_in->n)
            rc = rf_store_ratelimits_set(c, ctx->ws, id, ctx->rl_in, e);
    }
    return rc;
}

int rf_store_identity_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a,
                             const char *ws, const char *external_id, const char *meta,
                             const struct rf_ratelimits *rl, struct rf_identity *out, int *exists,
                             struct rf_db_error *e)
{
    struct identity_ctx ctx = {a, ws, external_id, meta, rl, NULL, out, 0};
    /* With limits the identity and its limits commit together. */
    int rc = rf_tx_run(db, outer, rl && rl->n ? RF_TX_WRITE : RF_TX_AUTOCOMMIT, identity_create_tx,
                       &ctx, e);
    *exists = ctx.flag;
    return rc;
}

static int identity_get_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct identity_ctx *ctx = arg;
    struct rf_db_rows rows;
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->external_id)};
    int rc = rf_db_exec(
        c, "SELECT " IDENTITY_COLS " FROM identities WHERE workspace_id = ? AND external_id = ?", p,
        2, ctx->a, &rows, e);
    ctx->flag = rc == RF_DB_OK && rows.nrows == 1;
    if (ctx->flag) {
        identity_from_row(&rows, 0, 0, ctx->out);
        if (ctx->rl_out)
            rc = rf_store_ratelimits_get(c, ctx->a, ctx->out->id, ctx->rl_out, e);
    }
    return rc;
}

int rf_store_identity_get(struct rf_db *db, struct rf_arena *a, const char *ws,
                          const char *external_id, struct rf_identity *out,
                          struct rf_ratelimits *rl, int *found, struct rf_db_error *e)
{
    struct identity_ctx ctx = {a, ws, external_id, NULL, NULL, rl, out, 0};
    int rc = rf_tx_run(db, NULL, RF_TX_READ, identity_get_tx, &ctx, e);
    *found = ctx.flag;
    return rc;
}

static void identity_item(const struct rf_db_rows *r, int row, void *item)
{
    identity_from_row(r, row, 0, item);
}

int rf_store_identity_list(struct rf_db *db, struct rf_arena *a, const char *ws,
                           const char *after_created, const char *after_id, int limit,
                           struct rf_identity **out, int *n, int *more, struct rf_db_error *e)
{
    void *items;
    int rc = rf_store_list(
        db, a, "SELECT " IDENTITY_COLS " FROM identities WHERE workspace_id = ?" RF_PAGE_FIRST_SQL,
        "SELECT " IDENTITY_COLS " FROM identities WHERE workspace_id = ?" RF_PAGE_AFTER_SQL, ws,
        after_created, after_id, limit, sizeof(**out), identity_item, &items, n, more, e);
    *out = items;
    return rc;
}

struct identity_update_ctx {
    struct rf_arena *a;
    const char *ws, *external_id, *meta, *if_versions;
    int set_meta;
    const struct rf_ratelimits *rl;
    struct rf_identity *out;
    int found;
};

/* One conditional UPDATE (If-Match in its WHERE), then the identity's keys
 * get a new version: a key's representation embeds its identity's meta, so
 * its ETag must change with it (RFC 9110 strong validators). */
static int identity_update_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct identity_update_ctx *ctx = arg;
    struct rf_db_rows rows;
    ctx->found = RF_STORE_MISSING;
    struct rf_db_param p[] = {RF_INT(ctx->set_meta),     RF_TEXT(ctx->meta),
                              RF_TEXT(ctx->ws),          RF_TEXT(ctx->external_id),
                              RF_TEXT(ctx->if_versions), RF_TEXT(ctx->if_versions)};
    int rc = rf_db_exec(c,
                        "UPDATE identities SET meta = CASE WHEN ? = 1 THEN ? ELSE meta END,"
                        " version = version + 1"
                        " WHERE workspace_id = ? AND external_id = ?" RF_IF_VERSION_SQL
                        " RETURNING " IDENTITY_COLS,
                        p, 6, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows == 0) {
        if (!ctx->if_versions)
            return RF_DB_OK;
        int exists;
        rc = rf_store_exists(c,
                             "SELECT id FROM identities WHERE workspace_id = ? AND external_id = ?",
                             ctx->ws, ctx->external_id, &exists, e);
        if (exists)
            ctx->found = RF_STORE_STALE;
        return rc;
    }
    identity_from_row(&rows, 0, 0, ctx->out);
    ctx->found = RF_STORE_FOUND;
    if (ctx->rl && (rc = rf_store_ratelimits_set(c, ctx->ws, ctx->out->id, ctx->rl, e)))
        return rc;
    struct rf_db_param q[] = {RF_TEXT(ctx->out->id)};
    return rf_db_exec(c, "UPDATE api_keys SET version = version + 1 WHERE identity_id = ?", q, 1,
                      NULL, NULL, e);
}

int rf_store_identity_update(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a,
                             const char *ws, const char *external_id, int set_meta,
                             const char *meta, const struct rf_ratelimits *rl,
                             const char *if_versions, struct rf_identity *out, int *found,
                             struct rf_db_error *e)
{
    struct identity_update_ctx ctx = {a, ws, external_id, meta, if_versions, set_meta, rl, out, 0};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, identity_update_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

/* Detach, then delete, in one transaction; the foreign key from api_keys
 * is what makes it race-free. A key that a concurrent transaction attached
 * to this identity after the detach (it read the identity before the
 * delete) makes the DELETE fail its foreign-key check, or makes that
 * transaction's own write fail it if the DELETE came first: the loser runs
 * again (RF_DB_FOREIGN → RETRY), this one then detaching the newcomer, that
 * one then creating a fresh identity. On PostgreSQL the foreign-key check
 * locks the identity row, so the two wait for each other rather than pass;
 * SQLite runs write transactions one at a time. */
static int identity_delete_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rf_store_ref *ctx = arg;
    char now[RF_TIME_MAX];
    struct rf_arena a;
    struct rf_db_rows rows;
    rf_now_rfc3339(now);
    rf_arena_init(&a, 0);
    ctx->found = 0;
    struct rf_db_param d[] = {RF_TEXT(now), RF_TEXT(ctx->ws), RF_TEXT(ctx->id)};
    int rc = rf_db_exec(c,
                        "UPDATE api_keys SET identity_id = NULL, updated_at = ?,"
                        " version = version + 1 WHERE identity_id ="
                        " (SELECT id FROM identities WHERE workspace_id = ? AND external_id = ?)",
                        d, 3, NULL, NULL, e);
    if (rc == RF_DB_OK) {
        fault_pause("identities.slow_delete");
        struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->id)};
        rc = rf_db_exec(c,
                        "DELETE FROM identities WHERE workspace_id = ? AND external_id = ?"
                        " RETURNING id",
                        p, 2, &a, &rows, e);
        ctx->found = rc == RF_DB_OK && rows.nrows == 1;
        /* Its limits go with it: counters shared by keys it no longer has. */
        if (ctx->found)
            rc = rf_store_ratelimits_drop(c, rf_db_cell(&rows, 0, 0), e);
    }
    rf_arena_free(&a);
    if (rc == RF_DB_FOREIGN)
        return rf_db_fail(e, RF_DB_RETRY, "a key was attached to the identity meanwhile");
    return rc;
}

int rf_store_identity_delete(struct rf_db *db, const char *ws, const char *external_id, int *found,
                             struct rf_db_error *e)
{
    return rf_store_ref_write(db, NULL, identity_delete_tx, ws, external_id, found, e);
}

/* Seed 003 done right: get-or-create inside the caller's transaction. The
 * insert does nothing when the identity exists (or a concurrent request just
 * made it: PostgreSQL waits for that transaction and then sees the row
 * conflict); the read that follows runs on the same connection, in the same
 * transaction, on the primary — never a replica or a stale snapshot. If the
 * row is still not visible (a snapshot older than the winner under
 * REPEATABLE READ/SERIALIZABLE), RETRY restarts the whole transaction. */
static int identity_get_or_create(struct rf_db_conn *c, struct rf_arena *a, const char *ws,
                                  const char *external_id, const char **id_out,
                                  struct rf_db_error *e)
{
    char id[RF_ID_MAX], now[RF_TIME_MAX];
    struct rf_db_rows rows;
    if (rf_id_new(id, sizeof(id), "idn_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(now);
    struct rf_db_param p[] = {RF_TEXT(id), RF_TEXT(ws), RF_TEXT(external_id), RF_TEXT(now)};
    int rc = rf_db_exec(c,
                        "INSERT INTO identities (id, workspace_id, external_id, created_at)"
                        " VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (workspace_id, external_id) DO NOTHING RETURNING id",
                        p, 4, a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows == 0) {
        struct rf_db_param q[] = {RF_TEXT(ws), RF_TEXT(external_id)};
        rc = rf_db_exec(c, "SELECT id FROM identities WHERE workspace_id = ? AND external_id = ?",
                        q, 2, a, &rows, e);
        if (rc != RF_DB_OK)
            return rc;
        if (rows.nrows == 0)
            return rf_db_fail(e, RF_DB_RETRY, "conflicting identity not visible yet");
    }
    *id_out = rf_db_cell(&rows, 0, 0);
    return RF_DB_OK;
}

/* The identity found above was deleted before this transaction wrote its
 * reference to it (DELETE /v1/identities commits first, and the foreign key
 * refuses the write): run the transaction again, which finds or creates a
 * live identity. */
static int identity_gone_retry(int rc, struct rf_db_error *e)
{
    if (rc == RF_DB_FOREIGN)
        return rf_db_fail(e, RF_DB_RETRY, "identity deleted by a concurrent transaction");
    return rc;
}

/* ---- keys ---- */

struct key_ctx {
    struct rf_arena *a;
    const char *ws, *key_hash, *start, *key_id;
    const struct rf_key_input *in;
    char *id_out;
    const char *identity_id;
    struct rf_key *out;
    int found;
};

/* The refill columns of a create or patch: the first refill is due at the
 * start of the next period, so last_refill is the current one. */
static struct rf_db_param refill_last(const struct rf_key_input *in)
{
    if (in->refill == RF_REFILL_NONE)
        return RF_TEXT(NULL);
    return RF_INT(rf_refill_period_start(in->refill, (int)in->refill_day, rf_now_ms()));
}

/* A key that a conditional UPDATE matched no row of may still be there:
 * the condition failed rather than the key being gone. */
static int key_exists(struct rf_db_conn *c, const char *ws, const char *key_id, int *exists,
                      struct rf_db_error *e)
{
    return rf_store_exists(c, "SELECT id FROM api_keys WHERE workspace_id = ? AND id = ?", ws,
                           key_id, exists, e);
}

static int key_create_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct key_ctx *ctx = arg;
    const struct rf_key_input *in = ctx->in;
    char now[RF_TIME_MAX];
    int rc;
    ctx->identity_id = NULL;
    if (in->set_external_id && in->external_id) {
        rc = identity_get_or_create(c, ctx->a, ctx->ws, in->external_id, &ctx->identity_id, e);
        if (rc != RF_DB_OK)
            return rc;
        fault_pause("keys.slow_attach");
    }
    if (rf_id_new(ctx->id_out, 64, "key_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(now);
    int refill = in->refill != RF_REFILL_NONE;
    /* A refilled key without an explicit balance starts full. */
    int has_remaining = in->has_remaining || refill;
    int64_t remaining = in->has_remaining ? in->remaining : in->refill_amount;
    struct rf_db_param p[] = {
        RF_TEXT(ctx->id_out),
        RF_TEXT(ctx->ws),
        RF_TEXT(ctx->key_hash),
        RF_TEXT(ctx->start),
        RF_TEXT(in->name),
        RF_INT(in->set_enabled ? in->enabled : 1),
        has_remaining ? RF_INT(remaining) : RF_TEXT(NULL),
        in->has_expires ? RF_INT(in->expires) : RF_TEXT(NULL),
        RF_TEXT(in->meta),
        RF_TEXT(ctx->identity_id),
        RF_TEXT(now),
        RF_TEXT(now),
        RF_TEXT(refill_text(in->refill)),
        refill ? RF_INT(in->refill_amount) : RF_TEXT(NULL),
        refill ? RF_INT(in->refill_day) : RF_TEXT(NULL),
        refill_last(in),
    };
    rc = rf_db_exec(c,
                    "INSERT INTO api_keys (id, workspace_id, key_hash, start, name, enabled,"
                    " remaining, expires, meta, identity_id, created_at, updated_at,"
                    " refill_interval, refill_amount, refill_day, last_refill)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    p, 16, NULL, NULL, e);
    if (rc == RF_DB_OK && in->set_ratelimits && in->ratelimits.n)
        rc = rf_store_ratelimits_set(c, ctx->ws, ctx->id_out, &in->ratelimits, e);
    return identity_gone_retry(rc, e);
}

int rf_store_key_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                        const char *key_hash, const char *start, const struct rf_key_input *in,
                        char key_id[64], const char **identity_id, struct rf_db_error *e)
{
    struct key_ctx ctx = {
        .a = a, .ws = ws, .key_hash = key_hash, .start = start, .in = in, .id_out = key_id};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, key_create_tx, &ctx, e);
    *identity_id = rc == RF_DB_OK ? ctx.identity_id : NULL;
    return rc;
}

static int key_read(struct rf_db_conn *c, struct key_ctx *ctx, struct rf_db_error *e)
{
    struct rf_db_rows rows;
    const char *owner = NULL;
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->key_id)};
    int rc =
        rf_db_exec(c, KEY_SELECT " WHERE k.workspace_id = ? AND k.id = ?", p, 2, ctx->a, &rows, e);
    ctx->found = rc == RF_DB_OK && rows.nrows == 1;
    if (ctx->found) {
        key_from_row(&rows, 0, ctx->out, rf_now_ms(), &owner);
        rc = rf_store_ratelimits_get(c, ctx->a, owner, &ctx->out->ratelimits, e);
    }
    return rc;
}

/* Refills k when a period has started since its last refill. The WHERE
 * on last_refill is what makes it once per period: of any number of
 * processes racing at the boundary, one UPDATE matches and the rest find
 * last_refill already moved. */
static int refill_apply(struct rf_db_conn *c, const char *key_id, int64_t period,
                        struct rf_db_error *e)
{
    struct rf_db_param p[] = {RF_INT(period), RF_TEXT(key_id), RF_INT(period)};
    return rf_db_exec(
        c,
        "UPDATE api_keys SET remaining = refill_amount, last_refill = ?, version = version + 1"
        " WHERE id = ? AND refill_interval IS NOT NULL"
        " AND (last_refill IS NULL OR last_refill < ?)",
        p, 3, NULL, NULL, e);
}

/* The refill due on a key (by id), in c's transaction, before an operation
 * that sets or moves its balance: an increment after the boundary adds to
 * the refilled balance, and a PATCH of remaining is not overwritten by the
 * refill the next verify would make. *state: 0 absent, 1 live, -1 an alias
 * of a rerolled key (nothing done). */
static int refill_if_due(struct rf_db_conn *c, struct rf_arena *a, const char *ws,
                         const char *key_id, int *state, struct rf_db_error *e)
{
    struct rf_db_rows rows;
    struct rf_db_param q[] = {RF_TEXT(ws), RF_TEXT(key_id)};
    int rc = rf_db_exec(c,
                        "SELECT refill_interval, refill_day, last_refill, rerolled_to"
                        " FROM api_keys WHERE workspace_id = ? AND id = ?",
                        q, 2, a, &rows, e);
    *state = rc == RF_DB_OK && rows.nrows == 1 ? (rf_db_cell(&rows, 0, 3) ? -1 : 1) : 0;
    if (*state != 1)
        return rc;
    struct rf_key k = {.refill = refill_parse(rf_db_cell(&rows, 0, 0)),
                       .refill_day = cell_int(&rows, 0, 1, NULL),
                       .last_refill = cell_int(&rows, 0, 2, NULL)};
    int64_t due = refill_due(&k, rf_now_ms());
    return due ? refill_apply(c, key_id, due, e) : RF_DB_OK;
}

static int key_update_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct key_ctx *ctx = arg;
    const struct rf_key_input *in = ctx->in;
    char now[RF_TIME_MAX];
    struct rf_db_rows rows;
    int rc;
    ctx->found = 0;
    rf_now_rfc3339(now);
    int refill = in->refill != RF_REFILL_NONE, state;
    if ((rc = refill_if_due(c, ctx->a, ctx->ws, ctx->key_id, &state, e)) != RF_DB_OK)
        return rc;
    if (state <= 0) { /* absent, or an alias: its state is its successor's */
        ctx->found = state < 0 ? RF_STORE_REROLLED : RF_STORE_MISSING;
        return RF_DB_OK;
    }
    /* The key first: a PATCH of a key that does not exist must not leave
     * an identity behind. One statement for every combination of fields:
     * CASE keeps what the patch leaves alone. */
    /* clang-format off */
    struct rf_db_param p[] = {
        RF_INT(in->set_name),
        RF_TEXT(in->name),
        RF_INT(in->set_meta),
        RF_TEXT(in->meta),
        RF_INT(in->set_remaining),
        in->has_remaining ? RF_INT(in->remaining) : RF_TEXT(NULL),
        RF_INT(in->set_expires),
        in->has_expires ? RF_INT(in->expires) : RF_TEXT(NULL),
        RF_INT(in->set_enabled),
        RF_INT(in->enabled),
        RF_INT(in->set_external_id && !in->external_id),
        RF_INT(in->set_refill),
        RF_TEXT(refill_text(in->refill)),
        RF_INT(in->set_refill),
        refill ? RF_INT(in->refill_amount) : RF_TEXT(NULL),
        RF_INT(in->set_refill),
        refill ? RF_INT(in->refill_day) : RF_TEXT(NULL),
        RF_INT(in->set_refill),
        refill_last(in),
        RF_TEXT(now),
        RF_TEXT(ctx->ws),
        RF_TEXT(ctx->key_id),
        RF_TEXT(in->if_versions),  RF_TEXT(in->if_versions), /* If-Match */
    };
    /* clang-format on */
    rc = rf_db_exec(c,
                    "UPDATE api_keys SET"
                    " name = CASE WHEN ? = 1 THEN ? ELSE name END,"
                    " meta = CASE WHEN ? = 1 THEN ? ELSE meta END,"
                    " remaining = CASE WHEN ? = 1 THEN ? ELSE remaining END,"
                    " expires = CASE WHEN ? = 1 THEN ? ELSE expires END,"
                    " enabled = CASE WHEN ? = 1 THEN ? ELSE enabled END,"
                    " identity_id = CASE WHEN ? = 1 THEN NULL ELSE identity_id END,"
                    " refill_interval = CASE WHEN ? = 1 THEN ? ELSE refill_interval END,"
                    " refill_amount = CASE WHEN ? = 1 THEN ? ELSE refill_amount END,"
                    " refill_day = CASE WHEN ? = 1 THEN ? ELSE refill_day END,"
                    " last_refill = CASE WHEN ? = 1 THEN ? ELSE last_refill END,"
                    " updated_at = ?, version = version + 1"
                    " WHERE workspace_id = ? AND id = ? AND rerolled_to IS NULL" RF_IF_VERSION_SQL
                    " RETURNING COALESCE(limits_owner, id)",
                    p, 24, ctx->a, &rows, e);
    if (rc == RF_DB_OK && rows.nrows == 0 && in->if_versions) {
        /* Missing (404) or its version moved on (412): the UPDATE decided,
         * this read only names why. */
        int exists;
        rc = key_exists(c, ctx->ws, ctx->key_id, &exists, e);
        if (exists)
            ctx->found = RF_STORE_STALE;
        return rc;
    }
    if (rc != RF_DB_OK || rows.nrows == 0)
        return rc;
    if (in->set_ratelimits) {
        rc = rf_store_ratelimits_set(c, ctx->ws, rf_db_cell(&rows, 0, 0), &in->ratelimits, e);
        if (rc != RF_DB_OK)
            return rc;
    }
    if (in->set_external_id && in->external_id) {
        const char *identity_id;
        rc = identity_get_or_create(c, ctx->a, ctx->ws, in->external_id, &identity_id, e);
        if (rc != RF_DB_OK)
            return rc;
        struct rf_db_param q[] = {RF_TEXT(identity_id), RF_TEXT(ctx->key_id)};
        rc = rf_db_exec(c, "UPDATE api_keys SET identity_id = ? WHERE id = ?", q, 2, NULL, NULL, e);
        if (rc != RF_DB_OK)
            return identity_gone_retry(rc, e);
    }
    return key_read(c, ctx, e);
}

int rf_store_key_update(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                        const char *key_id, const struct rf_key_input *in, struct rf_key *out,
                        int *found, struct rf_db_error *e)
{
    struct key_ctx ctx = {.a = a, .ws = ws, .key_id = key_id, .in = in, .out = out};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, key_update_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

static int key_get_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    return key_read(c, arg, e);
}

int rf_store_key_get(struct rf_db *db, struct rf_arena *a, const char *ws, const char *key_id,
                     struct rf_key *out, int *found, struct rf_db_error *e)
{
    struct key_ctx ctx = {.a = a, .ws = ws, .key_id = key_id, .out = out};
    int rc = rf_tx_run(db, NULL, RF_TX_READ, key_get_tx, &ctx, e);
    *found = ctx.found;
    return rc;
}

/* ---- delete ---- */

static int key_delete_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct rf_store_ref *ctx = arg;
    struct rf_arena a;
    struct rf_db_rows rows;
    rf_arena_init(&a, 0);
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->id)};
    int rc = rf_db_exec(c,
                        "DELETE FROM api_keys WHERE workspace_id = ? AND id = ?"
                        " RETURNING rerolled_to, COALESCE(limits_owner, id)",
                        p, 2, &a, &rows, e);
    ctx->found = rc == RF_DB_OK && rows.nrows == 1;
    /* Deleting a live key ends its aliases and its limits with it; an alias
     * (rerolled_to set) goes alone, its successor keeps the limits. */
    if (ctx->found && !rf_db_cell(&rows, 0, 0)) {
        rc = rf_db_exec(c, "DELETE FROM api_keys WHERE workspace_id = ? AND rerolled_to = ?", p, 2,
                        NULL, NULL, e);
        if (rc == RF_DB_OK)
            rc = rf_store_ratelimits_drop(c, rf_db_cell(&rows, 0, 1), e);
    }
    rf_arena_free(&a);
    return rc;
}

int rf_store_key_delete(struct rf_db *db, struct rf_tx *outer, const char *ws, const char *key_id,
                        int *found, struct rf_db_error *e)
{
    return rf_store_ref_write(db, outer, key_delete_tx, ws, key_id, found, e);
}

/* ---- credits ---- */

struct credits_ctx {
    const char *ws, *key_id;
    enum rf_credit_op op;
    int has_value;
    int64_t value;
    enum rf_credit_result res;
    int has_remaining;
    int64_t remaining;
};

static int credits_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct credits_ctx *ctx = arg;
    struct rf_arena a;
    struct rf_db_rows rows;
    int rc;
    rf_arena_init(&a, 0);
    ctx->res = RF_CREDITS_NOT_FOUND;
    struct rf_db_param q[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->key_id)};
    int state;
    if ((rc = refill_if_due(c, &a, ctx->ws, ctx->key_id, &state, e)) != RF_DB_OK || state == 0)
        goto out;
    if (state < 0) { /* the balance is the successor's */
        ctx->res = RF_CREDITS_REROLLED;
        goto out;
    }
    /* One statement each: the arithmetic happens in the row, under its
     * lock, so no verify or other operation in between is lost. */
    static const char *const sql[] = {
        [RF_CREDITS_SET] = "UPDATE api_keys SET remaining = ?, version = version + 1"
                           " WHERE workspace_id = ? AND id = ? AND rerolled_to IS NULL"
                           " RETURNING remaining",
        /* Saturates at 2^53 - 1 (exact in every JSON client) instead of
         * overflowing: PostgreSQL would fail the statement, SQLite turn the
         * balance into a float. */
        [RF_CREDITS_INCREMENT] = "UPDATE api_keys SET remaining = CASE WHEN remaining >"
                                 " 9007199254740991 - ? THEN 9007199254740991"
                                 " ELSE remaining + ? END, version = version + 1"
                                 " WHERE workspace_id = ? AND id = ? AND remaining IS NOT NULL"
                                 " AND rerolled_to IS NULL RETURNING remaining",
        [RF_CREDITS_DECREMENT] = "UPDATE api_keys SET remaining = CASE WHEN remaining > ?"
                                 " THEN remaining - ? ELSE 0 END, version = version + 1"
                                 " WHERE workspace_id = ? AND id = ? AND remaining IS NOT NULL"
                                 " AND rerolled_to IS NULL RETURNING remaining",
    };
    struct rf_db_param v = ctx->has_value ? RF_INT(ctx->value) : RF_TEXT(NULL);
    struct rf_db_param p[] = {v, v, RF_TEXT(ctx->ws), RF_TEXT(ctx->key_id)};
    int two = ctx->op != RF_CREDITS_SET; /* the value appears twice */
    rc = rf_db_exec(c, sql[ctx->op], two ? p : p + 1, two ? 4 : 3, &a, &rows, e);
    if (rc != RF_DB_OK)
        goto out;
    if (rows.nrows == 0) {
        /* Unlimited, or deleted since the read above: tell which. */
        rc = rf_db_exec(c, "SELECT remaining FROM api_keys WHERE workspace_id = ? AND id = ?", q, 2,
                        &a, &rows, e);
        if (rc == RF_DB_OK && rows.nrows == 1)
            ctx->res = RF_CREDITS_UNLIMITED;
        goto out;
    }
    ctx->res = RF_CREDITS_OK;
    const char *r = rf_db_cell(&rows, 0, 0);
    ctx->has_remaining = r != NULL;
    ctx->remaining = r ? atoll(r) : 0;
out:
    rf_arena_free(&a);
    return rc;
}

int rf_store_key_credits(struct rf_db *db, struct rf_tx *outer, const char *ws, const char *key_id,
                         enum rf_credit_op op, int has_value, int64_t value,
                         enum rf_credit_result *res, int *has_remaining, int64_t *remaining,
                         struct rf_db_error *e)
{
    struct credits_ctx ctx = {ws, key_id, op, has_value, value, RF_CREDITS_NOT_FOUND, 0, 0};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, credits_tx, &ctx, e);
    *res = ctx.res;
    *has_remaining = ctx.has_remaining;
    *remaining = ctx.remaining;
    return rc;
}

/* ---- reroll ---- */

struct reroll_ctx {
    struct rf_arena *a;
    const char *ws, *key_id, *key_hash, *start;
    int64_t overlap_ms, old_expires;
    char *new_id;
    enum rf_reroll_result res;
};

static int reroll_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct reroll_ctx *ctx = arg;
    struct rf_db_rows rows;
    char now[RF_TIME_MAX];
    int rc;
    ctx->res = RF_REROLL_NOT_FOUND;
    if (rf_id_new(ctx->new_id, 64, "key_", 16))
        return rf_db_fail(e, RF_DB_ERROR, "id generation failed");
    rf_now_rfc3339(now);
    /* The claim comes first and decides: it sets rerolled_to only where it
     * is unset, so of N rerolls of one key exactly one matches. It also
     * locks the row, so the copy below is of the balance as it is now,
     * and a verify spending on the old row waits, then finds it an alias
     * and starts over on the successor. */
    struct rf_db_param p[] = {RF_TEXT(ctx->new_id), RF_TEXT(now), RF_TEXT(ctx->ws),
                              RF_TEXT(ctx->key_id)};
    rc = rf_db_exec(c,
                    "UPDATE api_keys SET rerolled_to = ?, updated_at = ?, version = version + 1"
                    " WHERE workspace_id = ? AND id = ? AND rerolled_to IS NULL"
                    " RETURNING name, enabled, remaining, expires, meta, identity_id,"
                    " refill_interval, refill_amount, refill_day, last_refill,"
                    " COALESCE(limits_owner, id)",
                    p, 4, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows == 0) {
        int exists;
        rc = key_exists(c, ctx->ws, ctx->key_id, &exists, e);
        if (exists)
            ctx->res = RF_REROLL_ALREADY;
        return rc;
    }
    const char *expires = rf_db_cell(&rows, 0, 3);
    struct rf_db_param n[] = {
        RF_TEXT(ctx->new_id),
        RF_TEXT(ctx->ws),
        RF_TEXT(ctx->key_hash),
        RF_TEXT(ctx->start),
        RF_TEXT(rf_db_cell(&rows, 0, 0)),
        RF_TEXT(rf_db_cell(&rows, 0, 1)),
        RF_TEXT(rf_db_cell(&rows, 0, 2)),
        RF_TEXT(expires),
        RF_TEXT(rf_db_cell(&rows, 0, 4)),
        RF_TEXT(rf_db_cell(&rows, 0, 5)),
        RF_TEXT(now),
        RF_TEXT(now),
        RF_TEXT(rf_db_cell(&rows, 0, 6)),
        RF_TEXT(rf_db_cell(&rows, 0, 7)),
        RF_TEXT(rf_db_cell(&rows, 0, 8)),
        RF_TEXT(rf_db_cell(&rows, 0, 9)),
        RF_TEXT(rf_db_cell(&rows, 0, 10)),
    };
    /* Text parameters for numbers: the values come back as text and go in
     * unchanged; both drivers convert them to the column's type. */
    rc = rf_db_exec(c,
                    "INSERT INTO api_keys (id, workspace_id, key_hash, start, name, enabled,"
                    " remaining, expires, meta, identity_id, created_at, updated_at,"
                    " refill_interval, refill_amount, refill_day, last_refill, limits_owner)"
                    " VALUES (?, ?, ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT),"
                    " CAST(? AS BIGINT), ?, ?, ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT),"
                    " CAST(? AS BIGINT), ?)",
                    n, 17, NULL, NULL, e);
    if (rc != RF_DB_OK)
        return rc;
    /* The old key: no balance of its own (it spends the successor's) and
     * an end to its overlap; aliases of it now follow the successor, so an
     * alias is always one hop from a live key. */
    int64_t until = rf_now_ms() + ctx->overlap_ms;
    ctx->old_expires = expires && atoll(expires) < until ? atoll(expires) : until;
    struct rf_db_param o[] = {RF_INT(ctx->old_expires), RF_TEXT(ctx->key_id)};
    rc = rf_db_exec(c, "UPDATE api_keys SET remaining = NULL, expires = ? WHERE id = ?", o, 2, NULL,
                    NULL, e);
    if (rc != RF_DB_OK)
        return rc;
    struct rf_db_param f[] = {RF_TEXT(ctx->new_id), RF_TEXT(ctx->ws), RF_TEXT(ctx->key_id)};
    rc = rf_db_exec(c,
                    "UPDATE api_keys SET rerolled_to = ?, version = version + 1"
                    " WHERE workspace_id = ? AND rerolled_to = ?",
                    f, 3, NULL, NULL, e);
    if (rc == RF_DB_OK)
        ctx->res = RF_REROLL_OK;
    return rc;
}

int rf_store_key_reroll(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                        const char *key_id, const char *key_hash, const char *start,
                        int64_t overlap_ms, char new_id[64], int64_t *old_expires,
                        enum rf_reroll_result *res, struct rf_db_error *e)
{
    struct reroll_ctx ctx = {a,          ws, key_id, key_hash,           start,
                             overlap_ms, 0,  new_id, RF_REROLL_NOT_FOUND};
    int rc = rf_tx_run(db, outer, RF_TX_WRITE, reroll_tx, &ctx, e);
    *res = ctx.res;
    *old_expires = ctx.old_expires;
    return rc;
}

/* ---- verify ---- */

/* The presented key (o) with the key whose state it uses (k): itself, or
 * the successor of a rerolled key during its overlap. */
#define VERIFY_SELECT                                                                              \
    "SELECT " KEY_COLS ", o.id, o.expires,"                                                        \
    " CASE WHEN EXISTS (SELECT 1 FROM ratelimits r WHERE r.owner_id ="                             \
    " COALESCE(k.limits_owner, k.id) OR r.owner_id = k.identity_id) THEN 1 ELSE 0 END"             \
    " FROM api_keys o JOIN api_keys k ON k.id = COALESCE(o.rerolled_to, o.id)"                     \
    " LEFT JOIN identities i ON i.id = k.identity_id"                                              \
    " WHERE o.workspace_id = ? AND o.key_hash = ?"

struct verify_ctx {
    struct rf_arena *a;
    const char *ws;
    const struct rf_verify_in *in;
    struct rf_verify_out *out;
    const char *head_id, *limits_owner; /* the key spent on, and whose limits */
    int found, has_limits, attempts;
    int autocommit, upgrade; /* no transaction around it; limits showed up on a retry */
};

static int verify_read(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct verify_ctx *ctx = arg;
    struct rf_db_rows rows;
    struct rf_db_param p[] = {RF_TEXT(ctx->ws), RF_TEXT(ctx->in->key_hash)};
    int rc = rf_db_exec(c, VERIFY_SELECT, p, 2, ctx->a, &rows, e);
    ctx->found = rc == RF_DB_OK && rows.nrows > 0;
    if (!ctx->found)
        return rc;
    struct rf_key *k = &ctx->out->key;
    key_from_row(&rows, 0, k, 0, &ctx->limits_owner);
    ctx->head_id = k->id;
    /* The answer names the key presented; its own expiry (the end of a
     * reroll's overlap) counts as well as the successor's. */
    k->id = rf_db_cell(&rows, 0, KEY_NCOLS);
    int has;
    int64_t own = cell_int(&rows, 0, KEY_NCOLS + 1, &has);
    if (has && (!k->has_expires || own < k->expires)) {
        k->has_expires = 1;
        k->expires = own;
    }
    ctx->has_limits = atoi(rf_db_cell(&rows, 0, KEY_NCOLS + 2)) != 0;
    return RF_DB_OK;
}

/* The answer when the row alone decides it; 0 when it needs a spend. */
static int verify_decided(struct verify_ctx *ctx)
{
    const struct rf_key *k = &ctx->out->key;
    const struct rf_verify_in *in = ctx->in;
    enum rf_verify_code *code = &ctx->out->code;
    if (!ctx->found)
        *code = RF_VERIFY_NOT_FOUND;
    else if (!k->enabled)
        *code = RF_VERIFY_DISABLED;
    else if (k->has_expires && k->expires <= in->now_ms)
        *code = RF_VERIFY_EXPIRED;
    else if (!(k->has_remaining || k->refill) || in->credit_cost == 0) {
        if (ctx->has_limits || (!in->auto_limits && in->nlimits > 0))
            return 0;
        *code = RF_VERIFY_VALID;
    } else
        return 0;
    return 1;
}

static int check_cmp(const void *a, const void *b)
{
    const struct rf_rl_check *x = a, *y = b;
    int d = strcmp(x->owner, y->owner);
    return d ? d : strcmp(x->name, y->name);
}

/* The limits this verify counts against: those requested (the key's own
 * limit of that name, else its identity's), or all of both. Sorted, so
 * that every transaction locks counter rows in one order. */
static int verify_checks(struct rf_db_conn *c, struct verify_ctx *ctx, struct rf_db_error *e)
{
    struct rf_ratelimits own, idn = {0};
    struct rf_verify_out *out = ctx->out;
    const struct rf_verify_in *in = ctx->in;
    const char *idn_id = out->key.has_identity ? out->key.identity.id : NULL;
    int rc = rf_store_ratelimits_get2(c, ctx->a, ctx->limits_owner, idn_id, &own, &idn, e);
    if (rc != RF_DB_OK)
        return rc;
    out->nchecks = 0;
    const struct rf_ratelimits *src[2] = {&own, &idn};
    const char *owners[2] = {ctx->limits_owner, idn_id};
    int n = in->auto_limits ? own.n + idn.n : in->nlimits;
    for (int i = 0; i < n; i++) {
        const char *want = in->auto_limits ? NULL : in->limits[i].name;
        const struct rf_ratelimit *hit = NULL;
        const char *owner = NULL;
        if (in->auto_limits) {
            int s = i < own.n ? 0 : 1;
            hit = &src[s]->v[s ? i - own.n : i];
            owner = owners[s];
            int shadowed = 0; /* an identity limit the key overrides by name */
            for (int j = 0; s == 1 && j < own.n; j++)
                shadowed |= !strcmp(own.v[j].name, hit->name);
            if (shadowed)
                continue;
        } else {
            for (int s = 0; s < 2 && !hit; s++)
                for (int j = 0; j < src[s]->n && !hit; j++)
                    if (!strcmp(src[s]->v[j].name, want)) {
                        hit = &src[s]->v[j];
                        owner = owners[s];
                    }
            if (!hit) {
                out->unknown_limit = want;
                return RF_DB_OK;
            }
        }
        struct rf_rl_check *k = &out->checks[out->nchecks++];
        *k = (struct rf_rl_check){.owner = owner,
                                  .name = hit->name,
                                  .limit = hit->limit,
                                  .duration = hit->duration,
                                  .cost = in->auto_limits ? 1 : in->limits[i].cost};
    }
    qsort(out->checks, (size_t)out->nchecks, sizeof(out->checks[0]), check_cmp);
    return RF_DB_OK;
}

/* Spends credit_cost: the conditional UPDATE is the whole race story for
 * credits: it decrements only while enough remains, in one statement, and
 * a CHECK keeps remaining from going below 0. *spent=0 with the code set
 * when it cannot; RF_DB_RETRY when the row changed under the read (a
 * PATCH, a reroll, a delete) so the transaction starts over. */
static int verify_spend_credits(struct rf_db_conn *c, struct verify_ctx *ctx, int *spent,
                                struct rf_db_error *e)
{
    struct rf_key *k = &ctx->out->key;
    struct rf_db_rows rows;
    int64_t cost = ctx->in->credit_cost;
    *spent = 0;
    struct rf_db_param u[] = {RF_INT(cost), RF_TEXT(ctx->head_id), RF_INT(cost),
                              RF_INT(ctx->in->now_ms)};
    int rc = rf_db_exec(c,
                        "UPDATE api_keys SET remaining = remaining - ?, version = version + 1"
                        " WHERE id = ? AND remaining >= ? AND enabled = 1 AND rerolled_to IS NULL"
                        " AND (expires IS NULL OR expires > ?) RETURNING remaining",
                        u, 4, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    if (rows.nrows == 1) {
        *spent = 1;
        k->remaining = atoll(rf_db_cell(&rows, 0, 0));
        return RF_DB_OK;
    }
    struct rf_db_param q[] = {RF_TEXT(ctx->head_id)};
    rc = rf_db_exec(c,
                    "SELECT remaining FROM api_keys WHERE id = ? AND enabled = 1"
                    " AND rerolled_to IS NULL",
                    q, 1, ctx->a, &rows, e);
    if (rc != RF_DB_OK)
        return rc;
    const char *r = rows.nrows == 1 ? rf_db_cell(&rows, 0, 0) : NULL;
    if (!r || atoll(r) >= cost) {
        ctx->found = 0; /* decide again from a fresh read */
        return rf_db_fail(e, RF_DB_RETRY, "key changed during verify");
    }
    ctx->out->code = RF_VERIFY_USAGE_EXCEEDED;
    k->remaining = atoll(r);
    return RF_DB_OK;
}

static int verify_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct verify_ctx *ctx = arg;
    struct rf_verify_out *out = ctx->out;
    struct rf_key *k = &out->key;
    int rc, spent = 0, refused = -1;
    if (ctx->attempts++ > 0 || !ctx->found) { /* a retry: read the row again */
        if ((rc = verify_read(c, ctx, e)) != RF_DB_OK)
            return rc;
        if (verify_decided(ctx))
            return RF_DB_OK;
    }
    out->unknown_limit = NULL;
    out->nchecks = 0;
    int limits = ctx->has_limits || (!ctx->in->auto_limits && ctx->in->nlimits > 0);
    if (limits && ctx->autocommit) {
        /* The key gained limits since the first read: they need a
         * transaction (a savepoint), which this run has not got. Nothing
         * was spent yet; the caller runs it again as a write. */
        ctx->upgrade = 1;
        return RF_DB_OK;
    }
    if (limits && (rc = verify_checks(c, ctx, e)) != RF_DB_OK)
        return rc;
    if (out->unknown_limit)
        return RF_DB_OK;
    int64_t due = refill_due(k, ctx->in->now_ms);
    if (due && (rc = refill_apply(c, ctx->head_id, due, e)) != RF_DB_OK)
        return rc;
    /* Credits, then limits, all or nothing: a savepoint before both, so a
     * verify refused by any of them keeps nothing it spent on the others.
     * Not released: COMMIT (or the outer transaction's) ends it, one round
     * trip fewer while the key's row is locked. */
    if (limits && (rc = rf_db_exec(c, "SAVEPOINT rf_verify", NULL, 0, NULL, NULL, e)) != RF_DB_OK)
        return rc;
    int credits = k->has_remaining && ctx->in->credit_cost > 0;
    if (credits && (rc = verify_spend_credits(c, ctx, &spent, e)) != RF_DB_OK)
        return rc;
    if (credits && !spent) {
        /* USAGE_EXCEEDED (set by the spend): the limits are shown as they
         * stand, nothing taken from them. */
        rc = rf_store_ratelimits_peek(c, ctx->a, out->checks, out->nchecks, ctx->in->now_ms, e);
    } else if (limits) {
        rc = rf_store_ratelimits_spend(c, ctx->a, out->checks, out->nchecks, ctx->in->now_ms,
                                       &refused, e);
        if (rc == RF_DB_OK && refused >= 0) {
            rc = rf_db_exec(c, "ROLLBACK TO SAVEPOINT rf_verify", NULL, 0, NULL, NULL, e);
            if (spent)
                k->remaining += ctx->in->credit_cost;
            /* What others have spent, now that ours is undone. */
            if (rc == RF_DB_OK)
                rc = rf_store_ratelimits_peek(c, ctx->a, out->checks, out->nchecks, ctx->in->now_ms,
                                              e);
            out->checks[refused].exceeded = 1;
        }
    }
    if (rc != RF_DB_OK)
        return rc;
    if (refused >= 0)
        out->code = RF_VERIFY_RATE_LIMITED;
    else if (!credits || spent)
        out->code = RF_VERIFY_VALID;
    return RF_DB_OK;
}

/* Reads first, on a read connection: a missing, disabled, expired key, or
 * one with nothing to spend, is answered from that one SELECT and never
 * queues for the writer. Credits alone are one conditional UPDATE (no
 * transaction needed); limits take a write transaction. */
int rf_store_key_verify(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                        const struct rf_verify_in *in, struct rf_verify_out *out,
                        struct rf_db_error *e)
{
    struct verify_ctx ctx = {.a = a, .ws = ws, .in = in, .out = out};
    memset(out, 0, sizeof(*out));
    out->code = RF_VERIFY_NOT_FOUND;
    int rc = rf_tx_run(db, NULL, RF_TX_READ, verify_read, &ctx, e);
    if (rc != RF_DB_OK || verify_decided(&ctx))
        return rc;
    int limits = ctx.has_limits || (!in->auto_limits && in->nlimits > 0);
    ctx.autocommit = !limits && !outer && rf_db_has(db, RF_DB_CAP_AUTOCOMMIT_WRITES);
    rc = rf_tx_run(db, outer, limits ? RF_TX_WRITE : RF_TX_AUTOCOMMIT, verify_tx, &ctx, e);
    if (rc == RF_DB_OK && ctx.upgrade) {
        ctx.autocommit = ctx.upgrade = 0;
        rc = rf_tx_run(db, outer, RF_TX_WRITE, verify_tx, &ctx, e);
    }
    return rc;
}

struct list_limits_ctx {
    struct rf_arena *a;
    struct rf_key *keys;
    const char **owners;
    int n;
};

/* The limits of every key of a page, on one read connection. */
static int list_limits_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct list_limits_ctx *l = arg;
    int rc = RF_DB_OK;
    for (int i = 0; rc == RF_DB_OK && i < l->n; i++)
        rc = rf_store_ratelimits_get(c, l->a, l->owners[i], &l->keys[i].ratelimits, e);
    return rc;
}

int rf_store_key_list(struct rf_db *db, struct rf_arena *a, const char *ws, const char *external_id,
                      const char *after_created, const char *after_id, int limit,
                      struct rf_key **out, int *n, int *more, struct rf_db_error *e)
{
    struct rf_db_rows rows;
    *n = 0;
    /* The identity's id by its unique (workspace, external id), then one
     * range of api_keys_identity_page. */
    int rc =
        rf_store_page_by(db, a,
                         KEY_SELECT " WHERE k.identity_id = (SELECT id FROM identities"
                                    " WHERE workspace_id = ? AND external_id = ?)"
                                    " ORDER BY k.created_at, k.id LIMIT ?",
                         KEY_SELECT " WHERE k.identity_id = (SELECT id FROM identities"
                                    " WHERE workspace_id = ? AND external_id = ?)"
                                    " AND (k.created_at > ? OR (k.created_at = ? AND k.id > ?))"
                                    " ORDER BY k.created_at, k.id LIMIT ?",
                         ws, external_id, after_created, after_id, limit, &rows, more, e);
    if (rc != RF_DB_OK)
        return rc;
    struct list_limits_ctx l = {a, rf_arena_alloc(a, sizeof(**out) * (size_t)(rows.nrows + 1)),
                                rf_arena_alloc(a, sizeof(char *) * (size_t)(rows.nrows + 1)),
                                rows.nrows};
    if (!l.keys || !l.owners)
        return rf_db_fail(e, RF_DB_ERROR, "out of memory");
    int64_t now = rf_now_ms();
    for (int i = 0; i < rows.nrows; i++)
        key_from_row(&rows, i, &l.keys[i], now, &l.owners[i]);
    *out = l.keys;
    *n = rows.nrows;
    return rows.nrows ? rf_tx_run(db, NULL, RF_TX_READ, list_limits_tx, &l, e) : RF_DB_OK;
}
