/* Users: create-if-missing and username claims raced (seeds 001, 002),
 * lookups, and deletes that free an email and a username at once. */
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

#define RACE_USERS 64
#define RACE_CLAIMS 48
/* Seed 002: N simultaneous create-if-missing with one new email. */
void race_user_create(int nsrv, int rounds)
{
    struct env e;
    struct burst b = {0};
    char email[64];
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int round = 0; round < rounds; round++) {
        fresh(email, sizeof(email), "race-", "@example.com");
        char body[128];
        snprintf(body, sizeof(body), "{\"email\":\"%s\",\"name\":\"Racer\"}", email);
        struct reqspec one = {"POST", "/v1/users", e.key, body, NULL, 0};
        EXPECT(burst_same(&e, &one, RACE_USERS, &b) == 0, "burst");

        EXPECT_BURST(&b, "no-5xx; status 201=1; status 200=N-1; distinct .user.id=1");
        int liars = 0; /* "created" must say which one answered 201 */
        for (int i = 0; i < RACE_USERS; i++) {
            json_t *j = res_json(&b, (size_t)i), *created = json_object_get(j, "created");
            liars += b.res[i].http.status == 201 ? !json_is_true(created) : !json_is_false(created);
            json_decref(j);
        }
        EXPECT(liars == 0, "%d responses were neither 201+created nor 200+!created", liars);
        long rows = db_count(&e, "SELECT COUNT(*) FROM users WHERE email = ?", email, NULL);
        EXPECT(rows == 1, "want one row for %s, found %ld", email, rows);
    }
out:
    burst_free(&b);
    env_down(&e);
}

void t_race_user_create_1srv(void)
{
    race_user_create(1, RACE_ROUNDS);
}
/* Several processes on one database: two on one SQLite file, three on
 * one PostgreSQL. */

void t_race_user_create_2srv(void)
{
    race_user_create(MULTI, RACE_ROUNDS);
}

/* Seed 001: N different users claim one free username at once. */
static void race_username_claim(int nsrv)
{
    struct env e;
    struct burst b = {0};
    struct reqspec q[RACE_CLAIMS];
    char *ids[RACE_CLAIMS] = {0};
    char paths[RACE_CLAIMS][96], bodies[RACE_CLAIMS][96];
    char uname[40];
    int winner = -1;
    char key[40];
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int i = 0; i < RACE_CLAIMS; i++) {
        json_t *j;
        snprintf(bodies[i], sizeof(bodies[i]), "{\"email\":\"claimer%d@example.com\"}", i);
        struct reqspec c = {"POST", "/v1/users", e.key, bodies[i], NULL, i};
        int st = http1(&e, &c, &j);
        const char *id = jstr(j, "user", "id");
        if (id)
            ids[i] = strdup(id);
        json_decref(j);
        EXPECT(st == 201 && ids[i], "creating claimer %d: status %d", i, st);
    }
    for (int round = 0; round < RACE_ROUNDS; round++) {
        burst_free(&b);
        fresh(uname, sizeof(uname), "Race-", "");
        for (int i = 0; i < RACE_CLAIMS; i++) {
            /* Every claimer spells it differently: uniqueness is case-insensitive. */
            char spelled[40];
            snprintf(spelled, sizeof(spelled), "%s", uname);
            for (size_t k = 0; spelled[k]; k++)
                if ((i >> (k % 5)) & 1 && spelled[k] >= 'a' && spelled[k] <= 'z')
                    spelled[k] = (char)(spelled[k] - 32);
            snprintf(paths[i], sizeof(paths[i]), "/v1/users/%s", ids[i]);
            snprintf(bodies[i], sizeof(bodies[i]), "{\"username\":\"%s\"}", spelled);
            q[i] = (struct reqspec){"PATCH", paths[i], e.key, bodies[i], NULL, i};
        }
        EXPECT(burst_fire(&e, q, RACE_CLAIMS, &b) == 0, "burst");
        EXPECT_BURST(&b, "no-5xx; status 200=1; status 409=N-1");
        int n409 = count_with(&b, 409, "\"code\":\"username_taken\"");
        EXPECT(n409 == RACE_CLAIMS - 1, "want %d x 409 username_taken, got %d", RACE_CLAIMS - 1,
               n409);
        for (winner = 0; b.res[winner].http.status != 200; winner++)
            ;
        rf_username_key(uname, strlen(uname), key);
        long owners = db_count(&e, "SELECT COUNT(*) FROM users WHERE username_key = ?", key, NULL);
        EXPECT(owners == 1, "want one owner in the database, found %ld", owners);
        long is_winner = db_count(
            &e, "SELECT COUNT(*) FROM users WHERE username_key = ? AND id = ?", key, ids[winner]);
        EXPECT(is_winner == 1, "the database owner is not the request that got 200");
    }

    /* Afterwards, another spelling by a loser is still taken. */
    {
        int loser = (winner + 1) % RACE_CLAIMS;
        char lower_body[96];
        snprintf(lower_body, sizeof(lower_body), "{\"username\":\"%s\"}", key);
        struct reqspec c = {"PATCH", paths[loser], e.key, lower_body, NULL, loser};
        int st = http1(&e, &c, NULL);
        EXPECT(st == 409, "other case by a loser: want 409, got %d", st);
        /* The owner re-claiming, in another case, is fine. */
        struct reqspec w = {"PATCH", paths[winner], e.key, lower_body, NULL, 0};
        json_t *j;
        st = http1(&e, &w, &j);
        const char *got = jstr(j, "user", "username");
        int same = got && strcmp(got, key) == 0;
        json_decref(j);
        EXPECT(st == 200 && same, "owner re-claim in lower case: status %d", st);
    }
out:
    for (int i = 0; i < RACE_CLAIMS; i++)
        free(ids[i]);
    burst_free(&b);
    env_down(&e);
}

void t_race_username_claim_1srv(void)
{
    race_username_claim(1);
}
void t_race_username_claim_2srv(void)
{
    race_username_claim(MULTI);
}

/* Create-if-missing and lookups, one request at a time. */
void t_users_basics(void)
{
    struct env e;
    json_t *j = NULL;
    char id[64] = "", path[128];
    EXPECT(env_up(&e, 1) == 0, "env_up");
    struct reqspec c1 = {"POST", "/v1/users", e.key, "{\"email\":\"  Ann@Example.COM \"}", NULL, 0};
    int st = http1(&e, &c1, &j);
    EXPECT(st == 201, "first create: %d", st);
    EXPECT(json_is_true(json_object_get(j, "created")), "created:true");
    EXPECT(jstr(j, "user", "email") && !strcmp(jstr(j, "user", "email"), "ann@example.com"),
           "email normalised");
    EXPECT(jstr(j, "user", "createdAt") && strlen(jstr(j, "user", "createdAt")) == 24,
           "createdAt RFC 3339");
    snprintf(id, sizeof(id), "%s", jstr(j, "user", "id"));
    EXPECT(!strncmp(id, "usr_", 4), "id prefix");
    json_decref(j);
    j = NULL;
    struct reqspec c2 = {
        "POST", "/v1/users", e.key, "{\"email\":\"ann@example.com\",\"name\":\"Other\"}", NULL, 0};
    st = http1(&e, &c2, &j);
    EXPECT(st == 200 && json_is_false(json_object_get(j, "created")), "second create: %d", st);
    EXPECT(!strcmp(jstr(j, "user", "id"), id), "same id");
    json_decref(j);
    j = NULL;
    snprintf(path, sizeof(path), "/v1/users/%s", id);
    struct reqspec g = {"GET", path, e.key, NULL, NULL, 0};
    st = http1(&e, &g, &j);
    EXPECT(st == 200 && !strcmp(jstr(j, "user", "id"), id), "get by id: %d", st);
    json_decref(j);
    j = NULL;
    struct reqspec ge = {"GET", "/v1/users?email=ANN%40example.com", e.key, NULL, NULL, 0};
    st = http1(&e, &ge, &j);
    EXPECT(st == 200 && json_array_size(json_object_get(j, "data")) == 1, "by email: %d", st);
    json_decref(j);
    j = NULL;
    struct reqspec gn = {"GET", "/v1/users?email=nobody%40example.com", e.key, NULL, NULL, 0};
    st = http1(&e, &gn, &j);
    EXPECT(st == 200 && json_array_size(json_object_get(j, "data")) == 0, "by email none");
    json_decref(j);
    j = NULL;
    struct reqspec g404 = {"GET", "/v1/users/usr_nope", e.key, NULL, NULL, 0};
    EXPECT(http1(&e, &g404, NULL) == 404, "unknown id 404");
    /* Release and re-take a username. */
    struct reqspec p1 = {"PATCH", path, e.key, "{\"username\":\"ann\",\"name\":\"Ann\"}", NULL, 0};
    st = http1(&e, &p1, &j);
    EXPECT(st == 200 && !strcmp(jstr(j, "user", "username"), "ann"), "claim: %d", st);
    json_decref(j);
    j = NULL;
    struct reqspec p2 = {"PATCH", path, e.key, "{\"username\":null}", NULL, 0};
    st = http1(&e, &p2, &j);
    EXPECT(st == 200 && json_is_null(json_object_get(json_object_get(j, "user"), "username")),
           "release: %d", st);
    EXPECT(!strcmp(jstr(j, "user", "name"), "Ann"), "name kept on release");
    json_decref(j);
    j = NULL;
    long n =
        db_count(&e, "SELECT COUNT(*) FROM users WHERE username_key IS NULL AND id = ?", id, NULL);
    EXPECT(n == 1, "released in the database");
out:
    json_decref(j);
    env_down(&e);
}

/* Every request its own Idempotency-Key, all for one new email: the
 * handler's transaction may meet a serialization failure at the commit
 * that also stores the response; it must run again, not answer 503. */
void t_race_user_create_keyed(void)
{
    struct env e;
    struct burst b = {0};
    struct reqspec q[RACE_IDEM];
    char keys[RACE_IDEM][64], body[96];
    EXPECT(env_up(&e, MULTI) == 0, "env_up");
    for (int round = 0; round < 5; round++) {
        burst_free(&b);
        snprintf(body, sizeof(body), "{\"email\":\"keyed%d-%u@example.com\"}", round,
                 rf_rand_below(1u << 30));
        for (int i = 0; i < RACE_IDEM; i++) {
            snprintf(keys[i], sizeof(keys[i]), "Idempotency-Key: k%d-%d-%u\r\n", round, i,
                     rf_rand_below(1u << 30));
            q[i] = (struct reqspec){"POST", "/v1/users", e.key, body, keys[i], i};
        }
        EXPECT(burst_fire(&e, q, RACE_IDEM, &b) == 0, "burst");
        EXPECT_BURST(&b, "no-5xx; status 201=1; status 200=N-1");
    }
out:
    burst_free(&b);
    env_down(&e);
}

/* Deleting a user frees its email and username at once: a DELETE fired
 * with M creates of its email and M claims of its username by others.
 * Claimants that ran before the delete see the old holder (200 with its
 * id, 409); of the rest exactly one wins each (201, 200) and the others see
 * the winner. If none ran after the delete, a second burst (after it) must
 * give one winner. Then N simultaneous deletes of a user: one 204. */
#define RACE_UDEL 16

static void race_user_delete(int nsrv)
{
    struct env e;
    struct burst b = {0};
    struct reqspec q[2 * RACE_UDEL + 1];
    char claimer[RACE_UDEL][64], cpath[RACE_UDEL][128], uid[64], upath[128], email[96], ebody[160],
        uname[40], ubody[96], key[40];
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int i = 0; i < RACE_UDEL; i++) {
        char body[96];
        snprintf(body, sizeof(body), "{\"email\":\"claimer%d@example.com\"}", i);
        EXPECT(create1(&e, "/v1/users", body, "user", "id", claimer[i], sizeof(claimer[i])) == 0,
               "claimer");
        snprintf(cpath[i], sizeof(cpath[i]), "/v1/users/%.63s", claimer[i]);
    }
    for (int round = 0; round < 6; round++) {
        fresh(email, sizeof(email), "held-", "@example.com");
        snprintf(ebody, sizeof(ebody), "{\"email\":\"%s\"}", email);
        fresh(uname, sizeof(uname), "held-", "");
        snprintf(ubody, sizeof(ubody), "{\"username\":\"%s\"}", uname);
        rf_username_key(uname, strlen(uname), key);
        EXPECT(create1(&e, "/v1/users", ebody, "user", "id", uid, sizeof(uid)) == 0, "holder");
        snprintf(upath, sizeof(upath), "/v1/users/%s", uid);
        struct reqspec claim = {"PATCH", upath, e.key, ubody, NULL, 0};
        EXPECT(http1(&e, &claim, NULL) == 200, "holder claims %s", uname);
        char winner_user[64] = "", winner_claim[64] = "";
        int created = 0, claimed = 0;
        for (int pass = 0; pass < 2; pass++) {
            int nq = 0, del = -1;
            for (int i = 0; i < RACE_UDEL; i++) {
                if (!created)
                    q[nq++] = (struct reqspec){"POST", "/v1/users", e.key, ebody, NULL, i};
                if (!claimed)
                    q[nq++] = (struct reqspec){"PATCH", cpath[i], e.key, ubody, NULL, i + 1};
                if (pass == 0 && i == RACE_UDEL / 2) {
                    del = nq;
                    q[nq++] = (struct reqspec){"DELETE", upath, e.key, NULL, NULL, i};
                }
            }
            if (nq == 0)
                break;
            burst_free(&b);
            EXPECT(burst_fire(&e, q, (size_t)nq, &b) == 0, "burst");
            if (del >= 0)
                EXPECT(b.res[del].http.status == 204, "delete: %d", b.res[del].http.status);
            for (int i = 0; i < nq; i++) {
                if (i == del)
                    continue;
                int st = b.res[i].http.status;
                const char *rb = b.res[i].http.body ? b.res[i].http.body : "";
                json_t *j = res_json(&b, (size_t)i);
                const char *id = jstr(j, "user", "id");
                if (!strcmp(q[i].method, "POST")) {
                    EXPECT((st == 201 || st == 200) && id, "create: %d %s", st, rb);
                    if (st == 201) {
                        created++;
                        snprintf(winner_user, sizeof(winner_user), "%s", id);
                    }
                } else {
                    EXPECT(st == 200 || (st == 409 && strstr(rb, "username_taken")), "claim: %d %s",
                           st, rb);
                    if (st == 200) {
                        claimed++;
                        snprintf(winner_claim, sizeof(winner_claim), "%s", id);
                    }
                }
                json_decref(j);
            }
            /* Every create that did not win saw the old holder or the winner. */
            for (int i = 0; i < nq; i++) {
                if (i == del || strcmp(q[i].method, "POST") || b.res[i].http.status != 200)
                    continue;
                json_t *j = res_json(&b, (size_t)i);
                const char *id = jstr(j, "user", "id");
                int ok = id && (!strcmp(id, uid) || (winner_user[0] && !strcmp(id, winner_user)));
                if (pass == 1)
                    ok = id && winner_user[0] && !strcmp(id, winner_user);
                json_decref(j);
                EXPECT(ok, "a create saw a user that is neither the holder nor the winner");
            }
        }
        EXPECT(created == 1, "want one 201 for the freed email, got %d", created);
        EXPECT(claimed == 1, "want one 200 for the freed username, got %d", claimed);
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM users WHERE email = ? AND id = ?", email,
                        winner_user) == 1 &&
                   db_count(&e, "SELECT COUNT(*) FROM users WHERE email = ?", email, NULL) == 1,
               "the database's owner of %s is not the 201's user", email);
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM users WHERE username_key = ? AND id = ?", key,
                        winner_claim) == 1,
               "the database's owner of %s is not the claim's winner", uname);
        /* Free the username again for the next round. */
        char wpath[128];
        snprintf(wpath, sizeof(wpath), "/v1/users/%s", winner_claim);
        struct reqspec rel = {"PATCH", wpath, e.key, "{\"username\":null}", NULL, 0};
        EXPECT(http1(&e, &rel, NULL) == 200, "release");
    }
    /* N simultaneous deletes of one user: one 204, N-1 x 404. */
    {
        snprintf(upath, sizeof(upath), "/v1/users/%s", claimer[0]);
        burst_free(&b);
        struct reqspec one = {"DELETE", upath, e.key, NULL, NULL, 0};
        EXPECT_SAME(&e, &one, RACE_UDEL, &b, "no-5xx; status 204=1; status 404=N-1");
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM users WHERE id = ?", claimer[0], NULL) == 0,
               "deleted user still there");
    }
out:
    burst_free(&b);
    env_down(&e);
}

void t_race_user_delete_1srv(void)
{
    race_user_delete(1);
}
void t_race_user_delete_multi(void)
{
    race_user_delete(MULTI);
}
