/* racefree probe's command line: the usage text, the options parsed into
 * struct opts, and the loop over the rounds; run.c does the rest. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "probe/probe.h"
#include "probe/run.h"

#define DEFAULT_N 20
#define MAX_ROUNDS 10000
/* Latencies of every request are kept for the total's percentiles. */
#define MAX_TOTAL_REQUESTS 1000000
#define MAX_TIMEOUT_MS 3600000
#define MAX_WARMUP 100
#define MAX_SPREAD_US 60000000L

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
        rf_probe_msg(err, "more than %zu %s", max, what);
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
    rf_probe_msg(err, "%s wants %ld..%ld%s%s, got \"%.20s\"", name, min, max, unit[0] ? " " : "",
                 unit, arg);
    return -1;
}

/* Splits the --request arguments once -n is known (COUNT defaults to it);
 * the burst is then the sum of the groups. */
static int parse_groups(struct opts *o, FILE *err)
{
    char e[384];
    size_t total = 0;
    if (o->method || o->data) {
        rf_probe_msg(err,
                     "--request takes the method and body from its file; -X and -d are for the "
                     "one-request form");
        return -1;
    }
    for (size_t k = 0; k < o->nrequests; k++) {
        if (rf_probe_reqarg_split(o->requests[k], o->n, RF_BURST_MAX, o->group_names[k],
                                  &o->group_paths[k], &o->group_path_len[k], &o->group_counts[k], e,
                                  sizeof(e)) < 0) {
            rf_probe_msg(err, "%s", e);
            return -1;
        }
        for (size_t j = 0; j < k; j++)
            if (!strcmp(o->group_names[j], o->group_names[k])) {
                rf_probe_msg(err, "--request: two groups named \"%s\"; write NAME=FILE",
                             o->group_names[k]);
                return -1;
            }
        total += o->group_counts[k];
    }
    if (total > RF_BURST_MAX) {
        rf_probe_msg(err, "--request: %zu requests in all, more than %d", total, RF_BURST_MAX);
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
    rf_probe_msg(err, "--expect-%s %s: no --request group \"%s\"", rf_probe_exp_kind_name(x->kind),
                 x->spec, x->group);
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
            if (!rf_probe_method_ok(optarg)) {
                rf_probe_msg(err, "bad method \"%.40s\"", optarg);
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
                rf_probe_msg(err, "--sync wants lastbyte, none or packet, got \"%.20s\"", optarg);
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
            if (o->nexps >= RF_PROBE_EXPECT_MAX) {
                rf_probe_msg(err, "more than %d expectations", RF_PROBE_EXPECT_MAX);
                return 2;
            }
            if (rf_probe_exp_parse(&o->exps[o->nexps], kind, optarg, e, sizeof(e)) < 0) {
                rf_probe_msg(err, "%s", e);
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
                rf_probe_msg(err, "--server-time wants a header name, got \"%.40s\"", optarg);
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
            rf_probe_msg(err, "%s needs an argument (see racefree probe --help)", argv[optind - 1]);
            return 2;
        default:
            rf_probe_msg(err, "unknown option %s (see racefree probe --help)", argv[optind - 1]);
            return 2;
        }
    }
    if (optind >= argc && !o->nrequests) {
        rf_probe_msg(err, "no URL given (see racefree probe --help)");
        return 2;
    }
    if (optind + 1 < argc) {
        rf_probe_msg(err, "one URL only; unexpected \"%.60s\"", argv[optind + 1]);
        return 2;
    }
    o->url = optind < argc ? argv[optind] : NULL;
    if (o->nrequests && parse_groups(o, err) < 0)
        return 2;
    if (o->h2c && !o->sync_set)
        o->sync = RF_BURST_PACKET;
    if (o->h2c && o->sync != RF_BURST_PACKET) {
        rf_probe_msg(err, "--h2c works with --sync packet only");
        return 2;
    }
    /* Warm-ups are written on the raw socket and read as HTTP/1.1. */
    if (o->warmup &&
        (o->sync == RF_BURST_PACKET || (o->url && strncasecmp(o->url, "https://", 8) == 0))) {
        rf_probe_msg(
            err, "--warmup works over plain HTTP/1.1 only (not with https:// or --sync packet)");
        return 2;
    }
    if ((size_t)o->rounds * o->n > MAX_TOTAL_REQUESTS) {
        rf_probe_msg(err, "-n × --rounds is limited to %d requests", MAX_TOTAL_REQUESTS);
        return 2;
    }
    if (have_verify_count && !o->verify) {
        rf_probe_msg(err, "--expect-verify-count needs --verify URL");
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
            rf_probe_msg(err, "--expect-%s %s: count %ld is impossible with %s %zu",
                         rf_probe_exp_kind_name(x->kind), x->spec, want,
                         x->group[0] ? "a group of" : "-n", n);
            return 2;
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
        rf_probe_msg(err, "out of memory");
        free(o);
        free(r);
        return 2;
    }
    rf_probe_run_init(r, o, out, err);

    int pa = parse_args(argc, argv, o, out, err);
    if (pa != 0) {
        code = pa == 1 ? 0 : 2;
        goto out;
    }
    if (rf_probe_run_start(r) < 0)
        goto out;
    int setup_failed = 0;
    for (unsigned rnd = 1; rnd <= o->rounds; rnd++) {
        size_t before = r->total.no_response;
        if (rf_probe_run_round(r, rnd) < 0) {
            setup_failed = 1;
            break;
        }
        r->rounds_done++;
        /* Nobody answered at all: the server is down, more rounds add nothing. */
        if (r->total.no_response - before >= o->n)
            break;
    }
    code = rf_probe_run_finish(r, setup_failed);
out:
    for (size_t k = 0; k < o->nexps; k++)
        rf_probe_exp_free(&o->exps[k]);
    rf_probe_run_free(r);
    free(o);
    free(r);
    return code;
}

int rf_probe_main(int argc, char **argv)
{
    return rf_probe_run(argc, argv, stdout, stderr);
}
