/* If-Match: versions and ETags raced, users, keys and identities. */
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

#define RACE_IFM 32
#define IFM_ROUNDS 5

/* N simultaneous PATCHes of one object, each with the ETag just read, each
 * setting another value → exactly one 200 (with the next ETag), N-1 × 412
 * precondition_failed; the database holds the winner's value and the
 * version moved by exactly one. Users, keys and identities. */
static void race_if_match(int nsrv)
{
    struct env e;
    struct burst b = {0};
    struct reqspec q[RACE_IFM];
    char uid[64], kid[64], idn[64], paths[3][128], bodies[RACE_IFM][96], ifm[64], want_etag[40];
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    EXPECT(create1(&e, "/v1/users", "{\"email\":\"ifm@example.com\"}", "user", "id", uid,
                   sizeof(uid)) == 0,
           "user");
    EXPECT(create1(&e, "/v1/identities", "{\"externalId\":\"ifm\"}", "identity", "id", idn,
                   sizeof(idn)) == 0,
           "identity");
    EXPECT(create1(&e, "/v1/keys", "{\"externalId\":\"ifm\",\"remaining\":1000}", "keyId", NULL,
                   kid, sizeof(kid)) == 0,
           "key");
    snprintf(paths[0], sizeof(paths[0]), "/v1/users/%s", uid);
    snprintf(paths[1], sizeof(paths[1]), "/v1/keys/%s", kid);
    snprintf(paths[2], sizeof(paths[2]), "/v1/identities/ifm");
    static const char *const version_sql[3] = {"SELECT version FROM users WHERE id = ?",
                                               "SELECT version FROM api_keys WHERE id = ?",
                                               "SELECT version FROM identities WHERE id = ?"};
    /* The winner's value, read back: name n<i>, remaining <i>, meta.i = <i>. */
    static const char *const value_sql[3] = {
        "SELECT COUNT(*) FROM users WHERE id = ? AND name = ?",
        "SELECT COUNT(*) FROM api_keys WHERE id = ? AND CAST(remaining AS TEXT) = ?",
        "SELECT COUNT(*) FROM identities WHERE id = ? AND meta = ?"};
    const char *ids[3] = {uid, kid, idn};
    for (int round = 0; round < IFM_ROUNDS; round++) {
        for (int o = 0; o < 3; o++) {
            burst_free(&b);
            long v = db_count(&e, version_sql[o], ids[o], NULL);
            EXPECT(v >= 1, "version of %s", ids[o]);
            snprintf(ifm, sizeof(ifm), "If-Match: \"%ld\"\r\n", v);
            snprintf(want_etag, sizeof(want_etag), "\"%ld\"", v + 1);
            for (int i = 0; i < RACE_IFM; i++) {
                if (o == 0)
                    snprintf(bodies[i], sizeof(bodies[i]), "{\"name\":\"n%d\"}", i);
                else if (o == 1)
                    snprintf(bodies[i], sizeof(bodies[i]), "{\"remaining\":%d}", i);
                else
                    snprintf(bodies[i], sizeof(bodies[i]), "{\"meta\":{\"i\":%d}}", i);
                q[i] = (struct reqspec){"PATCH", paths[o], e.key, bodies[i], ifm, i};
            }
            EXPECT(burst_fire(&e, q, RACE_IFM, &b) == 0, "burst");
            EXPECT_BURST(&b, "no-5xx; status 200=1; status 412=N-1");
            int n412 = count_with(&b, 412, "\"precondition_failed\""), winner = 0;
            EXPECT(n412 == RACE_IFM - 1,
                   "%s If-Match race: want %d x 412 precondition_failed, got %d", paths[o],
                   RACE_IFM - 1, n412);
            while (b.res[winner].http.status != 200)
                winner++;
            const char *et = hdr(&b, (size_t)winner, "ETag");
            EXPECT(et && !strcmp(et, want_etag), "%s: the 200's ETag is %s, want %s", paths[o],
                   et ? et : "none", want_etag);
            EXPECT(db_count(&e, version_sql[o], ids[o], NULL) == v + 1,
                   "%s: the version must move by exactly one", paths[o]);
            char val[32];
            if (o == 0)
                snprintf(val, sizeof(val), "n%d", winner);
            else if (o == 1)
                snprintf(val, sizeof(val), "%d", winner);
            else
                snprintf(val, sizeof(val), "{\"i\":%d}", winner);
            EXPECT(db_count(&e, value_sql[o], ids[o], val) == 1,
                   "%s: the database does not hold the 200's value %s", paths[o], val);
        }
    }
    /* GET shows the stored version as its ETag; the identity's PATCHes
     * changed its key's representation (the embedded meta), so the key's
     * version moved with them. */
    {
        struct reqspec g = {"GET", paths[1], e.key, NULL, NULL, 0};
        burst_free(&b);
        EXPECT(burst_fire(&e, &g, 1, &b) == 0 && b.res[0].http.status == 200, "GET key");
        long v = db_count(&e, version_sql[1], kid, NULL);
        snprintf(want_etag, sizeof(want_etag), "\"%ld\"", v);
        const char *et = hdr(&b, 0, "ETag");
        EXPECT(et && !strcmp(et, want_etag), "GET key: ETag %s, want %s", et ? et : "none",
               want_etag);
        EXPECT(v == 1 + 2 * IFM_ROUNDS,
               "key version %ld: want %d (its own PATCHes and its "
               "identity's)",
               v, 1 + 2 * IFM_ROUNDS);
    }
out:
    burst_free(&b);
    env_down(&e);
}

void t_race_if_match_1srv(void)
{
    race_if_match(1);
}
void t_race_if_match_multi(void)
{
    race_if_match(MULTI);
}

/* The lost update: a client reads `remaining`, then PATCHes it back
 * raised while verifies spend credits. With If-Match nothing is lost: a
 * verify that spent a credit moved the key's version, so the PATCH either
 * came first (200; every VALID verify spent from the new value) or is
 * refused (412): final remaining = (200 ? r + 10 : r) - VALID verifies. */
#define RACE_IFV 16

static void race_if_match_verify(int nsrv)
{
    struct env e;
    struct burst b = {0};
    struct reqspec q[RACE_IFV + 1];
    char kid[64], key[128], kpath[128], vbody[200], pbody[64], ifm[160];
    int patched = 0;
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int round = 0; round < 10; round++) {
        struct reqspec c = {"POST", "/v1/keys", e.key, "{\"remaining\":1000}", NULL, 0};
        json_t *j = NULL;
        EXPECT(http1(&e, &c, &j) == 201 && jstr(j, "keyId", NULL), "key");
        snprintf(kid, sizeof(kid), "%s", jstr(j, "keyId", NULL));
        snprintf(key, sizeof(key), "%s", jstr(j, "key", NULL));
        json_decref(j);
        snprintf(kpath, sizeof(kpath), "/v1/keys/%s", kid);
        snprintf(vbody, sizeof(vbody), "{\"key\":\"%s\"}", key);
        /* A verify or two first, so the ETag read is not simply "1". */
        struct reqspec v = {"POST", "/v1/keys/verify", e.key, vbody, NULL, 0};
        for (int i = 0; i < round % 3; i++)
            EXPECT(http1(&e, &v, NULL) == 200, "verify");
        struct reqspec g = {"GET", kpath, e.key, NULL, NULL, 0};
        burst_free(&b);
        EXPECT(burst_fire(&e, &g, 1, &b) == 0 && b.res[0].http.status == 200 && hdr(&b, 0, "ETag"),
               "GET key");
        snprintf(ifm, sizeof(ifm), "If-Match: %s\r\n", hdr(&b, 0, "ETag"));
        j = res_json(&b, 0);
        long r = (long)json_integer_value(json_object_get(json_object_get(j, "key"), "remaining"));
        json_decref(j);
        snprintf(pbody, sizeof(pbody), "{\"remaining\":%ld}", r + 10);
        int at = round % (RACE_IFV + 1);
        for (int i = 0; i <= RACE_IFV; i++)
            q[i] = i == at ? (struct reqspec){"PATCH", kpath, e.key, pbody, ifm, i}
                           : (struct reqspec){"POST", "/v1/keys/verify", e.key, vbody, NULL, i};
        burst_free(&b);
        EXPECT(burst_fire(&e, q, RACE_IFV + 1, &b) == 0, "burst");
        int n5xx = 0, nvalid = 0, pst = b.res[at].http.status;
        for (int i = 0; i <= RACE_IFV; i++) {
            if (i == at)
                continue;
            json_t *vj = res_json(&b, (size_t)i);
            nvalid += json_is_true(json_object_get(vj, "valid"));
            n5xx += b.res[i].http.status != 200;
            json_decref(vj);
        }
        EXPECT(n5xx == 0 && (pst == 200 || pst == 412), "verifies not 200: %d; PATCH %d", n5xx,
               pst);
        patched += pst == 200;
        char want[32];
        snprintf(want, sizeof(want), "%ld", (pst == 200 ? r + 10 : r) - nvalid);
        EXPECT(db_count(
                   &e, "SELECT COUNT(*) FROM api_keys WHERE id = ? AND CAST(remaining AS TEXT) = ?",
                   kid, want) == 1,
               "remaining is not %s (read %ld, PATCH %d, %d VALID): a credit was lost", want, r,
               pst, nvalid);
    }
    fprintf(stderr, "  PATCH with If-Match racing verifies: %d of 10 applied\n", patched);
out:
    burst_free(&b);
    env_down(&e);
}

void t_race_if_match_verify(void)
{
    race_if_match_verify(MULTI);
}
