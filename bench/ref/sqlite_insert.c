/* Reference for B2 (issue 7): racefree's user create on SQLite without the
 * HTTP server around it. Each of THREADS threads opens its own connection
 * (the natural way to share one SQLite file between writers: busy_timeout
 * turns lock contention into waiting) and runs, for SECONDS, one transaction
 * per row: BEGIN IMMEDIATE; the INSERT of src/store/users.c; COMMIT. The
 * durability is racefree's: WAL, synchronous=NORMAL, foreign_keys=ON.
 *
 *   sqlite_insert DB_PATH WORKSPACE_ID THREADS SECONDS TAG
 *
 * Prints one line: RESULT {"rows":…,"tps":…,"errors":…,"busy":…,"threads":…}
 * Exit 0 when it ran (errors are counted, not fatal), 1 when it could not. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Byte for byte the statement racefree prepares (src/store/users.c). */
static const char *const INSERT_SQL =
    "INSERT INTO users (id, workspace_id, email, name, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (workspace_id, email) DO NOTHING RETURNING id, email, name, username,"
    " created_at, updated_at";

#define BUSY_TIMEOUT_MS 5000

struct worker {
    pthread_t th;
    int tid;
    long rows, errors, busy;
    int failed;
};

static const char *g_path, *g_ws, *g_tag;
static double g_deadline;
/* Twice: every connection is set up, then the clock has started. */
static pthread_barrier_t g_barrier;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* RFC 3339 UTC with milliseconds, as racefree stores it. */
static void now_rfc3339(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* racefree's ids are "usr_" + 16 random bytes in base58 (22 characters);
 * a fast PRNG gives ids of the same shape without libsodium's cost, which
 * only flatters the reference. */
static void make_id(uint64_t *s, char out[32])
{
    static const char alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    memcpy(out, "usr_", 4);
    for (int i = 0; i < 22; i++) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        out[4 + i] = alphabet[*s % 58];
    }
    out[26] = '\0';
}

static int exec_simple(sqlite3 *h, const char *sql, struct worker *w)
{
    int rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
    if (rc == SQLITE_BUSY)
        w->busy++;
    return rc;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    uint64_t seed = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)w->tid << 32) ^ (uint64_t)time(NULL);

    if (sqlite3_open_v2(g_path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "sqlite_insert: open %s: %s\n", g_path, sqlite3_errmsg(h));
        w->failed = 1;
    }
    sqlite3_busy_timeout(h, BUSY_TIMEOUT_MS);
    if (!w->failed &&
        (sqlite3_exec(h, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
         sqlite3_exec(h, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
         sqlite3_exec(h, "PRAGMA foreign_keys=ON", NULL, NULL, NULL) != SQLITE_OK ||
         sqlite3_prepare_v3(h, INSERT_SQL, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
             SQLITE_OK)) {
        fprintf(stderr, "sqlite_insert: setup: %s\n", sqlite3_errmsg(h));
        w->failed = 1;
    }
    pthread_barrier_wait(&g_barrier);
    pthread_barrier_wait(&g_barrier);
    if (w->failed)
        goto out;

    char id[32], email[128], now[32];
    for (long n = 1; now_s() < g_deadline; n++) {
        make_id(&seed, id);
        snprintf(email, sizeof(email), "r%s-%d-%ld@bench.example", g_tag, w->tid, n);
        now_rfc3339(now);
        if (exec_simple(h, "BEGIN IMMEDIATE", w) != SQLITE_OK) {
            w->errors++;
            continue;
        }
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, g_ws, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, email, -1, SQLITE_STATIC);
        sqlite3_bind_null(st, 4);
        sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
        int rc, got = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            /* Read the row as a server must, to answer with it. */
            for (int c = 0; c < 6; c++)
                (void)sqlite3_column_text(st, c);
            got++;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE || got != 1) {
            w->errors++;
            sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
            continue;
        }
        if (exec_simple(h, "COMMIT", w) != SQLITE_OK) {
            w->errors++;
            sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
            continue;
        }
        w->rows++;
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(h);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: sqlite_insert DB_PATH WORKSPACE_ID THREADS SECONDS TAG\n");
        return 1;
    }
    g_path = argv[1];
    g_ws = argv[2];
    int threads = atoi(argv[3]);
    double seconds = atof(argv[4]);
    g_tag = argv[5];
    if (threads < 1 || threads > 1024 || seconds <= 0) {
        fprintf(stderr, "sqlite_insert: THREADS 1-1024, SECONDS > 0\n");
        return 1;
    }
    struct worker *w = calloc((size_t)threads, sizeof(*w));
    if (!w || pthread_barrier_init(&g_barrier, NULL, (unsigned)threads + 1) != 0)
        return 1;
    for (int i = 0; i < threads; i++) {
        w[i].tid = i + 1;
        if (pthread_create(&w[i].th, NULL, run, &w[i]) != 0) {
            fprintf(stderr, "sqlite_insert: pthread_create failed\n");
            return 1;
        }
    }
    pthread_barrier_wait(&g_barrier);
    double t0 = now_s();
    g_deadline = t0 + seconds;
    pthread_barrier_wait(&g_barrier);
    long rows = 0, errors = 0, busy = 0;
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].th, NULL);
        rows += w[i].rows;
        errors += w[i].errors;
        busy += w[i].busy;
        failed |= w[i].failed;
    }
    double elapsed = now_s() - t0;
    free(w);
    if (failed)
        return 1;
    printf("RESULT {\"rows\":%ld,\"tps\":%.1f,\"errors\":%ld,\"busy\":%ld,\"threads\":%d,"
           "\"seconds\":%.3f}\n",
           rows, (double)rows / elapsed, errors, busy, threads, elapsed);
    return 0;
}
