/* What the integration tests share: the environment (a database,
 * workspaces, servers), requests fired with the probe's burst engine, and
 * checks in the database. Defined in itest.c; tests of one resource may
 * live in a file of their own (keys_race.c). */
#ifndef RF_ITEST_H
#define RF_ITEST_H

#include <jansson.h>
#include <sys/types.h>

#include "db/db.h"
#include "probe/burst.h"

#define MAX_SRV 3
/* Servers for the several-process tests: 3 on PostgreSQL, 2 on SQLite. */
#define MULTI (pg_url ? 3 : 2)
/* Each race test fires several independent bursts: a broken build loses
 * some of them by luck of scheduling, never all (measured: see notes). */
#define RACE_ROUNDS 10

extern const char *bin;    /* the racefree binary */
extern const char *pg_url; /* NULL: SQLite */
extern int test_failed;

void fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define EXPECT(c, ...)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fail(__FILE__, __LINE__, __VA_ARGS__);                                                 \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

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

int env_up(struct env *e, int nsrv);
void env_down(struct env *e);
int burst_fire(struct env *e, const struct reqspec *specs, size_t n, struct burst *b);
void burst_free(struct burst *b);
/* One request; returns status (0 on transport error), *body parsed JSON
 * (caller decrefs) when body is non-NULL. */
int http1(struct env *e, const struct reqspec *q, json_t **body);
json_t *res_json(const struct burst *b, size_t i);
/* Responses of b with status want; failed or 5xx ones counted (and shown)
 * in *n5xx. */
int count_status(const struct burst *b, int want, int *n5xx);
const char *jstr(json_t *j, const char *a, const char *b);
/* One number from the database (-1 on error). */
long db_count(struct env *e, const char *sql, const char *p1, const char *p2);
/* Runs argv to completion, capturing stdout into out. Returns exit status. */
int run_capture(char *const argv[], char *out, size_t outlen);
void sleep_ms(int ms);

/* keys_race.c */
void t_race_ratelimit_1srv(void);
void t_race_ratelimit_multi(void);
void t_race_ratelimit_all_or_nothing(void);
void t_race_credits_ops(void);
void t_race_refill_boundary(void);
void t_race_key_delete_vs_verify(void);
void t_race_reroll(void);
void t_race_root_key_rotation(void);
void t_bad_input_keyops(void);
void t_tenancy_keyops(void);
void t_rotation_slow_body(void);
void t_keys_alias_and_refill_patch(void);

#endif
