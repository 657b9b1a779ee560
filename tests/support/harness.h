/* The integration tests' harness (harness.c): servers started and stopped
 * by PID, a fresh database and two workspaces per test, requests fired with
 * the probe's burst engine and their invariants checked with the probe's
 * expectations (probe/expect.h), counts read from the database. Every
 * process it starts is tracked, so that the watchdog can kill them all. */
#ifndef RF_TEST_HARNESS_H
#define RF_TEST_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#include "db/db.h"
#include "probe/burst.h"

#define MAX_SRV 3

extern const char *bin;    /* the racefree binary */
extern char test_bin[512]; /* bin + "-test": fault-injection hooks live */
extern const char *pg_url; /* the cluster's admin URL (.../postgres); NULL: SQLite */
extern const char *pg_dir; /* its directory, for scripts/pg.sh */
/* When set, servers start from test_bin with RACEFREE_FAULTS=faults;
 * cleared by env_down. */
extern const char *faults;
/* Extra `serve` flags for the servers a test starts (NULL-terminated):
 * set by env_up_with, cleared by env_down. */
extern const char *serve_args[8];
extern int test_failed;

void fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define EXPECT(c, ...)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fail(__FILE__, __LINE__, __VA_ARGS__);                                                 \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Once the options are parsed (bin, pg_url, pg_dir): checks that both
 * binaries run, connects to the PostgreSQL cluster, and bounds the whole run
 * by timeout_s, after which every tracked process is killed. Returns 0, or
 * -1 with why printed. */
int harness_init(unsigned timeout_s);
void harness_fini(void);

struct srv {
    pid_t pid;
    int port;
    char log[512];
};

struct env {
    char dir[256];
    char db_url[512];
    char key[128], key2[128]; /* root keys of workspaces "t1" and "t2" */
    struct srv srv[MAX_SRV];
    int nsrv;
    struct rf_db *db; /* for invariant checks */
};

/* nsrv servers on one fresh database; workspaces made before they start. */
int env_up(struct env *e, int nsrv);
/* The same, the servers started with the `serve` flags args (NULL-ended)
 * until env_down. */
int env_up_args(struct env *e, int nsrv, const char *const *args);
#define env_up_with(e, nsrv, ...) env_up_args((e), (nsrv), (const char *const[]){__VA_ARGS__, NULL})
/* Stops every server; one that does not exit 0 on SIGTERM fails the test.
 * The flags of env_up_with and the faults end here. */
void env_down(struct env *e);
/* A fresh database for e->dir: e->db_url is set. */
int db_fresh(struct env *e);

/* Processes the watchdog kills on timeout. */
void track(pid_t p);
void untrack(pid_t p);
int srv_launch(struct srv *s, const char *dir, int idx, const char *db_url);
/* Waits for the server's port in its log; -1 if it exited or never said. */
int srv_wait(struct srv *s);
/* SIGTERM, then wait (bounded): the exit status, or -1 if it was killed. */
int srv_stop(struct srv *s);
void srv_kill9(struct srv *s);
/* Restarts server i (already stopped) with the current serve_args/faults. */
int srv_restart(struct env *e, int i);

struct reqspec {
    const char *method, *path, *key, *body, *extra_headers;
    int srv; /* which server */
};

struct burst {
    size_t n;
    struct rf_burst_req *reqs;
    struct rf_burst_res *res;
    char **bufs;
};

int burst_fire(struct env *e, const struct reqspec *specs, size_t n, struct burst *b);
void burst_free(struct burst *b);
/* n copies of one request, copy i to server i (of however many run); what
 * b held is freed first, so that each round's burst replaces the last. */
int burst_same(struct env *e, const struct reqspec *q, size_t n, struct burst *b);
/* Evaluates expectations written as `racefree probe` takes them, without
 * "--expect-" and separated by ';' ("status 201=1; status 200=N-1; no-5xx;
 * distinct .user.id=1", N being the burst's size), over b's responses;
 * "distinct" here also wants its path in every response. Each one broken is
 * a failure that names it with the count wanted and the count seen, then the
 * burst's statuses are shown; returns how many broke. */
int burst_expect_at(const char *file, int line, const struct burst *b, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define EXPECT_BURST(b, ...)                                                                       \
    do {                                                                                           \
        if (burst_expect_at(__FILE__, __LINE__, (b), __VA_ARGS__))                                 \
            goto out;                                                                              \
    } while (0)
/* Fires n copies of q into b (burst_same), then checks the expectations on
 * them. */
#define EXPECT_SAME(e, q, n, b, ...)                                                               \
    do {                                                                                           \
        EXPECT(burst_same((e), (q), (n), (b)) == 0, "burst");                                      \
        EXPECT_BURST((b), __VA_ARGS__);                                                            \
    } while (0)
/* Responses of b with status st whose body contains needle. */
int count_with(const struct burst *b, int st, const char *needle);

/* One request; returns status (0 on transport error), *body parsed JSON
 * (caller decrefs) when body is non-NULL. */
int http1(struct env *e, const struct reqspec *q, json_t **body);
/* One request: whether it answered status and, when a is set, the string
 * at .a (.a.b when b is set) is want; what it answered instead is shown. */
int http1_is(struct env *e, const struct reqspec *q, int status, const char *a, const char *b,
             const char *want);
/* The same, *body always set (NULL when not JSON) and whether it came back
 * as an idempotent replay. */
int http1r(struct env *e, const struct reqspec *q, json_t **body, int *replayed);
/* One request: whether it answered status with a string at .a (.a.b when b
 * is set), which is copied to out. */
int http1_take(struct env *e, const struct reqspec *q, int status, const char *a, const char *b,
               char *out, size_t outlen);
/* A request that makes a key (create, reroll): it must answer 201 with the
 * key's id and plaintext, filled in kid and key, and its identity's id in
 * idn unless idn is NULL. */
int key_take(struct env *e, const struct reqspec *q, char kid[64], char key[128], char idn[64]);
/* Resource create i of a series tag, for server 0: Idempotency-Key "tag-i",
 * name "tagi", built in hdr, body and name. */
struct reqspec keyed_create(struct env *e, const char *type, const char *tag, int i, char hdr[64],
                            char body[96], char name[24]);
/* A POST that must answer 201; copies one string field of the answer. */
int create1(struct env *e, const char *path, const char *body, const char *a, const char *b,
            char *out, size_t outlen);
json_t *res_json(const struct burst *b, size_t i);
/* Response i's header name, NUL-terminated in a static buffer, or NULL. */
const char *hdr(const struct burst *b, size_t i, const char *name);
const char *jstr(json_t *j, const char *a, const char *b);
/* prefix, a random number, suffix: a name no earlier round of a race used
 * (the database outlives the rounds). Returns buf. */
const char *fresh(char *buf, size_t len, const char *prefix, const char *suffix);
/* One number from the database (-1 on error). */
long db_count(struct env *e, const char *sql, const char *p1, const char *p2);
/* Runs argv to completion, capturing stdout into out. Returns exit status. */
int run_capture(char *const argv[], char *out, size_t outlen);
void sleep_ms(int ms);

#endif
