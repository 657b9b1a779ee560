/* racefree probe: parses the command line, fires the bursts through the
 * burst engine, checks the expectations and reports. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "probe/burst.h"
#include "probe/expect.h"
#include "probe/probe.h"
#include "probe/report.h"
#include "probe/reqfile.h"
#include "probe/request.h"
#include "probe/template.h"
#include "probe/tls.h"

#define DEFAULT_N 20
#define MAX_ROUNDS 10000
/* Latencies of every request are kept for the total's percentiles. */
#define MAX_TOTAL_REQUESTS 1000000
#define MAX_TIMEOUT_MS 3600000
#define MAX_EXPECT 64
/* All request bytes of one burst live in memory at once. */
#define BURST_BYTES_MAX ((size_t)256 << 20)
/* Response memory of one burst, shared out between its requests. */
#define RESPONSES_BYTES_MAX ((size_t)256 << 20)
#define RESPONSE_MIN ((size_t)16 << 10)
#define RESPONSE_MAX ((size_t)8 << 20)
#define RESOLVE_CACHE 8
#define MAX_WARMUP 100
#define MAX_SPREAD_US 60000000L
/* Exit status of a run whose bursts were too loose to tell (--max-spread). */
#define EXIT_INCONCLUSIVE 3

enum {
    OPT_VAR = 256,
    OPT_ROUNDS,
    OPT_TIMEOUT,
    OPT_SYNC,
    OPT_EXPECT_STATUS,
    OPT_EXPECT_NO5XX,
    OPT_EXPECT_DISTINCT,
    OPT_VERIFY,
    OPT_EXPECT_VERIFY_COUNT,
    OPT_JSON,
    OPT_PER_REQUEST,
    OPT_RT,
    OPT_REPORT,
    OPT_CACERT,
    OPT_INSECURE,
    OPT_H2C,
    OPT_REQUEST,
    OPT_SERVER_TIME,
    OPT_MAX_SPREAD,
    OPT_WARMUP,
    OPT_WARMUP_REQUEST,
};

static const char usage_text[] =
    "usage: racefree probe [options] URL\n"
    "       racefree probe [options] --request [NAME=]FILE[:COUNT]... [URL]\n"
    "\n"
    "Fires N requests at URL so that they reach the server at the same instant,\n"
    "then checks what the server made of them. Works against any HTTP/1.1 or HTTP/2\n"
    "server; http:// or https:// (host, IPv4, [IPv6] or a name, optional :port).\n"
    "\n"
    "Request:\n"
    "  -X, --method METHOD     HTTP method (default GET, or POST when -d is given)\n"
    "  -H, --header 'N: V'     add a request header; repeatable. Host, User-Agent,\n"
    "                          Content-Type and Connection replace the defaults\n"
    "  -d, --data BODY         request body; -d @FILE reads FILE, -d @- stdin (max 1 MiB).\n"
    "                          Content-Type defaults to application/json\n"
    "      --var NAME=VALUE    define {{var.NAME}}; repeatable\n"
    "      --var NAME=@FILE    {{var.NAME}} is line (i mod lines) of FILE, empty lines skipped\n"
    "\n"
    "Mixed bursts (instead of -X/-d; -H headers are added to every file's, replacing\n"
    "those of the same name):\n"
    "  --request [NAME=]FILE[:COUNT]  COUNT (default -n) requests made from FILE, a raw\n"
    "                          HTTP request (Burp \"copy to file\", a .http file): request\n"
    "                          line, headers, blank line, body; CRLF or LF; templates\n"
    "                          applied; Content-Length recomputed. Repeatable, up to 16\n"
    "                          groups, interleaved in one release. NAME defaults to FILE's\n"
    "                          base name without extension; {{i}} counts within the group.\n"
    "                          With URL, requests go to URL's host and port (the file's\n"
    "                          Host header is replaced); without, to an absolute target\n"
    "                          or to http://HOST of the Host header\n"
    "\n"
    "Templates, expanded in the URL, header values and body of every request:\n"
    "  {{i}}         request index in its burst, 0..N-1\n"
    "  {{round}}     burst number, 1..R\n"
    "  {{uuid}}      a random UUID v4, fresh at each occurrence\n"
    "  {{rand}}      a random integer in [0, 2^63), fresh at each occurrence\n"
    "  {{var.NAME}}  the --var NAME value (inserted as is, not JSON-escaped)\n"
    "\n"
    "Burst:\n"
    "  -n N                    requests per burst, 1..10000 (default 20); one connection each\n"
    "                          (--sync packet: up to 100 streams per connection)\n"
    "      --rounds R          bursts fired one after another, 1..10000 (default 1)\n"
    "      --timeout MS        limit for each burst, first connect to last response\n"
    "                          (default 10000)\n"
    "      --sync MODE         lastbyte (default): send every request but its final byte,\n"
    "                          wait until all are written and acknowledged, then release the\n"
    "                          final bytes together. none: send each request whole as soon\n"
    "                          as its connection is up (a naive client, for comparison).\n"
    "                          packet: HTTP/2 single-packet: the requests share connections\n"
    "                          (as many streams each as the server allows, at most 100);\n"
    "                          every request but its END_STREAM is sent, a PING round trip\n"
    "                          confirms it, then each connection's final frames leave in\n"
    "                          one write. Needs h2: an https:// server that picks h2 by\n"
    "                          ALPN, or --h2c\n"
    "      --h2c               HTTP/2 without TLS (prior knowledge) on an http:// URL;\n"
    "                          implies --sync packet\n"
    "      --warmup K          first send K warm-up requests down each connection, each\n"
    "                          answered before the next, so the raced request goes on a\n"
    "                          warm keep-alive connection whose server thread is already\n"
    "                          reading (0..100, default 0)\n"
    "      --warmup-request 'METHOD /path'  the warm-up request (default 'GET /'), sent\n"
    "                          with Host and User-Agent only\n"
    "      --server-time HEADER  read each response's HEADER as the server's arrival time:\n"
    "                          a decimal number, fraction allowed; below 1e11 it is Unix\n"
    "                          seconds, below 1e14 ms, below 1e17 us, else ns. Reports the\n"
    "                          server-side spread of each round\n"
    "      --max-spread US     a round whose spread exceeds US microseconds (the server's\n"
    "                          with --server-time when 2+ responses carry it, else the\n"
    "                          client's release spread) is inconclusive: exit 3, never 0\n"
    "      --rt                run each burst at real-time priority (SCHED_FIFO 1) when\n"
    "                          allowed (root, CAP_SYS_NICE or RLIMIT_RTPRIO), so that server\n"
    "                          threads woken by the first final bytes cannot preempt the\n"
    "                          release of the others; a warning, not an error, if refused\n"
    "\n"
    "TLS (https:// URLs; the handshake is part of the connection phase):\n"
    "      --cacert FILE       trust the CA certificates in FILE (PEM) instead of the\n"
    "                          system's\n"
    "      --insecure          do not verify the server's certificate or name\n"
    "  The certificate is verified by default; one that fails is exit 2.\n"
    "\n"
    "Expectations, checked in every round (exit 1 when one fails):\n"
    "  --expect-status [GROUP:]CODE=COUNT  exactly COUNT responses (of GROUP) had status\n"
    "                                  CODE; CODE may be a class such as 2xx. Repeatable\n"
    "  --expect-no-5xx                 no 5xx response and no request left without one\n"
    "  --expect-distinct [GROUP:]PATH=COUNT  the value at PATH takes exactly COUNT distinct "
    "values\n"
    "                                  across the burst's JSON responses (responses without\n"
    "                                  it are not counted). Repeatable\n"
    "  --verify URL                    GET URL after each burst, with the -H headers\n"
    "  --expect-verify-count PATH=COUNT  the array at PATH in the --verify response has\n"
    "                                  COUNT elements (an integer there is taken as is)\n"
    "  COUNT  a number, N (the burst size; with GROUP: the group's) or N-k, e.g. 1, N, N-1\n"
    "  PATH   .user.id  .data.0.id  .data[0].id  .data[-1]  . (the whole body)\n"
    "\n"
    "Output:\n"
    "      --json              print one JSON document instead of the text report\n"
    "      --per-request       also show every request: status, latency, timings\n"
    "      --report FILE       also write FILE, one self-contained HTML page (no scripts,\n"
    "                          nothing external): per burst an SVG timeline with a row per\n"
    "                          request (final byte sent, first byte back, complete; coloured\n"
    "                          by status class), the status histogram and the expectations\n"
    "  -h, --help              show this help\n"
    "\n"
    "The report gives, per round and in total: the status histogram, the 5xx count,\n"
    "requests without a response, latency min/p50/p99/max (final byte sent to response\n"
    "complete), the send spread (first to last final byte, on this host) and each\n"
    "expectation with PASS or FAIL.\n"
    "\n"
    "Exit status: 0 every expectation held in every round; 1 an expectation failed;\n"
    "2 usage error, or a request got no response (refused, reset, timed out, malformed,\n"
    "a certificate that failed verification, an HTTP/2 stream reset by the server);\n"
    "3 inconclusive: no expectation failed, but a round was looser than --max-spread.\n"
    "\n"
    "Example: 64 simultaneous creates of one user must make one 201, 63 200s, one id:\n"
    "  racefree probe -n 64 -X POST -H \"Authorization: Bearer $KEY\" \\\n"
    "    -d '{\"email\":\"race-{{round}}@example.com\"}' --rounds 5 \\\n"
    "    --expect-status 201=1 --expect-status 200=N-1 --expect-distinct .user.id=1 \\\n"
    "    --verify 'http://127.0.0.1:8080/v1/users?email=race-{{round}}@example.com' \\\n"
    "    --expect-verify-count .data=1 http://127.0.0.1:8080/v1/users\n";

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
    struct rf_probe_exp exps[MAX_EXPECT];
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

struct cached_addr {
    char host[256], port[6];
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

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
    struct cached_addr cache[RESOLVE_CACHE];
    size_t ncache;
    struct rf_probe_stats total;
    size_t exp_held[MAX_EXPECT]; /* rounds in which each expectation held */
    size_t exp_failures;         /* (round, expectation) pairs that failed */
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

static void msg(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void msg(FILE *f, const char *fmt, ...)
{
    va_list ap;
    fputs("racefree probe: ", f);
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
}

static int parse_num(const char *s, long min, long max, long *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Appends a repeatable option's argument, or -1 after saying there are too many. */
static int push_arg(const char **arr, size_t *n, size_t max, const char *what, const char *arg,
                    FILE *err)
{
    if (*n >= max) {
        msg(err, "more than %zu %s", max, what);
        return -1;
    }
    arr[(*n)++] = arg;
    return 0;
}

/* A numeric option's value in [min, max], or -1 after saying what it wants. */
static int num_arg(const char *arg, const char *name, const char *unit, long min, long max, long *v,
                   FILE *err)
{
    if (parse_num(arg, min, max, v) == 0)
        return 0;
    msg(err, "%s wants %ld..%ld%s%s, got \"%.20s\"", name, min, max, unit[0] ? " " : "", unit, arg);
    return -1;
}

static int valid_method(const char *m)
{
    return rf_probe_name_ok(m, strlen(m), 32);
}

/* Splits the --request arguments once -n is known (COUNT defaults to it);
 * the burst is then the sum of the groups. */
static int parse_groups(struct opts *o, FILE *err)
{
    char e[384];
    size_t total = 0;
    if (o->method || o->data) {
        msg(err, "--request takes the method and body from its file; -X and -d are for the "
                 "one-request form");
        return -1;
    }
    for (size_t k = 0; k < o->nrequests; k++) {
        if (rf_probe_reqarg_split(o->requests[k], o->n, RF_BURST_MAX, o->group_names[k],
                                  &o->group_paths[k], &o->group_path_len[k], &o->group_counts[k], e,
                                  sizeof(e)) < 0) {
            msg(err, "%s", e);
            return -1;
        }
        for (size_t j = 0; j < k; j++)
            if (!strcmp(o->group_names[j], o->group_names[k])) {
                msg(err, "--request: two groups named \"%s\"; write NAME=FILE", o->group_names[k]);
                return -1;
            }
        total += o->group_counts[k];
    }
    if (total > RF_BURST_MAX) {
        msg(err, "--request: %zu requests in all, more than %d", total, RF_BURST_MAX);
        return -1;
    }
    o->n = total;
    return 0;
}

static int resolve_group(struct opts *o, struct rf_probe_exp *x, size_t *n, FILE *err)
{
    for (size_t g = 0; g < o->nrequests; g++)
        if (!strcmp(o->group_names[g], x->group)) {
            x->group_ix = (unsigned)g;
            *n = o->group_counts[g];
            return 0;
        }
    msg(err, "--expect-%s %s: no --request group \"%s\"", rf_probe_exp_kind_name(x->kind), x->spec,
        x->group);
    return -1;
}

/* Returns 0 to go on, 1 after --help, 2 on a usage error (already reported). */
static int parse_args(int argc, char **argv, struct opts *o, FILE *out, FILE *err)
{
    static const struct option longopts[] = {
        {"method", required_argument, NULL, 'X'},
        {"header", required_argument, NULL, 'H'},
        {"data", required_argument, NULL, 'd'},
        {"var", required_argument, NULL, OPT_VAR},
        {"rounds", required_argument, NULL, OPT_ROUNDS},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"sync", required_argument, NULL, OPT_SYNC},
        {"expect-status", required_argument, NULL, OPT_EXPECT_STATUS},
        {"expect-no-5xx", no_argument, NULL, OPT_EXPECT_NO5XX},
        {"expect-distinct", required_argument, NULL, OPT_EXPECT_DISTINCT},
        {"verify", required_argument, NULL, OPT_VERIFY},
        {"expect-verify-count", required_argument, NULL, OPT_EXPECT_VERIFY_COUNT},
        {"json", no_argument, NULL, OPT_JSON},
        {"per-request", no_argument, NULL, OPT_PER_REQUEST},
        {"rt", no_argument, NULL, OPT_RT},
        {"report", required_argument, NULL, OPT_REPORT},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {"h2c", no_argument, NULL, OPT_H2C},
        {"request", required_argument, NULL, OPT_REQUEST},
        {"server-time", required_argument, NULL, OPT_SERVER_TIME},
        {"max-spread", required_argument, NULL, OPT_MAX_SPREAD},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"warmup-request", required_argument, NULL, OPT_WARMUP_REQUEST},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char e[384];
    long v;
    int ch, have_verify_count = 0;

    o->n = DEFAULT_N;
    o->rounds = 1;
    o->timeout_ms = RF_BURST_DEFAULT_TIMEOUT_MS;
    o->sync = RF_BURST_LASTBYTE;
    o->max_spread_us = -1;
    optind = 0; /* glibc: full re-initialisation, so the parser can run again */
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":X:H:d:n:h", longopts, NULL)) != -1) {
        enum rf_probe_exp_kind kind;
        switch (ch) {
        case 'X':
            if (!valid_method(optarg)) {
                msg(err, "bad method \"%.40s\"", optarg);
                return 2;
            }
            o->method = optarg;
            break;
        case 'H':
            if (push_arg(o->headers, &o->nheaders, RF_PROBE_HEADERS_MAX, "-H headers", optarg,
                         err) < 0)
                return 2;
            break;
        case 'd':
            o->data = optarg;
            break;
        case OPT_VAR:
            if (push_arg(o->vars, &o->nvars, RF_PROBE_VARS_MAX, "--var", optarg, err) < 0)
                return 2;
            break;
        case 'n':
            if (num_arg(optarg, "-n", "requests", 1, RF_BURST_MAX, &v, err) < 0)
                return 2;
            o->n = (size_t)v;
            break;
        case OPT_ROUNDS:
            if (num_arg(optarg, "--rounds", "", 1, MAX_ROUNDS, &v, err) < 0)
                return 2;
            o->rounds = (unsigned)v;
            break;
        case OPT_TIMEOUT:
            if (num_arg(optarg, "--timeout", "milliseconds", 1, MAX_TIMEOUT_MS, &v, err) < 0)
                return 2;
            o->timeout_ms = (int)v;
            break;
        case OPT_SYNC:
            if (!strcmp(optarg, "lastbyte")) {
                o->sync = RF_BURST_LASTBYTE;
            } else if (!strcmp(optarg, "none")) {
                o->sync = RF_BURST_NONE;
            } else if (!strcmp(optarg, "packet")) {
                o->sync = RF_BURST_PACKET;
            } else {
                msg(err, "--sync wants lastbyte, none or packet, got \"%.20s\"", optarg);
                return 2;
            }
            o->sync_set = 1;
            break;
        case OPT_CACERT:
            o->cacert = optarg;
            break;
        case OPT_INSECURE:
            o->insecure = 1;
            break;
        case OPT_H2C:
            o->h2c = 1;
            break;
        case OPT_EXPECT_STATUS:
            kind = RF_PROBE_EXP_STATUS;
            goto expect;
        case OPT_EXPECT_NO5XX:
            kind = RF_PROBE_EXP_NO5XX;
            goto expect;
        case OPT_EXPECT_DISTINCT:
            kind = RF_PROBE_EXP_DISTINCT;
            goto expect;
        case OPT_EXPECT_VERIFY_COUNT:
            kind = RF_PROBE_EXP_VERIFY_COUNT;
            have_verify_count = 1;
        expect:
            if (o->nexps >= MAX_EXPECT) {
                msg(err, "more than %d expectations", MAX_EXPECT);
                return 2;
            }
            if (rf_probe_exp_parse(&o->exps[o->nexps], kind, optarg, e, sizeof(e)) < 0) {
                msg(err, "%s", e);
                return 2;
            }
            o->nexps++;
            break;
        case OPT_VERIFY:
            o->verify = optarg;
            break;
        case OPT_JSON:
            o->json = 1;
            break;
        case OPT_PER_REQUEST:
            o->per_request = 1;
            break;
        case OPT_RT:
            o->rt = 1;
            break;
        case OPT_REPORT:
            o->report = optarg;
            break;
        case OPT_REQUEST:
            if (push_arg(o->requests, &o->nrequests, RF_PROBE_GROUPS_MAX, "--request groups",
                         optarg, err) < 0)
                return 2;
            break;
        case OPT_SERVER_TIME:
            if (!rf_probe_group_name_ok(optarg, strlen(optarg))) {
                msg(err, "--server-time wants a header name, got \"%.40s\"", optarg);
                return 2;
            }
            o->server_time = optarg;
            break;
        case OPT_MAX_SPREAD:
            if (num_arg(optarg, "--max-spread", "microseconds", 0, MAX_SPREAD_US, &v, err) < 0)
                return 2;
            o->max_spread_us = v;
            break;
        case OPT_WARMUP:
            if (num_arg(optarg, "--warmup", "requests", 0, MAX_WARMUP, &v, err) < 0)
                return 2;
            o->warmup = (unsigned)v;
            break;
        case OPT_WARMUP_REQUEST:
            o->warmup_request = optarg;
            break;
        case 'h':
            fputs(usage_text, out);
            return 1;
        case ':':
            msg(err, "%s needs an argument (see racefree probe --help)", argv[optind - 1]);
            return 2;
        default:
            msg(err, "unknown option %s (see racefree probe --help)", argv[optind - 1]);
            return 2;
        }
    }
    if (optind >= argc && !o->nrequests) {
        msg(err, "no URL given (see racefree probe --help)");
        return 2;
    }
    if (optind + 1 < argc) {
        msg(err, "one URL only; unexpected \"%.60s\"", argv[optind + 1]);
        return 2;
    }
    o->url = optind < argc ? argv[optind] : NULL;
    if (o->nrequests && parse_groups(o, err) < 0)
        return 2;
    if (o->h2c && !o->sync_set)
        o->sync = RF_BURST_PACKET;
    if (o->h2c && o->sync != RF_BURST_PACKET) {
        msg(err, "--h2c works with --sync packet only");
        return 2;
    }
    /* Warm-ups are written on the raw socket and read as HTTP/1.1. */
    if (o->warmup &&
        (o->sync == RF_BURST_PACKET || (o->url && strncasecmp(o->url, "https://", 8) == 0))) {
        msg(err, "--warmup works over plain HTTP/1.1 only (not with https:// or --sync packet)");
        return 2;
    }
    if ((size_t)o->rounds * o->n > MAX_TOTAL_REQUESTS) {
        msg(err, "-n × --rounds is limited to %d requests", MAX_TOTAL_REQUESTS);
        return 2;
    }
    if (have_verify_count && !o->verify) {
        msg(err, "--expect-verify-count needs --verify URL");
        return 2;
    }
    for (size_t k = 0; k < o->nexps; k++) {
        const struct rf_probe_exp *x = &o->exps[k];
        if (x->kind == RF_PROBE_EXP_NO5XX)
            continue;
        size_t n = o->n;
        if (x->group[0] && resolve_group(o, &o->exps[k], &n, err) < 0)
            return 2;
        long want = rf_probe_count_value(&x->count, n);
        /* verify counts are rows in the server, which may outnumber a burst */
        if (want < 0 || (x->kind != RF_PROBE_EXP_VERIFY_COUNT && (size_t)want > n)) {
            msg(err, "--expect-%s %s: count %ld is impossible with %s %zu",
                rf_probe_exp_kind_name(x->kind), x->spec, want, x->group[0] ? "a group of" : "-n",
                n);
            return 2;
        }
    }
    return 0;
}

static const char *sync_name(enum rf_burst_sync s)
{
    return s == RF_BURST_LASTBYTE ? "lastbyte" : s == RF_BURST_PACKET ? "packet" : "none";
}

/* One context per ALPN offer: h2 only for a --sync packet burst, since
 * HTTP/1.1 bytes cannot go down a connection the server made h2. */
static int tls_contexts(struct run *r, int burst)
{
    struct opts *o = r->o;
    char e[384];
    if (!r->tls_h1) {
        r->tls_h1 = rf_tls_ctx_new(o->cacert, o->insecure, RF_TLS_ALPN_HTTP1, e, sizeof(e));
        if (!r->tls_h1) {
            msg(r->err, "%s", e);
            return -1;
        }
    }
    if (burst && o->sync == RF_BURST_PACKET && !r->tls_burst) {
        r->tls_burst = rf_tls_ctx_new(o->cacert, o->insecure, RF_TLS_ALPN_H2, e, sizeof(e));
        if (!r->tls_burst) {
            msg(r->err, "%s", e);
            return -1;
        }
    }
    return 0;
}

/* Loads every --request file and lays out the release order. */
static int prepare_groups(struct run *r)
{
    struct opts *o = r->o;
    char e[600];
    for (size_t g = 0; g < o->nrequests; g++) {
        r->ngroups++;
        if (rf_probe_group_load(&r->groups[g], o->group_names[g], o->group_paths[g],
                                o->group_path_len[g], o->group_counts[g], o->url, o->headers,
                                o->nheaders, &r->vars, e, sizeof(e)) < 0) {
            msg(r->err, "%s", e);
            return -1;
        }
    }
    r->slot_group = calloc(o->n, sizeof(*r->slot_group));
    r->slot_index = calloc(o->n, sizeof(*r->slot_index));
    if (!r->slot_group || !r->slot_index) {
        msg(r->err, "out of memory for %zu requests", o->n);
        return -1;
    }
    rf_probe_groups_interleave(o->group_counts, r->ngroups, r->slot_group);
    size_t seen[RF_PROBE_GROUPS_MAX] = {0};
    for (size_t k = 0; k < o->n; k++)
        r->slot_index[k] = seen[r->slot_group[k]]++;
    for (size_t g = 0; g < r->ngroups; g++)
        rf_probe_stats_init(&r->group_total[g]);
    return 0;
}

/* --warmup-request 'METHOD /path': checked once, sent as is. */
static int prepare_warmup(struct run *r)
{
    const char *w = r->o->warmup_request ? r->o->warmup_request : "GET /";
    const char *sp = strchr(w, ' ');
    size_t ml = sp ? (size_t)(sp - w) : 0;
    char m[40];
    if (ml == 0 || ml >= sizeof(m) || sp[1] != '/' || strlen(sp + 1) > RF_PROBE_URL_MAX) {
        msg(r->err, "--warmup-request wants 'METHOD /path', got \"%.60s\"", w);
        return -1;
    }
    memcpy(m, w, ml);
    m[ml] = '\0';
    if (!valid_method(m)) {
        msg(r->err, "--warmup-request: bad method \"%s\"", m);
        return -1;
    }
    for (const char *p = sp + 1; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            msg(r->err, "--warmup-request: the path contains a space or control character");
            return -1;
        }
    snprintf(r->warmup_method, sizeof(r->warmup_method), "%s", m);
    snprintf(r->warmup_path, sizeof(r->warmup_path), "%s", sp + 1);
    return 0;
}

/* Compiles every template once, before anything is sent. */
static int prepare(struct run *r)
{
    struct opts *o = r->o;
    char e[384];

    for (size_t k = 0; k < o->nvars; k++)
        if (rf_probe_vars_add(&r->vars, o->vars[k], e, sizeof(e)) < 0) {
            msg(r->err, "--var: %s", e);
            return -1;
        }
    if (o->url && strlen(o->url) > RF_PROBE_URL_MAX) {
        msg(r->err, "URL longer than %d bytes", RF_PROBE_URL_MAX);
        return -1;
    }
    if (rf_probe_tpl_compile(&r->spec.url, o->url ? o->url : "", o->url ? strlen(o->url) : 0,
                             &r->vars, e, sizeof(e)) < 0) {
        msg(r->err, "URL: %s", e);
        return -1;
    }
    for (size_t k = 0; k < o->nheaders; k++)
        if (rf_probe_reqspec_header(&r->spec, o->headers[k], &r->vars, e, sizeof(e)) < 0) {
            msg(r->err, "%s", e);
            return -1;
        }
    if (o->data) {
        char *file = NULL;
        const char *body = o->data;
        size_t len = strlen(body);
        if (body[0] == '@') {
            file = rf_probe_read_file(body + 1, RF_PROBE_BODY_MAX, &len, e, sizeof(e));
            if (!file) {
                msg(r->err, "-d: %s", e);
                return -1;
            }
            body = file;
        } else if (len > RF_PROBE_BODY_MAX) {
            msg(r->err, "-d: body longer than %zu bytes", RF_PROBE_BODY_MAX);
            return -1;
        }
        int rc = rf_probe_tpl_compile(&r->spec.body, body, len, &r->vars, e, sizeof(e));
        free(file);
        if (rc < 0) {
            msg(r->err, "-d: %s", e);
            return -1;
        }
        r->spec.has_body = 1;
    }
    if (o->nrequests && prepare_groups(r) < 0)
        return -1;
    if (prepare_warmup(r) < 0)
        return -1;
    /* Catch a bad URL (https, no host) before printing a report header. */
    const struct rf_probe_tpl *urls[2 + RF_PROBE_GROUPS_MAX] = {&r->spec.url, NULL};
    size_t nurls = 1;
    if (o->nrequests) {
        /* The groups' URLs, base included, are what the burst aims at. */
        nurls = 0;
        for (size_t g = 0; g < r->ngroups; g++)
            urls[nurls++] = &r->groups[g].spec.url;
    }
    if (o->verify) {
        if (strlen(o->verify) > RF_PROBE_URL_MAX ||
            rf_probe_tpl_compile(&r->verify, o->verify, strlen(o->verify), &r->vars, e, sizeof(e)) <
                0) {
            msg(r->err, "--verify: %s", strlen(o->verify) > RF_PROBE_URL_MAX ? "URL too long" : e);
            return -1;
        }
        r->has_verify = 1;
        urls[nurls++] = &r->verify;
    }
    for (size_t k = 0; k < nurls; k++) {
        struct rf_probe_buf b;
        struct rf_probe_url u;
        struct rf_probe_tpl_ctx c = {.i = 0, .round = 1, .vars = &r->vars};
        rf_probe_buf_init(&b, RF_PROBE_URL_MAX);
        int rc = rf_probe_tpl_expand(urls[k], &c, &b, e, sizeof(e));
        if (rc == 0)
            rc = rf_probe_url_parse(b.p, &u, e, sizeof(e));
        rf_probe_buf_free(&b);
        if (rc < 0) {
            msg(r->err, "%s%s", urls[k] == &r->verify ? "--verify: " : "", e);
            return -1;
        }
        if (k == 0)
            r->tls = u.tls;
        if (u.tls && tls_contexts(r, k == 0) < 0)
            return -1;
    }
    if (o->sync == RF_BURST_PACKET && !r->tls && !o->h2c) {
        msg(r->err, "--sync packet needs HTTP/2: an https:// URL (h2 by ALPN), or --h2c for "
                    "HTTP/2 without TLS");
        return -1;
    }
    if (o->h2c && r->tls) {
        msg(r->err, "--h2c is for http:// URLs; https:// negotiates h2 by ALPN");
        return -1;
    }
    snprintf(r->method, sizeof(r->method), "%s",
             r->ngroups  ? r->groups[0].method
             : o->method ? o->method
             : o->data   ? "POST"
                         : "GET");
    r->dynamic = r->spec.url.dynamic || (r->spec.has_body && r->spec.body.dynamic);
    for (size_t k = 0; k < r->spec.nhdr; k++)
        r->dynamic |= r->spec.hdr[k].dynamic;
    for (size_t g = 0; g < r->ngroups; g++)
        r->dynamic |= r->groups[g].dynamic;
    for (size_t k = 0; k < o->nexps; k++)
        r->need_json |= o->exps[k].kind == RF_PROBE_EXP_DISTINCT;
    size_t share = RESPONSES_BYTES_MAX / o->n;
    r->max_response = share < RESPONSE_MIN   ? RESPONSE_MIN
                      : share > RESPONSE_MAX ? RESPONSE_MAX
                                             : share;
    if (sodium_init() < 0) {
        msg(r->err, "libsodium failed to initialise");
        return -1;
    }
    return 0;
}

/* Resolves once per host:port: a name lookup per request would put the
 * resolver's latency inside the run, and the answer does not change. */
static int resolve(struct run *r, const struct rf_probe_url *u, struct rf_burst_req *q)
{
    for (size_t k = 0; k < r->ncache; k++) {
        struct cached_addr *c = &r->cache[k];
        if (!strcmp(c->host, u->host) && !strcmp(c->port, u->port)) {
            q->addr = c->addr;
            q->addrlen = c->addrlen;
            return 0;
        }
    }
    char e[256];
    if (rf_probe_resolve(u->host, u->port, r->o->timeout_ms, &q->addr, &q->addrlen, e, sizeof(e)) <
        0) {
        snprintf(r->errmsg, sizeof(r->errmsg), "%s", e);
        return -1;
    }
    /* A full cache simply resolves again; URLs with many hosts are rare. */
    if (r->ncache < RESOLVE_CACHE) {
        struct cached_addr *c = &r->cache[r->ncache++];
        snprintf(c->host, sizeof(c->host), "%s", u->host);
        snprintf(c->port, sizeof(c->port), "%s", u->port);
        c->addr = q->addr;
        c->addrlen = q->addrlen;
    }
    return 0;
}

struct round_data {
    struct rf_probe_buf *bufs;
    struct rf_probe_buf *wbufs; /* --warmup: the warm-up request of each slot */
    struct rf_burst_req *reqs;
    struct rf_burst_res *res;
    json_t **bodies;
    struct rf_burst_req vreq;
    struct rf_burst_res vres;
    struct rf_probe_buf vbuf, vurl;
    json_t *vbody;
    int have_vres;
    size_t n;
    char (*hosts)[256]; /* https: each request's certificate name */
    char vhost[256];
};

static void round_free(struct round_data *d)
{
    if (d->res)
        rf_burst_res_free(d->res, d->n);
    if (d->have_vres)
        rf_burst_res_free(&d->vres, 1);
    for (size_t i = 0; d->bufs && i < d->n; i++)
        rf_probe_buf_free(&d->bufs[i]);
    for (size_t i = 0; d->wbufs && i < d->n; i++)
        rf_probe_buf_free(&d->wbufs[i]);
    free(d->wbufs);
    for (size_t i = 0; d->bodies && i < d->n; i++)
        json_decref(d->bodies[i]);
    json_decref(d->vbody);
    rf_probe_buf_free(&d->vbuf);
    rf_probe_buf_free(&d->vurl);
    free(d->bufs);
    free(d->reqs);
    free(d->res);
    free(d->bodies);
    free(d->hosts);
}

static int method_has_length(const char *m)
{
    return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
}

/* Builds every request of one round; only the first when they are all the
 * same, so a large body is held once rather than N times. */
static int build_round(struct run *r, unsigned rnd, struct round_data *d)
{
    size_t n = r->o->n, total = 0;
    struct rf_probe_buf url;
    struct rf_probe_url u;
    char e[384];
    int rc = -1;
    rf_probe_buf_init(&url, RF_PROBE_URL_MAX);
    for (size_t i = 0; i < n; i++) {
        struct rf_burst_req *q = &d->reqs[i];
        if (i > 0 && !r->dynamic && !r->ngroups) {
            *q = d->reqs[0];
            total += q->len;
            continue;
        }
        const struct rf_probe_reqspec *sp = &r->spec;
        const char *method = r->method;
        struct rf_probe_tpl_ctx c = {.i = i, .round = rnd, .vars = &r->vars};
        if (r->ngroups) {
            const struct rf_probe_group *g = &r->groups[r->slot_group[i]];
            sp = &g->spec;
            method = g->method;
            /* A group's file reads as it would alone: {{i}} counts within it. */
            c.i = r->slot_index[i];
        }
        rf_probe_buf_init(&d->bufs[i], RF_PROBE_HEAD_MAX + RF_PROBE_BODY_MAX);
        if (rf_probe_request_build(sp, method, 1, &sp->url, &c, &url, &u, &d->bufs[i], e,
                                   sizeof(e)) < 0) {
            snprintf(r->errmsg, sizeof(r->errmsg), "request %zu: %s", i, e);
            goto out;
        }
        if (resolve(r, &u, q) < 0)
            goto out;
        q->data = d->bufs[i].p;
        q->len = d->bufs[i].len;
        q->head_request = !strcmp(method, "HEAD");
        if (u.tls != r->tls) {
            snprintf(r->errmsg, sizeof(r->errmsg),
                     "request %zu: every request of a burst must "
                     "use the URL's scheme",
                     i);
            goto out;
        }
        if (u.tls) {
            snprintf(d->hosts[i], sizeof(d->hosts[i]), "%s", u.host);
            q->host = d->hosts[i];
        }
        if (r->o->warmup) {
            struct rf_probe_buf *w = &d->wbufs[i];
            rf_probe_buf_init(w, RF_PROBE_HEAD_MAX);
            /* Keep-alive said out loud: HTTP/1.0-minded servers close otherwise. */
            if (rf_probe_buf_addf(w,
                                  "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: racefree-probe\r\n"
                                  "Connection: keep-alive\r\n%s\r\n",
                                  r->warmup_method, r->warmup_path, u.authority,
                                  method_has_length(r->warmup_method) ? "Content-Length: 0\r\n"
                                                                      : "") < 0) {
                snprintf(r->errmsg, sizeof(r->errmsg), "warm-up request too long");
                goto out;
            }
            q->warmup = w->p;
            q->warmup_len = w->len;
            q->warmup_head = !strcmp(r->warmup_method, "HEAD");
        }
        total += q->len;
        if (total > BURST_BYTES_MAX) {
            snprintf(r->errmsg, sizeof(r->errmsg), "the requests of one burst exceed %zu bytes",
                     BURST_BYTES_MAX);
            goto out;
        }
    }
    rc = 0;
out:
    rf_probe_buf_free(&url);
    return rc;
}

static int run_verify(struct run *r, unsigned rnd, struct round_data *d)
{
    struct rf_probe_url u;
    char e[384];
    struct rf_probe_tpl_ctx c = {.i = 0, .round = rnd, .vars = &r->vars};
    if (rf_probe_request_build(&r->spec, "GET", 0, &r->verify, &c, &d->vurl, &u, &d->vbuf, e,
                               sizeof(e)) < 0) {
        snprintf(r->errmsg, sizeof(r->errmsg), "--verify: %s", e);
        return -1;
    }
    if (resolve(r, &u, &d->vreq) < 0)
        return -1;
    d->vreq.data = d->vbuf.p;
    d->vreq.len = d->vbuf.len;
    snprintf(d->vhost, sizeof(d->vhost), "%s", u.host);
    d->vreq.host = d->vhost;
    struct rf_burst_opts bo = {.sync = RF_BURST_NONE,
                               .timeout_ms = r->o->timeout_ms,
                               .max_response = RESPONSE_MAX,
                               .tls = u.tls ? r->tls_h1 : NULL};
    if (rf_burst_run(&d->vreq, 1, &bo, &d->vres, e, sizeof(e)) < 0) {
        snprintf(r->errmsg, sizeof(r->errmsg), "--verify: %s", e);
        return -1;
    }
    d->have_vres = 1;
    d->vbody = rf_probe_body_json(&d->vres);
    return 0;
}

/* Real-time priority for the burst only: on a host where the server shares
 * the CPUs, every final byte wakes a server thread, and at normal priority
 * that thread may preempt the release loop, stretching the spread by its
 * whole run time. The burst sleeps in epoll_wait, so it cannot hog a CPU. */
static int rt_enter(struct run *r, int *policy, struct sched_param *saved)
{
    if (!r->o->rt || r->rt_state < 0)
        return 0;
    *policy = sched_getscheduler(0);
    if (*policy < 0 || sched_getparam(0, saved) < 0) {
        r->rt_state = -1;
        return 0;
    }
    struct sched_param p = {.sched_priority = 1};
    if (sched_setscheduler(0, SCHED_FIFO, &p) < 0) {
        msg(r->err, "--rt: cannot use real-time priority (%s); running at normal priority",
            strerror(errno));
        r->rt_state = -1;
        return 0;
    }
    r->rt_state = 1;
    return 1;
}

static void rt_leave(int policy, const struct sched_param *saved)
{
    /* Going back down needs no privilege. */
    (void)sched_setscheduler(0, policy, saved);
}

/* Fires one burst and reports it. Returns 0, or -1 with r->errmsg set when
 * the round could not run at all. */
static int run_round(struct run *r, unsigned rnd)
{
    struct opts *o = r->o;
    size_t n = o->n;
    struct round_data d = {.n = n};
    struct rf_probe_stats st;
    struct rf_probe_exp_res er[MAX_EXPECT];
    char e[384];
    int rc = -1;

    rf_probe_stats_init(&st);
    rf_probe_buf_init(&d.vbuf, RF_PROBE_HEAD_MAX);
    rf_probe_buf_init(&d.vurl, RF_PROBE_URL_MAX);
    d.bufs = calloc(n, sizeof(*d.bufs));
    d.reqs = calloc(n, sizeof(*d.reqs));
    d.res = calloc(n, sizeof(*d.res));
    d.bodies = calloc(n, sizeof(*d.bodies));
    if (r->tls)
        d.hosts = calloc(n, sizeof(*d.hosts));
    d.wbufs = o->warmup ? calloc(n, sizeof(*d.wbufs)) : NULL;
    if (!d.bufs || !d.reqs || !d.res || !d.bodies || (r->tls && !d.hosts) ||
        (o->warmup && !d.wbufs)) {
        snprintf(r->errmsg, sizeof(r->errmsg), "out of memory for %zu requests", n);
        goto out;
    }
    if (build_round(r, rnd, &d) < 0)
        goto out;
    struct rf_burst_opts bo = {.sync = o->sync,
                               .timeout_ms = o->timeout_ms,
                               .max_response = r->max_response,
                               .warmup = o->warmup};
    if (r->tls)
        bo.tls = o->sync == RF_BURST_PACKET ? r->tls_burst : r->tls_h1;
    int policy = SCHED_OTHER;
    struct sched_param saved = {0};
    int rt = rt_enter(r, &policy, &saved);
    uint64_t t0 = rf_burst_now_ns();
    int brc = rf_burst_run(d.reqs, n, &bo, d.res, e, sizeof(e));
    if (rt)
        rt_leave(policy, &saved);
    if (brc < 0) {
        snprintf(r->errmsg, sizeof(r->errmsg), "%s", e);
        goto out;
    }
    if (r->has_verify && run_verify(r, rnd, &d) < 0)
        goto out;
    if (r->need_json)
        for (size_t i = 0; i < n; i++)
            d.bodies[i] = rf_probe_body_json(&d.res[i]);

    struct rf_probe_stats gst[RF_PROBE_GROUPS_MAX];
    for (size_t g = 0; g < r->ngroups; g++)
        rf_probe_stats_init(&gst[g]);
    size_t group_n[RF_PROBE_GROUPS_MAX];
    for (size_t g = 0; g < r->ngroups; g++)
        group_n[g] = r->groups[g].count;
    struct rf_probe_view v = {.res = d.res,
                              .n = n,
                              .bodies = d.bodies,
                              .group_of = r->ngroups ? r->slot_group : NULL,
                              .group_n = group_n,
                              .verify = d.have_vres ? &d.vres : NULL,
                              .verify_body = d.vbody};
    for (size_t k = 0; k < o->nexps; k++) {
        rf_probe_exp_eval(&o->exps[k], &v, &er[k]);
        if (er[k].pass) {
            r->exp_held[k]++;
        } else if (r->exp_failures++ == 0) {
            snprintf(r->first_failure, sizeof(r->first_failure), "round %u: %s%s%s", rnd,
                     rf_probe_exp_kind_name(o->exps[k].kind), o->exps[k].spec[0] ? " " : "",
                     o->exps[k].spec);
        }
    }
    int oom =
        rf_probe_stats_add(&st, d.res, n, rnd) < 0 || rf_probe_stats_merge(&r->total, &st) < 0 ||
        (r->ngroups && rf_probe_group_stats_add(gst, r->ngroups, d.res, r->slot_group, n, rnd) < 0);
    for (size_t g = 0; g < r->ngroups && !oom; g++)
        oom = rf_probe_stats_merge(&r->group_total[g], &gst[g]) < 0;
    if (oom) {
        for (size_t g = 0; g < r->ngroups; g++)
            rf_probe_stats_free(&gst[g]);
        snprintf(r->errmsg, sizeof(r->errmsg), "out of memory for the statistics");
        goto out;
    }
    struct rf_probe_round rr = {.round = rnd,
                                .res = d.res,
                                .n = n,
                                .t0_ns = t0,
                                .stats = &st,
                                .exps = o->exps,
                                .exp_res = er,
                                .nexps = o->nexps,
                                .verify_url = d.have_vres ? d.vurl.p : NULL,
                                .verify = d.have_vres ? &d.vres : NULL,
                                .group_of = r->ngroups ? r->slot_group : NULL,
                                .group_names = r->group_names,
                                .ngroups = r->ngroups,
                                .group_stats = gst};
    rf_probe_spread_judge(d.res, n, o->server_time, o->max_spread_us, &st, &rr.spread);
    if (rr.spread.inconclusive && r->inconclusive++ == 0)
        r->first_inconclusive = rnd;
    if (d.have_vres && d.vres.err && r->total.no_response == 0) {
        /* The verify GET counts as a request without a response too. */
        r->total.first_err_i = -1;
        r->total.first_err_round = rnd;
        snprintf(r->total.first_err, sizeof(r->total.first_err), "--verify: %s", d.vres.err_msg);
    }
    if (d.have_vres && d.vres.err)
        r->total.no_response++;
    for (size_t k = 0; k < r->nreps; k++)
        r->reps[k].ops->round(r->reps[k].ctx, &rr);
    for (size_t g = 0; g < r->ngroups; g++)
        rf_probe_stats_free(&gst[g]);
    rc = 0;
out:
    rf_probe_stats_free(&st);
    round_free(&d);
    return rc;
}

/* What the report names as the target: the URL, or the first group's file
 * target when the files say where they go. */
static const char *target_url(const struct run *r)
{
    if (r->o->url)
        return r->o->url;
    return r->ngroups ? r->groups[0].target : "";
}

static int finish(struct run *r, int setup_failed)
{
    struct opts *o = r->o;
    int code = 0;
    char why[600] = "";

    if (setup_failed) {
        code = 2;
        snprintf(why, sizeof(why), "%s", r->errmsg);
    } else if (r->total.no_response) {
        code = 2;
        if (r->total.first_err_i >= 0)
            snprintf(why, sizeof(why),
                     "%zu request%s got no response (first: round %u, request %ld: %s)",
                     r->total.no_response, r->total.no_response == 1 ? "" : "s",
                     r->total.first_err_round, r->total.first_err_i, r->total.first_err);
        else
            snprintf(why, sizeof(why), "round %u: %s", r->total.first_err_round,
                     r->total.first_err);
    } else if (r->exp_failures) {
        code = 1;
        snprintf(why, sizeof(why), "%zu expectation check%s failed (first: %s)", r->exp_failures,
                 r->exp_failures == 1 ? "" : "s", r->first_failure);
    } else if (r->inconclusive) {
        /* A failure found in a loose burst is still a failure; a pass is not
         * a pass unless the requests really arrived together. */
        code = EXIT_INCONCLUSIVE;
        snprintf(why, sizeof(why),
                 "%u of %u round%s spread over --max-spread %ld µs (first: round %u); the "
                 "expectations held but prove nothing",
                 r->inconclusive, r->rounds_done, r->rounds_done == 1 ? "" : "s", o->max_spread_us,
                 r->first_inconclusive);
    }
    struct rf_probe_summary sum = {.stats = &r->total,
                                   .group_stats = r->group_total,
                                   .rounds_done = r->rounds_done,
                                   .exps = o->exps,
                                   .exp_held = r->exp_held,
                                   .nexps = o->nexps,
                                   .inconclusive_rounds = r->inconclusive,
                                   .realtime = r->rt_state > 0,
                                   .exit_code = code,
                                   .error = why[0] ? why : NULL};
    for (size_t k = 0; k < r->nreps; k++) {
        char e[300];
        /* The report was asked for, so losing it is an error like a usage one. */
        if (r->reps[k].ops->end(r->reps[k].ctx, &sum, e, sizeof(e)) < 0) {
            code = sum.exit_code = 2;
            snprintf(why, sizeof(why), "%s", e);
            sum.error = why;
        }
    }
    r->nreps = 0;
    if (code == 2)
        msg(r->err, "%s", why);
    return code;
}

/* Starts the reporters before anything is sent: an unwritable --report
 * path is a usage error. */
static int open_reporters(struct run *r)
{
    struct opts *o = r->o;
    for (size_t g = 0; g < r->ngroups; g++)
        r->group_names[g] = r->groups[g].name;
    r->target = (struct rf_probe_target){.method = r->method,
                                         .url = target_url(r),
                                         .given_url = o->url,
                                         .n = o->n,
                                         .rounds = o->rounds,
                                         .sync = sync_name(o->sync),
                                         .timeout_ms = o->timeout_ms,
                                         .groups = r->groups,
                                         .ngroups = r->ngroups,
                                         .warmup = o->warmup,
                                         .server_time = o->server_time,
                                         .max_spread_us = o->max_spread_us,
                                         .per_request = o->per_request,
                                         .exps = o->exps,
                                         .nexps = o->nexps};
    if ((o->report && rf_probe_reporter_html(&r->reps[r->nreps++], o->report) < 0) ||
        (o->json ? rf_probe_reporter_json(&r->reps[r->nreps++], r->out)
                 : rf_probe_reporter_text(&r->reps[r->nreps++], r->out)) < 0) {
        r->nreps--;
        msg(r->err, "out of memory");
        return -1;
    }
    for (size_t k = 0; k < r->nreps; k++) {
        char e[400];
        if (r->reps[k].ops->begin(r->reps[k].ctx, &r->target, e, sizeof(e)) < 0) {
            msg(r->err, "%s", e);
            return -1;
        }
    }
    return 0;
}

int rf_probe_run(int argc, char **argv, FILE *out, FILE *err)
{
    struct opts *o = calloc(1, sizeof(*o));
    struct run *r = calloc(1, sizeof(*r));
    int code = 2;
    if (!o || !r) {
        msg(err, "out of memory");
        free(o);
        free(r);
        return 2;
    }
    r->o = o;
    r->out = out;
    r->err = err;
    rf_probe_stats_init(&r->total);

    int pa = parse_args(argc, argv, o, out, err);
    if (pa != 0) {
        code = pa == 1 ? 0 : 2;
        goto out;
    }
    if (prepare(r) < 0)
        goto out;
    if (open_reporters(r) < 0)
        goto out;
    int setup_failed = 0;
    for (unsigned rnd = 1; rnd <= o->rounds; rnd++) {
        size_t before = r->total.no_response;
        if (run_round(r, rnd) < 0) {
            setup_failed = 1;
            break;
        }
        r->rounds_done++;
        /* Nobody answered at all: the server is down, more rounds add nothing. */
        if (r->total.no_response - before >= o->n)
            break;
    }
    code = finish(r, setup_failed);
out:
    for (size_t k = 0; k < o->nexps; k++)
        rf_probe_exp_free(&o->exps[k]);
    rf_probe_reqspec_free(&r->spec);
    for (size_t g = 0; g < r->ngroups; g++) {
        rf_probe_group_free(&r->groups[g]);
        rf_probe_stats_free(&r->group_total[g]);
    }
    free(r->slot_group);
    free(r->slot_index);
    if (r->has_verify)
        rf_probe_tpl_free(&r->verify);
    rf_probe_vars_free(&r->vars);
    rf_tls_ctx_free(r->tls_burst);
    rf_tls_ctx_free(r->tls_h1);
    rf_probe_stats_free(&r->total);
    for (size_t k = 0; k < r->nreps; k++)
        r->reps[k].ops->discard(r->reps[k].ctx);
    free(o);
    free(r);
    return code;
}

int rf_probe_main(int argc, char **argv)
{
    return rf_probe_run(argc, argv, stdout, stderr);
}
