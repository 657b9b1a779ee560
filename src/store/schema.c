/* Versioned schema. Each migration is a list of statements in the SQL both
 * drivers accept (TEXT, BIGINT, named constraints). Migrations run in one
 * write transaction under the driver's migrate lock, so processes that start
 * together apply each version exactly once and the rest see it done. Never
 * edit a released migration: append a new one. */
#include <stdlib.h>

#include "core/util.h"
#include "store/store.h"

struct migration {
    int version;
    const char *const *stmts;
};

static const char *const m1[] = {
    "CREATE TABLE workspaces ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " created_at TEXT NOT NULL,"
    " CONSTRAINT workspaces_name_key UNIQUE (name))",

    "CREATE TABLE root_keys ("
    " key_hash TEXT PRIMARY KEY,"
    " workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    " created_at TEXT NOT NULL)",

    /* Process-wide facts that must be decided once, e.g. bootstrap. */
    "CREATE TABLE rf_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",

    "CREATE TABLE users ("
    " id TEXT PRIMARY KEY,"
    " workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    " email TEXT NOT NULL,"
    " name TEXT,"
    " username TEXT,"
    " username_key TEXT,"
    " created_at TEXT NOT NULL,"
    " updated_at TEXT NOT NULL,"
    /* The two rules of seeds 001 and 002 (docs/RACES.md), enforced where no race can pass. */
    " CONSTRAINT users_ws_email_key UNIQUE (workspace_id, email),"
    " CONSTRAINT users_ws_username_key UNIQUE (workspace_id, username_key))",
    NULL,
};

static const char *const m2[] = {
    "CREATE TABLE events ("
    " id TEXT PRIMARY KEY,"
    " workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    " name TEXT NOT NULL,"
    " slug TEXT NOT NULL,"
    " starts_at TEXT,"
    " created_at TEXT NOT NULL,"
    /* Seed 000: the slug is unique where no race can pass. */
    " CONSTRAINT events_ws_slug_key UNIQUE (workspace_id, slug))",

    "CREATE INDEX events_ws_page ON events (workspace_id, created_at, id)",

    /* One counter per (workspace, base slug): the next suffix in one
     * atomic upsert, however many events already share the base. */
    "CREATE TABLE slug_counters ("
    " workspace_id TEXT NOT NULL,"
    " base TEXT NOT NULL,"
    " n BIGINT NOT NULL,"
    " PRIMARY KEY (workspace_id, base))",

    "CREATE TABLE identities ("
    " id TEXT PRIMARY KEY,"
    " workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    " external_id TEXT NOT NULL,"
    " meta TEXT,"
    " created_at TEXT NOT NULL,"
    /* Seed 003: one identity per external id, enforced here. */
    " CONSTRAINT identities_ws_external_id_key UNIQUE (workspace_id, external_id))",

    "CREATE TABLE api_keys ("
    " id TEXT PRIMARY KEY,"
    " workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    " key_hash TEXT NOT NULL,"
    " start TEXT NOT NULL,"
    " name TEXT,"
    " enabled BIGINT NOT NULL,"
    " remaining BIGINT,"
    " expires BIGINT,"
    " meta TEXT,"
    " identity_id TEXT REFERENCES identities(id),"
    " created_at TEXT NOT NULL,"
    " updated_at TEXT NOT NULL,"
    " CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),"
    " CONSTRAINT api_keys_remaining_check CHECK (remaining IS NULL OR remaining >= 0))",

    "CREATE INDEX api_keys_identity ON api_keys (identity_id)",
    NULL,
};

static const char *const m3[] = {
    /* Seed 004 done right: the reservation is a unique row in the same
     * database as the handler's writes; its completion (the stored response)
     * commits in the handler's own transaction. kind: 'key' for an
     * Idempotency-Key, 'fp' for the body fingerprint of unkeyed creates. */
    "CREATE TABLE idempotency_keys ("
    " workspace_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " idem_key TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " owner TEXT NOT NULL,"
    " lease_expires BIGINT NOT NULL,"
    " status BIGINT,"
    " resp_ctype TEXT,"
    " resp_body TEXT,"
    " created_at BIGINT NOT NULL,"
    " expires_at BIGINT,"
    " PRIMARY KEY (workspace_id, kind, idem_key))",

    "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)",

    "CREATE TABLE resources ("
    " id TEXT PRIMARY KEY,"
    " workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    " type TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " created_at TEXT NOT NULL)",

    "CREATE INDEX resources_ws_page ON resources (workspace_id, created_at, id)",

    /* The quota is a counter moved in the create and delete transactions:
     * one conditional upsert, never COUNT(*) then INSERT. */
    "CREATE TABLE resource_counts ("
    " workspace_id TEXT PRIMARY KEY,"
    " n BIGINT NOT NULL,"
    " CONSTRAINT resource_counts_n_check CHECK (n >= 0))",
    NULL,
};

static const char *const m4[] = {
    /* The sweep deletes by these two conditions, each through its own
     * index, so a purge reads only what it deletes. */
    "CREATE INDEX idempotency_keys_done ON idempotency_keys (state, expires_at)",
    "CREATE INDEX idempotency_keys_lease ON idempotency_keys (state, lease_expires)",
    "DROP INDEX idempotency_keys_expiry",
    NULL,
};

static const char *const m5[] = {
    /* Ratelimits configured on a key or an identity (owner_id: key_… or
     * idn_…). A verify counts against them in ratelimit_windows. */
    "CREATE TABLE ratelimits ("
    " workspace_id TEXT NOT NULL REFERENCES workspaces(id),"
    " owner_id TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " lim BIGINT NOT NULL,"
    " duration BIGINT NOT NULL,"
    " PRIMARY KEY (owner_id, name),"
    " CONSTRAINT ratelimits_check CHECK (lim >= 0 AND duration > 0))",

    /* One row per (owner, limit): the current fixed window and what it has
     * used. A verify moves it with one conditional upsert (store/ratelimits.c),
     * never a read then a write; the CHECK is the last line of defence. */
    "CREATE TABLE ratelimit_windows ("
    " owner_id TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " window_start BIGINT NOT NULL,"
    " used BIGINT NOT NULL,"
    " PRIMARY KEY (owner_id, name),"
    " CONSTRAINT ratelimit_windows_used_check CHECK (used >= 0))",

    /* Refill: remaining is set to refill_amount once per period; last_refill
     * (the start of the period last refilled, Unix ms) is the once-only
     * guard, moved in the same conditional UPDATE. */
    "ALTER TABLE api_keys ADD COLUMN refill_interval TEXT",
    "ALTER TABLE api_keys ADD COLUMN refill_amount BIGINT",
    "ALTER TABLE api_keys ADD COLUMN refill_day BIGINT",
    "ALTER TABLE api_keys ADD COLUMN last_refill BIGINT",
    /* Reroll: the old key becomes an alias of its successor until it
     * expires; NULL for a live key. Set once, conditionally: N rerolls of
     * one key make one successor. */
    "ALTER TABLE api_keys ADD COLUMN rerolled_to TEXT",
    /* Whose ratelimits the key counts against: the key it was rerolled
     * from keeps them (NULL: its own id). Nothing moves at a reroll, so a
     * verify racing one can never count in a window that has moved away. */
    "ALTER TABLE api_keys ADD COLUMN limits_owner TEXT",
    "CREATE INDEX api_keys_rerolled_to ON api_keys (rerolled_to)",

    /* Root-key rotation: the old key stops at expires_at; replaced_by is set
     * once, conditionally, like api_keys.rerolled_to. */
    "ALTER TABLE root_keys ADD COLUMN expires_at BIGINT",
    "ALTER TABLE root_keys ADD COLUMN replaced_by TEXT",
    NULL,
};

static const char *const m6[] = {
    /* Optimistic concurrency (docs/API.md, ETag and If-Match): every write
     * to a row bumps its version, and a conditional PATCH names the version
     * it saw in its UPDATE's WHERE clause. Existing rows start at 1. */
    "ALTER TABLE users ADD COLUMN version BIGINT NOT NULL DEFAULT 1",
    "ALTER TABLE events ADD COLUMN version BIGINT NOT NULL DEFAULT 1",
    "ALTER TABLE identities ADD COLUMN version BIGINT NOT NULL DEFAULT 1",
    "ALTER TABLE api_keys ADD COLUMN version BIGINT NOT NULL DEFAULT 1",
    "ALTER TABLE resources ADD COLUMN version BIGINT NOT NULL DEFAULT 1",
    /* A replay carries the ETag the first answer had. */
    "ALTER TABLE idempotency_keys ADD COLUMN resp_etag TEXT",
    /* A deleted event stays as a tombstone that keeps its slug: the unique
     * constraint on (workspace_id, slug) goes on holding it, so a slug once
     * handed out never names another event. */
    "ALTER TABLE events ADD COLUMN deleted_at TEXT",
    /* Keyset pages of the new lists, one index range each. */
    "CREATE INDEX users_ws_page ON users (workspace_id, created_at, id)",
    "CREATE INDEX identities_ws_page ON identities (workspace_id, created_at, id)",
    "CREATE INDEX api_keys_identity_page ON api_keys (identity_id, created_at, id)",
    "DROP INDEX api_keys_identity",
    NULL,
};

/* One migration a line, so that appending one is a one-line change. */
/* clang-format off */
static const struct migration migrations[] = {
    {1, m1},
    {2, m2},
    {3, m3},
    {4, m4},
    {5, m5},
    {6, m6},
};
/* clang-format on */
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

struct migrate_ctx {
    int applied;
};

static int migrate_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    struct migrate_ctx *ctx = arg;
    struct rf_arena a;
    struct rf_db_rows rows;
    int rc;

    ctx->applied = 0;
    rc = rf_db_migrate_lock(c, e);
    if (rc != RF_DB_OK)
        return rc;
    rc = rf_db_exec(c,
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
                    NULL, 0, NULL, NULL, e);
    if (rc != RF_DB_OK)
        return rc;
    rf_arena_init(&a, 0);
    rc = rf_db_exec(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, 0, &a,
                    &rows, e);
    int current = rc == RF_DB_OK && rows.nrows ? atoi(rf_db_cell(&rows, 0, 0)) : 0;
    rf_arena_free(&a);
    if (rc != RF_DB_OK)
        return rc;
    if (current > NMIGRATIONS)
        return rf_db_fail(e, RF_DB_ERROR,
                          "database schema version %d is newer than this binary (%d)", current,
                          NMIGRATIONS);
    for (int i = current; i < NMIGRATIONS; i++) {
        char now[RF_TIME_MAX];
        for (const char *const *s = migrations[i].stmts; *s; s++) {
            rc = rf_db_exec(c, *s, NULL, 0, NULL, NULL, e);
            if (rc != RF_DB_OK)
                return rc;
        }
        rf_now_rfc3339(now);
        struct rf_db_param p[] = {RF_INT(migrations[i].version), RF_TEXT(now)};
        rc = rf_db_exec(c, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", p,
                        2, NULL, NULL, e);
        if (rc != RF_DB_OK)
            return rc;
        ctx->applied++;
    }
    return RF_DB_OK;
}

int rf_store_migrate(struct rf_db *db, int *applied, struct rf_db_error *e)
{
    struct migrate_ctx ctx = {0};
    int rc = rf_tx_run(db, NULL, RF_TX_WRITE, migrate_tx, &ctx, e);
    *applied = rc == RF_DB_OK ? ctx.applied : 0;
    return rc;
}

static int ping_tx(struct rf_db_conn *c, void *arg, struct rf_db_error *e)
{
    (void)arg;
    return rf_db_exec(c, "SELECT 1", NULL, 0, NULL, NULL, e);
}

int rf_store_ping(struct rf_db *db, struct rf_db_error *e)
{
    return rf_tx_run(db, NULL, RF_TX_READ, ping_tx, NULL, e);
}
