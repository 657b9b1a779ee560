/* Identities: one externalId raced into one row; deletes raced with key
 * creates that name it. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/rules.h"
#include "core/util.h"
#include "itest.h"

/* N simultaneous POST /v1/identities with one new externalId → one 201,
 * N-1 × 409 identity_exists, one row. */
void t_race_identity_create(void)
{
    struct env e;
    struct burst b = {0};
    char body[96], xid[48];
    EXPECT(env_up(&e, MULTI) == 0, "env_up");
    for (int round = 0; round < RACE_ROUNDS; round++) {
        fresh(xid, sizeof(xid), "idn-race-", "");
        snprintf(body, sizeof(body), "{\"externalId\":\"%s\"}", xid);
        struct reqspec one = {"POST", "/v1/identities", e.key, body, NULL, 0};
        EXPECT_SAME(&e, &one, RACE_SMALL, &b, "no-5xx; status 201=1; status 409=N-1");
        int n409 = count_with(&b, 409, "identity_exists");
        EXPECT(n409 == RACE_SMALL - 1, "want %d x 409 identity_exists, got %d", RACE_SMALL - 1,
               n409);
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM identities WHERE external_id = ?", xid, NULL) ==
                   1,
               "want one identity row");
    }
out:
    burst_free(&b);
    env_down(&e);
}

/* DELETE /v1/identities/{x} racing N key creates with externalId x: every
 * key ends attached to a live identity (then the one its 201 named) or to
 * none (its identity was deleted); the keys made before are detached; no
 * 5xx (a foreign-key failure is a retry, never a 500). */
#define RACE_IDEL 24
#define IDEL_ROUNDS 8

static void race_identity_delete(int nsrv)
{
    struct env e;
    struct burst b = {0};
    struct reqspec q[RACE_IDEL + 1];
    char xid[64], body[128], dpath[128], idn[64], old[3][64];
    int attached = 0, detached = 0;
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int round = 0; round < IDEL_ROUNDS; round++) {
        burst_free(&b);
        fresh(xid, sizeof(xid), "gone-", "");
        snprintf(body, sizeof(body), "{\"externalId\":\"%s\"}", xid);
        snprintf(dpath, sizeof(dpath), "/v1/identities/%s", xid);
        EXPECT(create1(&e, "/v1/identities", body, "identity", "id", idn, sizeof(idn)) == 0,
               "identity");
        for (int i = 0; i < 3; i++)
            EXPECT(create1(&e, "/v1/keys", body, "keyId", NULL, old[i], sizeof(old[i])) == 0,
                   "key");
        int del = round % (RACE_IDEL + 1); /* the DELETE's place in the burst */
        for (int i = 0; i <= RACE_IDEL; i++)
            q[i] = i == del ? (struct reqspec){"DELETE", dpath, e.key, NULL, NULL, i}
                            : (struct reqspec){"POST", "/v1/keys", e.key, body, NULL, i};
        EXPECT(burst_fire(&e, q, RACE_IDEL + 1, &b) == 0, "burst");
        EXPECT(b.res[del].http.status == 204, "the DELETE: want 204, got %d",
               b.res[del].http.status);
        EXPECT_BURST(&b, "no-5xx; status 201=N-1");
        for (int i = 0; i <= RACE_IDEL; i++) {
            if (i == del)
                continue;
            json_t *j = res_json(&b, (size_t)i);
            const char *kid = jstr(j, "keyId", NULL), *got = jstr(j, "identityId", NULL);
            long live = kid && got
                            ? db_count(&e,
                                       "SELECT COUNT(*) FROM api_keys k JOIN identities i"
                                       " ON i.id = k.identity_id WHERE k.id = ? AND i.id = ?",
                                       kid, got)
                            : -1;
            long gone = kid && got ? db_count(&e,
                                              "SELECT (SELECT COUNT(*) FROM api_keys WHERE id = ?"
                                              " AND identity_id IS NULL) * (1 - (SELECT COUNT(*)"
                                              " FROM identities WHERE id = ?))",
                                              kid, got)
                                   : -1;
            attached += live == 1;
            detached += gone == 1;
            json_decref(j);
            EXPECT(live + gone == 1,
                   "key %s (201 named %s): want it on that live identity or detached from a "
                   "deleted one (live %ld, detached %ld)",
                   kid ? kid : "?", got ? got : "?", live, gone);
        }
        for (int i = 0; i < 3; i++)
            EXPECT(db_count(&e,
                            "SELECT COUNT(*) FROM api_keys WHERE id = ? AND identity_id IS NULL",
                            old[i], NULL) == 1,
                   "a key made before the delete is still attached");
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM identities WHERE id = ?", idn, NULL) == 0,
               "the deleted identity is still there");
        EXPECT(db_count(&e,
                        "SELECT COUNT(*) FROM api_keys k WHERE k.identity_id IS NOT NULL AND NOT"
                        " EXISTS (SELECT 1 FROM identities i WHERE i.id = k.identity_id)",
                        NULL, NULL) == 0,
               "a key points at a deleted identity");
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM identities WHERE external_id = ?", xid, NULL) <=
                   1,
               "two identities for %s", xid);
    }
    fprintf(stderr, "  keys racing the delete: %d on a new identity, %d detached\n", attached,
            detached);
out:
    burst_free(&b);
    env_down(&e);
}

void t_race_identity_delete_1srv(void)
{
    race_identity_delete(1);
}
void t_race_identity_delete_multi(void)
{
    race_identity_delete(MULTI);
}
/* The same with both windows held open (test builds): a key create pauses
 * between finding the identity and inserting the key that references it,
 * the delete between detaching keys and deleting the identity. On
 * PostgreSQL the foreign key then refuses the loser's write every time,
 * which must be a retry (a new identity, or one more detach), never a 500.
 * (PostgreSQL only: SQLite runs write transactions one at a time, so the
 * pauses would only wait.) */
void t_race_identity_delete_paused(void)
{
    faults = "keys.slow_attach=1"; /* the delete commits inside a create's pause */
    race_identity_delete(MULTI);
    faults = "identities.slow_delete=1"; /* creates commit inside the delete's */
    race_identity_delete(MULTI);
}
