/* Keys: creates that join one identity (seed 003) and verifies that spend
 * credits, then the operations past create (docs/API.md, Identities and API keys): ratelimits,
 * credit operations and refill, delete, reroll, root-key rotation. Each fires simultaneous requests
 * at real servers and checks the invariant in the responses and in the database. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "itest.h"
#include "store/store.h"

#define RACE_KEYS 48
#define RACE_VERIFIES 40
#define VERIFY_CREDITS 10

/* In the database: one identity for xid, and every key of the race on it. */
static int all_keys_on(struct env *e, const char *xid)
{
    long ids = db_count(e, "SELECT COUNT(*) FROM identities WHERE external_id = ?", xid, NULL);
    long keys = db_count(e,
                         "SELECT COUNT(*) FROM api_keys k JOIN identities i ON i.id = k.identity_id"
                         " WHERE i.external_id = ?",
                         xid, NULL);
    if (ids != 1 || keys != RACE_KEYS)
        fprintf(stderr, "  %s: want one identity row and %d keys on it, found %ld and %ld\n", xid,
                RACE_KEYS, ids, keys);
    return ids == 1 && keys == RACE_KEYS ? 0 : -1;
}

/* Seed 003: N simultaneous key creates with one new externalId → one
 * identity; then N simultaneous PATCHes moving every key to another. */
void race_key_identity(int nsrv, int rounds)
{
    struct env e;
    struct burst b = {0};
    struct reqspec q[RACE_KEYS];
    char xid[64], body[128], paths[RACE_KEYS][96];
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int round = 0; round < rounds; round++) {
        fresh(xid, sizeof(xid), "ext_", "");
        snprintf(body, sizeof(body), "{\"externalId\":\"%s\",\"name\":\"k\"}", xid);
        struct reqspec one = {"POST", "/v1/keys", e.key, body, NULL, 0};
        EXPECT_SAME(&e, &one, RACE_KEYS, &b, "no-5xx; status 201=N; distinct .identityId=1");
        for (int i = 0; i < RACE_KEYS; i++) {
            json_t *j = res_json(&b, (size_t)i);
            const char *kid = jstr(j, "keyId", NULL);
            snprintf(paths[i], sizeof(paths[i]), "/v1/keys/%s", kid ? kid : "none");
            json_decref(j);
        }
        EXPECT(all_keys_on(&e, xid) == 0, "after the creates");

        /* Move every key to a second new externalId at once. */
        char xid2[64], body2[128];
        fresh(xid2, sizeof(xid2), "ext2_", "");
        snprintf(body2, sizeof(body2), "{\"externalId\":\"%s\"}", xid2);
        burst_free(&b);
        for (int i = 0; i < RACE_KEYS; i++)
            q[i] = (struct reqspec){"PATCH", paths[i], e.key, body2, NULL, i};
        EXPECT(burst_fire(&e, q, RACE_KEYS, &b) == 0, "burst");
        EXPECT_BURST(&b, "no-5xx; status 200=N");
        EXPECT(all_keys_on(&e, xid2) == 0, "after the PATCHes");
    }
out:
    burst_free(&b);
    env_down(&e);
}

void t_race_key_identity_1srv(void)
{
    race_key_identity(1, RACE_ROUNDS);
}
void t_race_key_identity_2srv(void)
{
    race_key_identity(MULTI, RACE_ROUNDS);
}

/* M simultaneous verifies of a key with R credits → exactly min(M, R). */
void race_verify(int nsrv, int rounds)
{
    struct env e;
    struct burst b = {0};
    char vbody[160], kid[64] = "";
    json_t *j = NULL;
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int round = 0; round < rounds; round++) {
        char cbody[96];
        snprintf(cbody, sizeof(cbody), "{\"remaining\":%d}", VERIFY_CREDITS);
        struct reqspec c = {"POST", "/v1/keys", e.key, cbody, NULL, 0};
        EXPECT(http1(&e, &c, &j) == 201, "create key");
        snprintf(vbody, sizeof(vbody), "{\"key\":\"%s\"}", jstr(j, "key", NULL));
        snprintf(kid, sizeof(kid), "%s", jstr(j, "keyId", NULL));
        json_decref(j);
        j = NULL;
        struct reqspec one = {"POST", "/v1/keys/verify", e.key, vbody, NULL, 0};
        EXPECT(burst_same(&e, &one, RACE_VERIFIES, &b) == 0, "burst");
        int valid = 0, exceeded = 0, other = 0;
        for (int i = 0; i < RACE_VERIFIES; i++) {
            json_t *r = res_json(&b, (size_t)i);
            const char *code = jstr(r, "code", NULL);
            json_int_t rem = json_integer_value(json_object_get(r, "remaining"));
            if (b.res[i].http.status == 200 && code && !strcmp(code, "VALID") && rem >= 0)
                valid++;
            else if (b.res[i].http.status == 200 && code && !strcmp(code, "USAGE_EXCEEDED"))
                exceeded++;
            else {
                other++;
                fprintf(stderr, "  verify %d: %d %.200s\n", i, b.res[i].http.status,
                        b.res[i].http.body ? b.res[i].http.body : "");
            }
            json_decref(r);
        }
        EXPECT(other == 0, "%d verifies were neither VALID nor USAGE_EXCEEDED", other);
        EXPECT(valid == VERIFY_CREDITS && exceeded == RACE_VERIFIES - VERIFY_CREDITS,
               "want %d VALID and %d USAGE_EXCEEDED, got %d and %d", VERIFY_CREDITS,
               RACE_VERIFIES - VERIFY_CREDITS, valid, exceeded);
        EXPECT(db_count(&e, "SELECT remaining FROM api_keys WHERE id = ?", kid, NULL) == 0,
               "remaining must end at 0");
    }
out:
    json_decref(j);
    burst_free(&b);
    env_down(&e);
}

void t_race_verify_1srv(void)
{
    race_verify(1, RACE_ROUNDS);
}
void t_race_verify_2srv(void)
{
    race_verify(MULTI, RACE_ROUNDS);
}

#define VERIFIES 40
#define DAY_MS 86400000LL

/* Creates a key from body; fills its id and plaintext. */
static int key_make(struct env *e, const char *body, char kid[64], char key[128])
{
    struct reqspec c = {"POST", "/v1/keys", e->key, body, NULL, 0};
    return key_take(e, &c, kid, key, NULL);
}

/* Tallies verify answers by code; anything but a 200 with a known code is
 * counted in other (and shown). */
struct tally {
    int valid, limited, exceeded, not_found, other;
};
static void tally_verifies(const struct burst *b, size_t from, size_t to, struct tally *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = from; i < to; i++) {
        json_t *r = res_json(b, i);
        const char *code = jstr(r, "code", NULL);
        if (b->res[i].http.status != 200 || !code)
            t->other++;
        else if (!strcmp(code, "VALID"))
            t->valid++;
        else if (!strcmp(code, "RATE_LIMITED"))
            t->limited++;
        else if (!strcmp(code, "USAGE_EXCEEDED"))
            t->exceeded++;
        else if (!strcmp(code, "NOT_FOUND"))
            t->not_found++;
        else
            t->other++;
        if (b->res[i].http.status != 200 || !code)
            fprintf(stderr, "  verify %zu: %d %.200s\n", i, b->res[i].http.status,
                    b->res[i].http.body ? b->res[i].http.body : "");
        json_decref(r);
    }
}

/* VERIFIES verifies, bodies taking turns (and servers too), fired as one
 * burst and tallied. */
static int fire_verifies(struct env *e, const char *const *bodies, int nbodies, struct burst *b,
                         struct tally *t)
{
    struct reqspec q[VERIFIES];
    for (int i = 0; i < VERIFIES; i++)
        q[i] = (struct reqspec){"POST", "/v1/keys/verify", e->key, bodies[i % nbodies], NULL, i};
    burst_free(b);
    if (burst_fire(e, q, VERIFIES, b) != 0)
        return -1;
    tally_verifies(b, 0, VERIFIES, t);
    return 0;
}

static long used_in(struct env *e, const char *owner, const char *name)
{
    return db_count(e, "SELECT used FROM ratelimit_windows WHERE owner_id = ? AND name = ?", owner,
                    name);
}

/* M verifies against a key limit of L and an identity limit shared by two
 * keys: exactly L VALID, M - L RATE_LIMITED, the counter at L. */
static void race_ratelimit(int nsrv, int rounds)
{
    struct env e;
    struct burst b = {0};
    char kid[64], key[128], kid2[64], key2[128], v1[200], v2[200], body[400], xid[64];
    json_t *j = NULL;
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int round = 0; round < rounds; round++) {
        burst_free(&b);
        int lim = 5 + round % 7;
        /* A key limit: one key, L per day. */
        snprintf(body, sizeof(body),
                 "{\"ratelimits\":[{\"name\":\"api\",\"limit\":%d,\"duration\":%lld}]}", lim,
                 DAY_MS);
        EXPECT(key_make(&e, body, kid, key) == 0, "key");
        snprintf(v1, sizeof(v1), "{\"key\":\"%s\"}", key);
        struct tally t;
        EXPECT(fire_verifies(&e, (const char *[]){v1}, 1, &b, &t) == 0, "burst");
        EXPECT(t.other == 0, "%d verifies were not 200 VALID/RATE_LIMITED", t.other);
        EXPECT(t.valid == lim && t.limited == VERIFIES - lim,
               "key limit %d: want %d VALID and %d RATE_LIMITED, got %d and %d", lim, lim,
               VERIFIES - lim, t.valid, t.limited);
        EXPECT(used_in(&e, kid, "api") == lim, "the window must hold %d, holds %ld", lim,
               used_in(&e, kid, "api"));

        /* An identity limit: two keys of one identity share it. */
        burst_free(&b);
        fresh(xid, sizeof(xid), "org-", "");
        snprintf(body, sizeof(body),
                 "{\"externalId\":\"%s\",\"ratelimits\":[{\"name\":\"org\",\"limit\":%d,"
                 "\"duration\":%lld}]}",
                 xid, lim, DAY_MS);
        struct reqspec ci = {"POST", "/v1/identities", e.key, body, NULL, 0};
        EXPECT(http1(&e, &ci, &j) == 201, "identity");
        char idn[64];
        snprintf(idn, sizeof(idn), "%s", jstr(j, "identity", "id"));
        json_decref(j);
        j = NULL;
        snprintf(body, sizeof(body), "{\"externalId\":\"%s\"}", xid);
        EXPECT(key_make(&e, body, kid, key) == 0 && key_make(&e, body, kid2, key2) == 0, "keys");
        snprintf(v1, sizeof(v1), "{\"key\":\"%s\"}", key);
        snprintf(v2, sizeof(v2), "{\"key\":\"%s\",\"ratelimits\":[{\"name\":\"org\"}]}", key2);
        EXPECT(fire_verifies(&e, (const char *[]){v1, v2}, 2, &b, &t) == 0, "burst");
        EXPECT(t.other == 0, "%d verifies were not 200 VALID/RATE_LIMITED", t.other);
        EXPECT(t.valid == lim && t.limited == VERIFIES - lim,
               "identity limit %d over two keys: want %d VALID, %d RATE_LIMITED, got %d and %d",
               lim, lim, VERIFIES - lim, t.valid, t.limited);
        EXPECT(used_in(&e, idn, "org") == lim, "the identity's window must hold %d", lim);

        /* Cost 3 against a limit of 10: three pass, nine units used. */
        snprintf(body, sizeof(body),
                 "{\"externalId\":\"%s-c\",\"ratelimits\":[{\"name\":\"org\",\"limit\":10,"
                 "\"duration\":%lld}]}",
                 xid, DAY_MS);
        struct reqspec ci2 = {"POST", "/v1/identities", e.key, body, NULL, 0};
        EXPECT(http1_take(&e, &ci2, 201, "identity", "id", idn, sizeof(idn)), "identity");
        snprintf(body, sizeof(body), "{\"externalId\":\"%s-c\"}", xid);
        EXPECT(key_make(&e, body, kid, key) == 0, "key");
        snprintf(v2, sizeof(v2), "{\"key\":\"%s\",\"ratelimits\":[{\"name\":\"org\",\"cost\":3}]}",
                 key);
        EXPECT(fire_verifies(&e, (const char *[]){v2}, 1, &b, &t) == 0, "burst");
        EXPECT(t.other == 0 && t.valid == 3 && t.limited == VERIFIES - 3,
               "cost 3 against 10: want 3 VALID, got %d (%d limited, %d other)", t.valid, t.limited,
               t.other);
        EXPECT(used_in(&e, idn, "org") == 9, "the window must hold 9, holds %ld",
               used_in(&e, idn, "org"));
    }
out:
    json_decref(j);
    burst_free(&b);
    env_down(&e);
}

void t_race_ratelimit_1srv(void)
{
    race_ratelimit(1, 4);
}
void t_race_ratelimit_multi(void)
{
    race_ratelimit(MULTI, 4);
}

/* Two limits and credits on every verify, the tightest refusing: a verify
 * refused by one spends nothing on the others (Unkey #1995). */
static void t_race_ratelimit_all_or_nothing_n(int nsrv)
{
    struct env e;
    struct burst b = {0};
    char kid[64], key[128], v[300], body[500], xid[64], idn[64];
    json_t *j = NULL;
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int round = 0; round < 4; round++) {
        burst_free(&b);
        /* round 0, 2: the key's limit (10) is the tightest; 1, 3: credits (6). */
        int credits = round % 2 ? 6 : 30, tight = round % 2 ? 6 : 10;
        fresh(xid, sizeof(xid), "aon-", "");
        snprintf(body, sizeof(body),
                 "{\"externalId\":\"%s\",\"ratelimits\":[{\"name\":\"wide\",\"limit\":25,"
                 "\"duration\":%lld}]}",
                 xid, DAY_MS);
        struct reqspec ci = {"POST", "/v1/identities", e.key, body, NULL, 0};
        EXPECT(http1_take(&e, &ci, 201, "identity", "id", idn, sizeof(idn)), "identity");
        snprintf(body, sizeof(body),
                 "{\"externalId\":\"%s\",\"remaining\":%d,\"ratelimits\":[{\"name\":\"tight\","
                 "\"limit\":10,\"duration\":%lld}]}",
                 xid, credits, DAY_MS);
        EXPECT(key_make(&e, body, kid, key) == 0, "key");
        snprintf(v, sizeof(v),
                 "{\"key\":\"%s\",\"ratelimits\":[{\"name\":\"wide\"},{\"name\":\"tight\"}],"
                 "\"credits\":{\"cost\":1}}",
                 key);
        struct tally t;
        EXPECT(fire_verifies(&e, (const char *[]){v}, 1, &b, &t) == 0, "burst");
        EXPECT(t.other == 0, "%d verifies failed", t.other);
        EXPECT(t.valid == tight, "want %d VALID, got %d (%d limited, %d exceeded)", tight, t.valid,
               t.limited, t.exceeded);
        EXPECT(round % 2 ? t.exceeded == VERIFIES - tight : t.limited == VERIFIES - tight,
               "want %d refused by %s, got %d limited %d exceeded", VERIFIES - tight,
               round % 2 ? "credits" : "the key's limit", t.limited, t.exceeded);
        /* What was refused spent nothing anywhere: each counter moved once
         * per VALID, and so did the balance. */
        EXPECT(used_in(&e, idn, "wide") == tight, "identity's window holds %ld, want %d",
               used_in(&e, idn, "wide"), tight);
        long tl = used_in(&e, kid, "tight");
        EXPECT(tl == tight || (tl == -1 && tight == 0), "key's window holds %ld, want %d", tl,
               tight);
        EXPECT(db_count(&e, "SELECT remaining FROM api_keys WHERE id = ?", kid, NULL) ==
                   credits - tight,
               "credits must end at %d", credits - tight);
    }
out:
    json_decref(j);
    burst_free(&b);
    env_down(&e);
}

void t_race_ratelimit_all_or_nothing(void)
{
    t_race_ratelimit_all_or_nothing_n(1);
    if (!test_failed)
        t_race_ratelimit_all_or_nothing_n(MULTI);
}

/* Increments and decrements racing verifies lose none of them: the balance
 * ends at start + increments - decrements - VALID, exactly. */
static void race_credits(int nsrv)
{
    enum { INC = 6, DEC = 4 };
    struct env e;
    struct burst b = {0};
    struct reqspec q[VERIFIES + INC + DEC];
    char kid[64], key[128], v[200], path[128];
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int round = 0; round < 4; round++) {
        burst_free(&b);
        EXPECT(key_make(&e, "{\"remaining\":100}", kid, key) == 0, "key");
        snprintf(v, sizeof(v), "{\"key\":\"%s\"}", key);
        snprintf(path, sizeof(path), "/v1/keys/%s/credits", kid);
        size_t n = 0;
        for (int i = 0; i < VERIFIES; i++) {
            q[n++] = (struct reqspec){"POST", "/v1/keys/verify", e.key, v, NULL, i};
            if (i % 4 == 0 && n < VERIFIES + INC + DEC && i / 4 < INC + DEC)
                q[n++] = (struct reqspec){
                    "POST",
                    path,
                    e.key,
                    i / 4 < INC ? "{\"op\":\"increment\",\"value\":5}" : "{\"op\":\"decrement\",\"value\":1}",
                    NULL,
                    i};
        }
        EXPECT(burst_fire(&e, q, n, &b) == 0, "burst");
        int valid = 0, exceeded = 0, ops = 0, bad = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *r = res_json(&b, i);
            const char *code = jstr(r, "code", NULL);
            int st = b.res[i].http.status;
            if (!strcmp(q[i].path, path))
                ops += st == 200 && json_is_integer(json_object_get(r, "remaining"));
            else if (st == 200 && code && !strcmp(code, "VALID"))
                valid++;
            else if (st == 200 && code && !strcmp(code, "USAGE_EXCEEDED"))
                exceeded++;
            else
                bad++;
            json_decref(r);
        }
        EXPECT(bad == 0 && ops == INC + DEC, "%d bad answers, %d of %d credit operations ok", bad,
               ops, INC + DEC);
        EXPECT(valid + exceeded == VERIFIES, "verifies: %d + %d", valid, exceeded);
        /* The balance never runs dry here (decrements floor at 0, which
         * would make the books an inequality), so the sum is exact: a lost
         * update of any kind shows. */
        long left = db_count(&e, "SELECT remaining FROM api_keys WHERE id = ?", kid, NULL);
        EXPECT(valid == VERIFIES, "%d verifies were not VALID with credits to spare",
               VERIFIES - valid);
        EXPECT(left == 100 + 5 * INC - DEC - valid,
               "remaining %ld, want 100 + %d - %d - %d VALID = %d: an operation was lost", left,
               5 * INC, DEC, valid, 100 + 5 * INC - DEC - valid);
        EXPECT(left >= 0, "remaining went below 0");
    }
out:
    burst_free(&b);
    env_down(&e);
}

void t_race_credits_ops(void)
{
    race_credits(1);
    if (!test_failed)
        race_credits(MULTI);
}

static int db_exec(struct env *e, const char *sql, const struct rf_db_param *p, int np)
{
    struct rf_db_conn *c;
    struct rf_db_error err;
    if (rf_db_acquire(e->db, 1, &c, &err) != RF_DB_OK)
        return -1;
    int rc = rf_db_exec(c, sql, p, np, NULL, NULL, &err);
    rf_db_release(e->db, c);
    if (rc != RF_DB_OK)
        fprintf(stderr, "  db_exec: %s\n", err.detail);
    return rc == RF_DB_OK ? 0 : -1;
}

/* A refill due at the boundary is applied once however many verifies
 * race to it from several processes: exactly `amount` of them are VALID. */
void t_race_refill_boundary(void)
{
    struct env e;
    struct burst b = {0};
    char kid[64], key[128], v[200];
    EXPECT(env_up(&e, MULTI) == 0, "env_up");
    for (int round = 0; round < 6; round++) {
        burst_free(&b);
        int monthly = round % 2;
        EXPECT(key_make(&e,
                        monthly ? "{\"remaining\":0,\"refill\":{\"interval\":\"monthly\","
                                  "\"amount\":12,\"refillDay\":31}}"
                                : "{\"remaining\":0,\"refill\":{\"interval\":\"daily\","
                                  "\"amount\":12}}",
                        kid, key) == 0,
               "key");
        /* Yesterday's (last month's) refill was the last: this period's is due. */
        int64_t now = rf_now_ms();
        int64_t period =
            rf_refill_period_start(monthly ? RF_REFILL_MONTHLY : RF_REFILL_DAILY, 31, now);
        struct rf_db_param p[] = {RF_INT(period - 1), RF_TEXT(kid)};
        EXPECT(db_exec(&e, "UPDATE api_keys SET last_refill = ? WHERE id = ?", p, 2) == 0,
               "backdate");
        snprintf(v, sizeof(v), "{\"key\":\"%s\"}", key);
        struct tally t;
        EXPECT(fire_verifies(&e, (const char *[]){v}, 1, &b, &t) == 0, "burst");
        EXPECT(t.other == 0, "%d verifies failed", t.other);
        EXPECT(t.valid == 12 && t.exceeded == VERIFIES - 12,
               "want 12 VALID (one refill), %d USAGE_EXCEEDED; got %d and %d", VERIFIES - 12,
               t.valid, t.exceeded);
        char ps[32];
        snprintf(ps, sizeof(ps), "%lld", (long long)period);
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM api_keys WHERE id = ? AND last_refill = ?", kid,
                        ps) == 1,
               "last_refill must be this period's start");
        EXPECT(db_count(&e, "SELECT remaining FROM api_keys WHERE id = ?", kid, NULL) == 0,
               "remaining must end at 0");
    }
out:
    burst_free(&b);
    env_down(&e);
}

/* A client that keeps sending one request to every server until told to
 * stop, recording when each was sent and what came back. */
struct looper {
    struct env *e;
    const char *path, *body, *key;
    atomic_int stop;
    int n;
    struct {
        uint64_t sent;
        int status;
        char code[24];
    } rec[4096];
};

static void *loop_run(void *arg)
{
    struct looper *l = arg;
    while (!atomic_load(&l->stop) && l->n + 2 * MAX_SRV < 4096) {
        struct reqspec q[2 * MAX_SRV];
        struct burst b = {0};
        int n = 2 * l->e->nsrv;
        for (int i = 0; i < n; i++)
            q[i] = (struct reqspec){"POST", l->path, l->key, l->body, NULL, i};
        if (!l->body)
            for (int i = 0; i < n; i++)
                q[i].method = "GET";
        if (burst_fire(l->e, q, (size_t)n, &b) == 0)
            for (int i = 0; i < n; i++) {
                json_t *r = res_json(&b, (size_t)i);
                const char *code = jstr(r, "code", NULL);
                l->rec[l->n].sent = b.res[i].t_connected_ns;
                l->rec[l->n].status = b.res[i].http.status;
                snprintf(l->rec[l->n].code, sizeof(l->rec[0].code), "%s", code ? code : "");
                l->n++;
                json_decref(r);
            }
        burst_free(&b);
        sleep_ms(3); /* a steady stream, not a flood: the records must last */
    }
    return NULL;
}

/* Counts records sent after t (status/code as wanted or not). */
/* Stops the looper's thread if it runs, and frees it. */
static void loop_end(struct looper *l, pthread_t th, int started)
{
    if (started) {
        atomic_store(&l->stop, 1);
        pthread_join(th, NULL);
    }
    free(l);
}

static void loop_split(const struct looper *l, uint64_t t, int (*good)(int, const char *),
                       int *before_good, int *after, int *after_bad)
{
    *before_good = *after = *after_bad = 0;
    for (int i = 0; i < l->n; i++) {
        int g = good(l->rec[i].status, l->rec[i].code);
        if (l->rec[i].sent <= t)
            *before_good += g;
        else {
            (*after)++;
            *after_bad += g;
        }
    }
}

static int is_valid(int status, const char *code)
{
    return status == 200 && !strcmp(code, "VALID");
}

/* Once DELETE has answered, no verify on any server answers VALID for the
 * key: verifies sent after the 204 (from every process) are NOT_FOUND. A
 * key with credits (write path) and one without (read path). */
void t_race_key_delete_vs_verify(void)
{
    struct env e;
    struct looper *l = calloc(1, sizeof(*l));
    char kid[64], key[128], v[200], path[128];
    pthread_t th;
    int started = 0;
    EXPECT(l && env_up(&e, MULTI) == 0, "env_up");
    for (int round = 0; round < 4; round++) {
        EXPECT(key_make(&e, round % 2 ? "{\"remaining\":100000}" : "{}", kid, key) == 0, "key");
        snprintf(v, sizeof(v), "{\"key\":\"%s\"}", key);
        memset(l, 0, sizeof(*l));
        *l = (struct looper){.e = &e, .path = "/v1/keys/verify", .body = v, .key = e.key};
        EXPECT(pthread_create(&th, NULL, loop_run, l) == 0, "thread");
        started = 1;
        sleep_ms(150);
        snprintf(path, sizeof(path), "/v1/keys/%s", kid);
        struct reqspec d = {"DELETE", path, e.key, NULL, NULL, round % e.nsrv};
        int st = http1(&e, &d, NULL);
        uint64_t t_done = rf_burst_now_ns();
        sleep_ms(300);
        atomic_store(&l->stop, 1);
        pthread_join(th, NULL);
        started = 0;
        EXPECT(st == 204, "DELETE: want 204, got %d", st);
        int before, after, bad;
        loop_split(l, t_done, is_valid, &before, &after, &bad);
        EXPECT(before > 0 && after > 0,
               "the loop must straddle the delete (%d VALID before, %d "
               "after)",
               before, after);
        EXPECT(bad == 0, "%d of %d verifies sent after DELETE returned were VALID", bad, after);
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM api_keys WHERE id = ?", kid, NULL) == 0,
               "the key row must be gone");
        EXPECT(http1(&e, &d, NULL) == 404, "a second DELETE: 404");
    }
out:
    loop_end(l, th, started);
    env_down(&e);
}

/* N simultaneous rerolls of one key: one new key, N-1 409 key_rerolled;
 * the successor has the credits and limits; the old key, an alias during
 * its overlap, spends the successor's credits, never its own. */
static void race_reroll(int nsrv)
{
    enum { N = 20 };
    struct env e;
    struct burst b = {0};
    char kid[64], key[128], path[128], v[2][200], nkid[64] = "", nkey[128] = "";
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int round = 0; round < 3; round++) {
        EXPECT(key_make(&e,
                        "{\"remaining\":12,\"ratelimits\":[{\"name\":\"r\",\"limit\":1000,"
                        "\"duration\":86400000}]}",
                        kid, key) == 0,
               "key");
        snprintf(path, sizeof(path), "/v1/keys/%s/reroll", kid);
        struct reqspec one = {"POST", path, e.key, "{\"expiration\":60000}", NULL, 0};
        EXPECT_SAME(&e, &one, N, &b, "no-5xx; status 201=1; status 409=N-1");
        int lost = count_with(&b, 409, "\"code\":\"key_rerolled\"");
        for (int i = 0; i < N; i++) {
            json_t *r = res_json(&b, (size_t)i);
            if (b.res[i].http.status == 201) {
                snprintf(nkid, sizeof(nkid), "%s", jstr(r, "keyId", NULL));
                snprintf(nkey, sizeof(nkey), "%s", jstr(r, "key", NULL));
            }
            json_decref(r);
        }
        EXPECT(lost == N - 1, "want %d x 409 key_rerolled, got %d", N - 1, lost);
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM api_keys WHERE limits_owner = ?", kid, NULL) == 1,
               "exactly one successor in the database");
        EXPECT(db_count(&e, "SELECT remaining FROM api_keys WHERE id = ?", nkid, NULL) == 12,
               "the successor carries the credits");
        /* Old and new keys verified together share one balance of 12. */
        burst_free(&b);
        snprintf(v[0], sizeof(v[0]), "{\"key\":\"%s\"}", key);
        snprintf(v[1], sizeof(v[1]), "{\"key\":\"%s\"}", nkey);
        struct tally t;
        EXPECT(fire_verifies(&e, (const char *[]){v[0], v[1]}, 2, &b, &t) == 0, "burst");
        EXPECT(t.other == 0 && t.valid == 12 && t.exceeded == VERIFIES - 12,
               "old + new keys: want 12 VALID in all, got %d (%d exceeded, %d other)", t.valid,
               t.exceeded, t.other);
        EXPECT(used_in(&e, kid, "r") == 12, "one ratelimit counter for both keys");
    }
out:
    burst_free(&b);
    env_down(&e);
}

void t_race_reroll(void)
{
    race_reroll(1);
    if (!test_failed)
        race_reroll(MULTI);
}

static int is_authed(int status, const char *code)
{
    (void)code;
    return status != 401 && status != 0;
}

/* Runs `racefree workspace rotate-key t1 --db … [--key OLD]` n times at once;
 * returns how many exited 0 and the root key one of them printed. */
static int rotate_many(struct env *e, int n, const char *old_key, char *new_key, size_t len)
{
    int fds[16][2], ok = 0;
    pid_t pids[16];
    for (int i = 0; i < n; i++) {
        if (pipe(fds[i]) != 0)
            return -1;
        pids[i] = fork();
        if (pids[i] == 0) {
            dup2(fds[i][1], 1);
            close(fds[i][0]);
            if (old_key)
                execl(bin, bin, "workspace", "rotate-key", "t1", "--db", e->db_url, "--key",
                      old_key, (char *)NULL);
            else
                execl(bin, bin, "workspace", "rotate-key", "t1", "--db", e->db_url, (char *)NULL);
            _exit(127);
        }
        close(fds[i][1]);
    }
    for (int i = 0; i < n; i++) {
        char out[512] = "";
        ssize_t r = read(fds[i][0], out, sizeof(out) - 1);
        close(fds[i][0]);
        int st;
        waitpid(pids[i], &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && r > 0) {
            ok++;
            json_t *j = json_loads(out, 0, NULL);
            snprintf(new_key, len, "%s", jstr(j, "rootKey", NULL) ? jstr(j, "rootKey", NULL) : "");
            json_decref(j);
        }
    }
    return ok;
}

/* rotate-key: once it returns, no server accepts the old root key (their
 * caches included); the new one works everywhere at once; of simultaneous
 * rotations of one key exactly one wins. */
void t_race_root_key_rotation(void)
{
    struct env e;
    struct looper *l = calloc(1, sizeof(*l));
    pthread_t th;
    int started = 0;
    char old[128], fresh[128] = "", fresh2[128] = "";
    EXPECT(l && env_up(&e, MULTI) == 0, "env_up");
    snprintf(old, sizeof(old), "%s", e.key);
    /* A GET that needs auth and reads nothing: 404 when the key is good. */
    *l = (struct looper){.e = &e, .path = "/v1/keys/key_none", .body = NULL, .key = old};
    EXPECT(pthread_create(&th, NULL, loop_run, l) == 0, "thread");
    started = 1;
    sleep_ms(300);
    EXPECT(rotate_many(&e, 1, old, fresh, sizeof(fresh)) == 1 && fresh[0], "rotate-key");
    uint64_t t_done = rf_burst_now_ns();
    sleep_ms(300);
    atomic_store(&l->stop, 1);
    pthread_join(th, NULL);
    started = 0;
    int before, after, bad;
    loop_split(l, t_done, is_authed, &before, &after, &bad);
    EXPECT(before > 0 && after > 0, "the loop must straddle the rotation (%d before, %d after)",
           before, after);
    EXPECT(bad == 0, "%d of %d requests with the old key after rotate-key returned were accepted",
           bad, after);
    for (int i = 0; i < e.nsrv; i++) {
        struct reqspec g = {"GET", "/v1/keys/key_none", fresh, NULL, NULL, i};
        EXPECT(http1(&e, &g, NULL) == 404, "the new key on server %d: want 404 (authenticated)", i);
    }
    /* Four rotations of the new key at once: one wins. Without --key each
     * run replaces the newest live key when it runs, so runs that start
     * after another committed chain on (docs/API.md); either way one key is
     * left live, and the last one printed works. */
    EXPECT(rotate_many(&e, 4, fresh, fresh2, sizeof(fresh2)) == 1,
           "simultaneous rotations of one key: exactly one may succeed");
    EXPECT(rotate_many(&e, 3, NULL, fresh, sizeof(fresh)) >= 1, "rotations without --key");
    EXPECT(db_count(&e,
                    "SELECT COUNT(*) FROM root_keys r JOIN workspaces w ON w.id = r.workspace_id"
                    " WHERE w.name = ? AND r.replaced_by IS NULL",
                    "t1", NULL) == 1,
           "one live root key");
out:
    loop_end(l, th, started);
    env_down(&e);
}

/* Bad input to the key operations: a clear 422 (or 404), never a 5xx, and
 * nothing written. */
void t_bad_input_keyops(void)
{
    struct env e;
    char kid[64], key[128], path_c[128], path_r[128], v[300];
    EXPECT(env_up(&e, 1) == 0, "env_up");
    EXPECT(key_make(&e, "{\"remaining\":5}", kid, key) == 0, "key");
    snprintf(path_c, sizeof(path_c), "/v1/keys/%s/credits", kid);
    snprintf(path_r, sizeof(path_r), "/v1/keys/%s/reroll", kid);
    snprintf(v, sizeof(v), "{\"key\":\"%s\",\"ratelimits\":[{\"name\":\"none\"}]}", key);
    const struct {
        const char *method, *path, *body;
        int status;
        const char *code;
    } cases[] = {
        {"POST", "/v1/keys", "{\"ratelimits\":{}}", 422, "invalid_field"},
        {"POST", "/v1/keys", "{\"ratelimits\":[1]}", 422, "invalid_ratelimits"},
        {"POST", "/v1/keys", "{\"ratelimits\":[{\"name\":\"a\",\"limit\":1}]}", 422,
         "invalid_ratelimits"},
        {"POST", "/v1/keys", "{\"ratelimits\":[{\"name\":\"a b\",\"limit\":1,\"duration\":1000}]}",
         422, "invalid_ratelimits"},
        {"POST", "/v1/keys", "{\"ratelimits\":[{\"name\":\"a\",\"limit\":-1,\"duration\":1000}]}",
         422, "invalid_ratelimits"},
        {"POST", "/v1/keys", "{\"ratelimits\":[{\"name\":\"a\",\"limit\":1,\"duration\":10}]}", 422,
         "invalid_ratelimits"},
        {"POST", "/v1/keys",
         "{\"ratelimits\":[{\"name\":\"a\",\"limit\":1,\"duration\":1000},"
         "{\"name\":\"a\",\"limit\":2,\"duration\":1000}]}",
         422, "invalid_ratelimits"},
        {"POST", "/v1/keys",
         "{\"ratelimits\":[{\"name\":\"a\",\"limit\":1,\"duration\":1000,\"x\":1}]}", 422,
         "invalid_ratelimits"},
        {"POST", "/v1/keys",
         "{\"ratelimits\":[{\"name\":\"';DROP TABLE x;--\",\"limit\":1,"
         "\"duration\":1000}]}",
         422, "invalid_ratelimits"},
        {"POST", "/v1/keys", "{\"refill\":{\"interval\":\"weekly\",\"amount\":1}}", 422,
         "invalid_refill"},
        {"POST", "/v1/keys", "{\"refill\":{\"interval\":\"daily\",\"amount\":1,\"refillDay\":3}}",
         422, "invalid_refill"},
        {"POST", "/v1/keys",
         "{\"refill\":{\"interval\":\"monthly\",\"amount\":1,\"refillDay\":32}}", 422,
         "invalid_refill"},
        {"POST", "/v1/keys", "{\"refill\":{\"interval\":\"daily\",\"amount\":-5}}", 422,
         "invalid_refill"},
        {"POST", "/v1/keys", "{\"refill\":{\"interval\":\"daily\"}}", 422, "invalid_refill"},
        {"POST", "/v1/keys", "{\"refill\":null}", 422, "invalid_field"},
        {"POST", "/v1/keys", "{\"remaining\":9007199254740992}", 422, "invalid_remaining"},
        {"POST", "/v1/identities", "{\"externalId\":\"x\",\"ratelimits\":[{}]}", 422,
         "invalid_ratelimits"},
        {"POST", "/v1/keys/verify", "{\"key\":\"rf_x\",\"ratelimits\":[{\"cost\":1}]}", 422,
         "invalid_ratelimits"},
        {"POST", "/v1/keys/verify",
         "{\"key\":\"rf_x\",\"ratelimits\":[{\"name\":\"a\",\"cost\":-1}]}", 422,
         "invalid_ratelimits"},
        {"POST", "/v1/keys/verify", "{\"key\":\"rf_x\",\"credits\":{\"cost\":-1}}", 422,
         "invalid_credits"},
        {"POST", "/v1/keys/verify", "{\"key\":\"rf_x\",\"credits\":{}}", 422, "invalid_credits"},
        {"POST", "/v1/keys/verify", "{\"key\":\"rf_x\",\"credits\":5}", 422, "invalid_field"},
        {"POST", "/v1/keys/verify", v, 422, "unknown_ratelimit"},
        {"POST", path_c, "{\"op\":\"multiply\",\"value\":2}", 422, "invalid_credits"},
        {"POST", path_c, "{\"op\":\"increment\",\"value\":null}", 422, "invalid_credits"},
        {"POST", path_c, "{\"op\":\"set\",\"value\":-1}", 422, "invalid_credits"},
        {"POST", path_c, "{\"op\":\"set\",\"value\":\"5\"}", 422, "invalid_field"},
        {"POST", path_c, "{\"op\":\"set\"}", 422, "missing_field"},
        {"POST", path_c, "{\"op\":\"set\",\"value\":1,\"x\":1}", 422, "unknown_field"},
        {"POST", "/v1/keys/key_missing/credits", "{\"op\":\"set\",\"value\":1}", 404, "not_found"},
        {"POST", path_r, "{\"expiration\":-1}", 422, "invalid_expires"},
        {"POST", path_r, "{\"expiration\":\"soon\"}", 422, "invalid_field"},
        {"POST", "/v1/keys/key_missing/reroll", "{}", 404, "not_found"},
        {"DELETE", "/v1/keys/key_missing", NULL, 404, "not_found"},
    };
    /* A balance saturates at 2^53 - 1 rather than overflowing (a 500 on
     * PostgreSQL, a float on SQLite). */
    for (int i = 0; i < 3; i++) {
        json_t *j = NULL;
        struct reqspec q = {
            "POST", path_c, e.key, "{\"op\":\"increment\",\"value\":9007199254740991}", NULL, 0};
        int st = http1(&e, &q, &j);
        json_int_t left = json_integer_value(json_object_get(j, "remaining"));
        json_decref(j);
        EXPECT(st == 200 && left == 9007199254740991LL, "increment near 2^53: %d %lld", st,
               (long long)left);
    }
    struct reqspec reset = {"POST", path_c, e.key, "{\"op\":\"set\",\"value\":5}", NULL, 0};
    EXPECT(http1(&e, &reset, NULL) == 200, "set back to 5");
    long keys0 = db_count(&e, "SELECT COUNT(*) FROM api_keys", NULL, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = NULL;
        struct reqspec q = {cases[i].method, cases[i].path, e.key, cases[i].body, NULL, 0};
        int st = http1(&e, &q, &j);
        const char *code = jstr(j, "code", NULL);
        int ok = st == cases[i].status && code && !strcmp(code, cases[i].code);
        json_decref(j);
        EXPECT(ok, "%s %s %s: want %d %s, got %d %s", cases[i].method, cases[i].path,
               cases[i].body ? cases[i].body : "", cases[i].status, cases[i].code, st,
               code ? code : "-");
    }
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM api_keys", NULL, NULL) == keys0,
           "a refused request created a key");
    EXPECT(db_count(&e, "SELECT remaining FROM api_keys WHERE id = ?", kid, NULL) == 5,
           "a refused request moved the credits");
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM ratelimits", NULL, NULL) == 0,
           "a refused request stored a ratelimit");
out:
    env_down(&e);
}

/* Workspace B against A's key: delete, credits, reroll answer 404 exactly
 * as for a missing key; B's verify of A's key is NOT_FOUND and spends none
 * of A's credits or limits; A's key is unchanged. */
void t_tenancy_keyops(void)
{
    struct env e;
    char kid[64], key[128], p[3][160], v[300], *before = NULL, *after = NULL;
    json_t *j = NULL;
    EXPECT(env_up(&e, 1) == 0, "env_up");
    EXPECT(key_make(&e,
                    "{\"remaining\":5,\"ratelimits\":[{\"name\":\"r\",\"limit\":3,"
                    "\"duration\":86400000}]}",
                    kid, key) == 0,
           "key");
    snprintf(p[0], sizeof(p[0]), "/v1/keys/%s", kid);
    snprintf(p[1], sizeof(p[1]), "/v1/keys/%s/credits", kid);
    snprintf(p[2], sizeof(p[2]), "/v1/keys/%s/reroll", kid);
    struct reqspec g = {"GET", p[0], e.key, NULL, NULL, 0};
    EXPECT(http1(&e, &g, &j) == 200 && (before = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS)),
           "A reads its key");
    json_decref(j);
    j = NULL;
    const struct reqspec b[] = {
        {"DELETE", p[0], e.key2, NULL, NULL, 0},
        {"POST", p[1], e.key2, "{\"op\":\"set\",\"value\":0}", NULL, 0},
        {"POST", p[2], e.key2, "{}", NULL, 0},
        {"GET", p[0], e.key2, NULL, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
        int st = http1(&e, &b[i], &j);
        const char *code = jstr(j, "code", NULL);
        EXPECT(st == 404 && code && !strcmp(code, "not_found"), "B: %s %s: want 404, got %d",
               b[i].method, b[i].path, st);
        json_decref(j);
        j = NULL;
    }
    snprintf(v, sizeof(v), "{\"key\":\"%s\",\"ratelimits\":[{\"name\":\"r\"}]}", key);
    struct reqspec bv = {"POST", "/v1/keys/verify", e.key2, v, NULL, 0};
    EXPECT(http1(&e, &bv, &j) == 200 && !strcmp(jstr(j, "code", NULL), "NOT_FOUND") &&
               !json_object_get(j, "ratelimits"),
           "B verifying A's key: NOT_FOUND and nothing about its limits");
    json_decref(j);
    j = NULL;
    EXPECT(http1(&e, &g, &j) == 200 && (after = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS)),
           "A reads its key again");
    EXPECT(!strcmp(before, after), "A's key changed:\n    before %s\n    after  %s", before, after);
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM ratelimit_windows", NULL, NULL) == 0,
           "B's verify counted against A's limit");
out:
    free(before);
    free(after);
    json_decref(j);
    env_down(&e);
}

/* A request whose head arrived while its root key was good, and whose body
 * comes after rotate-key returned, is refused: the server asks again once
 * what its cache knew has run out. */
void t_rotation_slow_body(void)
{
    struct env e;
    char fresh[128] = "", head[512], resp[512] = "";
    int fd = -1;
    EXPECT(env_up(&e, 1) == 0, "env_up");
    struct reqspec warm = {"GET", "/v1/keys/key_none", e.key, NULL, NULL, 0};
    EXPECT(http1(&e, &warm, NULL) == 404, "warm the cache");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e.srv[0].port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
    int n = snprintf(head, sizeof(head),
                     "POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: 2\r\n"
                     "Connection: close\r\n\r\n{",
                     e.key);
    EXPECT(write(fd, head, (size_t)n) == n, "send the head");
    sleep_ms(100);
    EXPECT(rotate_many(&e, 1, e.key, fresh, sizeof(fresh)) == 1, "rotate-key");
    EXPECT(write(fd, "}", 1) == 1, "send the rest of the body");
    ssize_t got = read(fd, resp, sizeof(resp) - 1);
    EXPECT(got > 12, "an answer");
    resp[got] = '\0';
    EXPECT(!strncmp(resp + 9, "401", 3),
           "a body sent after rotate-key returned: want 401, got %.40s", resp);
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM api_keys", NULL, NULL) == 0, "no key was made");
out:
    if (fd >= 0)
        close(fd);
    env_down(&e);
}

/* A rerolled key during its overlap: an alias of its successor. It cannot
 * be changed on its own (409 key_rerolled), it spends its successor's
 * credits, DELETE ends it early; the new plaintext is not stored for
 * replays. And a PATCH of remaining while a refill is due is not
 * overwritten by that refill. */
void t_keys_alias_and_refill_patch(void)
{
    struct env e;
    char kid[64], key[128], path[160], v[200], nkey[128] = "", nkid[64] = "";
    json_t *j = NULL;
    EXPECT(env_up(&e, 1) == 0, "env_up");
    EXPECT(key_make(&e, "{\"remaining\":10}", kid, key) == 0, "key");
    snprintf(path, sizeof(path), "/v1/keys/%s/reroll", kid);
    struct reqspec rr = {
        "POST", path, e.key, "{\"expiration\":600000}", "Idempotency-Key: reroll-once\r\n", 0};
    EXPECT(key_take(&e, &rr, nkid, nkey, NULL) == 0, "reroll");
    char like[160];
    snprintf(like, sizeof(like), "%%%s%%", nkey);
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM idempotency_keys WHERE resp_body LIKE ?", like,
                    NULL) == 0,
           "the new key's plaintext is stored for replays");
    EXPECT(http1(&e, &rr, &j) == 201 && json_is_null(json_object_get(j, "key")) &&
               !strcmp(jstr(j, "keyId", NULL), nkid),
           "a replayed reroll names the key, shows no plaintext");
    json_decref(j);
    j = NULL;
    snprintf(path, sizeof(path), "/v1/keys/%s", kid);
    struct reqspec p1 = {"PATCH", path, e.key, "{\"enabled\":false}", NULL, 0};
    EXPECT(http1_is(&e, &p1, 409, "code", NULL, "key_rerolled"),
           "PATCH of an alias: 409 key_rerolled");
    snprintf(path, sizeof(path), "/v1/keys/%s/credits", kid);
    struct reqspec c1 = {"POST", path, e.key, "{\"op\":\"set\",\"value\":1000}", NULL, 0};
    EXPECT(http1_is(&e, &c1, 409, "code", NULL, "key_rerolled"),
           "credits of an alias: 409 key_rerolled");
    snprintf(v, sizeof(v), "{\"key\":\"%s\"}", key);
    struct reqspec vo = {"POST", "/v1/keys/verify", e.key, v, NULL, 0};
    EXPECT(http1(&e, &vo, &j) == 200 && !strcmp(jstr(j, "code", NULL), "VALID") &&
               json_integer_value(json_object_get(j, "remaining")) == 9,
           "the old key spends its successor's credits");
    json_decref(j);
    j = NULL;
    snprintf(path, sizeof(path), "/v1/keys/%s", kid);
    struct reqspec d = {"DELETE", path, e.key, NULL, NULL, 0};
    EXPECT(http1(&e, &d, NULL) == 204, "DELETE of the alias");
    EXPECT(http1_is(&e, &vo, 200, "code", NULL, "NOT_FOUND"), "the deleted alias: NOT_FOUND");
    snprintf(v, sizeof(v), "{\"key\":\"%s\"}", nkey);
    EXPECT(http1_is(&e, &vo, 200, "code", NULL, "VALID"), "the successor lives on");

    /* PATCH remaining while a refill is due. */
    EXPECT(key_make(&e, "{\"remaining\":0,\"refill\":{\"interval\":\"daily\",\"amount\":10}}", kid,
                    key) == 0,
           "key");
    int64_t period = rf_refill_period_start(RF_REFILL_DAILY, 0, rf_now_ms());
    struct rf_db_param bp[] = {RF_INT(period - 1), RF_TEXT(kid)};
    EXPECT(db_exec(&e, "UPDATE api_keys SET last_refill = ? WHERE id = ?", bp, 2) == 0, "backdate");
    snprintf(path, sizeof(path), "/v1/keys/%s", kid);
    struct reqspec p2 = {"PATCH", path, e.key, "{\"remaining\":3}", NULL, 0};
    EXPECT(http1(&e, &p2, NULL) == 200, "PATCH remaining");
    snprintf(v, sizeof(v), "{\"key\":\"%s\"}", key);
    int valid = 0;
    for (int i = 0; i < 6; i++) {
        EXPECT(http1(&e, &vo, &j) == 200, "verify");
        valid += !strcmp(jstr(j, "code", NULL), "VALID");
        json_decref(j);
        j = NULL;
    }
    EXPECT(valid == 3, "the patched balance (3) holds, not the refill due before it: %d VALID",
           valid);

    /* An identity's limits set by PATCH count for its keys. */
    struct reqspec ci = {"POST", "/v1/identities", e.key, "{\"externalId\":\"patched\"}", NULL, 0};
    EXPECT(http1(&e, &ci, NULL) == 201, "identity");
    struct reqspec pi = {
        "PATCH", "/v1/identities/patched",
        e.key,   "{\"ratelimits\":[{\"name\":\"p\",\"limit\":1,\"duration\":86400000}]}",
        NULL,    0};
    EXPECT(http1(&e, &pi, &j) == 200 &&
               json_array_size(json_object_get(json_object_get(j, "identity"), "ratelimits")) == 1,
           "PATCH an identity's ratelimits");
    json_decref(j);
    j = NULL;
    EXPECT(key_make(&e, "{\"externalId\":\"patched\"}", kid, key) == 0, "key");
    snprintf(v, sizeof(v), "{\"key\":\"%s\"}", key);
    const char *want[] = {"VALID", "RATE_LIMITED"};
    for (int i = 0; i < 2; i++) {
        EXPECT(http1(&e, &vo, &j) == 200 && !strcmp(jstr(j, "code", NULL), want[i]),
               "verify %d under the identity's PATCHed limit: want %s", i, want[i]);
        json_decref(j);
        j = NULL;
    }
out:
    json_decref(j);
    env_down(&e);
}
