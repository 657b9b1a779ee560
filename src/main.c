/* racefree: one binary, several subcommands. */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "core/util.h"
#include "http/server.h"
#include "probe/probe.h"
#include "store/store.h"

#define RF_VERSION "0.1.0"
#define DB_WAIT_S 30

struct config {
    const char *db_url;
    const char *listen;
    int threads;
    int provision_delay_ms, fingerprint_window_s, idempotency_lease_s, idempotency_ttl_s;
    long long resource_quota;
};

static void usage(FILE *f)
{
    fputs("usage:\n"
          "  racefree serve [--listen HOST:PORT] [--db URL] [--threads N] [--log-level LEVEL]\n"
          "                 [--provision-delay-ms 200] [--fingerprint-window 10]\n"
          "                 [--idempotency-lease 60] [--idempotency-ttl 86400] [--resource-quota 0]\n"
          "  racefree migrate [--db URL]\n"
          "  racefree workspace create NAME [--db URL]\n"
          "  racefree probe [options] URL      (racefree probe --help)\n"
          "  racefree version\n"
          "\n"
          "  --db URL      sqlite:PATH (default sqlite:./racefree.db); env RACEFREE_DB\n"
          "  --listen      default 127.0.0.1:8080; env RACEFREE_LISTEN; port 0 picks one\n"
          "  --threads N   database connections per process (default 8); each HTTP\n"
          "                connection has a thread of its own\n"
          "  --log-level   debug|info|warn|error (default info)\n"
          "  --provision-delay-ms N   simulated provisioning call before a resource commits\n"
          "  --fingerprint-window S   dedup unkeyed POST /v1/resources by body for S s (0: off)\n"
          "  --idempotency-lease S    in-flight Idempotency-Key lease; must exceed the slowest\n"
          "                           handler (default 60)\n"
          "  --idempotency-ttl S      finished keys are replayed for S s (default 86400)\n"
          "  --resource-quota N       resources per workspace (default 0: unlimited)\n",
          f);
}

static int int_arg(const char *flag, const char *arg, long long lo, long long hi, long long *out)
{
    char *end;
    long long n = strtoll(arg, &end, 10);
    if (!*arg || *end || n < lo || n > hi) {
        fprintf(stderr, "racefree: %s wants an integer from %lld to %lld\n", flag, lo, hi);
        return -1;
    }
    *out = n;
    return 0;
}

/* Flags win over the environment, the environment over defaults. */
static int parse_opts(int argc, char **argv, struct config *c)
{
    static const struct option longopts[] = {
        {"db", required_argument, NULL, 'd'},       {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},  {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {"provision-delay-ms", required_argument, NULL, 'P'},
        {"fingerprint-window", required_argument, NULL, 'F'},
        {"idempotency-lease", required_argument, NULL, 'E'},
        {"idempotency-ttl", required_argument, NULL, 'T'},
        {"resource-quota", required_argument, NULL, 'Q'},
        {NULL, 0, NULL, 0},
    };
    const char *env;
    c->db_url = (env = getenv("RACEFREE_DB")) && *env ? env : "sqlite:./racefree.db";
    c->listen = (env = getenv("RACEFREE_LISTEN")) && *env ? env : "127.0.0.1:8080";
    c->threads = 8;
    c->provision_delay_ms = 200;
    c->fingerprint_window_s = 10;
    c->idempotency_lease_s = 60;
    c->idempotency_ttl_s = 86400;
    c->resource_quota = 0;
    long long v;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            c->db_url = optarg;
            break;
        case 'l':
            c->listen = optarg;
            break;
        case 't':
            if (int_arg("--threads", optarg, 1, 256, &v))
                return -1;
            c->threads = (int)v;
            break;
        case 'P':
            if (int_arg("--provision-delay-ms", optarg, 0, 600000, &v))
                return -1;
            c->provision_delay_ms = (int)v;
            break;
        case 'F':
            if (int_arg("--fingerprint-window", optarg, 0, 86400, &v))
                return -1;
            c->fingerprint_window_s = (int)v;
            break;
        case 'E':
            if (int_arg("--idempotency-lease", optarg, 1, 86400, &v))
                return -1;
            c->idempotency_lease_s = (int)v;
            break;
        case 'T':
            if (int_arg("--idempotency-ttl", optarg, 1, 30 * 86400, &v))
                return -1;
            c->idempotency_ttl_s = (int)v;
            break;
        case 'Q':
            if (int_arg("--resource-quota", optarg, 0, 1000000000, &v))
                return -1;
            c->resource_quota = v;
            break;
        case 'L':
            if (!strcmp(optarg, "debug"))
                rf_log_min = RF_LOG_DEBUG;
            else if (!strcmp(optarg, "info"))
                rf_log_min = RF_LOG_INFO;
            else if (!strcmp(optarg, "warn"))
                rf_log_min = RF_LOG_WARN;
            else if (!strcmp(optarg, "error"))
                rf_log_min = RF_LOG_ERROR;
            else {
                fprintf(stderr, "racefree: --log-level wants debug|info|warn|error\n");
                return -1;
            }
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

static struct rf_db *open_and_migrate(const struct config *c, int nreaders)
{
    struct rf_db *db;
    struct rf_db_error e;
    int applied;
    /* A database that is still starting (or briefly unreachable) is waited
     * for, up to DB_WAIT_S, so that racefree and its database can be
     * started together; a configuration error fails at once. */
    int rc;
    for (int waited = 0;; waited++) {
        rc = rf_db_open(c->db_url, nreaders, &db, &e);
        if (rc != RF_DB_UNAVAILABLE || waited >= DB_WAIT_S)
            break;
        if (waited == 0)
            rf_log(RF_LOG_WARN, "database unavailable, waiting up to %d s: %s", DB_WAIT_S,
                   e.detail);
        sleep(1);
    }
    if (rc != RF_DB_OK) {
        /* The URL may hold a password: log only the driver's (redacted) text. */
        rf_log(RF_LOG_ERROR, "cannot open the database: %s", e.detail);
        return NULL;
    }
    if (rf_store_migrate(db, &applied, &e) != RF_DB_OK) {
        rf_log(RF_LOG_ERROR, "migration failed: %s", e.detail);
        rf_db_close(db);
        return NULL;
    }
    if (applied)
        rf_log(RF_LOG_INFO, "applied %d migration(s)", applied);
    return db;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Purges finished idempotency keys whose time is up, a bounded batch per
 * second, so the table stays small without one long delete. */
struct sweeper {
    struct rf_db *db;
    int64_t grace_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

#define SWEEP_BATCH 500

static void *sweep_loop(void *arg)
{
    struct sweeper *sw = arg;
    pthread_mutex_lock(&sw->mu);
    while (!sw->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&sw->cv, &sw->mu, &ts);
        if (sw->stop)
            break;
        pthread_mutex_unlock(&sw->mu);
        int purged;
        struct rf_db_error e;
        if (rf_store_idem_purge(sw->db, rf_now_ms(), sw->grace_ms, SWEEP_BATCH, &purged, &e) !=
            RF_DB_OK)
            rf_log(RF_LOG_WARN, "idempotency sweep: %s", e.detail);
        else if (purged)
            rf_log(RF_LOG_DEBUG, "idempotency sweep: purged %d", purged);
        pthread_mutex_lock(&sw->mu);
    }
    pthread_mutex_unlock(&sw->mu);
    return NULL;
}

static int cmd_serve(int argc, char **argv)
{
    struct config c;
    if (parse_opts(argc, argv, &c))
        return 2;
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    /* A lease shorter than the slowest handler lets a retry take the key over
     * while the first run still provisions: refuse that configuration. */
    if ((long long)c.idempotency_lease_s * 1000 <= c.provision_delay_ms) {
        fprintf(stderr,
                "racefree: --idempotency-lease (%d s) must exceed --provision-delay-ms (%d ms)\n",
                c.idempotency_lease_s, c.provision_delay_ms);
        return 2;
    }
    raise_nofile();
    /* Before any thread exists, so that every thread inherits the mask and
     * only the main thread's sigwait sees SIGTERM/SIGINT. */
    rf_server_block_signals();
    struct rf_db *db = open_and_migrate(&c, c.threads + 1);
    if (!db)
        return 1;
    char ws[64], key[RF_ROOT_KEY_MAX];
    int created;
    struct rf_db_error e;
    if (rf_store_bootstrap(db, ws, key, &created, &e) != RF_DB_OK) {
        rf_log(RF_LOG_ERROR, "bootstrap failed: %s", e.detail);
        rf_db_close(db);
        return 1;
    }
    if (created)
        fprintf(stderr,
                "racefree: created workspace 'default' (%s). Its root key, shown only once:\n"
                "    %s\n",
                ws, key);
    struct rf_app app = {
        .db = db,
        .provision_delay_ms = c.provision_delay_ms,
        .fingerprint_window_s = c.fingerprint_window_s,
        .idempotency_lease_s = c.idempotency_lease_s,
        .idempotency_ttl_s = c.idempotency_ttl_s,
        .resource_quota = c.resource_quota,
    };
    struct rf_server_opts so = {
        .listen = c.listen,
        .threads = c.threads,
        .routes = rf_routes,
        .nroutes = rf_nroutes,
        .app = &app,
        .authenticate = rf_api_authenticate,
        .drain_seconds = 10,
        .idem_begin = rf_api_idem_begin,
        .idem_finish = rf_api_idem_finish,
    };
    struct sweeper sw = {.db = db, .grace_ms = (int64_t)c.idempotency_ttl_s * 1000};
    pthread_mutex_init(&sw.mu, NULL);
    pthread_cond_init(&sw.cv, NULL);
    pthread_t sweeper_thread;
    int sweeping = pthread_create(&sweeper_thread, NULL, sweep_loop, &sw) == 0;
    int rc = rf_server_run(&so);
    if (sweeping) {
        pthread_mutex_lock(&sw.mu);
        sw.stop = 1;
        pthread_cond_signal(&sw.cv);
        pthread_mutex_unlock(&sw.mu);
        pthread_join(sweeper_thread, NULL);
    }
    pthread_mutex_destroy(&sw.mu);
    pthread_cond_destroy(&sw.cv);
    rf_db_close(db);
    return rc == 0 ? 0 : 1;
}

static int cmd_migrate(int argc, char **argv)
{
    struct config c;
    if (parse_opts(argc, argv, &c) || optind < argc)
        return 2;
    struct rf_db *db = open_and_migrate(&c, 1);
    if (!db)
        return 1;
    rf_db_close(db);
    return 0;
}

static int cmd_workspace(int argc, char **argv)
{
    struct config c;
    if (parse_opts(argc, argv, &c))
        return 2;
    if (argc - optind != 2 || strcmp(argv[optind], "create") != 0) {
        fprintf(stderr, "usage: racefree workspace create NAME [--db URL]\n");
        return 2;
    }
    const char *name = argv[optind + 1];
    if (!*name || strlen(name) > 100) {
        fprintf(stderr, "racefree: a workspace name is 1-100 bytes\n");
        return 2;
    }
    struct rf_db *db = open_and_migrate(&c, 1);
    if (!db)
        return 1;
    char ws[64], key[RF_ROOT_KEY_MAX];
    int exists;
    struct rf_db_error e;
    int rc = rf_store_workspace_create(db, name, ws, key, &exists, &e);
    rf_db_close(db);
    if (rc != RF_DB_OK) {
        fprintf(stderr, "racefree: %s\n", e.detail);
        return 1;
    }
    if (exists) {
        fprintf(stderr, "racefree: workspace '%s' already exists\n", name);
        return 1;
    }
    json_t *j = json_pack("{s:s, s:s, s:s}", "workspaceId", ws, "name", name, "rootKey", key);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(j);
    return s ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (rf_util_init() != 0) {
        fprintf(stderr, "racefree: libsodium failed to initialise\n");
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "migrate"))
        return cmd_migrate(argc - 1, argv + 1);
    if (!strcmp(cmd, "workspace"))
        return cmd_workspace(argc - 1, argv + 1);
    if (!strcmp(cmd, "probe"))
        return rf_probe_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("racefree %s\n", RF_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "racefree: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
