/* Idempotency-Key and the unkeyed fingerprint: concurrent duplicates,
 * replays, crashes during and after the handler, expiry. */
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

#define CRASH_RUNS 10

/* Sorts a burst of one idempotent request: fresh 201s (the handler ran),
 * replays (201 with Idempotent-Replayed and the fresh body, byte for byte:
 * a duplicate the server reached only after the original finished, which
 * happens when the machine is loaded) and 409 in progress. Returns how
 * many responses were none of these. */
static int idem_outcomes(const struct burst *b, int *fresh, int *replayed, int *in_progress)
{
    const char *first = NULL;
    int other = 0;
    *fresh = *replayed = *in_progress = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->res[i].http.status == 201 && !hdr(b, i, "Idempotent-Replayed")) {
            (*fresh)++;
            first = b->res[i].http.body;
        }
    for (size_t i = 0; i < b->n; i++) {
        int st = b->res[i].http.status;
        const char *body = b->res[i].http.body ? b->res[i].http.body : "";
        if (st == 201 && hdr(b, i, "Idempotent-Replayed"))
            (*replayed)++, other += !first || strcmp(first, body) != 0;
        else if (st == 409 && strstr(body, "idempotency_key_in_progress") &&
                 hdr(b, i, "Retry-After"))
            (*in_progress)++;
        else if (st != 201)
            other++;
    }
    return other;
}

/* Seed 004: 32 simultaneous POSTs with one key and a slow handler → the
 * handler runs once: 1 x 201, 31 x 409 in progress; then replays from
 * every process; other body 422; bad keys 400; quoted form of the key. */
void t_idem_concurrent(void)
{
    struct env e;
    struct burst b = {0};
    struct reqspec q[RACE_IDEM];
    char first[1024] = "";
    EXPECT(env_up_with(&e, getenv("ONE") ? 1 : MULTI, "--provision-delay-ms", "300") == 0,
           "env_up");
    const char *body = "{\"type\":\"postgres\",\"name\":\"db1\"}";
    for (int i = 0; i < RACE_IDEM; i++)
        q[i] =
            (struct reqspec){"POST", "/v1/resources", e.key, body, "Idempotency-Key: k-1\r\n", i};
    EXPECT(burst_fire(&e, q, RACE_IDEM, &b) == 0, "burst");
    int fresh, replayed, n409;
    int odd = idem_outcomes(&b, &fresh, &replayed, &n409);
    for (int i = 0; i < RACE_IDEM; i++)
        if (b.res[i].http.status == 201 && !hdr(&b, (size_t)i, "Idempotent-Replayed"))
            snprintf(first, sizeof(first), "%s", b.res[i].http.body);
    fprintf(stderr, "  one key: %d ran, %d x 409 in progress, %d replayed\n", fresh, n409,
            replayed);
    EXPECT(odd == 0 && fresh == 1 && n409 + replayed == RACE_IDEM - 1,
           "want the handler to run once and every duplicate to get 409 or the replay: "
           "%d ran, %d x 409, %d replayed, %d other",
           fresh, n409, replayed, odd);
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM resources", NULL, NULL) == 1, "want one resource");
    /* Replays, from every process, byte for byte. */
    for (int i = 0; i < e.nsrv; i++) {
        struct burst r = {0};
        struct reqspec rq = {"POST",
                             "/v1/resources",
                             e.key,
                             body,
                             i ? "Idempotency-Key: \"k-1\"\r\n" : "Idempotency-Key: k-1\r\n",
                             i};
        int ok = burst_fire(&e, &rq, 1, &r) == 0 && r.res[0].http.status == 201 &&
                 r.res[0].http.body && !strcmp(r.res[0].http.body, first) &&
                 hdr(&r, 0, "Idempotent-Replayed") &&
                 !strcmp(hdr(&r, 0, "Idempotent-Replayed"), "true");
        burst_free(&r);
        EXPECT(ok, "replay from server %d differs", i);
    }
    struct reqspec other = {"POST",
                            "/v1/resources",
                            e.key,
                            "{\"type\":\"redis\",\"name\":\"x\"}",
                            "Idempotency-Key: k-1\r\n",
                            0};
    json_t *j = NULL;
    EXPECT(http1(&e, &other, &j) == 422 && !strcmp(jstr(j, "code", NULL), "idempotency_key_reused"),
           "same key, other body: want 422 idempotency_key_reused");
    json_decref(j);
    char longkey[300];
    snprintf(longkey, sizeof(longkey), "Idempotency-Key: %0256d\r\n", 0);
    struct reqspec lk = {"POST", "/v1/resources", e.key, body, longkey, 0};
    EXPECT(http1(&e, &lk, NULL) == 400, "256-character key: want 400");
    struct reqspec bad = {"POST", "/v1/resources", e.key, body, "Idempotency-Key: \"abc\r\n", 0};
    EXPECT(http1(&e, &bad, NULL) == 400, "unterminated quoted key: want 400");
    struct reqspec qk = {"POST", "/v1/resources", e.key, body, "Idempotency-Key: \"q k\"\r\n", 0};
    EXPECT(http1(&e, &qk, NULL) == 201, "quoted key with a space works");
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM resources", NULL, NULL) == 2, "want two resources");
out:
    burst_free(&b);
    env_down(&e);
}

/* Without a key, identical bodies are one request while in flight and for
 * the fingerprint window; with the window at 0 every request runs. */
static void idem_fingerprint(const char *window, int want_rows)
{
    struct env e;
    struct burst b = {0};
    EXPECT(env_up_with(&e, MULTI, "--provision-delay-ms", "300", "--fingerprint-window", window) ==
               0,
           "env_up");
    const char *body = "{\"type\":\"redis\",\"name\":\"same\"}";
    struct reqspec one = {"POST", "/v1/resources", e.key, body, NULL, 0};
    EXPECT(burst_same(&e, &one, RACE_IDEM, &b) == 0, "burst");
    int fresh, replayed, n409;
    int other = idem_outcomes(&b, &fresh, &replayed, &n409);
    EXPECT(other == 0 && fresh == want_rows && fresh + n409 + replayed == RACE_IDEM,
           "want %d fresh 201, the rest 409 or replays: %d ran, %d x 409, %d replayed, %d other",
           want_rows, fresh, n409, replayed, other);
    long rows = db_count(&e, "SELECT COUNT(*) FROM resources", NULL, NULL);
    EXPECT(rows == want_rows, "want %d resources, found %ld", want_rows, rows);
out:
    burst_free(&b);
    env_down(&e);
}

void t_idem_fingerprint_window(void)
{
    idem_fingerprint("10", 1);
}
void t_idem_fingerprint_off(void)
{
    idem_fingerprint("0", RACE_IDEM);
}

/* A 5xx releases the reservation: the immediate retry runs and succeeds. */
void t_idem_release_on_5xx(void)
{
    struct env e;
    faults = "resources.fail=once";
    EXPECT(env_up(&e, 1) == 0, "env_up");
    struct reqspec q = {"POST",
                        "/v1/resources",
                        e.key,
                        "{\"type\":\"redis\",\"name\":\"r\"}",
                        "Idempotency-Key: retry-me\r\n",
                        0};
    EXPECT(http1(&e, &q, NULL) == 503, "first attempt: the injected failure");
    EXPECT(http1(&e, &q, NULL) == 201, "immediate retry with the same key must run and succeed");
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM resources", NULL, NULL) == 1, "one resource");
out:
    env_down(&e);
}

/* kill -9 while the handler waits in its provisioning delay; restart with
 * a short lease; the retry after the lease takes the key over → exactly
 * one resource, every time. */
void t_idem_crash_during_handler(void)
{
    struct env e;
    EXPECT(env_up_with(&e, 1, "--provision-delay-ms", "800", "--idempotency-lease", "1") == 0,
           "env_up");
    for (int run = 0; run < CRASH_RUNS; run++) {
        char key[64], body[96], name[24];
        struct reqspec q = keyed_create(&e, "mongodb", "c", run, key, body, name);
        /* Fire and kill mid-handler: a child sends, the server dies under it. */
        pid_t child = fork();
        if (child == 0) {
            http1(&e, &q, NULL);
            _exit(0);
        }
        sleep_ms(300);
        srv_kill9(&e.srv[0]);
        waitpid(child, NULL, 0);
        EXPECT(srv_restart(&e, 0) == 0, "restart");
        struct reqspec again = q;
        int st = http1(&e, &again, NULL);
        /* Within the lease the key is still held by the dead request. */
        EXPECT(st == 409 || st == 201, "retry within the lease: %d", st);
        if (st == 409) {
            sleep_ms(1100);
            st = http1(&e, &again, NULL);
        }
        EXPECT(st == 201, "retry after the lease: want 201, got %d", st);
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM resources WHERE name = ?", name, NULL) == 1,
               "run %d: want exactly one resource", run);
    }
out:
    env_down(&e);
}

/* Killed after the commit, before the response left: the retry replays
 * the stored response; still one resource. */
void t_idem_crash_after_commit(void)
{
    struct env e;
    faults = "idem.crash_after_commit=1";
    EXPECT(env_up_with(&e, 1, "--provision-delay-ms", "0") == 0, "env_up");
    for (int run = 0; run < CRASH_RUNS; run++) {
        char key[64], body[96], name[24];
        struct reqspec q = keyed_create(&e, "redis", "a", run, key, body, name);
        int st = http1(&e, &q, NULL);
        EXPECT(st == 0, "the server must die before answering (got %d)", st);
        int wst = 0, gone = 0;
        for (int w = 0; w < 500 && !gone; w++) {
            gone = waitpid(e.srv[0].pid, &wst, WNOHANG) == e.srv[0].pid;
            if (!gone)
                sleep_ms(10);
        }
        if (!gone)
            srv_kill9(&e.srv[0]);
        untrack(e.srv[0].pid);
        e.srv[0].pid = 0;
        EXPECT(gone && WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL,
               "run %d: the server did not die by the crash hook", run);
        const char *saved = faults;
        faults = NULL; /* the restarted server runs clean */
        int rs = srv_restart(&e, 0);
        faults = saved;
        EXPECT(rs == 0, "restart");
        struct burst b = {0};
        int ok = burst_fire(&e, &q, 1, &b) == 0 && b.res[0].http.status == 201 &&
                 hdr(&b, 0, "Idempotent-Replayed");
        burst_free(&b);
        EXPECT(ok, "run %d: the retry must replay the stored 201", run);
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM resources WHERE name = ?", name, NULL) == 1,
               "run %d: want exactly one resource", run);
        /* Back to the crashing build for the next run. */
        srv_stop(&e.srv[0]);
        EXPECT(srv_restart(&e, 0) == 0, "restart with the crash hook");
    }
out:
    env_down(&e);
}

/* With a 1-second TTL a finished key is purged by the sweep and reusable. */
void t_idem_expiry(void)
{
    struct env e;
    EXPECT(env_up_with(&e, 1, "--idempotency-ttl", "1", "--provision-delay-ms", "0") == 0,
           "env_up");
    struct reqspec a = {"POST",
                        "/v1/resources",
                        e.key,
                        "{\"type\":\"redis\",\"name\":\"a\"}",
                        "Idempotency-Key: ttl\r\n",
                        0};
    struct reqspec b = a; /* the same key, another body */
    b.body = "{\"type\":\"redis\",\"name\":\"b\"}";
    EXPECT(http1(&e, &a, NULL) == 201, "first use");
    EXPECT(http1(&e, &b, NULL) == 422, "other body within the TTL: 422");
    long left = 1;
    for (int i = 0; i < 40 && left != 0; i++) {
        sleep_ms(100);
        left =
            db_count(&e, "SELECT COUNT(*) FROM idempotency_keys WHERE idem_key = ?", "ttl", NULL);
    }
    EXPECT(left == 0, "the finished key was not purged");
    EXPECT(http1(&e, &b, NULL) == 201, "after the purge the key is new again");
out:
    env_down(&e);
}

/* Issue 14 item 6 and ETags through the idempotency layer, one request at
 * a time: refused before the handler wrote → not stored, the corrected
 * retry with the same key runs; a 412 decided by the UPDATE is stored and
 * replayed; the ETag survives a replay; If-Match is part of the request;
 * two Idempotency-Key headers → 400; --require-if-match → 428 (not stored
 * either). */
void t_idem_details(void)
{
    struct env e;
    json_t *j = NULL;
    int rp = 0;
    char uid[64], upath[128];
    struct burst b = {0};
    EXPECT(env_up(&e, 1) == 0, "env_up");
    const struct {
        const char *method, *path, *bad, *good;
        int bad_status;
    } fixes[] = {
        {"POST", "/v1/users", "{\"email\":\"no-at\"}", "{\"email\":\"fixed@example.com\"}", 422},
        {"POST", "/v1/users", "{\"email\":", "{\"email\":\"fixed2@example.com\"}", 400},
        {"POST", "/v1/users", "{\"email\":\"f3@example.com\",\"x\":1}",
         "{\"email\":\"f3@example.com\"}", 422},
        {"POST", "/v1/keys", "{\"expires\":1}", "{\"name\":\"fixed\"}", 422},
        {"POST", "/v1/events", "{\"name\":\"\"}", "{\"name\":\"Fixed\"}", 422},
    };
    for (size_t i = 0; i < sizeof(fixes) / sizeof(fixes[0]); i++) {
        char h[64];
        snprintf(h, sizeof(h), "Idempotency-Key: fix-%zu\r\n", i);
        struct reqspec bad = {fixes[i].method, fixes[i].path, e.key, fixes[i].bad, h, 0};
        struct reqspec good = {fixes[i].method, fixes[i].path, e.key, fixes[i].good, h, 0};
        int st = http1r(&e, &bad, &j, &rp);
        json_decref(j);
        j = NULL;
        EXPECT(st == fixes[i].bad_status && !rp, "case %zu bad: %d", i, st);
        st = http1r(&e, &good, &j, &rp);
        json_decref(j);
        j = NULL;
        EXPECT(st == 201 && !rp, "case %zu: the corrected retry with the same key must run: %d%s",
               i, st, rp ? " (replayed)" : "");
        EXPECT(http1r(&e, &good, &j, &rp) == 201 && rp, "case %zu: then it replays", i);
        json_decref(j);
        j = NULL;
    }
    EXPECT(create1(&e, "/v1/users", "{\"email\":\"etag@example.com\"}", "user", "id", uid,
                   sizeof(uid)) == 0,
           "user");
    snprintf(upath, sizeof(upath), "/v1/users/%s", uid);
    /* A stored 200 replays with its ETag. */
    struct reqspec p1 = {
        "PATCH", upath, e.key, "{\"name\":\"A\"}", "Idempotency-Key: et-1\r\nIf-Match: \"1\"\r\n",
        0};
    for (int k = 0; k < 2; k++) {
        burst_free(&b);
        EXPECT(burst_fire(&e, &p1, 1, &b) == 0 && b.res[0].http.status == 200, "PATCH %d", k);
        const char *et = hdr(&b, 0, "ETag");
        EXPECT(et && !strcmp(et, "\"2\""), "PATCH %d: ETag %s, want \"2\"", k, et ? et : "none");
        EXPECT(!hdr(&b, 0, "Idempotent-Replayed") == !k, "PATCH %d: replayed?", k);
    }
    /* The same key and body under another If-Match is another request. */
    struct reqspec p2 = p1;
    p2.extra_headers = "Idempotency-Key: et-1\r\nIf-Match: \"2\"\r\n";
    EXPECT(http1_is(&e, &p2, 422, "code", NULL, "idempotency_key_reused"),
           "another If-Match with the same key: want 422 idempotency_key_reused");
    /* A 412 was decided by the UPDATE (the handler wrote, or tried to): it
     * is stored, and replays. */
    struct reqspec p3 = {
        "PATCH", upath, e.key, "{\"name\":\"B\"}", "Idempotency-Key: et-2\r\nIf-Match: \"1\"\r\n",
        0};
    EXPECT(http1r(&e, &p3, &j, &rp) == 412 && !rp, "stale PATCH: 412");
    json_decref(j);
    j = NULL;
    EXPECT(http1r(&e, &p3, &j, &rp) == 412 && rp, "stale PATCH again: the stored 412");
    json_decref(j);
    j = NULL;
    /* Two keys: 400, and neither is reserved. */
    struct reqspec two = {"POST",
                          "/v1/users",
                          e.key,
                          "{\"email\":\"two@example.com\"}",
                          "Idempotency-Key: k-a\r\nIdempotency-Key: k-b\r\n",
                          0};
    EXPECT(http1(&e, &two, NULL) == 400, "two Idempotency-Key headers");
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM idempotency_keys WHERE idem_key IN (?, ?)", "k-a",
                    "k-b") == 0,
           "a key of a refused request was reserved");
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM users WHERE email = ?", "two@example.com", NULL) == 0,
           "a refused request wrote");
    /* Refused requests left no reservations behind. */
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM idempotency_keys WHERE state <> 'done'", NULL,
                    NULL) == 0,
           "an in-flight reservation was left behind");
    env_down(&e);

    /* --require-if-match: a PATCH without If-Match is 428, and not stored. */
    EXPECT(env_up_with(&e, 1, "--require-if-match") == 0, "env_up");
    EXPECT(create1(&e, "/v1/users", "{\"email\":\"req@example.com\"}", "user", "id", uid,
                   sizeof(uid)) == 0,
           "user");
    snprintf(upath, sizeof(upath), "/v1/users/%s", uid);
    char kid[64], kpath[128];
    EXPECT(create1(&e, "/v1/keys", "{\"externalId\":\"req\"}", "keyId", NULL, kid, sizeof(kid)) ==
               0,
           "key");
    snprintf(kpath, sizeof(kpath), "/v1/keys/%s", kid);
    const char *paths[3] = {upath, kpath, "/v1/identities/req"};
    const char *bodies[3] = {"{\"name\":\"x\"}", "{\"name\":\"x\"}", "{\"meta\":{\"x\":1}}"};
    for (int i = 0; i < 3; i++) {
        char h1[64], h2[80];
        snprintf(h1, sizeof(h1), "Idempotency-Key: rq-%d\r\n", i);
        snprintf(h2, sizeof(h2), "Idempotency-Key: rq-%d\r\nIf-Match: *\r\n", i);
        struct reqspec no = {"PATCH", paths[i], e.key, bodies[i], h1, 0};
        struct reqspec yes = {"PATCH", paths[i], e.key, bodies[i], h2, 0};
        EXPECT(http1_is(&e, &no, 428, "code", NULL, "precondition_required"),
               "%s without If-Match: want 428", paths[i]);
        EXPECT(http1r(&e, &yes, &j, &rp) == 200 && !rp, "%s with If-Match: * must run: 200",
               paths[i]);
        json_decref(j);
        j = NULL;
    }
out:
    json_decref(j);
    burst_free(&b);
    env_down(&e);
}
