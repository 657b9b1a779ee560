/* racefree probe's run: what the parsed options become before anything is
 * sent (templates, request files, TLS contexts, warm-up), one round fired
 * and judged, and the verdict. cli.c parses the command line into struct
 * opts and loops over the rounds; everything between lives in run.c. */
#ifndef RF_PROBE_RUN_H
#define RF_PROBE_RUN_H

#include <stdio.h>
#include <sys/socket.h>

#include "probe/burst.h"
#include "probe/expect.h"
#include "probe/report.h"
#include "probe/reqfile.h"
#include "probe/request.h"
#include "probe/stats.h"
#include "probe/template.h"
#include "probe/tls.h"

#define RF_PROBE_EXPECT_MAX 64
/* Host:port pairs whose address is kept for the whole run. */
#define RF_PROBE_RESOLVE_CACHE 8

/* The command line, as parse_args leaves it. */
struct opts {
    const char *method;
    const char *url;
    const char *data;
    const char *verify;
    size_t n;
    unsigned rounds;
    int timeout_ms;
    enum rf_burst_sync sync;
    int json, per_request, rt;
    const char *report; /* --report FILE */
    const char *cacert; /* --cacert FILE */
    int insecure, h2c, sync_set;
    const char *headers[RF_PROBE_HEADERS_MAX];
    size_t nheaders;
    const char *vars[RF_PROBE_VARS_MAX];
    size_t nvars;
    struct rf_probe_exp exps[RF_PROBE_EXPECT_MAX];
    size_t nexps;
    const char *requests[RF_PROBE_GROUPS_MAX]; /* --request arguments */
    size_t nrequests;
    char group_names[RF_PROBE_GROUPS_MAX][RF_PROBE_GROUP_NAME_MAX + 1];
    const char *group_paths[RF_PROBE_GROUPS_MAX];
    size_t group_path_len[RF_PROBE_GROUPS_MAX], group_counts[RF_PROBE_GROUPS_MAX];
    const char *server_time;
    long max_spread_us; /* -1: none */
    unsigned warmup;
    const char *warmup_request;
};

/* One resolved host:port (see RF_PROBE_RESOLVE_CACHE). */
struct cached_addr {
    char host[256], port[6];
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

/* One run of the prober: filled by rf_probe_run_start, advanced by each
 * round, read by rf_probe_run_finish. */
struct run {
    struct opts *o;
    FILE *out, *err;
    struct rf_probe_vars vars;
    struct rf_probe_reqspec spec;
    struct rf_probe_tpl verify;
    int has_verify;
    char method[40];
    int dynamic;  /* requests differ within a burst */
    int rt_state; /* --rt: 0 untried, 1 applied, -1 refused */
    int need_json;
    size_t max_response;
    struct cached_addr cache[RF_PROBE_RESOLVE_CACHE];
    size_t ncache;
    struct rf_probe_stats total;
    size_t exp_held[RF_PROBE_EXPECT_MAX]; /* rounds in which each expectation held */
    size_t exp_failures;                  /* (round, expectation) pairs that failed */
    char first_failure[256];
    unsigned rounds_done;
    struct rf_probe_target target;
    const char *group_names[RF_PROBE_GROUPS_MAX];
    /* The reporters, called in this order: --report's HTML first, so that
     * losing the file turns the verdict the text or JSON one prints. */
    struct rf_probe_reporter reps[2];
    size_t nreps;
    int tls;                      /* the URL is https:// */
    struct rf_tls_ctx *tls_burst; /* https: for the burst (ALPN h2 with --sync packet) */
    struct rf_tls_ctx *tls_h1;    /* https: for HTTP/1.1 (--verify, and the burst otherwise) */
    char errmsg[512];
    /* Mixed bursts: ngroups > 0, and slot k of a burst is request
     * slot_index[k] of group slot_group[k]. */
    struct rf_probe_group groups[RF_PROBE_GROUPS_MAX];
    size_t ngroups;
    unsigned *slot_group;
    size_t *slot_index;
    struct rf_probe_stats group_total[RF_PROBE_GROUPS_MAX];
    unsigned inconclusive; /* rounds looser than --max-spread */
    unsigned first_inconclusive;
    char warmup_method[40], warmup_path[RF_PROBE_URL_MAX + 1];
};

/* Writes "racefree probe: " and the message, then a newline. */
void rf_probe_msg(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether m is a method we send: a token of at most 32 bytes (-X and
 * --warmup-request alike). */
int rf_probe_method_ok(const char *m);

/* Sets r up for o: the report goes to out, messages to err. */
void rf_probe_run_init(struct run *r, struct opts *o, FILE *out, FILE *err);

/* Compiles the templates, loads the request files, makes the TLS contexts
 * and starts the reporters, all before anything is sent. Returns 0, or -1
 * after saying why on r->err (a usage error: exit 2). */
int rf_probe_run_start(struct run *r);

/* Fires round rnd and reports it. Returns 0, or -1 with r->errmsg set when
 * the round could not run at all. */
int rf_probe_run_round(struct run *r, unsigned rnd);

/* Ends the reporters with the verdict and returns the exit code;
 * setup_failed: a round returned -1. */
int rf_probe_run_finish(struct run *r, int setup_failed);

/* Frees what the run holds (not r itself, nor o's expectations), and
 * discards the reporters that were not ended. */
void rf_probe_run_free(struct run *r);

#endif
