/* racefree: one binary, several subcommands. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stddef.h>
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
    int require_if_match;
    int max_connections, max_connections_per_ip;
    int header_timeout_s, body_timeout_s, idle_timeout_s;
    int max_header_bytes;
    const char *old_key;     /* workspace rotate-key --key */
    long long expiration_ms; /* workspace rotate-key --expiration */
};

static void usage_main(FILE *f)
{
    fputs("racefree " RF_VERSION
          ": an HTTP/JSON API whose writes are race-free, and a race prober\n"
          "\n"
          "usage: racefree COMMAND [options]\n"
          "\n"
          "commands:\n"
          "  serve                    run the HTTP API server\n"
          "  migrate                  bring the database schema up to date, then exit\n"
          "  workspace create NAME    create a workspace; print its id and root key as JSON\n"
          "  workspace rotate-key NAME  replace a workspace's root key; print the new one\n"
          "  probe URL                fire concurrent identical requests and check the outcome\n"
          "  version                  print the version\n"
          "  help [COMMAND]           this text, or a command's\n"
          "\n"
          "`racefree COMMAND --help` lists a command's options; `man racefree` has them all.\n"
          "Environment: RACEFREE_DB, RACEFREE_LISTEN (a flag wins over its variable).\n",
          f);
}

/* Keep in step with docs/racefree.1: tests/abuse/run.sh checks that every
 * flag here is in the manual. */
static void usage_serve(FILE *f)
{
    fputs("usage: racefree serve [options]\n"
          "\n"
          "Serves the API until SIGTERM or SIGINT, then stops accepting and lets\n"
          "in-flight requests finish (up to 10 s).\n"
          "\n"
          "  --db URL                    sqlite:PATH or postgres://... (default\n"
          "                              sqlite:./racefree.db); env RACEFREE_DB\n"
          "  --listen HOST:PORT          default 127.0.0.1:8080; env RACEFREE_LISTEN;\n"
          "                              port 0 picks a free one\n"
          "  --threads N                 workers and database connections per process\n"
          "                              (default 8); connections are served by one\n"
          "                              event loop per CPU\n"
          "  --log-level LEVEL           debug|info|warn|error (default info)\n"
          "\n"
          "Behaviour:\n"
          "  --provision-delay-ms N      simulated provisioning call before a resource\n"
          "                              commits (default 200)\n"
          "  --fingerprint-window S      dedup unkeyed POST /v1/resources by body for S s\n"
          "                              (default 10; 0: off)\n"
          "  --idempotency-lease S       in-flight Idempotency-Key lease; must exceed the\n"
          "                              slowest handler (default 60)\n"
          "  --idempotency-ttl S         finished keys are replayed for S s (default 86400)\n"
          "  --resource-quota N          resources per workspace (default 0: unlimited)\n"
          "  --require-if-match          a PATCH without If-Match is answered 428\n"
          "\n"
          "Connection limits (README, \"Limits\"):\n"
          "  --max-connections N         open connections (default 1024); one more closes\n"
          "                              the connection that has waited longest for a\n"
          "                              request, or gets 503 if every one is busy\n"
          "  --max-connections-per-ip N  per client address (default 0: no limit). Behind\n"
          "                              a reverse proxy every client has the proxy's\n"
          "                              address: leave it at 0 there\n"
          "  --header-timeout S          a request head must arrive within S s of the\n"
          "                              connection opening, or of its request line on a\n"
          "                              kept-alive connection (default 10)\n"
          "  --body-timeout S            a request body within S s of its head (default 30)\n"
          "  --idle-timeout S            a kept-alive connection waits S s for its next\n"
          "                              request; any connection on which nothing moves for\n"
          "                              S s is closed (default 30)\n"
          "  --max-header-bytes N        buffer per connection for the request head and the\n"
          "                              response headers; a larger head gets 431\n"
          "                              (default 32768)\n"
          "  -h, --help                  show this help\n",
          f);
}

static void usage_migrate(FILE *f)
{
    fputs("usage: racefree migrate [options]\n"
          "\n"
          "Applies pending schema migrations and exits (serve does the same at start).\n"
          "Safe to run from several processes at once.\n"
          "\n"
          "  --db URL            sqlite:PATH or postgres://... (default sqlite:./racefree.db);\n"
          "                      env RACEFREE_DB\n"
          "  --log-level LEVEL   debug|info|warn|error (default info)\n"
          "  -h, --help          show this help\n",
          f);
}

static void usage_workspace(FILE *f)
{
    fputs("usage: racefree workspace create NAME [options]\n"
          "       racefree workspace rotate-key NAME [--key OLD] [--expiration MS] [options]\n"
          "\n"
          "create: creates workspace NAME (1-100 bytes) and prints {\"workspaceId\", \"name\",\n"
          "\"rootKey\"} as one JSON line. The root key is shown only this once.\n"
          "Exits 1 if the workspace exists.\n"
          "\n"
          "rotate-key: makes a new root key for NAME and prints {\"workspaceId\", \"name\",\n"
          "\"rootKey\", \"previousKeyExpires\"}. The old key (OLD, or the workspace's newest\n"
          "live one) keeps working for MS ms (default 0), and at least as long as servers\n"
          "cache root keys (1 s); with a shorter MS this command returns only once the\n"
          "old key is refused everywhere. With --key, one rotation of that key wins and\n"
          "the others exit 1; without it, each run replaces the newest live key.\n"
          "\n"
          "  --key OLD           the root key to replace\n"
          "  --expiration MS     how long the old key keeps working (0-2592000000)\n"
          "  --db URL            sqlite:PATH or postgres://... (default sqlite:./racefree.db);\n"
          "                      env RACEFREE_DB\n"
          "  --log-level LEVEL   debug|info|warn|error (default info)\n"
          "  -h, --help          show this help\n",
          f);
}

static void usage_version(FILE *f)
{
    fputs("usage: racefree version\n"
          "\n"
          "Prints \"racefree VERSION\" (also: racefree --version).\n",
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

/* Flags only serve takes carry these values; the ranges are in the table so
 * that adding a numeric flag is one line. */
enum {
    OPT_DB = 'd',
    OPT_LISTEN = 'l',
    OPT_LOG = 'L',
    OPT_HELP = 'h',
    OPT_THREADS = 256,
    OPT_PROVISION,
    OPT_FINGERPRINT,
    OPT_LEASE,
    OPT_TTL,
    OPT_QUOTA,
    OPT_MAXCONN,
    OPT_MAXCONN_IP,
    OPT_HEADER_TO,
    OPT_BODY_TO,
    OPT_IDLE_TO,
    OPT_HEADER_BYTES,
    OPT_OLD_KEY,
    OPT_EXPIRATION,
    OPT_REQUIRE_IF_MATCH,
};

/* Every subcommand takes these; each table adds its own after them. */
/* clang-format off */
#define COMMON_OPTS                                  \
    {"db", required_argument, NULL, OPT_DB},         \
    {"log-level", required_argument, NULL, OPT_LOG}, \
    {"help", no_argument, NULL, OPT_HELP}
/* clang-format on */

static const struct option common_opts[] = {
    COMMON_OPTS,
    {NULL, 0, NULL, 0},
};

static const struct option workspace_opts[] = {
    COMMON_OPTS,
    {"key", required_argument, NULL, OPT_OLD_KEY},
    {"expiration", required_argument, NULL, OPT_EXPIRATION},
    {NULL, 0, NULL, 0},
};

static const struct option serve_opts[] = {
    COMMON_OPTS,
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"provision-delay-ms", required_argument, NULL, OPT_PROVISION},
    {"fingerprint-window", required_argument, NULL, OPT_FINGERPRINT},
    {"idempotency-lease", required_argument, NULL, OPT_LEASE},
    {"idempotency-ttl", required_argument, NULL, OPT_TTL},
    {"resource-quota", required_argument, NULL, OPT_QUOTA},
    {"require-if-match", no_argument, NULL, OPT_REQUIRE_IF_MATCH},
    {"max-connections", required_argument, NULL, OPT_MAXCONN},
    {"max-connections-per-ip", required_argument, NULL, OPT_MAXCONN_IP},
    {"header-timeout", required_argument, NULL, OPT_HEADER_TO},
    {"body-timeout", required_argument, NULL, OPT_BODY_TO},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TO},
    {"max-header-bytes", required_argument, NULL, OPT_HEADER_BYTES},
    {NULL, 0, NULL, 0},
};

struct int_flag {
    int id;
    long long lo, hi;
    size_t off; /* of an int in struct config, or of resource_quota */
};

#define CFG(field) offsetof(struct config, field)
static const struct int_flag int_flags[] = {
    {OPT_THREADS, 1, 256, CFG(threads)},
    {OPT_PROVISION, 0, 600000, CFG(provision_delay_ms)},
    {OPT_FINGERPRINT, 0, 86400, CFG(fingerprint_window_s)},
    {OPT_LEASE, 1, 86400, CFG(idempotency_lease_s)},
    {OPT_TTL, 1, 30 * 86400, CFG(idempotency_ttl_s)},
    {OPT_QUOTA, 0, 1000000000, CFG(resource_quota)},
    {OPT_MAXCONN, 1, 1000000, CFG(max_connections)},
    {OPT_MAXCONN_IP, 0, 1000000, CFG(max_connections_per_ip)},
    {OPT_HEADER_TO, 1, 3600, CFG(header_timeout_s)},
    {OPT_BODY_TO, 1, 3600, CFG(body_timeout_s)},
    {OPT_IDLE_TO, 1, 3600, CFG(idle_timeout_s)},
    /* libmicrohttpd needs room for its response headers too; 4 KiB is
     * already tight, 1 MiB per connection is already a lot. */
    {OPT_HEADER_BYTES, 4096, 1024 * 1024, CFG(max_header_bytes)},
};

/* Flags win over the environment, the environment over defaults. Returns 0,
 * 1 after --help (printed), or -1 after a usage error (reported). */
static int parse_opts(int argc, char **argv, struct config *c, const struct option *longopts,
                      void (*usage)(FILE *))
{
    char flag[64];
    const char *db_env = getenv("RACEFREE_DB"), *listen_env = getenv("RACEFREE_LISTEN");
    *c = (struct config){
        .db_url = db_env && *db_env ? db_env : "sqlite:./racefree.db",
        .listen = listen_env && *listen_env ? listen_env : "127.0.0.1:8080",
        .threads = 8,
        .provision_delay_ms = 200,
        .fingerprint_window_s = 10,
        .idempotency_lease_s = 60,
        .idempotency_ttl_s = 86400,
        .max_connections = 1024,
        .header_timeout_s = 10,
        .body_timeout_s = 30,
        .idle_timeout_s = 30,
        .max_header_bytes = 32 * 1024,
    };
    int ch, idx = 0;
    optind = 1;
    opterr = 0; /* our messages name the command */
    while ((ch = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
        const struct int_flag *nf = NULL;
        for (size_t i = 0; i < sizeof(int_flags) / sizeof(int_flags[0]); i++)
            if (int_flags[i].id == ch)
                nf = &int_flags[i];
        if (nf) {
            long long v;
            snprintf(flag, sizeof(flag), "--%s", longopts[idx].name);
            if (int_arg(flag, optarg, nf->lo, nf->hi, &v))
                return -1;
            if (nf->off == CFG(resource_quota))
                c->resource_quota = v;
            else
                *(int *)((char *)c + nf->off) = (int)v;
            continue;
        }
        switch (ch) {
        case OPT_DB:
            c->db_url = optarg;
            break;
        case OPT_LISTEN:
            c->listen = optarg;
            break;
        case OPT_OLD_KEY:
            c->old_key = optarg;
            break;
        case OPT_EXPIRATION:
            if (int_arg("--expiration", optarg, 0, 2592000000LL, &c->expiration_ms))
                return -1;
            break;
        case OPT_REQUIRE_IF_MATCH:
            c->require_if_match = 1;
            break;
        case OPT_LOG:
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
        case OPT_HELP:
            usage(stdout);
            return 1;
        default:
            /* getopt sets optopt to the option's value when only its
             * argument is missing, to 0 for an unknown long option. */
            if (strncmp(argv[optind - 1], "--", 2) != 0)
                fprintf(stderr, "racefree %s: unknown option -%c\n", argv[0], optopt);
            else if (optopt)
                fprintf(stderr, "racefree %s: %s %s\n", argv[0], argv[optind - 1],
                        strchr(argv[optind - 1], '=') ? "takes no value" : "needs a value");
            else
                fprintf(stderr, "racefree %s: unknown option %s\n", argv[0], argv[optind - 1]);
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
    /* Another process may be migrating or writing the same database: a
     * busy write lock is waited out, within the same DB_WAIT_S. */
    for (int waited = 0;; waited++) {
        rc = rf_store_migrate(db, &applied, &e);
        if (rc != RF_DB_RETRY || waited >= DB_WAIT_S / 5)
            break;
    }
    if (rc != RF_DB_OK) {
        rf_log(RF_LOG_ERROR, "migration failed: %s", e.detail);
        rf_db_close(db);
        return NULL;
    }
    if (applied)
        rf_log(RF_LOG_INFO, "applied %d migration(s)", applied);
    return db;
}

/* Every connection holds a socket (and, a moment longer, the ones being
 * closed): say so at start rather than fail accept() under load. */
static void raise_nofile(const struct config *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t need =
        (rlim_t)c->max_connections + (rlim_t)c->max_connections / 4 + 64 + (rlim_t)c->threads;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        rf_log(RF_LOG_WARN,
               "open-file limit %llu is below the %llu that --max-connections %d needs; "
               "raise it (ulimit -n, LimitNOFILE=) or lower --max-connections",
               (unsigned long long)rl.rlim_cur, (unsigned long long)need, c->max_connections);
}

/* The prologue of a subcommand that takes options and no arguments: -1 to
 * go on, else its exit code (0 after --help, 2 on a usage error). name, when
 * given, is said in the complaint about a stray argument (serve's; migrate
 * shows only its usage). */
static int parse_opts_only(int argc, char **argv, struct config *c, const struct option *longopts,
                           void (*usage)(FILE *), const char *name)
{
    int p = parse_opts(argc, argv, c, longopts, usage);
    if (p)
        return p > 0 ? 0 : 2;
    if (optind < argc) {
        if (name)
            fprintf(stderr, "racefree: %s takes no arguments ('%s')\n", name, argv[optind]);
        usage(stderr);
        return 2;
    }
    return -1;
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
    int p = parse_opts_only(argc, argv, &c, serve_opts, usage_serve, "serve");
    if (p >= 0)
        return p;
    /* A lease shorter than the slowest handler lets a retry take the key over
     * while the first run still provisions: refuse that configuration. */
    if ((long long)c.idempotency_lease_s * 1000 <= c.provision_delay_ms) {
        fprintf(stderr,
                "racefree: --idempotency-lease (%d s) must exceed --provision-delay-ms (%d ms)\n",
                c.idempotency_lease_s, c.provision_delay_ms);
        return 2;
    }
    raise_nofile(&c);
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
        .require_if_match = c.require_if_match,
    };
    struct rf_server_opts so = {
        .listen = c.listen,
        .threads = c.threads,
        .routes = rf_routes,
        .nroutes = rf_nroutes,
        .app = &app,
        .authenticate = rf_api_authenticate,
        .auth_cached = rf_api_auth_cached,
        .drain_seconds = 10,
        .max_connections = (unsigned)c.max_connections,
        .max_connections_per_ip = (unsigned)c.max_connections_per_ip,
        .header_timeout = c.header_timeout_s,
        .body_timeout = c.body_timeout_s,
        .idle_timeout = c.idle_timeout_s,
        .header_bytes = (size_t)c.max_header_bytes,
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
    int p = parse_opts_only(argc, argv, &c, common_opts, usage_migrate, NULL);
    if (p >= 0)
        return p;
    struct rf_db *db = open_and_migrate(&c, 1);
    if (!db)
        return 1;
    rf_db_close(db);
    return 0;
}

static int print_json(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(j);
    return s ? 0 : 1;
}

/* The old key must outlive every server's cached copy of it: a server may
 * have cached it just before the rotation committed. The margin covers
 * clock granularity between the processes of one machine; across machines
 * their clocks must agree (NTP) to within it. */
#define ROTATE_MARGIN_MS 50
static int rotate_key(struct rf_db *db, const char *name, const struct config *c)
{
    char ws[64], key[RF_ROOT_KEY_MAX];
    int64_t expires;
    enum rf_rotate_result res;
    struct rf_db_error e;
    int64_t floor_ms = RF_API_AUTH_TTL_MS + ROTATE_MARGIN_MS;
    int64_t overlap = c->expiration_ms > floor_ms ? c->expiration_ms : floor_ms;
    int rc = rf_store_root_key_rotate(db, name, c->old_key, overlap, ws, key, &expires, &res, &e);
    /* A server that looked the key up just before the commit may trust it
     * for a TTL from then: the commit's end bounds that, not expires. */
    int64_t trusted_until = rf_now_ms() + RF_API_AUTH_TTL_MS + ROTATE_MARGIN_MS;
    if (rc != RF_DB_OK) {
        fprintf(stderr, "racefree: %s\n", e.detail);
        return 1;
    }
    if (res != RF_ROTATE_OK) {
        fprintf(stderr, "racefree: %s\n",
                res == RF_ROTATE_NO_WORKSPACE ? "no such workspace"
                : res == RF_ROTATE_NO_KEY     ? "no live root key to rotate (--key unknown?)"
                                              : "that root key was already rotated");
        return 1;
    }
    /* Asked for less than the cache lives: answer when the old key is dead
     * everywhere, its own expiry and every server's cached copy both past. */
    int64_t dead = expires > trusted_until ? expires : trusted_until;
    for (int64_t left; c->expiration_ms < RF_API_AUTH_TTL_MS && (left = dead - rf_now_ms()) > 0;)
        nanosleep(&(struct timespec){left / 1000, (long)(left % 1000) * 1000000L}, NULL);
    return print_json(json_pack("{s:s, s:s, s:s, s:I}", "workspaceId", ws, "name", name, "rootKey",
                                key, "previousKeyExpires", (json_int_t)expires));
}

static int cmd_workspace(int argc, char **argv)
{
    struct config c;
    int p = parse_opts(argc, argv, &c, workspace_opts, usage_workspace);
    if (p)
        return p > 0 ? 0 : 2;
    int rotate = argc - optind == 2 && strcmp(argv[optind], "rotate-key") == 0;
    if (argc - optind != 2 || (!rotate && strcmp(argv[optind], "create") != 0) ||
        (!rotate && (c.old_key || c.expiration_ms))) {
        usage_workspace(stderr);
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
    if (rotate) {
        int rc = rotate_key(db, name, &c);
        rf_db_close(db);
        return rc;
    }
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
    return print_json(
        json_pack("{s:s, s:s, s:s}", "workspaceId", ws, "name", name, "rootKey", key));
}

static int cmd_version(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage_version(stdout);
        return 0;
    }
    if (argc > 1) {
        usage_version(stderr);
        return 2;
    }
    printf("racefree %s\n", RF_VERSION);
    return 0;
}

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *); /* NULL: the command prints its own (probe) */
} commands[] = {
    {"serve", cmd_serve, usage_serve},
    {"migrate", cmd_migrate, usage_migrate},
    {"workspace", cmd_workspace, usage_workspace},
    {"probe", rf_probe_main, NULL},
    {"version", cmd_version, usage_version},
};

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static int cmd_help(int argc, char **argv)
{
    if (argc < 2 || (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))) {
        usage_main(stdout);
        return 0;
    }
    const struct command *cmd = find_command(argv[1]);
    if (!cmd || argc > 2) {
        fprintf(stderr, "racefree: no help for '%s'\n", argv[1]);
        usage_main(stderr);
        return 2;
    }
    if (cmd->usage) {
        cmd->usage(stdout);
        return 0;
    }
    char *args[] = {argv[1], "--help", NULL};
    return cmd->run(2, args);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h"))
        return cmd_help(argc - 1, argv + 1);
    if (!strcmp(name, "--version"))
        return cmd_version(1, argv + 1);
    const struct command *cmd = find_command(name);
    if (!cmd) {
        fprintf(stderr, "racefree: unknown command '%s'\n", name);
        usage_main(stderr);
        return 2;
    }
    if (rf_util_init() != 0) {
        fprintf(stderr, "racefree: libsodium failed to initialise\n");
        return 1;
    }
    return cmd->run(argc - 1, argv + 1);
}
