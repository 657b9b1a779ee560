/* Domain operations, each written once in SQL both drivers accept, each run
 * inside rf_tx_run. A write that takes `struct rf_tx *outer` joins that
 * transaction when it is non-NULL (the idempotency layer's: nothing is
 * committed until its owner ends it) and commits on its own when NULL. Race safety lives in the
 * schema (every uniqueness rule is a constraint) and in rf_tx_run's bounded retry; nothing here
 * decides "absent, so insert" from a SELECT.
 *
 * Ownership: every string in an output struct lives in the arena the caller
 * passes and dies with it. */
#ifndef RF_STORE_H
#define RF_STORE_H

#include "core/arena.h"
#include "core/util.h"
#include "db/db.h"

/* ---- transactions ---- */

/* A transaction body: returns RF_DB_OK to commit, anything else to roll back.
 * It may run several times: it must not keep state across runs except in
 * ctx fields it resets itself. */
typedef int (*rf_tx_fn)(struct rf_db_conn *c, void *ctx, struct rf_db_error *e);

struct rf_tx_stats {
    unsigned long retries; /* RF_DB_RETRY restarts, process-wide */
    unsigned long exhausted;
};

/* Enough for a hot row under SERIALIZABLE, where each round of conflicts
 * lets one transaction through (40 verifies of one ratelimited key, issue
 * 14); the budget below is the real bound. */
#define RF_TX_MAX_ATTEMPTS 32
/* Wall time a write may spend on attempts, waiting for the writer and
 * SQLite's write lock included, before it is answered 503 + Retry-After. */
#define RF_TX_BUDGET_MS 5000

enum rf_tx_mode {
    /* One statement, consistent on its own: runs in autocommit on a read
     * connection, without BEGIN/COMMIT. */
    RF_TX_READ,
    /* A write transaction on the writer (BEGIN IMMEDIATE on SQLite). */
    RF_TX_WRITE,
    /* A write whose statements are each atomic and stay correct when other
     * transactions commit between them (INSERT … ON CONFLICT DO NOTHING
     * RETURNING, then a read of the winner). A driver with
     * RF_DB_CAP_AUTOCOMMIT_WRITES (PostgreSQL: two round trips fewer) runs them
     * without BEGIN/COMMIT; SQLite batches them like any write. */
    RF_TX_AUTOCOMMIT,
};

/* A write transaction that one caller opens and the store calls it is
 * handed to join, committed or rolled back by that caller: the idempotency
 * layer's, so a handler's writes and the stored response commit together.
 * It begins (on the writer) with the first write that joins it, and must be
 * ended on the thread that began it (SQLite's writer is a mutex): every
 * write of a request happens in one stage on one worker (http.h,
 * rf_req_defer). */
struct rf_tx {
    struct rf_db *db;
    struct rf_db_conn *c; /* non-NULL once a write joined */
};

/* Runs fn in one transaction of the given mode. A write given an open outer
 * joins it instead (in may be NULL: a transaction of its own; reads never
 * join). RF_DB_RETRY from fn, BEGIN or COMMIT restarts the whole
 * transaction after a jittered exponential backoff, at most
 * RF_TX_MAX_ATTEMPTS times within RF_TX_BUDGET_MS; any other error is
 * returned as is, after rollback. A retry budget that runs out returns
 * RF_DB_RETRY. Inside outer only its first write is retried so: later ones
 * find it open, and a RETRY there is for the owner to handle. */
int rf_tx_run(struct rf_db *db, struct rf_tx *outer, enum rf_tx_mode mode, rf_tx_fn fn, void *ctx,
              struct rf_db_error *e) __attribute__((warn_unused_result));
void rf_tx_stats_get(struct rf_tx_stats *out);
/* The jittered sleep between attempts (attempt 0, 1, …). */
void rf_tx_backoff(int attempt);

/* Opens tx on db: no I/O until a write joins. */
void rf_tx_open(struct rf_tx *tx, struct rf_db *db);
/* Ends tx. keep_writes=1: runs fn in the same transaction and commits both
 * together; keep_writes=0: rolls the joined writes back and runs fn in a
 * transaction of its own. fn may be NULL. tx is closed either way. */
int rf_tx_end(struct rf_tx *tx, rf_tx_fn fn, void *ctx, int keep_writes, struct rf_db_error *e);

/* A write to one object, named by workspace and id (or slug, external id),
 * that finds it or not: the deletes. fn gets the struct rf_store_ref and
 * sets found; *found is its value once the transaction ended. */
struct rf_store_ref {
    const char *ws, *id;
    int found;
};
int rf_store_ref_write(struct rf_db *db, struct rf_tx *outer, rf_tx_fn fn, const char *ws,
                       const char *id, int *found, struct rf_db_error *e);

/* One statement whose rows only count (DELETE … RETURNING id: was there
 * one?): *nrows, 0 on error; the rows themselves are dropped. */
int rf_store_count(struct rf_db_conn *c, const char *sql, const struct rf_db_param *p, int np,
                   int *nrows, struct rf_db_error *e);

/* Whether the object (ws, id) is there: sql takes (ws, id), e.g. "SELECT
 * id FROM users WHERE workspace_id = ? AND id = ?". What a conditional write
 * that matched no row reads to tell a stale object (412) from a missing one
 * (404); *exists is 0 on error. */
int rf_store_exists(struct rf_db_conn *c, const char *sql, const char *ws, const char *id,
                    int *exists, struct rf_db_error *e);

/* Keyset pagination shared by the list endpoints: runs sql_first (params:
 * ws, limit) or, after a cursor, sql_after (params: ws, created, created,
 * id, limit), fetching limit+1 rows so *more tells whether a page follows;
 * rows->nrows is cut back to at most limit. A filter (e.g. an external id;
 * NULL: none) is one more parameter after ws. */
int rf_store_page_by(struct rf_db *db, struct rf_arena *a, const char *sql_first,
                     const char *sql_after, const char *ws, const char *filter,
                     const char *after_created, const char *after_id, int limit,
                     struct rf_db_rows *rows, int *more, struct rf_db_error *e);

/* The tails of a list's two statements, ordered by (created_at, id):
 * "SELECT … WHERE workspace_id = ?" RF_PAGE_FIRST_SQL, and the same
 * RF_PAGE_AFTER_SQL for the page after a cursor. */
#define RF_PAGE_FIRST_SQL " ORDER BY created_at, id LIMIT ?"
#define RF_PAGE_AFTER_SQL " AND (created_at > ? OR (created_at = ? AND id > ?))" RF_PAGE_FIRST_SQL

/* Fills item (an element of a list's array) from row `row` of r. */
typedef void (*rf_store_row_fn)(const struct rf_db_rows *r, int row, void *item);
/* A page as rf_store_page_by, mapped by from_row into an array of items of
 * size bytes each in a: *items (NULL only on error), *n of them. */
int rf_store_list(struct rf_db *db, struct rf_arena *a, const char *sql_first,
                  const char *sql_after, const char *ws, const char *after_created,
                  const char *after_id, int limit, size_t size, rf_store_row_fn from_row,
                  void **items, int *n, int *more, struct rf_db_error *e);
/* One object by workspace and id (or slug, email): sql takes (ws, id) and
 * returns at most one row, which from_row maps into item when *found. */
int rf_store_get(struct rf_db *db, struct rf_arena *a, const char *sql, const char *ws,
                 const char *id, rf_store_row_fn from_row, void *item, int *found,
                 struct rf_db_error *e);

/* ---- optimistic concurrency ---- */

/* Every object has a version, 1 when created, bumped by every write to its
 * row; it is the object's ETag. A conditional write (If-Match) passes the
 * versions it accepts as text ",3," or ",3,7," (NULL: unconditional; also
 * for "*", which any existing row meets) and the UPDATE checks them in its
 * WHERE clause with RF_IF_VERSION_SQL (two parameters, both that text):
 * never a read first. When the row exists but its version is not among
 * them, nothing is written and the call reports RF_STORE_STALE through its
 * found flag. */
#define RF_IF_VERSION_SQL                                                                          \
    " AND (CAST(? AS TEXT) IS NULL"                                                                \
    " OR CAST(? AS TEXT) LIKE ('%,' || CAST(version AS TEXT) || ',%'))"
enum {
    RF_STORE_MISSING = 0,
    RF_STORE_FOUND = 1,
    RF_STORE_STALE = 2,
    RF_STORE_REROLLED =
        3, /* keys: an alias of a rerolled key, changed only through its successor */
};

/* ---- schema ---- */

/* Applies pending migrations, serialised across processes. Sets *applied to
 * the number this call applied (others may have done the rest). */
int rf_store_migrate(struct rf_db *db, int *applied, struct rf_db_error *e);

/* ---- workspaces and auth ---- */

#define RF_ROOT_KEY_MAX 64

/* Creates a workspace and its root key. *exists=1 (and RF_DB_OK) when the
 * name is taken. The plaintext key is written to root_key and never stored. */
int rf_store_workspace_create(struct rf_db *db, const char *name, char ws_id[64],
                              char root_key[RF_ROOT_KEY_MAX], int *exists, struct rf_db_error *e);

/* On an empty database, creates workspace "default" exactly once across
 * all processes; *created=1 and root_key filled in the one that did. */
int rf_store_bootstrap(struct rf_db *db, char ws_id[64], char root_key[RF_ROOT_KEY_MAX],
                       int *created, struct rf_db_error *e);

/* Looks a root key up by its plaintext; *ws_id (arena) is NULL if unknown
 * or expired. *expires_ms: when a rotated key stops (Unix ms), 0 never. */
int rf_store_auth(struct rf_db *db, struct rf_arena *a, const char *root_key, const char **ws_id,
                  int64_t *expires_ms, struct rf_db_error *e);

enum rf_rotate_result { RF_ROTATE_OK, RF_ROTATE_NO_WORKSPACE, RF_ROTATE_NO_KEY, RF_ROTATE_ALREADY };
/* Replaces a root key of workspace `name` (old_key, or its newest live
 * one when NULL) with a new one, written to root_key; the old one stops at
 * now + overlap_ms (*old_expires). Of simultaneous rotations of one key
 * exactly one wins; the others get RF_ROTATE_ALREADY. */
int rf_store_root_key_rotate(struct rf_db *db, const char *name, const char *old_key,
                             int64_t overlap_ms, char ws_id[64], char root_key[RF_ROOT_KEY_MAX],
                             int64_t *old_expires, enum rf_rotate_result *res,
                             struct rf_db_error *e);

/* ---- users ---- */

struct rf_user {
    const char *id, *email, *name, *username, *created_at, *updated_at;
    int64_t version;
};

/* Create-if-missing by (workspace, email): *created=1 if this call inserted. */
int rf_store_user_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                         const char *email, const char *name, struct rf_user *out, int *created,
                         struct rf_db_error *e);
/* The same create for a caller that can wait without holding its thread
 * (a request on the worker pool). With RF_DB_CAP_BATCH_CREATE (PostgreSQL)
 * the create joins a batch (one statement for many creates,
 * store/user_batch.c): *wait is set, and
 * wake(arg) is called exactly once when the create is done, possibly before
 * this returns, from whichever thread ran the batch; then
 * rf_store_user_create_result gives the outcome and the user (out). *wait
 * is left NULL where creates are not batched (SQLite): use
 * rf_store_user_create. Returns RF_DB_OK, or an error (nothing queued).
 * The handle lives in a. */
struct rf_user_wait;
int rf_store_user_create_async(struct rf_db *db, struct rf_arena *a, const char *ws,
                               const char *email, const char *name, struct rf_user *out,
                               void (*wake)(void *arg), void *arg, struct rf_user_wait **wait,
                               struct rf_db_error *e);
int rf_store_user_create_result(const struct rf_user_wait *w, const struct rf_user **out,
                                int *created, struct rf_db_error *e);
/* *found=0 when absent or in another workspace. */
int rf_store_user_get(struct rf_db *db, struct rf_arena *a, const char *ws, const char *id,
                      struct rf_user *out, int *found, struct rf_db_error *e);
int rf_store_user_by_email(struct rf_db *db, struct rf_arena *a, const char *ws, const char *email,
                           struct rf_user *out, int *found, struct rf_db_error *e);
/* A keyset page of the workspace's users in creation order, as
 * rf_store_event_list. */
int rf_store_user_list(struct rf_db *db, struct rf_arena *a, const char *ws,
                       const char *after_created, const char *after_id, int limit,
                       struct rf_user **out, int *n, int *more, struct rf_db_error *e);
/* Deletes the user; its email and username are free once it commits.
 * *found=0 when absent. */
int rf_store_user_delete(struct rf_db *db, const char *ws, const char *id, int *found,
                         struct rf_db_error *e);

struct rf_user_patch {
    const char *name;        /* NULL: keep */
    int set_username;        /* 0: keep */
    const char *username;    /* with set_username: NULL releases */
    const char *if_versions; /* If-Match, RF_IF_VERSION_SQL; NULL: unconditional */
};
/* RF_DB_UNIQUE when another user of the workspace holds the username
 * (case-insensitively); re-claiming one's own is not a conflict. *found is
 * RF_STORE_STALE when p->if_versions does not accept the user's version. */
int rf_store_user_update(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                         const char *id, const struct rf_user_patch *p, struct rf_user *out,
                         int *found, struct rf_db_error *e);

/* ---- users: coalesced creates (store/user_batch.c, PostgreSQL only) ---- */

/* What every user statement returns, and its reader (user: struct rf_user),
 * shared with the batch's own statements. */
#define RF_USER_COLS "id, email, name, username, created_at, updated_at, version"
void rf_store_user_from_row(const struct rf_db_rows *r, int row, void *user);
/* rf_store_user_create without an outer transaction on a driver with
 * RF_DB_CAP_BATCH_CREATE: queues the create and waits on this thread until
 * a batch carrying it is done. */
int rf_store_user_create_batched(struct rf_db *db, struct rf_arena *a, const char *ws,
                                 const char *email, const char *name, struct rf_user *out,
                                 int *created, struct rf_db_error *e);

/* ---- events ---- */

struct rf_event {
    const char *id, *name, *slug, *starts_at, *created_at;
    int64_t version;
};

/* Inserts an event under a unique slug derived from base (already
 * slugified): base, then base-2, base-3, … from a per-(workspace, base)
 * counter; a slug already taken literally moves on to the next number. */
int rf_store_event_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                          const char *name, const char *base, const char *starts_at,
                          struct rf_event *out, struct rf_db_error *e);
int rf_store_event_get(struct rf_db *db, struct rf_arena *a, const char *ws, const char *slug,
                       struct rf_event *out, int *found, struct rf_db_error *e);
/* Events after the cursor position (created_at, id), ascending; limit+1 are
 * fetched so *more tells whether another page exists. */
int rf_store_event_list(struct rf_db *db, struct rf_arena *a, const char *ws,
                        const char *after_created, const char *after_id, int limit,
                        struct rf_event **out, int *n, int *more, struct rf_db_error *e);
/* Deletes an event, leaving a tombstone that keeps its slug taken (no
 * later event gets it, from the counter or literally); gets and lists no
 * longer show it. *found=0 when absent or already deleted. */
int rf_store_event_delete(struct rf_db *db, const char *ws, const char *slug, int *found,
                          struct rf_db_error *e);

/* ---- identities and keys ---- */

struct rf_identity {
    const char *id, *external_id, *meta, *created_at; /* meta: JSON text or NULL */
    int64_t version;
};

struct rf_ratelimits;
/* *exists=1 (RF_DB_OK) when the external id is taken in the workspace. rl
 * (may be NULL) are the identity's limits, shared by all its keys. */
int rf_store_identity_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a,
                             const char *ws, const char *external_id, const char *meta,
                             const struct rf_ratelimits *rl, struct rf_identity *out, int *exists,
                             struct rf_db_error *e);
/* rl (may be NULL) receives the identity's limits. */
int rf_store_identity_get(struct rf_db *db, struct rf_arena *a, const char *ws,
                          const char *external_id, struct rf_identity *out,
                          struct rf_ratelimits *rl, int *found, struct rf_db_error *e);
int rf_store_identity_list(struct rf_db *db, struct rf_arena *a, const char *ws,
                           const char *after_created, const char *after_id, int limit,
                           struct rf_identity **out, int *n, int *more, struct rf_db_error *e);
/* Sets meta (JSON text or NULL; set_meta 0 keeps it) and, when rl is not
 * NULL, replaces its ratelimits, under the If-Match versions (NULL:
 * unconditional); *found as rf_store_user_update. The identity's keys get a
 * new version too: their representation embeds the identity. */
int rf_store_identity_update(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a,
                             const char *ws, const char *external_id, int set_meta,
                             const char *meta, const struct rf_ratelimits *rl,
                             const char *if_versions, struct rf_identity *out, int *found,
                             struct rf_db_error *e);
/* Deletes the identity and, in the same transaction, detaches its keys
 * (identity_id NULL, a new version each): a key created meanwhile with its
 * externalId ends up attached to a new identity or detached, never to a
 * deleted one. *found=0 when absent. */
int rf_store_identity_delete(struct rf_db *db, const char *ws, const char *external_id, int *found,
                             struct rf_db_error *e);

/* ---- ratelimits (store/ratelimits.c) ---- */

#define RF_RATELIMITS_MAX 16
#define RF_RATELIMIT_NAME_MAX 64

/* A fixed-window limit: at most limit units of cost per duration ms, the
 * windows aligned to the Unix epoch. */
struct rf_ratelimit {
    const char *name;
    int64_t limit, duration;
};
struct rf_ratelimits {
    int n;
    struct rf_ratelimit v[RF_RATELIMITS_MAX];
};

/* Replaces the limits of owner (a key or identity id) with rl inside c's
 * transaction. Counters of limits kept by name survive; the others go. */
int rf_store_ratelimits_set(struct rf_db_conn *c, const char *ws, const char *owner,
                            const struct rf_ratelimits *rl, struct rf_db_error *e);
/* The limits of owner, by name, into out (strings in a); _get2 reads a
 * second owner's (may be NULL) into out2 in the same statement. */
int rf_store_ratelimits_get(struct rf_db_conn *c, struct rf_arena *a, const char *owner,
                            struct rf_ratelimits *out, struct rf_db_error *e);
int rf_store_ratelimits_get2(struct rf_db_conn *c, struct rf_arena *a, const char *owner,
                             const char *owner2, struct rf_ratelimits *out,
                             struct rf_ratelimits *out2, struct rf_db_error *e);
/* Removes owner's limits and counters. */
int rf_store_ratelimits_drop(struct rf_db_conn *c, const char *owner, struct rf_db_error *e);

/* One limit a verify counts against, and what it found. */
struct rf_rl_check {
    const char *owner, *name; /* in: */
    int64_t limit, duration, cost;
    int64_t remaining, reset; /* out: reset is the window's end, Unix ms */
    int exceeded;
};
/* Spends cost on every check, in order, up to the first that would go
 * over its limit: *refused is its index (-1 when all passed), and the
 * caller rolls back to a savepoint it set before, so that a refused
 * request keeps nothing it spent on the others. c must be in a write
 * transaction. remaining and reset are filled for the checks spent. */
int rf_store_ratelimits_spend(struct rf_db_conn *c, struct rf_arena *a, struct rf_rl_check *v,
                              int n, int64_t now_ms, int *refused, struct rf_db_error *e);
/* Fills remaining and reset of every check from the counters, spending
 * nothing. */
int rf_store_ratelimits_peek(struct rf_db_conn *c, struct rf_arena *a, struct rf_rl_check *v, int n,
                             int64_t now_ms, struct rf_db_error *e);

/* ---- keys ---- */

/* Refill intervals; the period a time falls in starts at UTC midnight
 * (daily), or at UTC midnight of day `day` of the month, the month's last
 * day when shorter (monthly). */
enum rf_refill { RF_REFILL_NONE = 0, RF_REFILL_DAILY, RF_REFILL_MONTHLY };
int64_t rf_refill_period_start(enum rf_refill interval, int day, int64_t now_ms);

struct rf_key {
    const char *id, *start, *name, *meta, *created_at, *updated_at;
    int enabled;
    int has_remaining, has_expires;
    int64_t remaining, expires;
    enum rf_refill refill;
    int64_t refill_amount, refill_day, last_refill; /* last_refill 0: never */
    const char *rerolled_to;                        /* NULL unless rerolled */
    int has_identity;
    struct rf_identity identity;
    struct rf_ratelimits ratelimits; /* filled by get and update */
    int64_t version;
};

/* Which fields a create or patch sets. For strings NULL means SQL NULL. */
struct rf_key_input {
    int set_name, set_meta, set_remaining, set_expires, set_enabled, set_external_id;
    int set_ratelimits, set_refill;
    const char *name, *meta, *external_id; /* external_id NULL: detach */
    int has_remaining, has_expires;
    int64_t remaining, expires;
    int enabled;
    struct rf_ratelimits ratelimits;
    enum rf_refill refill; /* with set_refill: NONE clears */
    int64_t refill_amount, refill_day;
    const char *if_versions; /* PATCH: If-Match, RF_IF_VERSION_SQL; NULL: unconditional */
};

/* Creates a key (hash and start of the plaintext given) and, with an
 * external id, gets or creates its identity in the same transaction. */
int rf_store_key_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                        const char *key_hash, const char *start, const struct rf_key_input *in,
                        char key_id[64], const char **identity_id, struct rf_db_error *e);
/* *found: RF_STORE_FOUND, _MISSING, _STALE (If-Match), or _REROLLED: an
 * alias of a rerolled key (its state is its successor's: nothing changed;
 * DELETE ends it early). A refill that is due is made first, so a new
 * remaining is not overwritten by it. */
int rf_store_key_update(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                        const char *key_id, const struct rf_key_input *in, struct rf_key *out,
                        int *found, struct rf_db_error *e);
int rf_store_key_get(struct rf_db *db, struct rf_arena *a, const char *ws, const char *key_id,
                     struct rf_key *out, int *found, struct rf_db_error *e);
/* Deletes a key, its limits and counters, and every alias an earlier
 * reroll left pointing at it. */
int rf_store_key_delete(struct rf_db *db, struct rf_tx *outer, const char *ws, const char *key_id,
                        int *found, struct rf_db_error *e);

enum rf_credit_op { RF_CREDITS_SET, RF_CREDITS_INCREMENT, RF_CREDITS_DECREMENT };
enum rf_credit_result {
    RF_CREDITS_OK,
    RF_CREDITS_NOT_FOUND,
    RF_CREDITS_UNLIMITED, /* increment/decrement of a key without credits */
    RF_CREDITS_REROLLED,  /* an alias of a rerolled key: its balance is the successor's */
};
/* One atomic statement (after a due refill): set (has_value 0: unlimited),
 * increment, or decrement floored at 0, as Unkey does. *remaining and
 * *has_remaining give the result. */
int rf_store_key_credits(struct rf_db *db, struct rf_tx *outer, const char *ws, const char *key_id,
                         enum rf_credit_op op, int has_value, int64_t value,
                         enum rf_credit_result *res, int *has_remaining, int64_t *remaining,
                         struct rf_db_error *e);

enum rf_reroll_result { RF_REROLL_OK, RF_REROLL_NOT_FOUND, RF_REROLL_ALREADY };
/* A successor with the same identity, credits, refill and limits; the old
 * key becomes its alias (its verifies spend the successor's credits and
 * limits) until now + overlap_ms, and earlier aliases follow. One reroll
 * of a key wins; the others get RF_REROLL_ALREADY. */
int rf_store_key_reroll(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                        const char *key_id, const char *key_hash, const char *start,
                        int64_t overlap_ms, char new_id[64], int64_t *old_expires,
                        enum rf_reroll_result *res, struct rf_db_error *e);
/* A keyset page of the keys of one identity (by external id), in creation
 * order; an unknown external id has none. */
int rf_store_key_list(struct rf_db *db, struct rf_arena *a, const char *ws, const char *external_id,
                      const char *after_created, const char *after_id, int limit,
                      struct rf_key **out, int *n, int *more, struct rf_db_error *e);

enum rf_verify_code {
    RF_VERIFY_VALID,
    RF_VERIFY_NOT_FOUND,
    RF_VERIFY_DISABLED,
    RF_VERIFY_EXPIRED,
    RF_VERIFY_USAGE_EXCEEDED,
    RF_VERIFY_RATE_LIMITED,
};

struct rf_verify_in {
    const char *key_hash;
    int64_t now_ms;
    int64_t credit_cost; /* 1 unless the request says; 0 spends nothing */
    /* Requested limits by name, cost each; auto_limits: every limit of the
     * key and of its identity (the key's wins a shared name), cost 1. */
    int auto_limits, nlimits;
    struct {
        const char *name;
        int64_t cost;
    } limits[RF_RATELIMITS_MAX];
};

struct rf_verify_out {
    enum rf_verify_code code;
    struct rf_key key;         /* every code but NOT_FOUND; the presented key's id */
    const char *unknown_limit; /* a requested name neither has: nothing was spent */
    int nchecks;
    struct rf_rl_check checks[2 * RF_RATELIMITS_MAX];
};

/* Verifies by hash: all requested limits and credits are spent together or
 * not at all. out is filled (identity too) for every code but NOT_FOUND. */
int rf_store_key_verify(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a, const char *ws,
                        const struct rf_verify_in *in, struct rf_verify_out *out,
                        struct rf_db_error *e);

/* ---- idempotency ---- */

enum rf_idem_outcome {
    RF_IDEM_RESERVED,    /* this request owns the reservation: run the handler */
    RF_IDEM_TAKEN_OVER,  /* ditto, after an expired lease of a dead owner */
    RF_IDEM_REPLAY,      /* finished with the same fingerprint: replay */
    RF_IDEM_IN_PROGRESS, /* another request holds it */
    RF_IDEM_MISMATCH,    /* the key was used with another request */
};

struct rf_idem {
    const char *ws, *kind, *key, *fingerprint;
    char owner[RF_ID_MAX]; /* token of this request's reservation */
    /* replay: */
    int status;
    const char *ctype, *body, *etag; /* arena */
};

/* Takes the reservation (a unique insert) or says why not, in one write
 * transaction. lease_ms: how long an in-flight reservation is held. */
int rf_store_idem_reserve(struct rf_db *db, struct rf_arena *a, struct rf_idem *k, int64_t now_ms,
                          int64_t lease_ms, enum rf_idem_outcome *out, struct rf_db_error *e);

/* Transaction body that stores the response (state done, kept until
 * expires_ms) — only if this request still owns the reservation; otherwise
 * RF_DB_UNIQUE (lost to a take-over). For rf_tx_end. */
struct rf_idem_done {
    const struct rf_idem *k;
    int status;
    const char *ctype, *body, *etag;
    int64_t expires_ms;
};
int rf_store_idem_complete_tx(struct rf_db_conn *c, void *done, struct rf_db_error *e);
/* Deletes this request's own reservation (5xx, 409, 429). */
int rf_store_idem_release(struct rf_db *db, const struct rf_idem *k, struct rf_db_error *e);
/* Deletes at most limit finished keys whose time is up (and reservations
 * whose lease ended more than grace_ms ago). *purged: rows deleted. */
int rf_store_idem_purge(struct rf_db *db, int64_t now_ms, int64_t grace_ms, int limit, int *purged,
                        struct rf_db_error *e);

/* ---- resources ---- */

struct rf_resource {
    const char *id, *type, *name, *status, *created_at;
    int64_t version;
};

/* quota 0 = unlimited; *over=1 (RF_DB_OK, nothing written) when full. */
int rf_store_resource_create(struct rf_db *db, struct rf_tx *outer, struct rf_arena *a,
                             const char *ws, const char *type, const char *name, int64_t quota,
                             struct rf_resource *out, int *over, struct rf_db_error *e);
int rf_store_resource_get(struct rf_db *db, struct rf_arena *a, const char *ws, const char *id,
                          struct rf_resource *out, int *found, struct rf_db_error *e);
int rf_store_resource_delete(struct rf_db *db, const char *ws, const char *id, int *found,
                             struct rf_db_error *e);
int rf_store_resource_list(struct rf_db *db, struct rf_arena *a, const char *ws,
                           const char *after_created, const char *after_id, int limit,
                           struct rf_resource **out, int *n, int *more, struct rf_db_error *e);

/* Readiness: one trivial query. */
int rf_store_ping(struct rf_db *db, struct rf_db_error *e);

#endif
