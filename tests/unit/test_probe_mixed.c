/* Unit tests of mixed bursts and burst evidence: request files, --request
 * arguments, groups' request bytes and release order, group-scoped
 * expectations, and --server-time stamps. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/testsrv.h"
#include "probe/burst.h"
#include "probe/expect.h"
#include "probe/reqfile.h"
#include "probe/request.h"
#include "probe/servertime.h"
#include "probe/template.h"
#include "unit.h"

#define UNIT(n) void n(void);
#include "list.probemixed.h"
#undef UNIT

static int parse(struct rf_probe_reqfile *f, const char *s, char *err, size_t errlen)
{
    return rf_probe_reqfile_parse(f, s, strlen(s), err, errlen);
}

void test_probemixed_reqfile_burp(void)
{
    char err[256];
    struct rf_probe_reqfile f;
    /* As Burp's "copy to file" saves it: CRLF, a stale Content-Length, HTTP/2. */
    const char *s = "POST /api/redeem?x=1 HTTP/2\r\n"
                    "Host: staging.example.com\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: 999\r\n"
                    "Connection: keep-alive\r\n"
                    "Cookie: a=b; c=d\r\n"
                    "\r\n"
                    "{\"code\":\"X\"}\r\n";
    CHECK(parse(&f, s, err, sizeof(err)) == 0);
    CHECK_STR(f.method, "POST");
    CHECK_STR(f.target, "/api/redeem?x=1");
    CHECK_INT(f.absolute, 0);
    CHECK_INT(f.nhdr, 3);
    CHECK_STR(f.hdr[0].name, "Host");
    CHECK_STR(f.host, "staging.example.com");
    CHECK_STR(f.hdr[2].value, "a=b; c=d");
    CHECK_INT(f.body_len, 12);
    CHECK(memcmp(f.body, "{\"code\":\"X\"}", 12) == 0);
    rf_probe_reqfile_free(&f);
}

void test_probemixed_reqfile_http(void)
{
    char err[256];
    struct rf_probe_reqfile f;
    /* A .http file: comments, no version, LF, a second request after ###. */
    const char *s = "# @name redeem\n"
                    "// the coupon\n"
                    "\n"
                    "POST http://127.0.0.1:8080/v1/redeem\n"
                    "Content-Type: application/json\n"
                    "\n"
                    "{\"code\":\"{{round}}\"}\n"
                    "line two\n"
                    "\n"
                    "### next\n"
                    "GET /other\n";
    CHECK(parse(&f, s, err, sizeof(err)) == 0);
    CHECK_STR(f.target, "http://127.0.0.1:8080/v1/redeem");
    CHECK_INT(f.absolute, 1);
    CHECK(f.host == NULL);
    CHECK_INT(f.body_len, strlen("{\"code\":\"{{round}}\"}\nline two\n"));
    rf_probe_reqfile_free(&f);
    /* A head alone, without a final line end. */
    CHECK(parse(&f, "GET /x", err, sizeof(err)) == 0);
    CHECK_STR(f.target, "/x");
    CHECK(f.body == NULL && f.nhdr == 0);
    rf_probe_reqfile_free(&f);
}

void test_probemixed_reqfile_errors(void)
{
    static const struct {
        const char *in, *why;
    } bad[] = {
        {"", "no request line"},
        {"# only a comment\n\n", "no request line"},
        {"POST\n", "want \"METHOD TARGET"},
        {"POST /x HTTP/1.1 extra\n", "junk after the target"},
        {"POST x.example.com/y\n", "target must be"},
        {"POST /x\nNo colon here\n", "line 2: want \"Name: value\""},
        /* found by the fuzzer: the message quoted past the end of the input */
        {"GET /a\nA", "line 2: want \"Name: value\", got \"A\""},
        {"POST /x\nA: b\n  folded\n", "line 3: folded"},
        {"POST /x\nTransfer-Encoding: chunked\n\n1\r\na\r\n0\r\n", "Transfer-Encoding"},
        {"POST /x\nA: b\x01\n", "control character"},
        {"PO\x01ST /x\n", "control character"},
    };
    char err[256];
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        struct rf_probe_reqfile f;
        err[0] = '\0';
        int rc = parse(&f, bad[k].in, err, sizeof(err));
        if (rc != -1 || !strstr(err, bad[k].why))
            fprintf(stderr, "  case %zu: rc %d err \"%s\"\n", k, rc, err);
        CHECK(rc == -1 && strstr(err, bad[k].why));
    }
}

void test_probemixed_reqarg_split(void)
{
    char name[RF_PROBE_GROUP_NAME_MAX + 1], err[256];
    const char *path;
    size_t pl, count;
    CHECK(rf_probe_reqarg_split("req/redeem.http:10", 20, 100, name, &path, &pl, &count, err,
                                sizeof(err)) == 0);
    CHECK_STR(name, "redeem");
    CHECK_INT(count, 10);
    CHECK(pl == strlen("req/redeem.http") && !strncmp(path, "req/redeem.http", pl));
    CHECK(rf_probe_reqarg_split("a.b=c/checkout.txt", 20, 100, name, &path, &pl, &count, err,
                                sizeof(err)) == 0);
    CHECK_STR(name, "checkout"); /* the '=' is in a directory name */
    CHECK_INT(count, 20);
    CHECK(rf_probe_reqarg_split("cp=./x:y.http:3", 20, 100, name, &path, &pl, &count, err,
                                sizeof(err)) == 0);
    CHECK_STR(name, "cp");
    CHECK_INT(count, 3);
    CHECK(pl == strlen("./x:y.http"));
    CHECK(rf_probe_reqarg_split("a.http:0", 20, 100, name, &path, &pl, &count, err, sizeof(err)) ==
          -1);
    CHECK(strstr(err, "COUNT wants 1..100"));
    CHECK(rf_probe_reqarg_split("a.http:101", 20, 100, name, &path, &pl, &count, err,
                                sizeof(err)) == -1);
    CHECK(rf_probe_reqarg_split("b@d=a.http", 20, 100, name, &path, &pl, &count, err,
                                sizeof(err)) == -1);
    CHECK(rf_probe_reqarg_split(".hidden", 20, 100, name, &path, &pl, &count, err, sizeof(err)) ==
          -1);
    CHECK(strstr(err, "write NAME=FILE"));
}

/* Request 0 of round 7 from a file, aimed at base with -H lines extra. */
static char *build_file(const char *file, const char *base, const char *const *extra, size_t nextra,
                        char *err, size_t errlen)
{
    struct rf_probe_reqfile f;
    struct rf_probe_reqspec s;
    struct rf_probe_vars vs;
    char method[40];
    char *out = NULL;
    memset(&s, 0, sizeof(s));
    memset(&vs, 0, sizeof(vs));
    if (rf_probe_reqfile_parse(&f, file, strlen(file), err, errlen) < 0)
        return NULL;
    if (rf_probe_reqfile_spec(&f, base, extra, nextra, &vs, &s, method, err, errlen) == 0) {
        struct rf_probe_buf url, b;
        struct rf_probe_url u;
        struct rf_probe_tpl_ctx c = {.i = 0, .round = 7, .vars = &vs};
        rf_probe_buf_init(&url, RF_PROBE_URL_MAX);
        rf_probe_buf_init(&b, RF_PROBE_HEAD_MAX + RF_PROBE_BODY_MAX);
        if (rf_probe_request_build(&s, method, 1, &s.url, &c, &url, &u, &b, err, errlen) == 0)
            out = b.p;
        else
            rf_probe_buf_free(&b);
        rf_probe_buf_free(&url);
    }
    rf_probe_reqspec_free(&s);
    rf_probe_reqfile_free(&f);
    return out;
}

void test_probemixed_spec(void)
{
    char err[256];
    const char *file = "POST https://staging.example.com/v1/redeem HTTP/1.1\r\n"
                       "Host: staging.example.com\r\n"
                       "Authorization: Bearer stale\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 1\r\n"
                       "\r\n"
                       "{\"code\":\"C{{round}}\"}";
    const char *extra[] = {"authorization: Bearer fresh"};
    /* With a URL: its host and port, the file's path; -H replaces the file's. */
    char *req = build_file(file, "http://127.0.0.1:8080/ignored", extra, 1, err, sizeof(err));
    if (!req)
        fprintf(stderr, "  %s\n", err);
    CHECK(req != NULL);
    CHECK(strstr(req, "POST /v1/redeem HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n") == req);
    CHECK(strstr(req, "\r\nauthorization: Bearer fresh\r\n"));
    CHECK(!strstr(req, "stale"));
    CHECK(!strstr(req, "staging"));
    CHECK(strstr(req, "\r\nContent-Length: 13\r\n"));
    CHECK(strstr(req, "\r\n\r\n{\"code\":\"C7\"}"));
    free(req);
    /* Without a URL, an origin-form target goes to the Host header's host. */
    req = build_file("GET /a HTTP/1.1\nHost: 127.0.0.1:9\n\n", NULL, NULL, 0, err, sizeof(err));
    CHECK(req != NULL);
    CHECK(strstr(req, "GET /a HTTP/1.1\r\n") == req);
    CHECK(strstr(req, "\r\nHost: 127.0.0.1:9\r\n"));
    free(req);
    req = build_file("GET /a\n", NULL, NULL, 0, err, sizeof(err));
    CHECK(req == NULL && strstr(err, "needs a Host header or a URL"));
    /* Templates are compiled: a typo is an error before anything is sent. */
    req = build_file("POST /a\nHost: h\n\n{{nope}}", NULL, NULL, 0, err, sizeof(err));
    CHECK(req == NULL && strstr(err, "body: unknown placeholder"));
}

void test_probemixed_interleave(void)
{
    unsigned out[16];
    size_t a[] = {2, 1};
    rf_probe_groups_interleave(a, 2, out);
    CHECK(out[0] == 0 && out[1] == 1 && out[2] == 0);
    size_t b[] = {10, 1};
    rf_probe_groups_interleave(b, 2, out);
    for (size_t k = 0; k < 11; k++)
        CHECK_INT(out[k], k == 5 ? 1 : 0);
    size_t c[] = {3, 3, 1};
    rf_probe_groups_interleave(c, 3, out);
    size_t seen[3] = {0};
    for (size_t k = 0; k < 7; k++)
        seen[out[k]]++;
    CHECK(seen[0] == 3 && seen[1] == 3 && seen[2] == 1);
    CHECK(out[0] != out[1]); /* never two of a group first when another is as big */
    CHECK_INT(out[4], 2);
}

void test_probemixed_exp_scope(void)
{
    char err[384];
    enum { N = 5 };
    struct rf_burst_res res[N];
    json_t *bodies[N];
    /* redeem: 200 200 409; checkout: 200 200 */
    const unsigned group_of[N] = {0, 1, 0, 1, 0};
    const size_t group_n[2] = {3, 2};
    ts_fake_res(&res[0], 200, "{\"id\":\"a\"}");
    ts_fake_res(&res[1], 200, "{\"id\":\"k\"}");
    ts_fake_res(&res[2], 200, "{\"id\":\"b\"}");
    ts_fake_res(&res[3], 200, "{\"id\":\"k\"}");
    ts_fake_res(&res[4], 409, NULL);
    for (int i = 0; i < N; i++)
        bodies[i] = rf_probe_body_json(&res[i]);
    struct rf_probe_view v = {
        .res = res, .n = N, .bodies = bodies, .group_of = group_of, .group_n = group_n};
    struct {
        enum rf_probe_exp_kind kind;
        const char *arg;
        unsigned ix;
        int pass;
        long got, want;
    } cases[] = {
        {RF_PROBE_EXP_STATUS, "redeem:200=1", 0, 0, 2, 1},
        {RF_PROBE_EXP_STATUS, "checkout:200=N", 1, 1, 2, 2},
        {RF_PROBE_EXP_STATUS, "redeem:409=N-2", 0, 1, 1, 1},
        {RF_PROBE_EXP_STATUS, "200=4", 0, 1, 4, 4},
        {RF_PROBE_EXP_DISTINCT, "checkout:.id=1", 1, 1, 1, 1},
        {RF_PROBE_EXP_DISTINCT, "redeem:.id=1", 0, 0, 2, 1},
        {RF_PROBE_EXP_DISTINCT, ".id=3", 0, 1, 3, 3},
    };
    int ok = 1;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]) && ok; k++) {
        struct rf_probe_exp e;
        struct rf_probe_exp_res r;
        if (rf_probe_exp_parse(&e, cases[k].kind, cases[k].arg, err, sizeof(err)) < 0) {
            fprintf(stderr, "  case %zu: %s\n", k, err);
            ok = 0;
            break;
        }
        e.group_ix = cases[k].ix;
        rf_probe_exp_eval(&e, &v, &r);
        rf_probe_exp_free(&e);
        if (r.pass != cases[k].pass || r.got != cases[k].got || r.want != cases[k].want) {
            fprintf(stderr, "  case %zu: pass %d got %ld want %ld\n", k, r.pass, r.got, r.want);
            ok = 0;
        }
    }
    struct rf_probe_exp e;
    if (ok) {
        /* The spec keeps the scope for the report; a path is never a group. */
        ok = rf_probe_exp_parse(&e, RF_PROBE_EXP_STATUS, "redeem:2xx=1", err, sizeof(err)) == 0 &&
             !strcmp(e.group, "redeem") && !strcmp(e.spec, "redeem:2xx=1") && e.status == 2;
        rf_probe_exp_free(&e);
    }
    if (ok) {
        ok = rf_probe_exp_parse(&e, RF_PROBE_EXP_DISTINCT, ".a:b=1", err, sizeof(err)) == 0 &&
             e.group[0] == '\0';
        rf_probe_exp_free(&e);
    }
    for (int i = 0; i < N; i++)
        json_decref(bodies[i]);
    rf_burst_res_free(res, N);
    CHECK(ok);
}

void test_probemixed_servertime(void)
{
    uint64_t ns = 0;
    CHECK(rf_probe_servertime_parse("1733240000.123456", 17, &ns) == 0);
    CHECK(ns == 1733240000123456000ull);
    CHECK(rf_probe_servertime_parse(" 1733240000 ", 12, &ns) == 0);
    CHECK(ns == 1733240000000000000ull);
    CHECK(rf_probe_servertime_parse("1733240000123", 13, &ns) == 0); /* ms */
    CHECK(ns == 1733240000123000000ull);
    CHECK(rf_probe_servertime_parse("1733240000123456.5", 18, &ns) == 0); /* µs */
    CHECK(ns == 1733240000123456500ull);
    CHECK(rf_probe_servertime_parse("1733240000123456789", 19, &ns) == 0); /* ns */
    CHECK(ns == 1733240000123456789ull);
    CHECK(rf_probe_servertime_parse("12.0000000019", 13, &ns) == 0); /* 9 decimals kept */
    CHECK(ns == 12000000001ull);
    static const char *const bad[] = {"",
                                      "abc",
                                      "1.",
                                      ".5",
                                      "1e9",
                                      "-1",
                                      "1 2",
                                      "99999999999999999999",
                                      "Tue, 03 Dec 2026 10:00:00 GMT"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        CHECK(rf_probe_servertime_parse(bad[k], strlen(bad[k]), &ns) == -1);

    struct rf_burst_res res[4];
    static const char *const heads[] = {
        "HTTP/1.1 200 OK\r\nX-Arrival: 100.000010\r\n\r\n",
        "HTTP/1.1 200 OK\r\nx-arrival: 100.000250\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Arrival: soon\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\n",
    };
    for (int i = 0; i < 4; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        rf_httpres_init(&res[i].http, 0);
        CHECK(rf_httpres_feed(&res[i].http, heads[i], strlen(heads[i])) != RF_HTTPRES_ERROR);
    }
    uint64_t spread = 0;
    CHECK_INT(rf_probe_servertime_spread(res, 4, "X-Arrival", &spread), 2);
    CHECK_INT(spread, 240000);
    CHECK_INT(rf_probe_servertime_spread(res, 1, "X-Arrival", &spread), 1);
    rf_burst_res_free(res, 4);
}
