/* Unit tests of the probe's HTML report: escaping of hostile values, one
 * timeline row per request, bursts grouped one SVG each, the row cap, and
 * --report wired into the CLI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/testsrv.h"
#include "probe/probe.h"
#include "probe/report_html.h"
#include "unit.h"

#define UNIT(n) void n(void);
#include "list.probehtml.h"
#undef UNIT

#define HOSTILE "</script><svg onload=alert(1)>"
#define HOSTILE_ESC "&lt;/script&gt;&lt;svg onload=alert(1)&gt;"

/* ---- helpers --------------------------------------------------------------- */

static char *escaped(const char *s, size_t len)
{
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    if (!f)
        return NULL;
    rf_probe_html_escape(f, s, len);
    fclose(f);
    return out;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0, got;
    do {
        if (cap - len < 65536) {
            char *p = realloc(buf, cap * 2 + 65536 + 1);
            if (!p) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
            cap = cap * 2 + 65536;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    fclose(f);
    buf[len] = 0;
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* A request as the burst engine leaves it, times in µs after t0. */
static void fake(struct rf_burst_res *r, uint64_t t0, int status, const char *body, double conn,
                 double lb, double fb, double done)
{
    memset(r, 0, sizeof(*r));
    rf_httpres_init(&r->http, 0);
    if (status < 0) {
        r->err = 111;
        snprintf(r->err_msg, sizeof(r->err_msg), "refused " HOSTILE);
    } else {
        r->http.status = status;
    }
    if (body) {
        r->http.body = strdup(body);
        r->http.body_len = strlen(body);
    }
    r->t_connected_ns = conn < 0 ? 0 : t0 + (uint64_t)(conn * 1e3);
    r->t_lastbyte_ns = lb < 0 ? 0 : t0 + (uint64_t)(lb * 1e3);
    r->t_firstbyte_ns = fb < 0 ? 0 : t0 + (uint64_t)(fb * 1e3);
    r->t_done_ns = done < 0 ? 0 : t0 + (uint64_t)(done * 1e3);
}

static void free_res(struct rf_burst_res *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rf_httpres_free(&r[i].http);
}

static const struct rf_probe_target target = {.method = "POST",
                                              .url = "http://h/v1/users?q=" HOSTILE,
                                              .n = 5,
                                              .rounds = 1,
                                              .sync = "lastbyte",
                                              .timeout_ms = 10000};

/* ---- escaping ------------------------------------------------------------------ */

void test_probehtml_escape_hostile(void)
{
    char *s = escaped(HOSTILE, strlen(HOSTILE));
    CHECK_STR(s, HOSTILE_ESC);
    free(s);
    const char *q = "a&b \"c\" 'd' <e>";
    s = escaped(q, strlen(q));
    CHECK_STR(s, "a&amp;b &quot;c&quot; &#39;d&#39; &lt;e&gt;");
    free(s);
    /* An attribute cannot be closed from inside, whatever the quote style. */
    const char *attr = "x\" onmouseover=\"alert(1)";
    s = escaped(attr, strlen(attr));
    CHECK(s && !strchr(s, '"') && !strchr(s, '<'));
    free(s);
}

void test_probehtml_escape_utf8(void)
{
    /* Valid text passes untouched: µ, €, an emoji, tab, LF, CR. */
    const char *ok = "\xC2\xB5 \xE2\x82\xAC \xF0\x9F\x98\x80\t\n\r";
    char *s = escaped(ok, strlen(ok));
    CHECK_STR(s, ok);
    free(s);
    /* Invalid bytes, overlongs, surrogates, above U+10FFFF, truncated
     * sequences and controls each become one U+FFFD per bad byte or char. */
    struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"a\xFF"
         "b",
         3,
         "a\xEF\xBF\xBD"
         "b"},
        {"\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xF4\x90\x80\x80", 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"x\xE2\x82", 3, "x\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"a\0b", 3,
         "a\xEF\xBF\xBD"
         "b"},
        {"\x01\x1B[31m", 6, "\xEF\xBF\xBD\xEF\xBF\xBD[31m"},
        {"\x7F\xC2\x85", 3, "\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"", 0, ""},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        s = escaped(cases[k].in, cases[k].len);
        if (!s || strcmp(s, cases[k].want) != 0)
            fprintf(stderr, "  case %zu\n", k);
        CHECK_STR(s, cases[k].want);
        free(s);
    }
}

/* ---- whole reports ------------------------------------------------------------- */

void test_probehtml_rows_and_escaping(void)
{
    enum { N = 5 };
    uint64_t t0 = 1000000000;
    struct rf_burst_res res[N];
    fake(&res[0], t0, 201, "{\"user\":{\"id\":\"" HOSTILE "\"}}", 100, 900, 5000, 5100);
    fake(&res[1], t0, 302, NULL, 110, 905, 5200, 5210);
    fake(&res[2], t0, 404, "<b>not found</b>", 120, 910, 800, 830); /* answered early */
    fake(&res[3], t0, 503, "\xFF\xFE", 130, 915, 6000, 6001);
    fake(&res[4], t0, -1, NULL, -1, -1, -1, 50); /* refused */
    struct rf_probe_stats st;
    rf_probe_stats_init(&st);
    CHECK_INT(rf_probe_stats_add(&st, res, N, 1), 0);
    struct rf_probe_exp exps[2];
    char e[256];
    CHECK_INT(rf_probe_exp_parse(&exps[0], RF_PROBE_EXP_STATUS, "201=1", e, sizeof(e)), 0);
    CHECK_INT(rf_probe_exp_parse(&exps[1], RF_PROBE_EXP_DISTINCT, ".user.id=1", e, sizeof(e)), 0);
    struct rf_probe_exp_res er[2] = {{.pass = 1, .want = 1, .got = 1},
                                     {.pass = 0, .want = 1, .got = 2}};
    snprintf(er[1].detail, sizeof(er[1].detail), "\"%s\"", HOSTILE);
    struct rf_burst_res vres;
    fake(&vres, t0, 200, "[]", 1, 2, 3, 4);

    char *path = ts_temp_file("probehtml", NULL);
    CHECK(path);
    struct rf_probe_html *h = rf_probe_html_open(path, &target, e, sizeof(e));
    CHECK(h);
    struct rf_probe_round r = {.round = 1,
                               .res = res,
                               .n = N,
                               .t0_ns = t0,
                               .stats = &st,
                               .exps = exps,
                               .exp_res = er,
                               .nexps = 2,
                               .verify_url = "http://h/v?e=" HOSTILE,
                               .verify = &vres};
    CHECK_INT(rf_probe_html_round(h, &r), 0);
    size_t held[2] = {1, 0};
    struct rf_probe_summary t = {.stats = &st,
                                 .rounds_done = 1,
                                 .exps = exps,
                                 .exp_held = held,
                                 .nexps = 2,
                                 .exit_code = 1,
                                 .error = "1 expectation check failed " HOSTILE};
    CHECK_INT(rf_probe_html_close(h, &t, e, sizeof(e)), 0);
    char *doc = slurp(path);
    unlink(path);
    free(path);
    free_res(res, N);
    free_res(&vres, 1);
    rf_probe_stats_free(&st);
    rf_probe_exp_free(&exps[0]);
    rf_probe_exp_free(&exps[1]);
    CHECK(doc);

    int ok = 1;
#define EXPECT(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "  not true: %s\n", #c);                                               \
            ok = 0;                                                                                \
        }                                                                                          \
    } while (0)
    /* One row per request, each identifiable, coloured by status class. */
    EXPECT(count(doc, "<g class=\"req ") == N);
    EXPECT(count(doc, "<svg class=\"tl\" data-round=\"1\" data-rows=\"5\"") == 1);
    EXPECT(strstr(doc, "<g class=\"req c2xx\" data-i=\"0\" data-status=\"201\">"));
    EXPECT(strstr(doc, "<g class=\"req c3xx\" data-i=\"1\" data-status=\"302\">"));
    EXPECT(strstr(doc, "<g class=\"req c4xx\" data-i=\"2\" data-status=\"404\">"));
    EXPECT(strstr(doc, "<g class=\"req c5xx\" data-i=\"3\" data-status=\"503\">"));
    EXPECT(strstr(doc, "<g class=\"req cerr\" data-i=\"4\" data-status=\"0\">"));
    /* Tooltips: index, status, times relative to the burst start. */
    EXPECT(strstr(doc, "<title>request #3, burst 1: status 503\nconnected        130.0 \xC2\xB5s\n"
                       "final byte sent  915.0 \xC2\xB5s"));
    EXPECT(strstr(doc, "latency          4200.0 \xC2\xB5s"));
    EXPECT(strstr(doc, "request #4, burst 1: no response: refused " HOSTILE_ESC));
    /* Axis and legend. */
    EXPECT(strstr(doc, "\xC2\xB5s since the burst started"));
    EXPECT(strstr(doc, ">6000</text>"));
    EXPECT(strstr(doc, "id=\"legend\""));
    EXPECT(strstr(doc, "class=\"band\""));
    /* Histogram, expectations, verify, verdict. */
    EXPECT(strstr(doc, "class=\"hbar k5xx\""));
    EXPECT(strstr(doc, "distinct .user.id=1"));
    EXPECT(strstr(doc,
                  "<span class=\"verdict v1\">FAIL</span>1 expectation check failed " HOSTILE_ESC));
    EXPECT(strstr(doc, "GET http://h/v?e=" HOSTILE_ESC "</span> answered 200"));
    /* Everything hostile came out escaped: no markup of its own, no script,
     * nothing fetched, no invalid bytes. */
    EXPECT(!strstr(doc, HOSTILE));
    EXPECT(!strstr(doc, "<svg onload"));
    EXPECT(!strstr(doc, "<script"));
    EXPECT(!strstr(doc, "<b>not found"));
    EXPECT(strstr(doc, "&lt;b&gt;not found&lt;/b&gt;"));
    EXPECT(!strstr(doc, "\xFF"));
    EXPECT(!strstr(doc, "src=") && !strstr(doc, "href=") && !strstr(doc, "url(") &&
           !strstr(doc, "@import"));
    EXPECT(strstr(doc, "Content-Security-Policy\" content=\"default-src 'none'"));
    EXPECT(!strstr(doc, "=\"nan") && !strstr(doc, "=\"-nan") && !strstr(doc, "=\"inf"));
    EXPECT(strstr(doc, "</main></body></html>\n"));
#undef EXPECT
    free(doc);
    CHECK(ok);
}

void test_probehtml_bursts_and_cap(void)
{
    /* The first burst is drawn, the next two would pass the row cap: figures
     * only. (Several drawn bursts: tests/probe/report_html.sh.) A small cap
     * of the test's own: the default's 25,001-row bursts took 90 s under
     * ASan and longer under valgrind. */
    const size_t cap = 200;
    size_t n = cap / 2 + 1;
    uint64_t t0 = 5000000;
    struct rf_burst_res *res = calloc(n, sizeof(*res));
    CHECK(res);
    for (size_t i = 0; i < n; i++)
        fake(&res[i], t0, i % 2 ? 200 : 201, "{}", 10, 20 + (double)i / 1000, 500, 510);
    struct rf_probe_stats st, total;
    rf_probe_stats_init(&st);
    rf_probe_stats_init(&total);
    CHECK_INT(rf_probe_stats_add(&st, res, n, 1), 0);
    struct rf_probe_target t = target;
    t.n = n;
    t.rounds = 3;
    t.max_rows = cap;
    char e[256];
    char *path = ts_temp_file("probehtml", NULL);
    CHECK(path);
    struct rf_probe_html *h = rf_probe_html_open(path, &t, e, sizeof(e));
    CHECK(h);
    for (unsigned k = 1; k <= 3; k++) {
        struct rf_probe_round r = {.round = k, .res = res, .n = n, .t0_ns = t0, .stats = &st};
        CHECK_INT(rf_probe_html_round(h, &r), 0);
        CHECK_INT(rf_probe_stats_merge(&total, &st), 0);
    }
    struct rf_probe_summary tot = {.stats = &total, .rounds_done = 3, .exit_code = 0};
    CHECK_INT(rf_probe_html_close(h, &tot, e, sizeof(e)), 0);
    char *doc = slurp(path);
    unlink(path);
    free(path);
    free_res(res, n);
    free(res);
    rf_probe_stats_free(&st);
    rf_probe_stats_free(&total);
    CHECK(doc);
    size_t rows = count(doc, "<g class=\"req ");
    int ok = rows == n && count(doc, "<svg class=\"tl\"") == 1 && strstr(doc, "data-round=\"1\"") &&
             !strstr(doc, "data-round=\"2\"") && strstr(doc, "id=\"round-3\"") &&
             count(doc, "Timeline not drawn") == 2 && strstr(doc, "timelines of 2 later bursts") &&
             strstr(doc, "All bursts together") && strstr(doc, "&times;") &&
             strstr(doc, "class=\"verdict v0\">PASS");
    if (!ok)
        fprintf(stderr, "  rows %zu, svgs %zu\n", rows, count(doc, "<svg class=\"tl\""));
    free(doc);
    CHECK(ok);
}

void test_probehtml_empty_times(void)
{
    /* Nothing ever reached: no division by zero, one row still drawn. */
    struct rf_burst_res r;
    fake(&r, 1000, -1, NULL, -1, -1, -1, -1);
    struct rf_probe_stats st;
    rf_probe_stats_init(&st);
    CHECK_INT(rf_probe_stats_add(&st, &r, 1, 1), 0);
    char e[256];
    char *path = ts_temp_file("probehtml", NULL);
    CHECK(path);
    struct rf_probe_html *h = rf_probe_html_open(path, &target, e, sizeof(e));
    CHECK(h);
    struct rf_probe_round rr = {.round = 1, .res = &r, .n = 1, .t0_ns = 1000, .stats = &st};
    CHECK_INT(rf_probe_html_round(h, &rr), 0);
    struct rf_probe_summary tot = {.stats = &st, .rounds_done = 1, .exit_code = 2};
    CHECK_INT(rf_probe_html_close(h, &tot, e, sizeof(e)), 0);
    char *doc = slurp(path);
    unlink(path);
    free(path);
    free_res(&r, 1);
    rf_probe_stats_free(&st);
    CHECK(doc);
    int ok = count(doc, "<g class=\"req cerr\"") == 1 && !strstr(doc, "nan") &&
             !strstr(doc, "inf\"") && strstr(doc, "class=\"verdict v2\">ERROR");
    free(doc);
    CHECK(ok);
}

void test_probehtml_open_errors(void)
{
    char e[256] = "";
    struct rf_probe_html *h =
        rf_probe_html_open("/nonexistent-dir-rf/report.html", &target, e, sizeof(e));
    CHECK(h == NULL);
    CHECK(strstr(e, "cannot create report /nonexistent-dir-rf/report.html"));
    CHECK_INT(rf_probe_html_close(NULL, NULL, e, sizeof(e)), 0);
    CHECK_INT(rf_probe_html_round(NULL, NULL), 0);
    /* A full disk is an error at close. */
    if (access("/dev/full", W_OK) == 0) {
        h = rf_probe_html_open("/dev/full", &target, e, sizeof(e));
        if (h) {
            struct rf_probe_summary tot = {.exit_code = 0};
            CHECK_INT(rf_probe_html_close(h, &tot, e, sizeof(e)), -1);
            CHECK(strstr(e, "writing report /dev/full failed"));
        }
    }
}

/* ---- through the CLI ---------------------------------------------------------- */

void test_probehtml_cli(void)
{
    char *out = NULL, *err = NULL;
    const char *help[] = {"probe", "--help", NULL};
    int code = ts_run_probe(help, &out, &err);
    int ok = code == 0 && out && strstr(out, "--report FILE");
    free(out);
    free(err);
    CHECK(ok);

    /* An unwritable report is refused before anything is sent. */
    const char *bad[] = {"probe", "--report", "/nonexistent-dir-rf/r.html", "http://127.0.0.1:9/",
                         NULL};
    code = ts_run_probe(bad, &out, &err);
    ok = code == 2 && err && strstr(err, "--report: cannot create report") && out &&
         !strstr(out, "round 1");
    free(out);
    free(err);
    CHECK(ok);

    /* A port that was just free: every request fails, the report says so. */
    int port = ts_free_port();
    CHECK(port > 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    char *path = ts_temp_file("probehtml", NULL);
    CHECK(path);
    const char *args[] = {"probe", "-n", "3", "--json", "--report", path, url, NULL};
    code = ts_run_probe(args, &out, &err);
    char *doc = slurp(path);
    unlink(path);
    free(path);
    ok = code == 2 && doc && count(doc, "<g class=\"req cerr\"") == 3 &&
         strstr(doc, "class=\"verdict v2\">ERROR") && strstr(doc, "Connection refused") && out &&
         strstr(out, "\"exit_code\": 2");
    if (!ok)
        fprintf(stderr, "  code %d\n%s%s", code, out ? out : "", err ? err : "");
    free(out);
    free(err);
    free(doc);
    CHECK(ok);
}
