/* Unit tests of the probe command line: templates, variables, counts, JSON
 * paths, expectations, URL parsing, request bytes, statistics, and whole runs
 * of rf_probe_run against a small in-process server. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/testsrv.h"
#include "probe/burst.h"
#include "probe/expect.h"
#include "probe/probe.h"
#include "probe/report.h"
#include "probe/request.h"
#include "probe/template.h"
#include "unit.h"

#define UNIT(n) void n(void);
#include "list.probecli.h"
#undef UNIT

/* ---- helpers --------------------------------------------------------------- */

/* Expands src for request i of round rnd; returns a malloc'd string or NULL
 * (with err filled) when compiling or expanding fails. */
static char *expand(const char *src, size_t i, unsigned rnd, const struct rf_probe_vars *vs,
                    size_t max, char *err, size_t errlen)
{
    struct rf_probe_tpl t;
    struct rf_probe_buf b;
    struct rf_probe_tpl_ctx c = {.i = i, .round = rnd, .vars = vs};
    if (rf_probe_tpl_compile(&t, src, strlen(src), vs, err, errlen) < 0)
        return NULL;
    rf_probe_buf_init(&b, max);
    int rc = rf_probe_tpl_expand(&t, &c, &b, err, errlen);
    rf_probe_tpl_free(&t);
    if (rc < 0) {
        rf_probe_buf_free(&b);
        return NULL;
    }
    return b.p;
}

static int contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

/* ---- templates --------------------------------------------------------------- */

void test_probecli_tpl_literal(void)
{
    char err[256];
    struct rf_probe_tpl t;
    const char *s = "{\"a\":{\"b\":[1,2]}} } { {x} }";
    CHECK_INT(rf_probe_tpl_compile(&t, s, strlen(s), NULL, err, sizeof(err)), 0);
    CHECK_INT(t.dynamic, 0);
    rf_probe_tpl_free(&t);
    char *out = expand(s, 3, 1, NULL, 1024, err, sizeof(err));
    CHECK_STR(out, s);
    free(out);
    out = expand("", 0, 1, NULL, 16, err, sizeof(err));
    CHECK_STR(out, "");
    free(out);
}

void test_probecli_tpl_placeholders(void)
{
    char err[256];
    char *out = expand("u{{i}}-r{{round}}-{{ i }}@x/{{i}}", 7, 2, NULL, 1024, err, sizeof(err));
    CHECK_STR(out, "u7-r2-7@x/7");
    free(out);
    struct rf_probe_tpl t;
    CHECK_INT(rf_probe_tpl_compile(&t, "{{round}}", 9, NULL, err, sizeof(err)), 0);
    CHECK_INT(t.dynamic, 1);
    rf_probe_tpl_free(&t);
}

void test_probecli_tpl_uuid_rand(void)
{
    char err[256];
    char *a = expand("{{uuid}}", 0, 1, NULL, 64, err, sizeof(err));
    char *b = expand("{{uuid}}", 0, 1, NULL, 64, err, sizeof(err));
    char *r = expand("{{rand}}|{{rand}}", 0, 1, NULL, 64, err, sizeof(err));
    int ok = a && b && r;
    if (ok) {
        ok = strlen(a) == 36 && a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-' &&
             a[14] == '4' && strchr("89ab", a[19]) && strcmp(a, b) != 0;
        for (size_t k = 0; ok && k < 36; k++)
            ok = a[k] == '-' || strchr("0123456789abcdef", a[k]);
        char *bar = strchr(r, '|');
        ok = ok && bar && bar > r && bar[1];
        for (char *p = r; ok && *p; p++)
            ok = (*p >= '0' && *p <= '9') || p == bar;
        ok = ok && strcmp(r, bar + 1) != 0; /* 2^-63 chance of a false failure */
        if (ok)
            *bar = '\0';
        ok = ok && strlen(r) <= 19;
    }
    free(a);
    free(b);
    free(r);
    CHECK(ok);
}

void test_probecli_tpl_errors(void)
{
    char err[256];
    struct rf_probe_vars vs = {0};
    CHECK(expand("a{{nope}}b", 0, 1, &vs, 64, err, sizeof(err)) == NULL);
    CHECK(contains(err, "unknown placeholder {{nope}}"));
    CHECK(expand("a{{i", 0, 1, &vs, 64, err, sizeof(err)) == NULL);
    CHECK(contains(err, "unterminated"));
    CHECK(expand("{{var.who}}", 0, 1, &vs, 64, err, sizeof(err)) == NULL);
    CHECK(contains(err, "no --var who"));
    CHECK(expand("{{}}", 0, 1, &vs, 64, err, sizeof(err)) == NULL);
    CHECK(expand("{{var.}}", 0, 1, &vs, 64, err, sizeof(err)) == NULL);
}

void test_probecli_tpl_bound(void)
{
    char err[256];
    CHECK(expand("0123456789", 0, 1, NULL, 9, err, sizeof(err)) == NULL);
    CHECK(contains(err, "exceeds 9 bytes"));
    char *ok = expand("012345678{{i}}", 5, 1, NULL, 10, err, sizeof(err));
    CHECK_STR(ok, "0123456785");
    free(ok);
    CHECK(expand("012345678{{i}}", 10, 1, NULL, 10, err, sizeof(err)) == NULL);

    struct rf_probe_buf b;
    rf_probe_buf_init(&b, 4);
    CHECK_INT(rf_probe_buf_adds(&b, "abcd"), 0);
    CHECK_INT(rf_probe_buf_add(&b, "e", 1), -1);
    CHECK_INT(rf_probe_buf_addf(&b, "%d", 1), -1);
    CHECK_STR(b.p, "abcd");
    CHECK(b.cap <= 5);
    rf_probe_buf_free(&b);
}

/* --var NAME=@FILE with a file holding content; rf_probe_vars_add's result,
 * or -2 when the file could not be made. */
static int add_var_file(struct rf_probe_vars *vs, const char *name, const char *content, char *err,
                        size_t errlen)
{
    char *path = ts_temp_file("probecli", content), spec[96];
    if (!path)
        return -2;
    snprintf(spec, sizeof(spec), "%s=@%s", name, path);
    int rc = rf_probe_vars_add(vs, spec, err, errlen);
    unlink(path);
    free(path);
    return rc;
}

void test_probecli_vars_file(void)
{
    char err[256];
    struct rf_probe_vars vs = {0};
    CHECK_INT(add_var_file(&vs, "id", "alice\r\n\nbob\ncarol", err, sizeof(err)), 0);
    CHECK_INT(rf_probe_vars_add(&vs, "k=v=w", err, sizeof(err)), 0);
    CHECK_INT(vs.v[0].nvals, 3);
    const char *want[] = {"alice/v=w", "bob/v=w", "carol/v=w", "alice/v=w"};
    for (size_t i = 0; i < 4; i++) {
        char *out = expand("{{var.id}}/{{var.k}}", i, 1, &vs, 64, err, sizeof(err));
        int same = out && strcmp(out, want[i]) == 0;
        free(out);
        if (!same)
            rf_probe_vars_free(&vs);
        CHECK(same);
    }
    struct rf_probe_tpl t;
    CHECK_INT(rf_probe_tpl_compile(&t, "{{var.k}}", 9, &vs, err, sizeof(err)), 0);
    CHECK_INT(t.dynamic, 0); /* one value: the same in every request */
    rf_probe_tpl_free(&t);
    rf_probe_vars_free(&vs);
}

void test_probecli_vars_errors(void)
{
    char err[256];
    struct rf_probe_vars vs = {0};
    CHECK_INT(rf_probe_vars_add(&vs, "novalue", err, sizeof(err)), -1);
    CHECK_INT(rf_probe_vars_add(&vs, "=x", err, sizeof(err)), -1);
    CHECK_INT(rf_probe_vars_add(&vs, "a.b=x", err, sizeof(err)), -1);
    CHECK(contains(err, "bad variable name"));
    CHECK_INT(rf_probe_vars_add(&vs, "a=1", err, sizeof(err)), 0);
    CHECK_INT(rf_probe_vars_add(&vs, "a=2", err, sizeof(err)), -1);
    CHECK(contains(err, "given twice"));
    CHECK_INT(rf_probe_vars_add(&vs, "f=@/nonexistent/rf-probe", err, sizeof(err)), -1);
    CHECK(contains(err, "cannot open"));
    CHECK_INT(add_var_file(&vs, "e", "\n\r\n\n", err, sizeof(err)), -1);
    CHECK(contains(err, "no non-empty line"));
    CHECK_INT(vs.n, 1);
    rf_probe_vars_free(&vs);
}

/* ---- counts, paths, expectations ---------------------------------------------- */

void test_probecli_count(void)
{
    char err[128];
    struct rf_probe_count c;
    CHECK_INT(rf_probe_count_parse(&c, "5", err, sizeof(err)), 0);
    CHECK_INT(rf_probe_count_value(&c, 64), 5);
    CHECK_INT(rf_probe_count_parse(&c, "0", err, sizeof(err)), 0);
    CHECK_INT(rf_probe_count_value(&c, 64), 0);
    CHECK_INT(rf_probe_count_parse(&c, "N", err, sizeof(err)), 0);
    CHECK_INT(rf_probe_count_value(&c, 64), 64);
    CHECK_INT(rf_probe_count_parse(&c, "N-1", err, sizeof(err)), 0);
    CHECK_INT(rf_probe_count_value(&c, 64), 63);
    CHECK_INT(rf_probe_count_parse(&c, "n-3", err, sizeof(err)), 0);
    CHECK_INT(rf_probe_count_value(&c, 2), -1);
    const char *bad[] = {
        "", "N+1", "-1", "x", "N-", "5x", "N-x", " 5", "N-+1", "1e3", "99999999999999999999"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        if (rf_probe_count_parse(&c, bad[k], err, sizeof(err)) != -1)
            fprintf(stderr, "  accepted count \"%s\"\n", bad[k]);
        CHECK(rf_probe_count_parse(&c, bad[k], err, sizeof(err)) == -1);
    }
    CHECK(contains(err, "N-k"));
}

void test_probecli_jpath(void)
{
    char err[160];
    json_t *doc = json_loads("{\"user\":{\"id\":\"u1\"},\"data\":[{\"id\":1},{\"id\":2}],"
                             "\"m\":{\"0\":\"zero\"}}",
                             0, NULL);
    CHECK(doc != NULL);
    struct {
        const char *path;
        const char *want; /* compact JSON, or NULL for absent */
    } cases[] = {
        {".user.id", "\"u1\""}, {".data.0.id", "1"},  {".data[1].id", "2"}, {".data[-1].id", "2"},
        {".data.-2.id", "1"},   {".data.2.id", NULL}, {".data[-3]", NULL},  {".m.0", "\"zero\""},
        {".m[0]", "\"zero\""},  {".user.id.x", NULL}, {".nope", NULL},      {".data.x", NULL},
        {".", NULL /* root */},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct rf_probe_jpath p;
        int rc = rf_probe_jpath_parse(&p, cases[k].path, strlen(cases[k].path), err, sizeof(err));
        if (rc != 0) {
            json_decref(doc);
            fprintf(stderr, "  path %s: %s\n", cases[k].path, err);
        }
        CHECK_INT(rc, 0);
        json_t *v = rf_probe_jpath_get(&p, doc);
        char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        int ok = k == sizeof(cases) / sizeof(cases[0]) - 1
                     ? v == doc
                     : (cases[k].want ? s && strcmp(s, cases[k].want) == 0 : v == NULL);
        if (!ok)
            fprintf(stderr, "  path %s gave %s\n", cases[k].path, s ? s : "(absent)");
        free(s);
        rf_probe_jpath_free(&p);
        if (!ok)
            json_decref(doc);
        CHECK(ok);
    }
    json_decref(doc);
    const char *bad[] = {"",     "user", "..",    ".a.",  ".a[",  ".a[x]",
                         ".a[]", "a.b",  ".a..b", ".a[1", ".a[-]"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        struct rf_probe_jpath p;
        CHECK_INT(rf_probe_jpath_parse(&p, bad[k], strlen(bad[k]), err, sizeof(err)), -1);
    }
    char deep[200];
    for (int k = 0; k < 40; k++)
        memcpy(deep + 2 * k, ".a", 2);
    deep[80] = '\0';
    struct rf_probe_jpath p;
    CHECK_INT(rf_probe_jpath_parse(&p, deep, strlen(deep), err, sizeof(err)), -1);
    CHECK(contains(err, "deeper"));
}

void test_probecli_exp_parse(void)
{
    char err[384];
    struct rf_probe_exp e;
    CHECK_INT(rf_probe_exp_parse(&e, RF_PROBE_EXP_STATUS, "201=1", err, sizeof(err)), 0);
    CHECK_INT(e.status, 201);
    CHECK_INT(rf_probe_exp_parse(&e, RF_PROBE_EXP_STATUS, "2xx=N", err, sizeof(err)), 0);
    CHECK_INT(e.status, 2);
    CHECK_INT(e.count.of_n, 1);
    CHECK_INT(rf_probe_exp_parse(&e, RF_PROBE_EXP_STATUS, "20=1", err, sizeof(err)), -1);
    CHECK(contains(err, "bad status"));
    CHECK_INT(rf_probe_exp_parse(&e, RF_PROBE_EXP_STATUS, "201", err, sizeof(err)), -1);
    CHECK_INT(rf_probe_exp_parse(&e, RF_PROBE_EXP_STATUS, "600=1", err, sizeof(err)), -1);
    CHECK_INT(rf_probe_exp_parse(&e, RF_PROBE_EXP_STATUS, "201=M", err, sizeof(err)), -1);
    CHECK_INT(rf_probe_exp_parse(&e, RF_PROBE_EXP_DISTINCT, ".user.id=N-1", err, sizeof(err)), 0);
    CHECK_STR(e.path.text, ".user.id");
    CHECK_INT(e.count.k, 1);
    rf_probe_exp_free(&e);
    CHECK_INT(rf_probe_exp_parse(&e, RF_PROBE_EXP_DISTINCT, "user.id=1", err, sizeof(err)), -1);
    CHECK(contains(err, "must start with '.'"));
    CHECK_INT(rf_probe_exp_parse(&e, RF_PROBE_EXP_VERIFY_COUNT, ".data=3", err, sizeof(err)), 0);
    rf_probe_exp_free(&e);
    CHECK_INT(rf_probe_exp_parse(&e, RF_PROBE_EXP_NO5XX, NULL, err, sizeof(err)), 0);
}

void test_probecli_exp_eval(void)
{
    char err[384];
    enum { N = 6 };
    struct rf_burst_res res[N], vres;
    json_t *bodies[N];
    ts_fake_res(&res[0], 201, "{\"user\":{\"id\":\"a\"}}");
    ts_fake_res(&res[1], 200, "{\"user\":{\"id\":\"a\"}}");
    ts_fake_res(&res[2], 200, "{\"user\":{\"id\":\"b\"}}");
    ts_fake_res(&res[3], 409, "{\"code\":\"taken\"}");
    ts_fake_res(&res[4], 503, "not json");
    ts_fake_res(&res[5], 0, NULL);
    res[5].err = ECONNRESET;
    snprintf(res[5].err_msg, sizeof(res[5].err_msg), "recv: reset");
    for (int i = 0; i < N; i++)
        bodies[i] = rf_probe_body_json(&res[i]);
    ts_fake_res(&vres, 200, "{\"data\":[1,2,3],\"total\":7,\"s\":\"x\"}");
    struct rf_probe_view v = {.res = res,
                              .n = N,
                              .bodies = bodies,
                              .verify = &vres,
                              .verify_body = rf_probe_body_json(&vres)};
    struct {
        enum rf_probe_exp_kind kind;
        const char *arg;
        int pass;
        long got;
        const char *detail;
    } cases[] = {
        {RF_PROBE_EXP_STATUS, "201=1", 1, 1, NULL},
        {RF_PROBE_EXP_STATUS, "200=N-4", 1, 2, NULL},
        {RF_PROBE_EXP_STATUS, "2xx=N", 0, 3, NULL},
        {RF_PROBE_EXP_STATUS, "5xx=1", 1, 1, NULL},
        {RF_PROBE_EXP_NO5XX, NULL, 0, 2, "1 without a response"},
        {RF_PROBE_EXP_DISTINCT, ".user.id=1", 0, 2, "\"a\", \"b\"; 3 responses without .user.id"},
        {RF_PROBE_EXP_DISTINCT, ".code=1", 1, 1, "\"taken\""},
        {RF_PROBE_EXP_VERIFY_COUNT, ".data=3", 1, 3, NULL},
        {RF_PROBE_EXP_VERIFY_COUNT, ".total=7", 1, 7, NULL},
        {RF_PROBE_EXP_VERIFY_COUNT, ".s=1", 0, -1, "neither an array nor an integer"},
        {RF_PROBE_EXP_VERIFY_COUNT, ".nope=1", 0, -1, "missing"},
    };
    int ok = 1;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]) && ok; k++) {
        struct rf_probe_exp e;
        struct rf_probe_exp_res r;
        if (rf_probe_exp_parse(&e, cases[k].kind, cases[k].arg, err, sizeof(err)) < 0) {
            ok = 0;
            break;
        }
        rf_probe_exp_eval(&e, &v, &r);
        rf_probe_exp_free(&e);
        if (r.pass != cases[k].pass || r.got != cases[k].got ||
            (cases[k].detail && !contains(r.detail, cases[k].detail))) {
            fprintf(stderr, "  case %zu: pass %d got %ld detail \"%s\"\n", k, r.pass, r.got,
                    r.detail);
            ok = 0;
        }
    }
    /* A verify that answered 401 fails every verify-count. */
    if (ok) {
        struct rf_probe_exp e;
        struct rf_probe_exp_res r;
        vres.http.status = 401;
        rf_probe_exp_parse(&e, RF_PROBE_EXP_VERIFY_COUNT, ".data=3", err, sizeof(err));
        rf_probe_exp_eval(&e, &v, &r);
        rf_probe_exp_free(&e);
        ok = !r.pass && contains(r.detail, "answered 401");
    }
    for (int i = 0; i < N; i++)
        json_decref(bodies[i]);
    json_decref(v.verify_body);
    rf_burst_res_free(res, N);
    rf_burst_res_free(&vres, 1);
    CHECK(ok);
}

/* ---- URLs and requests ----------------------------------------------------- */

void test_probecli_url_parse(void)
{
    char err[256];
    struct rf_probe_url u;
    CHECK_INT(rf_probe_url_parse("http://127.0.0.1:8080/v1/users?x=1#frag", &u, err, sizeof(err)),
              0);
    CHECK_STR(u.host, "127.0.0.1");
    CHECK_STR(u.port, "8080");
    CHECK_STR(u.authority, "127.0.0.1:8080");
    CHECK_INT(u.path_len, strlen("/v1/users?x=1"));
    CHECK(strncmp(u.path, "/v1/users?x=1", u.path_len) == 0);
    CHECK_INT(rf_probe_url_parse("HTTP://[::1]:9/", &u, err, sizeof(err)), 0);
    CHECK_STR(u.host, "::1");
    CHECK_STR(u.port, "9");
    CHECK_STR(u.authority, "[::1]:9");
    CHECK_INT(rf_probe_url_parse("http://example.com", &u, err, sizeof(err)), 0);
    CHECK_STR(u.port, "80");
    CHECK_INT(u.path_len, 0);
    CHECK_INT(rf_probe_url_parse("http://h?q=1", &u, err, sizeof(err)), 0);
    CHECK_STR(u.host, "h");
    CHECK(u.path[0] == '?');
    CHECK_INT(u.tls, 0);
    CHECK_INT(rf_probe_url_parse("https://example.com/x", &u, err, sizeof(err)), 0);
    CHECK_INT(u.tls, 1);
    CHECK_STR(u.port, "443");
    CHECK_STR(u.authority, "example.com");
    CHECK_INT(rf_probe_url_parse("HTTPS://[::1]:8443", &u, err, sizeof(err)), 0);
    CHECK_INT(u.tls, 1);
    CHECK_STR(u.port, "8443");
    struct {
        const char *url, *why;
    } bad[] = {
        {"https:///", "no host"},
        {"ftp://x/", "must start with http://"},
        {"x:80/", "must start with http://"},
        {"http:///p", "no host"},
        {"http://h:0/", "bad port"},
        {"http://h:65536/", "bad port"},
        {"http://h:12a/", "bad port"},
        {"http://h:/", "bad port"},
        {"http://u:p@h/", "not supported"},
        {"http://h/a b", "space or control"},
        {"http://[::1/", "unterminated"},
        {"http://[::1]x/", "junk after ]"},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int rc = rf_probe_url_parse(bad[k].url, &u, err, sizeof(err));
        if (rc != -1 || !contains(err, bad[k].why))
            fprintf(stderr, "  url %s: rc %d err \"%s\"\n", bad[k].url, rc, err);
        CHECK(rc == -1 && contains(err, bad[k].why));
    }
}

/* Builds request i of round 1 from a spec; returns the raw bytes or NULL. */
static char *build(struct rf_probe_reqspec *s, const char *method, int with_body, size_t i,
                   const struct rf_probe_vars *vs, char *err, size_t errlen)
{
    struct rf_probe_buf url, out;
    struct rf_probe_url u;
    struct rf_probe_tpl_ctx c = {.i = i, .round = 1, .vars = vs};
    rf_probe_buf_init(&url, RF_PROBE_URL_MAX);
    rf_probe_buf_init(&out, RF_PROBE_HEAD_MAX + RF_PROBE_BODY_MAX);
    int rc = rf_probe_request_build(s, method, with_body, &s->url, &c, &url, &u, &out, err, errlen);
    rf_probe_buf_free(&url);
    if (rc < 0) {
        rf_probe_buf_free(&out);
        return NULL;
    }
    return out.p;
}

void test_probecli_request_build(void)
{
    char err[256];
    struct rf_probe_vars vs = {0};
    struct rf_probe_reqspec s;
    memset(&s, 0, sizeof(s));
    const char *url = "http://127.0.0.1:8080/v1/users/{{i}}";
    const char *body = "{\"email\":\"u{{i}}@x\"}";
    CHECK_INT(rf_probe_vars_add(&vs, "tok=abc", err, sizeof(err)), 0);
    CHECK_INT(rf_probe_tpl_compile(&s.url, url, strlen(url), &vs, err, sizeof(err)), 0);
    CHECK_INT(rf_probe_tpl_compile(&s.body, body, strlen(body), &vs, err, sizeof(err)), 0);
    s.has_body = 1;
    CHECK_INT(
        rf_probe_reqspec_header(&s, "Authorization:   Bearer {{var.tok}}", &vs, err, sizeof(err)),
        0);
    char *r = build(&s, "POST", 1, 3, &vs, err, sizeof(err));
    CHECK_STR(r, "POST /v1/users/3 HTTP/1.1\r\n"
                 "Host: 127.0.0.1:8080\r\n"
                 "User-Agent: racefree-probe\r\n"
                 "Authorization: Bearer abc\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: 16\r\n"
                 "Connection: close\r\n"
                 "\r\n"
                 "{\"email\":\"u3@x\"}");
    free(r);
    /* The --verify GET: same headers, no body. */
    r = build(&s, "GET", 0, 0, &vs, err, sizeof(err));
    CHECK_STR(r, "GET /v1/users/0 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                 "User-Agent: racefree-probe\r\nAuthorization: Bearer abc\r\n"
                 "Connection: close\r\n\r\n");
    free(r);
    /* Caller's headers replace the defaults. */
    CHECK_INT(rf_probe_reqspec_header(&s, "content-type: text/plain", &vs, err, sizeof(err)), 0);
    CHECK_INT(rf_probe_reqspec_header(&s, "Host: example.com", &vs, err, sizeof(err)), 0);
    CHECK_INT(rf_probe_reqspec_header(&s, "Connection: keep-alive", &vs, err, sizeof(err)), 0);
    CHECK_INT(rf_probe_reqspec_header(&s, "X-Empty:", &vs, err, sizeof(err)), 0);
    r = build(&s, "PUT", 1, 0, &vs, err, sizeof(err));
    int ok = r && !contains(r, "application/json") && !contains(r, "Host: 127") &&
             contains(r, "\r\nHost: example.com\r\n") && !contains(r, "close") &&
             contains(r, "\r\nX-Empty: \r\n") && contains(r, "\r\ncontent-type: text/plain\r\n");
    free(r);
    rf_probe_reqspec_free(&s);
    CHECK(ok);

    /* No body: POST still says Content-Length: 0, GET says nothing. */
    memset(&s, 0, sizeof(s));
    CHECK_INT(rf_probe_tpl_compile(&s.url, "http://h?q", 10, &vs, err, sizeof(err)), 0);
    r = build(&s, "POST", 1, 0, &vs, err, sizeof(err));
    ok = r && !strncmp(r, "POST /?q HTTP/1.1\r\nHost: h\r\n", 28) &&
         contains(r, "Content-Length: 0\r\n") && !contains(r, "Content-Type");
    free(r);
    r = build(&s, "GET", 1, 0, &vs, err, sizeof(err));
    ok = ok && r && !contains(r, "Content-Length");
    free(r);
    rf_probe_reqspec_free(&s);
    rf_probe_vars_free(&vs);
    CHECK(ok);
}

void test_probecli_request_errors(void)
{
    char err[256];
    struct rf_probe_vars vs = {0};
    struct rf_probe_reqspec s;
    memset(&s, 0, sizeof(s));
    CHECK_INT(rf_probe_vars_add(&vs, "evil=a\r\nX-Injected: 1", err, sizeof(err)), 0);
    CHECK_INT(rf_probe_reqspec_header(&s, "Content-Length: 5", &vs, err, sizeof(err)), -1);
    CHECK(contains(err, "frames the body"));
    CHECK_INT(rf_probe_reqspec_header(&s, "transfer-encoding: chunked", &vs, err, sizeof(err)), -1);
    CHECK_INT(rf_probe_reqspec_header(&s, "No colon", &vs, err, sizeof(err)), -1);
    CHECK_INT(rf_probe_reqspec_header(&s, "Bad Name: x", &vs, err, sizeof(err)), -1);
    CHECK_INT(rf_probe_reqspec_header(&s, ": x", &vs, err, sizeof(err)), -1);
    CHECK_INT(rf_probe_reqspec_header(&s, "X-Evil: {{var.evil}}", &vs, err, sizeof(err)), 0);
    CHECK_INT(rf_probe_tpl_compile(&s.url, "http://h/", 9, &vs, err, sizeof(err)), 0);
    char *r = build(&s, "GET", 1, 0, &vs, err, sizeof(err));
    int ok = r == NULL && contains(err, "line break");
    free(r);
    rf_probe_reqspec_free(&s);

    /* A body over the limit. */
    memset(&s, 0, sizeof(s));
    CHECK_INT(rf_probe_tpl_compile(&s.url, "http://h/", 9, &vs, err, sizeof(err)), 0);
    size_t big = RF_PROBE_BODY_MAX - 2;
    char *src = malloc(big + 8);
    if (src) {
        memset(src, 'x', big);
        memcpy(src + big, "{{i}}", 6);
        ok = ok && rf_probe_tpl_compile(&s.body, src, big + 5, &vs, err, sizeof(err)) == 0;
        s.has_body = ok;
        free(src);
        r = build(&s, "POST", 1, 12, &vs, err, sizeof(err)); /* fits exactly */
        ok = ok && r && contains(r, "Content-Length: 1048576\r\n");
        free(r);
        r = build(&s, "POST", 1, 123, &vs, err, sizeof(err)); /* one byte over */
        ok = ok && r == NULL && contains(err, "body: expansion exceeds");
        free(r);
    }
    rf_probe_reqspec_free(&s);
    rf_probe_vars_free(&vs);
    CHECK(ok);
}

/* ---- statistics -------------------------------------------------------------- */

void test_probecli_stats(void)
{
    enum { N = 100 };
    struct rf_burst_res res[N];
    for (int i = 0; i < N; i++) {
        ts_fake_res(&res[i], i == 0 ? 201 : i < 98 ? 200 : 500, NULL);
        res[i].t_lastbyte_ns = 1000000 + (uint64_t)i * 10;                  /* spread 990 ns */
        res[i].t_done_ns = res[i].t_lastbyte_ns + (uint64_t)(i + 1) * 1000; /* 1..100 µs */
    }
    res[50].err = ETIMEDOUT;
    snprintf(res[50].err_msg, sizeof(res[50].err_msg), "timed out");
    struct rf_probe_stats s, tot;
    rf_probe_stats_init(&s);
    rf_probe_stats_init(&tot);
    CHECK_INT(rf_probe_stats_add(&s, res, N, 1), 0);
    CHECK_INT(s.requests, 100);
    CHECK_INT(s.status[201], 1);
    CHECK_INT(s.status[200], 96);
    CHECK_INT(s.status[500], 2);
    CHECK_INT(s.n5xx, 2);
    CHECK_INT(s.no_response, 1);
    CHECK_INT(s.first_err_i, 50);
    CHECK_INT(s.nlat, 99);
    CHECK_INT(rf_probe_stats_lat(&s, 0), 1000);
    CHECK_INT(rf_probe_stats_lat(&s, 0.5), 50000);   /* 50th of 99: 1..50 µs, 51 missing */
    CHECK_INT(rf_probe_stats_lat(&s, 0.99), 100000); /* rank ceil(98.01) = 99: the max */
    CHECK_INT(rf_probe_stats_lat(&s, 1), 100000);
    CHECK_INT(s.nspread, 1);
    CHECK_INT(s.spread_ns[0], 990);
    CHECK_INT(rf_probe_stats_merge(&tot, &s), 0);
    CHECK_INT(rf_probe_stats_merge(&tot, &s), 0);
    CHECK_INT(tot.requests, 200);
    CHECK_INT(tot.nspread, 2);
    CHECK_INT(tot.first_err_i, 50);
    json_t *j = rf_probe_stats_json(&s, 0);
    char *txt = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    int ok = contains(txt, "\"status\":{\"200\":96,\"201\":1,\"500\":2}") &&
             contains(txt, "\"spread_us\":1.0") && contains(txt, "\"p99\":100.0") &&
             contains(txt, "\"no_response\":1");
    if (!ok)
        fprintf(stderr, "  %s\n", txt ? txt : "(null)");
    free(txt);
    j = rf_probe_stats_json(&tot, 1);
    json_t *sp = json_object_get(j, "spread_us");
    ok = ok && json_is_object(sp) && json_real_value(json_object_get(sp, "median")) == 1.0 &&
         json_integer_value(json_object_get(j, "requests")) == 200;
    json_decref(j);
    char buf[32];
    rf_probe_fmt_ns(buf, sizeof(buf), 38200);
    ok = ok && !strcmp(buf, "38.2 µs");
    rf_probe_fmt_ns(buf, sizeof(buf), 3410000);
    ok = ok && !strcmp(buf, "3.41 ms");
    rf_probe_stats_free(&s);
    rf_probe_stats_free(&tot);
    rf_burst_res_free(res, N);
    CHECK(ok);
}

/* ---- whole runs ---------------------------------------------------------------- */

struct cap {
    char *out, *err;
    int code;
};

static void cap_free(struct cap *c)
{
    free(c->out);
    free(c->err);
}

static void run_cli(struct cap *c, const char *const *args)
{
    c->code = ts_run_probe(args, &c->out, &c->err);
}

void test_probecli_help(void)
{
    struct cap c;
    const char *args[] = {"probe", "--help", NULL};
    run_cli(&c, args);
    const char *need[] = {"-X",
                          "-H",
                          "-d",
                          "--var NAME=VALUE",
                          "--var NAME=@FILE",
                          "{{i}}",
                          "{{round}}",
                          "{{uuid}}",
                          "{{rand}}",
                          "{{var.NAME}}",
                          "-n N",
                          "--rounds",
                          "--timeout",
                          "--sync",
                          "lastbyte",
                          "none",
                          "--expect-status",
                          "--expect-no-5xx",
                          "--expect-distinct",
                          "--verify",
                          "--expect-verify-count",
                          "--json",
                          "--per-request",
                          "Exit status",
                          "N-k"};
    int ok = c.code == 0;
    for (size_t k = 0; k < sizeof(need) / sizeof(need[0]); k++)
        if (!contains(c.out, need[k])) {
            fprintf(stderr, "  --help lacks %s\n", need[k]);
            ok = 0;
        }
    cap_free(&c);
    CHECK(ok);
}

void test_probecli_usage_errors(void)
{
    struct {
        const char *args[8];
        const char *why;
    } cases[] = {
        {{"probe", NULL}, "no URL"},
        {{"probe", "-n", "0", "http://h/", NULL}, "-n wants"},
        {{"probe", "-n", "10001", "http://h/", NULL}, "-n wants"},
        {{"probe", "--rounds", "0", "http://h/", NULL}, "--rounds"},
        {{"probe", "--timeout", "-5", "http://h/", NULL}, "--timeout"},
        {{"probe", "--sync", "fast", "http://h/", NULL}, "--sync"},
        {{"probe", "--bogus", "http://h/", NULL}, "unknown option --bogus"},
        {{"probe", "-n", NULL}, "needs an argument"},
        {{"probe", "http://a/", "http://b/", NULL}, "one URL only"},
        {{"probe", "--expect-verify-count", ".data=1", "http://h/", NULL}, "needs --verify"},
        {{"probe", "-n", "4", "--expect-status", "200=5", "http://h/", NULL}, "impossible"},
        {{"probe", "-n", "4", "--expect-status", "200=N-5", "http://h/", NULL}, "impossible"},
        {{"probe", "--expect-distinct", "id=1", "http://h/", NULL}, "start with '.'"},
        {{"probe", "-d", "{{x}}", "http://h/", NULL}, "unknown placeholder"},
        {{"probe", "-d", "@/nonexistent/body", "http://h/", NULL}, "cannot open"},
        {{"probe", "-X", "GE T", "http://h/", NULL}, "bad method"},
        {{"probe", "--sync", "packet", "http://h/", NULL}, "--sync packet needs HTTP/2"},
        {{"probe", "--h2c", "https://h/", NULL}, "--h2c is for http://"},
        {{"probe", "--h2c", "--sync", "lastbyte", "http://h/", NULL}, "--sync packet only"},
        {{"probe", "--cacert", "/nonexistent/ca.pem", "https://h/", NULL}, "--cacert"},
        {{"probe", "--verify", "ftp://h/", "http://h/", NULL}, "--verify: URL must start"},
        {{"probe", "-H", "Content-Length: 1", "http://h/", NULL}, "frames the body"},
        {{"probe", "-n", "200", "--rounds", "10000", "http://h/", NULL}, "limited to"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct cap c;
        run_cli(&c, cases[k].args);
        int ok = c.code == 2 && contains(c.err, cases[k].why) && c.out && !c.out[0];
        if (!ok)
            fprintf(stderr, "  case %zu: code %d err \"%s\" out \"%s\"\n", k, c.code,
                    c.err ? c.err : "", c.out ? c.out : "");
        cap_free(&c);
        CHECK(ok);
    }
}

/* A correct create-if-missing, served by tests/support/testsrv.c: POST is
 * 201 for the first and 200 for every later one, GET /list a list of one row. */
static void create_once(struct tserver *s, struct ts_conn *c)
{
    if (ts_is(c, "GET", "/list"))
        ts_reply(c, 200, "{\"data\":[{\"id\":\"a\"}]}");
    else if (ts_is(c, "POST", ""))
        ts_reply(c, s->posts++ == 0 ? 201 : 200, "{\"user\":{\"id\":\"a\"}}");
    else
        ts_reply(c, 404, "{}");
}

void test_probecli_run_pass_and_fail(void)
{
    struct tserver *s = ts_start(0, 0, create_once, NULL);
    char url[64], vurl[64];
    CHECK(s != NULL);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/users", ts_port(s));
    snprintf(vurl, sizeof(vurl), "http://127.0.0.1:%d/list", ts_port(s));

    struct cap c;
    const char *pass[] = {"probe",
                          "-n",
                          "8",
                          "-d",
                          "{\"email\":\"x@y\"}",
                          "--expect-status",
                          "201=1",
                          "--expect-status",
                          "200=N-1",
                          "--expect-no-5xx",
                          "--expect-distinct",
                          ".user.id=1",
                          "--verify",
                          vurl,
                          "--expect-verify-count",
                          ".data=1",
                          "--per-request",
                          url,
                          NULL};
    run_cli(&c, pass);
    int ok = c.code == 0 && contains(c.out, "201 ×1") && contains(c.out, "200 ×7") &&
             contains(c.out, "PASS  distinct .user.id=1") &&
             contains(c.out, "PASS  verify-count .data=1") && contains(c.out, "#7 ") &&
             contains(c.out, "PASS: every expectation held") && contains(c.out, "spread");
    if (!ok)
        fprintf(stderr, "  code %d\n%s%s", c.code, c.out ? c.out : "", c.err ? c.err : "");
    cap_free(&c);

    /* The server's first request was already served: all 200 now. */
    const char *fail[] = {
        "probe",           "-n",    "8",        "-X", "POST", "--json", "--per-request",
        "--expect-status", "201=1", "--verify", vurl, url,    NULL};
    if (ok) {
        run_cli(&c, fail);
        json_t *doc = json_loads(c.out ? c.out : "", 0, NULL);
        json_t *r0 = json_array_get(json_object_get(doc, "rounds"), 0);
        json_t *e0 = json_array_get(json_object_get(r0, "expectations"), 0);
        ok = c.code == 1 && doc && json_is_false(json_object_get(doc, "pass")) &&
             json_integer_value(json_object_get(doc, "exit_code")) == 1 &&
             json_integer_value(json_object_get(json_object_get(r0, "status"), "200")) == 8 &&
             json_array_size(json_object_get(r0, "per_request")) == 8 &&
             json_integer_value(json_object_get(e0, "got")) == 0 &&
             json_is_false(json_object_get(e0, "pass")) &&
             json_is_number(json_object_get(r0, "spread_us")) &&
             json_is_object(json_object_get(json_object_get(doc, "total"), "spread_us")) &&
             json_integer_value(json_object_get(json_object_get(r0, "verify"), "status")) == 200 &&
             contains(c.err, "") && !contains(c.out, "round 1/1");
        if (!ok)
            fprintf(stderr, "  code %d\n%s%s", c.code, c.out ? c.out : "", c.err ? c.err : "");
        json_decref(doc);
        cap_free(&c);
    }
    ts_stop(s);
    size_t served = s->completed;
    free(s);
    CHECK(ok);
    CHECK_INT(served, 2 * (8 + 1));
}

void test_probecli_run_refused(void)
{
    /* A port that was just free: nothing listens there. */
    int port = ts_free_port();
    CHECK(port > 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    const char *args[] = {"probe", "-n", "3", "--rounds", "5", url, NULL};
    struct cap c;
    run_cli(&c, args);
    /* One round is enough to know nobody is there. */
    int ok = c.code == 2 && contains(c.err, "3 requests got no response") &&
             contains(c.err, "Connection refused") && contains(c.out, "ERROR:") &&
             !contains(c.out, "round 2/5");
    if (!ok)
        fprintf(stderr, "  code %d\n%s%s", c.code, c.out ? c.out : "", c.err ? c.err : "");
    cap_free(&c);
    CHECK(ok);
}
