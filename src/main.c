/* racefree: one binary, several subcommands. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "core/util.h"
#include "http/server.h"
#include "probe/probe.h"
#include "store/store.h"

#define RF_VERSION "0.1.0"

struct config {
    const char *db_url;
    const char *listen;
    int threads;
};

static void usage(FILE *f)
{
    fputs("usage:\n"
          "  racefree serve [--listen HOST:PORT] [--db URL] [--threads N] [--log-level LEVEL]\n"
          "  racefree migrate [--db URL]\n"
          "  racefree workspace create NAME [--db URL]\n"
          "  racefree probe [options] URL      (racefree probe --help)\n"
          "  racefree version\n"
          "\n"
          "  --db URL      sqlite:PATH (default sqlite:./racefree.db); env RACEFREE_DB\n"
          "  --listen      default 127.0.0.1:8080; env RACEFREE_LISTEN; port 0 picks one\n"
          "  --threads N   HTTP worker threads (default 8)\n"
          "  --log-level   debug|info|warn|error (default info)\n",
          f);
}

/* Flags win over the environment, the environment over defaults. */
static int parse_opts(int argc, char **argv, struct config *c)
{
    static const struct option longopts[] = {
        {"db", required_argument, NULL, 'd'},       {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},  {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *env;
    c->db_url = (env = getenv("RACEFREE_DB")) && *env ? env : "sqlite:./racefree.db";
    c->listen = (env = getenv("RACEFREE_LISTEN")) && *env ? env : "127.0.0.1:8080";
    c->threads = 8;
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
        case 't': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 256) {
                fprintf(stderr, "racefree: --threads wants 1..256\n");
                return -1;
            }
            c->threads = (int)n;
            break;
        }
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
    if (rf_db_open(c->db_url, nreaders, &db, &e) != RF_DB_OK) {
        rf_log(RF_LOG_ERROR, "cannot open %s: %s", c->db_url, e.detail);
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

static int cmd_serve(int argc, char **argv)
{
    struct config c;
    if (parse_opts(argc, argv, &c))
        return 2;
    if (optind < argc) {
        usage(stderr);
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
    struct rf_app app = {.db = db};
    struct rf_server_opts so = {
        .listen = c.listen,
        .threads = c.threads,
        .routes = rf_routes,
        .nroutes = rf_nroutes,
        .app = &app,
        .authenticate = rf_api_authenticate,
        .drain_seconds = 10,
    };
    int rc = rf_server_run(&so);
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
