/* The integration tests' environment: `racefree serve` processes started
 * on free ports and stopped by PID, a fresh database per test (a SQLite file
 * or a database of its own in a PostgreSQL cluster), workspaces and their
 * root keys made with `racefree workspace create`, requests fired with the
 * probe's burst engine, their invariants checked with the probe's own
 * expectations, and counts read from the database through the project's
 * driver layer. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "db/db.h"
#include "fail.h"
#include "harness.h"
#include "probe/burst.h"
#include "probe/expect.h"

#define MAX_PIDS 64

const char *bin = "build/racefree";
char test_bin[512]; /* bin + "-test": fault-injection hooks live */
/* When set, servers start from test_bin with RACEFREE_FAULTS=faults. */
const char *faults;
/* Extra `serve` flags for the servers a test starts (NULL-terminated). */
const char *serve_args[8];
/* PostgreSQL: the cluster's admin URL (.../postgres) and its directory for
 * scripts/pg.sh; NULL for SQLite. Each test gets a database of its own. */
const char *pg_url;
const char *pg_dir;
static struct rf_db *pg_admin;
static pid_t live_pids[MAX_PIDS];
int test_failed;

/* ---------- failure reporting ---------- */

TEST_FAIL_FN(fail, test_failed)

/* ---------- processes ---------- */

void track(pid_t p)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (!live_pids[i]) {
            live_pids[i] = p;
            return;
        }
}
void untrack(pid_t p)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (live_pids[i] == p)
            live_pids[i] = 0;
}

/* The whole run is bounded: on timeout every server we started is killed. */
static void on_alarm(int sig)
{
    (void)sig;
    for (int i = 0; i < MAX_PIDS; i++)
        if (live_pids[i] > 0)
            kill(live_pids[i], SIGKILL);
    static const char msg[] = "itest: global timeout, servers killed\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    _exit(3);
}

/* Runs argv to completion, capturing stdout into out. Returns exit status. */
int run_capture(char *const argv[], char *out, size_t outlen)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t p = fork();
    if (p < 0)
        return -1;
    if (p == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    track(p);
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, outlen - 1 - n)) > 0 && n + (size_t)r < outlen - 1)
        n += (size_t)r;
    if (r > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int st;
    waitpid(p, &st, 0);
    untrack(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int srv_launch(struct srv *s, const char *dir, int idx, const char *db_url)
{
    static int launches;
    /* A log of its own per launch, created here before the fork, so that
     * srv_wait can never read an earlier server's port. */
    snprintf(s->log, sizeof(s->log), "%s/serve%d-%d.log", dir, idx, ++launches);
    int lfd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (lfd < 0)
        return -1;
    close(lfd);
    s->port = 0;
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        int fd = open(s->log, O_WRONLY | O_APPEND);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        const char *exe = bin;
        if (faults) {
            exe = test_bin;
            setenv("RACEFREE_FAULTS", faults, 1);
        }
        const char *argv[24] = {exe,    "serve", "--listen",  "127.0.0.1:0",
                                "--db", db_url,  "--threads", "8"};
        int n = 8;
        for (int i = 0; serve_args[i] && n < 23; i++)
            argv[n++] = serve_args[i];
        argv[n] = NULL;
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    track(s->pid);
    return 0;
}

/* Waits for "listening on http://127.0.0.1:PORT" in the server's log. */
int srv_wait(struct srv *s)
{
    for (int i = 0; i < 500; i++) {
        char buf[8192];
        FILE *f = fopen(s->log, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof(buf) - 1, f);
            fclose(f);
            buf[n] = '\0';
            const char *p = strstr(buf, "listening on http://127.0.0.1:");
            if (p) {
                s->port = atoi(p + strlen("listening on http://127.0.0.1:"));
                return s->port > 0 ? 0 : -1;
            }
        }
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            untrack(s->pid);
            s->pid = 0;
            fprintf(stderr, "  server exited early; log %s\n", s->log);
            return -1;
        }
        sleep_ms(20);
    }
    return -1;
}

/* SIGTERM, then wait (bounded) for a clean exit. Returns the exit status,
 * or -1 if it had to be killed. */
int srv_stop(struct srv *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int st = 0, rc = -1;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            break;
        }
        sleep_ms(10);
    }
    if (rc == -1 && waitpid(s->pid, &st, WNOHANG) == 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
    }
    untrack(s->pid);
    s->pid = 0;
    return rc;
}

/* ---------- environment: a database, workspaces, servers ---------- */

static int workspace_create(struct env *e, const char *name, char *key, size_t keylen)
{
    char out[1024];
    char *argv[] = {(char *)bin, "workspace", "create", (char *)name, "--db", e->db_url, NULL};
    if (run_capture(argv, out, sizeof(out)) != 0)
        return -1;
    json_t *j = json_loads(out, 0, NULL);
    const char *k = json_string_value(json_object_get(j, "rootKey"));
    int rc = k ? 0 : -1;
    if (k)
        snprintf(key, keylen, "%s", k);
    json_decref(j);
    return rc;
}

/* Stops every server; one that does not exit 0 on SIGTERM fails the test
 * (under ASan/UBSan that is also how a leak or undefined behaviour shows). */
void env_down(struct env *e)
{
    for (int i = 0; i < e->nsrv; i++) {
        int rc = srv_stop(&e->srv[i]);
        if (rc != 0)
            fail(__FILE__, __LINE__, "server %d exited with %d on SIGTERM (log %s)", i, rc,
                 e->srv[i].log);
    }
    rf_db_close(e->db);
    e->db = NULL;
    memset(serve_args, 0, sizeof(serve_args));
    faults = NULL;
    if (!getenv("KEEP") && !test_failed && e->dir[0]) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "  could not remove %s\n", e->dir);
    } else if (e->dir[0]) {
        fprintf(stderr, "  logs kept in %s\n", e->dir);
    }
}

/* A fresh database for one test: a file in the test's directory, or a new
 * database in the PostgreSQL cluster. */
int db_fresh(struct env *e)
{
    if (!pg_url) {
        snprintf(e->db_url, sizeof(e->db_url), "sqlite:%s/racefree.db", e->dir);
        return 0;
    }
    char name[64], sql[128];
    struct rf_db_conn *c;
    struct rf_db_error err;
    snprintf(name, sizeof(name), "rf_t%u", rf_rand_below(1u << 30));
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    if (rf_db_acquire(pg_admin, 0, &c, &err) != RF_DB_OK)
        return -1;
    /* sql is built here, not a literal: the driver caches by text too. */
    int rc = rf_db_exec(c, sql, NULL, 0, NULL, NULL, &err);
    rf_db_release(pg_admin, c);
    if (rc != RF_DB_OK) {
        fprintf(stderr, "  %s: %s\n", sql, err.detail);
        return -1;
    }
    const char *slash = strrchr(pg_url, '/');
    snprintf(e->db_url, sizeof(e->db_url), "%.*s/%s", (int)(slash - pg_url), pg_url, name);
    return 0;
}

int env_up_args(struct env *e, int nsrv, const char *const *args)
{
    size_t n = 0;
    for (; args[n] && n + 1 < sizeof(serve_args) / sizeof(serve_args[0]); n++)
        serve_args[n] = args[n];
    serve_args[n] = NULL;
    return env_up(e, nsrv);
}

/* nsrv servers on one fresh database; workspaces made before they start. */
int env_up(struct env *e, int nsrv)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/rf-itest-XXXXXX");
    if (!mkdtemp(e->dir) || db_fresh(e))
        return -1;
    if (workspace_create(e, "t1", e->key, sizeof(e->key)) ||
        workspace_create(e, "t2", e->key2, sizeof(e->key2))) {
        fprintf(stderr, "  workspace create failed\n");
        return -1;
    }
    for (int i = 0; i < nsrv; i++) {
        if (srv_launch(&e->srv[i], e->dir, i, e->db_url))
            return -1;
        e->nsrv++;
    }
    for (int i = 0; i < nsrv; i++)
        if (srv_wait(&e->srv[i]))
            return -1;
    struct rf_db_error err;
    if (rf_db_open(e->db_url, 1, &e->db, &err) != RF_DB_OK) {
        fprintf(stderr, "  db open: %s\n", err.detail);
        return -1;
    }
    return 0;
}

/* ---------- HTTP ---------- */

static char *build_request(const struct reqspec *q, int port, size_t *len)
{
    char *buf = NULL;
    size_t blen = q->body ? strlen(q->body) : 0;
    char auth[200] = "";
    if (q->key)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", q->key);
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    fprintf(f, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s", q->method, q->path, port, auth);
    if (q->body && !(q->extra_headers && strstr(q->extra_headers, "Content-Type")))
        fprintf(f, "Content-Type: application/json\r\n");
    if (q->body)
        fprintf(f, "Content-Length: %zu\r\n", blen);
    fprintf(f, "%sConnection: close\r\n\r\n", q->extra_headers ? q->extra_headers : "");
    if (q->body)
        fwrite(q->body, 1, blen, f);
    fclose(f);
    return buf;
}

int burst_fire(struct env *e, const struct reqspec *specs, size_t n, struct burst *b)
{
    char err[256];
    b->n = n;
    b->reqs = calloc(n, sizeof(*b->reqs));
    b->res = calloc(n, sizeof(*b->res));
    b->bufs = calloc(n, sizeof(*b->bufs));
    if (!b->reqs || !b->res || !b->bufs)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct srv *s = &e->srv[specs[i].srv % (e->nsrv ? e->nsrv : 1)];
        struct sockaddr_in *sa = (struct sockaddr_in *)&b->reqs[i].addr;
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)s->port);
        inet_pton(AF_INET, "127.0.0.1", &sa->sin_addr);
        b->reqs[i].addrlen = sizeof(*sa);
        b->bufs[i] = build_request(&specs[i], s->port, &b->reqs[i].len);
        if (!b->bufs[i])
            return -1;
        b->reqs[i].data = b->bufs[i];
    }
    struct rf_burst_opts o = {.sync = RF_BURST_LASTBYTE, .timeout_ms = 20000};
    if (rf_burst_run(b->reqs, n, &o, b->res, err, sizeof(err)) != 0) {
        fprintf(stderr, "  burst: %s\n", err);
        return -1;
    }
    return 0;
}

int burst_same(struct env *e, const struct reqspec *q, size_t n, struct burst *b)
{
    burst_free(b);
    struct reqspec *specs = calloc(n ? n : 1, sizeof(*specs));
    if (!specs)
        return -1;
    for (size_t i = 0; i < n; i++) {
        specs[i] = *q;
        specs[i].srv = (int)i;
    }
    int rc = burst_fire(e, specs, n, b);
    free(specs);
    return rc;
}

void burst_free(struct burst *b)
{
    if (b->res)
        rf_burst_res_free(b->res, b->n);
    for (size_t i = 0; b->bufs && i < b->n; i++)
        free(b->bufs[i]);
    free(b->bufs);
    free(b->reqs);
    free(b->res);
    memset(b, 0, sizeof(*b));
}

/* One request; returns status (0 on transport error), *body parsed JSON
 * (caller decrefs) when body is non-NULL. */
int http1(struct env *e, const struct reqspec *q, json_t **body)
{
    struct burst b = {0};
    int status = 0;
    if (body)
        *body = NULL;
    if (burst_fire(e, q, 1, &b) == 0 && b.res[0].err == 0) {
        status = b.res[0].http.status;
        if (body)
            *body = json_loads(b.res[0].http.body ? b.res[0].http.body : "", 0, NULL);
    }
    burst_free(&b);
    return status;
}

int http1_is(struct env *e, const struct reqspec *q, int status, const char *a, const char *b,
             const char *want)
{
    json_t *j = NULL;
    int st = http1(e, q, &j);
    const char *got = a ? jstr(j, a, b) : NULL;
    int ok = st == status && (!a || (got && !strcmp(got, want)));
    if (!ok)
        fprintf(stderr, "  %s %s: want %d%s%s, got %d%s%s\n", q->method, q->path, status,
                a ? " " : "", a ? want : "", st, got ? " " : "", got ? got : "");
    json_decref(j);
    return ok;
}

const char *fresh(char *buf, size_t len, const char *prefix, const char *suffix)
{
    snprintf(buf, len, "%s%u%s", prefix, rf_rand_below(1u << 30), suffix);
    return buf;
}

const char *jstr(json_t *j, const char *a, const char *b)
{
    json_t *v = json_object_get(j, a);
    if (b)
        v = json_object_get(v, b);
    return json_string_value(v);
}

/* ---------- database checks ---------- */

static long db_count_once(struct env *e, const char *sql, const char *p1, const char *p2, int quiet)
{
    struct rf_db_conn *c;
    struct rf_db_error err;
    struct rf_db_rows rows;
    struct rf_arena a;
    long n = -1;
    struct rf_db_param p[] = {RF_TEXT(p1), RF_TEXT(p2)};
    if (rf_db_acquire(e->db, 0, &c, &err) != RF_DB_OK)
        return -1;
    rf_arena_init(&a, 0);
    if (rf_db_exec(c, sql, p, p2 ? 2 : (p1 ? 1 : 0), &a, &rows, &err) == RF_DB_OK &&
        rows.nrows == 1)
        n = atol(rf_db_cell(&rows, 0, 0));
    else if (!quiet)
        fprintf(stderr, "  db_count: %s\n", err.detail);
    rf_arena_free(&a);
    rf_db_release(e->db, c);
    return n;
}

/* One number from the database. A connection that went stale while
 * PostgreSQL restarted fails once and is reconnected: ask again. */
long db_count(struct env *e, const char *sql, const char *p1, const char *p2)
{
    long n = db_count_once(e, sql, p1, p2, 1);
    return n >= 0 ? n : db_count_once(e, sql, p1, p2, 0);
}

json_t *res_json(const struct burst *b, size_t i)
{
    return json_loads(b->res[i].http.body ? b->res[i].http.body : "", 0, NULL);
}

void srv_kill9(struct srv *sv)
{
    if (sv->pid > 0) {
        kill(sv->pid, SIGKILL);
        waitpid(sv->pid, NULL, 0);
        untrack(sv->pid);
        sv->pid = 0;
    }
}

/* Restarts server i (already stopped) with the current serve_args/faults. */
int srv_restart(struct env *e, int i)
{
    return srv_launch(&e->srv[i], e->dir, i, e->db_url) || srv_wait(&e->srv[i]) ? -1 : 0;
}

const char *hdr(const struct burst *b, size_t i, const char *name)
{
    static char v[128];
    size_t len = 0;
    const char *p = rf_httpres_header(&b->res[i].http, name, &len);
    if (!p)
        return NULL;
    snprintf(v, sizeof(v), "%.*s", (int)(len < sizeof(v) ? len : sizeof(v) - 1), p);
    return v;
}

int http1_take(struct env *e, const struct reqspec *q, int status, const char *a, const char *b,
               char *out, size_t outlen)
{
    json_t *j = NULL;
    int st = http1(e, q, &j);
    const char *v = jstr(j, a, b);
    int ok = st == status && v;
    if (ok)
        snprintf(out, outlen, "%s", v);
    else
        fprintf(stderr, "  %s %s %s: status %d\n", q->method, q->path, q->body ? q->body : "", st);
    json_decref(j);
    return ok;
}

int key_take(struct env *e, const struct reqspec *q, char kid[64], char key[128], char idn[64])
{
    json_t *j = NULL;
    int st = http1(e, q, &j);
    const char *k = jstr(j, "keyId", NULL), *p = jstr(j, "key", NULL);
    const char *i = jstr(j, "identityId", NULL);
    int ok = st == 201 && k && p && (!idn || i);
    if (ok) {
        snprintf(kid, 64, "%s", k);
        snprintf(key, 128, "%s", p);
        if (idn)
            snprintf(idn, 64, "%s", i);
    } else {
        fprintf(stderr, "  create key %s: %d\n", q->body ? q->body : "", st);
    }
    json_decref(j);
    return ok ? 0 : -1;
}

struct reqspec keyed_create(struct env *e, const char *type, const char *tag, int i, char hdr[64],
                            char body[96], char name[24])
{
    snprintf(hdr, 64, "Idempotency-Key: %s-%d\r\n", tag, i);
    snprintf(name, 24, "%s%d", tag, i);
    snprintf(body, 96, "{\"type\":\"%s\",\"name\":\"%s\"}", type, name);
    return (struct reqspec){"POST", "/v1/resources", e->key, body, hdr, 0};
}

int create1(struct env *e, const char *path, const char *body, const char *a, const char *b,
            char *out, size_t outlen)
{
    struct reqspec c = {"POST", path, e->key, body, NULL, 0};
    return http1_take(e, &c, 201, a, b, out, outlen) ? 0 : -1;
}

/* One request: status, the parsed body (caller decrefs; NULL when not
 * JSON) and whether it came back as an idempotent replay. */
int http1r(struct env *e, const struct reqspec *q, json_t **body, int *replayed)
{
    struct burst b = {0};
    int status = 0;
    *body = NULL;
    *replayed = 0;
    if (burst_fire(e, q, 1, &b) == 0 && b.res[0].err == 0) {
        status = b.res[0].http.status;
        *body = json_loads(b.res[0].http.body ? b.res[0].http.body : "", 0, NULL);
        *replayed = hdr(&b, 0, "Idempotent-Replayed") != NULL;
    }
    burst_free(&b);
    return status;
}

/* ---------- the run ---------- */

int harness_init(unsigned timeout_s)
{
    snprintf(test_bin, sizeof(test_bin), "%s-test", bin);
    if (rf_util_init() != 0 || access(bin, X_OK) != 0 || access(test_bin, X_OK) != 0) {
        fprintf(stderr, "itest: cannot run %s and %s\n", bin, test_bin);
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (pg_url) {
        struct rf_db_error err;
        if (rf_db_open(pg_url, 2, &pg_admin, &err) != RF_DB_OK) {
            fprintf(stderr, "itest: cannot reach PostgreSQL: %s\n", err.detail);
            return -1;
        }
    }
    signal(SIGALRM, on_alarm);
    alarm(timeout_s);
    return 0;
}

void harness_fini(void)
{
    rf_db_close(pg_admin);
    pg_admin = NULL;
}

/* ---------- invariants as the probe's expectations ---------- */

static int exp_kind(const char *word, size_t len, enum rf_probe_exp_kind *kind)
{
    static const enum rf_probe_exp_kind kinds[] = {RF_PROBE_EXP_STATUS, RF_PROBE_EXP_NO5XX,
                                                   RF_PROBE_EXP_DISTINCT};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        const char *name = rf_probe_exp_kind_name(kinds[i]);
        if (strlen(name) == len && !strncmp(name, word, len)) {
            *kind = kinds[i];
            return 0;
        }
    }
    return -1;
}

/* What a broken expectation is read beside: how many of each status, and
 * every response that failed or was a 5xx. */
static void show_statuses(const struct burst *b)
{
    char line[512] = "";
    size_t used = 0;
    int seen[600] = {0};
    for (size_t i = 0; i < b->n; i++) {
        int st = b->res[i].err ? 0 : b->res[i].http.status;
        seen[st >= 0 && st < 600 ? st : 0]++;
        if (st >= 500 || st == 0)
            fprintf(stderr, "  request %zu: err=%d status=%d body=%.200s\n", i, b->res[i].err,
                    b->res[i].http.status, b->res[i].http.body ? b->res[i].http.body : "");
    }
    for (int st = 0; st < 600 && used + 1 < sizeof(line); st++)
        if (seen[st])
            used += (size_t)snprintf(line + used, sizeof(line) - used, "%s%d x %d",
                                     used ? ", " : "", seen[st], st);
    fprintf(stderr, "  statuses of the %zu responses: %s\n", b->n, line);
}

int burst_expect_at(const char *file, int line, const struct burst *b, const char *fmt, ...)
{
    char list[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(list, sizeof(list), fmt, ap);
    va_end(ap);
    json_t **bodies = calloc(b->n ? b->n : 1, sizeof(*bodies));
    if (!bodies) {
        fail(file, line, "out of memory");
        return 1;
    }
    for (size_t i = 0; i < b->n; i++)
        bodies[i] = rf_probe_body_json(&b->res[i]);
    struct rf_probe_view v = {.res = b->res, .n = b->n, .bodies = bodies};
    int broke = 0;
    char *save = NULL;
    for (char *item = strtok_r(list, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
        item += strspn(item, " ");
        size_t len = strlen(item);
        while (len && item[len - 1] == ' ')
            item[--len] = '\0';
        size_t wl = strcspn(item, " ");
        const char *arg = item + wl + strspn(item + wl, " ");
        enum rf_probe_exp_kind kind;
        struct rf_probe_exp e;
        struct rf_probe_exp_res r;
        char err[256] = "unknown kind";
        memset(&e, 0, sizeof(e));
        if (exp_kind(item, wl, &kind) || rf_probe_exp_parse(&e, kind, arg, err, sizeof(err))) {
            fail(file, line, "expectation \"%s\": %s", item, err);
            broke++;
            continue;
        }
        rf_probe_exp_eval(&e, &v, &r);
        /* The probe counts the distinct values it found; an invariant over a
         * burst also wants one in every response. */
        size_t missing = 0;
        for (size_t i = 0; kind == RF_PROBE_EXP_DISTINCT && i < b->n; i++)
            missing += !bodies[i] || !rf_probe_jpath_get(&e.path, bodies[i]);
        if (r.pass && missing) {
            r.pass = 0;
            snprintf(r.detail, sizeof(r.detail), "%zu of %zu responses without %s", missing, b->n,
                     e.path.text);
        }
        if (!r.pass) {
            fail(file, line, "broken: %s: want %ld, got %ld%s%s", item, r.want, r.got,
                 r.detail[0] ? "; " : "", r.detail);
            broke++;
        }
        rf_probe_exp_free(&e);
    }
    if (broke)
        show_statuses(b);
    for (size_t i = 0; i < b->n; i++)
        json_decref(bodies[i]);
    free(bodies);
    return broke;
}

int count_with(const struct burst *b, int st, const char *needle)
{
    int n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += !b->res[i].err && b->res[i].http.status == st && b->res[i].http.body &&
             strstr(b->res[i].http.body, needle);
    return n;
}
