/* Prober unit tests: the response parser fed in every possible split, and the
 * burst engine against the in-process server of tests/support/testsrv.c,
 * which checks from the server's side that no request completed before all
 * of them were ready. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/testsrv.h"
#include "probe/burst.h"
#include "probe/httpres.h"
#include "unit.h"

#define UNIT(n) void n(void);
#include "list.probe.h"
#undef UNIT

/* ---- parser helpers ---------------------------------------------------- */

/* Feeds s in pieces of step bytes (0 = all at once); returns the final state. */
static int feed_steps(struct rf_httpres *r, const char *s, size_t len, size_t step)
{
    int st = RF_HTTPRES_MORE;
    size_t off = 0;
    if (step == 0)
        step = len;
    while (off < len && st == RF_HTTPRES_MORE) {
        size_t k = len - off < step ? len - off : step;
        st = rf_httpres_feed(r, s + off, k);
        off += k;
    }
    return st;
}

static int parse_str(struct rf_httpres *r, const char *s, size_t max)
{
    rf_httpres_init(r, max);
    return rf_httpres_feed(r, s, strlen(s));
}

static int has(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

/* A parse that must fail with reason containing want. */
static int fails_with(const char *resp, const char *want)
{
    struct rf_httpres r;
    int st = parse_str(&r, resp, 0);
    if (st == RF_HTTPRES_MORE)
        st = rf_httpres_eof(&r);
    int ok = st == RF_HTTPRES_ERROR && has(r.err, want);
    if (!ok)
        fprintf(stderr, "  parse of %.40s...: state %d err \"%s\", want \"%s\"\n", resp, st, r.err,
                want);
    rf_httpres_free(&r);
    return ok;
}

/* ---- parser tests -------------------------------------------------------- */

/* Every {response, reason} case must fail with its reason; each failure
 * is reported by fails_with. */
static int all_fail(const char *const (*cases)[2], size_t n)
{
    int ok = 1;
    for (size_t k = 0; k < n; k++)
        ok &= fails_with(cases[k][0], cases[k][1]);
    return ok;
}

void test_httpres_content_length(void)
{
    static const char resp[] = "HTTP/1.1 201 Created\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: 11\r\n"
                               "\r\n"
                               "{\"id\":\"x\"}\n";
    struct rf_httpres r;
    rf_httpres_init(&r, 1 << 20);
    CHECK_INT(rf_httpres_feed(&r, resp, 30), RF_HTTPRES_MORE);
    CHECK_INT(r.status, 201);
    CHECK_INT(rf_httpres_feed(&r, resp + 30, sizeof(resp) - 1 - 30), RF_HTTPRES_DONE);
    CHECK_INT(r.extra, 0);
    CHECK_INT(r.body_len, 11);
    CHECK_STR(r.body, "{\"id\":\"x\"}\n");
    CHECK_INT(r.head_len, sizeof(resp) - 1 - 11);
    CHECK(memcmp(r.head, resp, r.head_len) == 0);
    CHECK_INT(r.head[r.head_len], '\0');
    CHECK_INT(r.keep_alive, 1);
    rf_httpres_free(&r);

    /* Content-Length: 0 completes with the head, body still a valid string. */
    CHECK_INT(parse_str(&r, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0), RF_HTTPRES_DONE);
    CHECK(r.body != NULL);
    CHECK_STR(r.body, "");
    rf_httpres_free(&r);

    /* Bare LF line endings are tolerated, as are blank lines before the head. */
    CHECK_INT(parse_str(&r, "\r\n\nHTTP/1.1 200 OK\nContent-Length: 2\n\nok", 0), RF_HTTPRES_DONE);
    CHECK_STR(r.body, "ok");
    CHECK_INT(r.head[0], 'H');
    rf_httpres_free(&r);
}

void test_httpres_zeroed_struct(void)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    struct rf_httpres r;
    memset(&r, 0, sizeof(r));
    CHECK_INT(rf_httpres_feed(&r, resp, sizeof(resp) - 1), RF_HTTPRES_DONE);
    CHECK_STR(r.body, "abc");
    rf_httpres_free(&r);
}

/* Every two-way split and byte-by-byte feeding must give the same result as
 * one feed: the kernel decides the splits, not the server. */
void test_httpres_every_split(void)
{
    static const char *const resps[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;name=value;q=\"x;y\"\r\nhello\r\n6 ; ext\r\n world\r\n"
        "0;last\r\nTrailer-One: 1\r\nTrailer-Two: 2\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
    };
    static const char *const bodies[] = {"hello", "hello world", "0123456789"};
    static const int statuses[] = {200, 200, 202};
    for (size_t t = 0; t < sizeof(resps) / sizeof(resps[0]); t++) {
        size_t len = strlen(resps[t]);
        for (size_t step = 1; step <= 3; step++) {
            struct rf_httpres r;
            rf_httpres_init(&r, 0);
            CHECK_INT(feed_steps(&r, resps[t], len, step), RF_HTTPRES_DONE);
            CHECK_INT(r.status, statuses[t]);
            CHECK_STR(r.body, bodies[t]);
            rf_httpres_free(&r);
        }
        for (size_t k = 0; k <= len; k++) {
            struct rf_httpres r;
            rf_httpres_init(&r, 0);
            int st = rf_httpres_feed(&r, resps[t], k);
            if (st == RF_HTTPRES_MORE)
                st = rf_httpres_feed(&r, resps[t] + k, len - k);
            CHECK_INT(st, RF_HTTPRES_DONE);
            CHECK_INT(r.extra, 0);
            CHECK_INT(r.status, statuses[t]);
            CHECK_STR(r.body, bodies[t]);
            CHECK_INT(r.body_len, strlen(bodies[t]));
            rf_httpres_free(&r);
        }
    }
}

void test_httpres_chunked_ext_trailer(void)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\n"
                               "Transfer-Encoding: gzip, chunked\r\n"
                               "\r\n"
                               "00004;a=1\r\nWiki\r\n"
                               "5\t;b\r\npedia\r\n"
                               "e\r\n in\r\n\r\nchunks.\r\n"
                               "0\r\n"
                               "Expires: never\r\n"
                               "\r\n";
    struct rf_httpres r;
    CHECK_INT(parse_str(&r, resp, 0), RF_HTTPRES_DONE);
    CHECK_STR(r.body, "Wikipedia in\r\n\r\nchunks.");
    CHECK_INT(r.body_len, 23);
    CHECK_INT(r.keep_alive, 1);
    /* Trailers are consumed but never mistaken for headers of the response. */
    CHECK(rf_httpres_header(&r, "Expires", NULL) == NULL);
    rf_httpres_free(&r);

    /* A body of only the last chunk is empty but still a string. */
    CHECK_INT(parse_str(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0),
              RF_HTTPRES_DONE);
    CHECK_STR(r.body, "");
    rf_httpres_free(&r);
}

void test_httpres_close_delimited(void)
{
    struct rf_httpres r;
    CHECK_INT(parse_str(&r, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst ", 0),
              RF_HTTPRES_MORE);
    CHECK_INT(rf_httpres_feed(&r, "second", 6), RF_HTTPRES_MORE);
    CHECK_INT(rf_httpres_eof(&r), RF_HTTPRES_DONE);
    CHECK_STR(r.body, "first second");
    CHECK_INT(r.keep_alive, 0);
    CHECK_INT(rf_httpres_eof(&r), RF_HTTPRES_DONE);
    rf_httpres_free(&r);

    /* A transfer coding other than chunked last is also delimited by close. */
    CHECK_INT(parse_str(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", 0),
              RF_HTTPRES_MORE);
    CHECK_INT(rf_httpres_eof(&r), RF_HTTPRES_DONE);
    CHECK_STR(r.body, "zz");
    rf_httpres_free(&r);

    /* Empty close-delimited body. */
    CHECK_INT(parse_str(&r, "HTTP/1.0 200 OK\r\n\r\n", 0), RF_HTTPRES_MORE);
    CHECK_INT(rf_httpres_eof(&r), RF_HTTPRES_DONE);
    CHECK_STR(r.body, "");
    rf_httpres_free(&r);
}

void test_httpres_interim_responses(void)
{
    static const char resp[] =
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        "HTTP/1.1 201 Created\r\nLocation: /u/1\r\nContent-Length: 2\r\n\r\nok";
    struct rf_httpres r;
    rf_httpres_init(&r, 0);
    CHECK_INT(rf_httpres_feed(&r, resp, 25), RF_HTTPRES_MORE);
    CHECK_INT(r.status, 0); /* an interim status is never reported as the result */
    CHECK_INT(rf_httpres_feed(&r, resp + 25, sizeof(resp) - 1 - 25), RF_HTTPRES_DONE);
    CHECK_INT(r.status, 201);
    CHECK_STR(r.body, "ok");
    CHECK(memcmp(r.head, "HTTP/1.1 201 Created\r\n", 22) == 0);
    CHECK(rf_httpres_header(&r, "Link", NULL) == NULL);
    size_t n = 0;
    const char *loc = rf_httpres_header(&r, "location", &n);
    CHECK(loc != NULL);
    CHECK_INT(n, 4);
    CHECK(memcmp(loc, "/u/1", 4) == 0);
    rf_httpres_free(&r);

    /* 101 is final: nothing after it is HTTP any more. */
    CHECK_INT(parse_str(&r, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 0),
              RF_HTTPRES_DONE);
    CHECK_INT(r.status, 101);
    CHECK_INT(r.keep_alive, 0);
    rf_httpres_free(&r);
}

void test_httpres_no_body(void)
{
    struct rf_httpres r;
    /* 204 and 304 have no body whatever their headers claim. */
    CHECK_INT(parse_str(&r, "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nHTTP", 0),
              RF_HTTPRES_DONE);
    CHECK_INT(r.status, 204);
    CHECK_INT(r.body_len, 0);
    CHECK_STR(r.body, "");
    CHECK_INT(r.extra, 4);
    rf_httpres_free(&r);

    CHECK_INT(parse_str(&r, "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0),
              RF_HTTPRES_DONE);
    CHECK_INT(r.status, 304);
    rf_httpres_free(&r);

    rf_httpres_init(&r, 0);
    r.head_request = 1;
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
    CHECK_INT(rf_httpres_feed(&r, head, sizeof(head) - 1), RF_HTTPRES_DONE);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.body_len, 0);
    CHECK_INT(r.keep_alive, 1);
    rf_httpres_free(&r);
}

void test_httpres_keep_alive(void)
{
    static const struct {
        const char *resp;
        int keep_alive;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1},
        {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 0},
        {"HTTP/1.1 200 OK\r\nconnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n", 0},
        {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 1},
        {"HTTP/1.0 200 OK\r\nConnection: Keep-Alive, close\r\nContent-Length: 0\r\n\r\n", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rf_httpres r;
        CHECK_INT(parse_str(&r, cases[i].resp, 0), RF_HTTPRES_DONE);
        CHECK_INT(r.keep_alive, cases[i].keep_alive);
        rf_httpres_free(&r);
    }
}

void test_httpres_header_lookup(void)
{
    struct rf_httpres r;
    CHECK_INT(parse_str(&r,
                        "HTTP/1.1 200 OK\r\n"
                        "X-Test: \t spaced value \t\r\n"
                        "X-Empty:\r\n"
                        "X-Dup: one\r\n"
                        "X-Dup: two\r\n"
                        "Content-Length: 0\r\n\r\n",
                        0),
              RF_HTTPRES_DONE);
    size_t n = 99;
    const char *v = rf_httpres_header(&r, "x-TEST", &n);
    CHECK(v != NULL);
    CHECK_INT(n, 12);
    CHECK(memcmp(v, "spaced value", 12) == 0);
    v = rf_httpres_header(&r, "X-Empty", &n);
    CHECK(v != NULL);
    CHECK_INT(n, 0);
    v = rf_httpres_header(&r, "x-dup", &n);
    CHECK(v != NULL && n == 3 && memcmp(v, "one", 3) == 0);
    CHECK(rf_httpres_header(&r, "X-Tes", &n) == NULL);
    CHECK(rf_httpres_header(&r, "X-Missing", NULL) == NULL);
    /* The status line is not a header even if it looks like one. */
    CHECK(rf_httpres_header(&r, "HTTP/1.1 200 OK", NULL) == NULL);
    rf_httpres_free(&r);

    rf_httpres_init(&r, 0);
    CHECK(rf_httpres_header(&r, "X-Test", NULL) == NULL);
}

void test_httpres_extra_after_done(void)
{
    static const char two[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                              "HTTP/1.1 404 Not Found\r\n\r\n";
    struct rf_httpres r;
    rf_httpres_init(&r, 0);
    CHECK_INT(rf_httpres_feed(&r, two, sizeof(two) - 1), RF_HTTPRES_DONE);
    CHECK_INT(r.extra, strlen("HTTP/1.1 404 Not Found\r\n\r\n"));
    CHECK_STR(r.body, "ok");
    /* After DONE nothing more is consumed. */
    CHECK_INT(rf_httpres_feed(&r, "abc", 3), RF_HTTPRES_DONE);
    CHECK_INT(r.extra, 3);
    CHECK_STR(r.body, "ok");
    rf_httpres_free(&r);

    CHECK_INT(parse_str(&r,
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "1\r\nx\r\n0\r\n\r\nGARBAGE",
                        0),
              RF_HTTPRES_DONE);
    CHECK_INT(r.extra, 7);
    CHECK_STR(r.body, "x");
    rf_httpres_free(&r);
}

void test_httpres_te_overrides_cl(void)
{
    struct rf_httpres r;
    CHECK_INT(parse_str(&r,
                        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                        0),
              RF_HTTPRES_DONE);
    CHECK_STR(r.body, "abc");
    /* Both framings present: the connection must not be reused. */
    CHECK_INT(r.keep_alive, 0);
    rf_httpres_free(&r);
}

void test_httpres_oversize(void)
{
    struct rf_httpres r;
    /* A declared length beyond the limit fails before any body arrives. */
    CHECK_INT(parse_str(&r, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 100),
              RF_HTTPRES_ERROR);
    CHECK(has(r.err, "exceeds max size"));
    rf_httpres_free(&r);

    /* Exactly at the limit is fine. */
    static const char exact[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd";
    CHECK_INT(parse_str(&r, exact, sizeof(exact) - 1), RF_HTTPRES_DONE);
    rf_httpres_free(&r);
    CHECK_INT(parse_str(&r, exact, sizeof(exact) - 2), RF_HTTPRES_ERROR);
    rf_httpres_free(&r);

    /* Close-delimited bodies are bounded too. */
    CHECK_INT(parse_str(&r, "HTTP/1.1 200 OK\r\n\r\n", 40), RF_HTTPRES_MORE);
    CHECK_INT(rf_httpres_feed(&r, "0123456789012345678901234567890", 31), RF_HTTPRES_ERROR);
    CHECK(has(r.err, "exceeds max size of 40 bytes"));
    rf_httpres_free(&r);

    /* So are heads that never end, and chunk sizes. */
    rf_httpres_init(&r, 64);
    int st = rf_httpres_feed(&r, "HTTP/1.1 200 OK\r\n", 17);
    for (int i = 0; i < 20 && st == RF_HTTPRES_MORE; i++)
        st = rf_httpres_feed(&r, "X-Pad: aaaaaaaa\r\n", 17);
    CHECK_INT(st, RF_HTTPRES_ERROR);
    CHECK(has(r.err, "exceeds max size"));
    rf_httpres_free(&r);

    CHECK_INT(parse_str(&r,
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "FFFFFFFFFFFFFFFFFFFFFFFF\r\n",
                        0),
              RF_HTTPRES_ERROR);
    CHECK(has(r.err, "chunk size exceeds"));
    rf_httpres_free(&r);

    /* Interim responses count: they cannot be used to stream forever. */
    rf_httpres_init(&r, 200);
    st = RF_HTTPRES_MORE;
    for (int i = 0; i < 20 && st == RF_HTTPRES_MORE; i++)
        st = rf_httpres_feed(&r, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    CHECK_INT(st, RF_HTTPRES_ERROR);
    rf_httpres_free(&r);
}

void test_httpres_malformed_status(void)
{
    static const char *const cases[][2] = {
        {"HTTP/1.1 2OO OK\r\n\r\n", "malformed status line \"HTTP/1.1 2OO OK\""},
        {"HTTP/2 200\r\n\r\n", "malformed status line"},
        {"HTTP/2.0 200 OK\r\n\r\n", "unsupported protocol version HTTP/2.0"},
        {"HTTP/1.1 099 Low\r\n\r\n", "malformed status line"},
        {"HTTP/1.1 200OK\r\n\r\n", "malformed status line"},
        {"HTTP/1.1 20\r\n\r\n", "malformed status line"},
        {"HTTP/1.1  200 OK\r\n\r\n", "malformed status line"},
        {"http/1.1 200 OK\r\n\r\n", "malformed status line \"h\""},
    };
    CHECK(all_fail(cases, sizeof(cases) / sizeof(cases[0])));

    /* A non-HTTP peer is rejected on its first wrong byte, not at max_size. */
    struct rf_httpres r;
    rf_httpres_init(&r, 0);
    CHECK_INT(rf_httpres_feed(&r, "HTT", 3), RF_HTTPRES_MORE);
    CHECK_INT(rf_httpres_feed(&r, "X", 1), RF_HTTPRES_ERROR);
    CHECK(has(r.err, "malformed status line \"HTTX\""));
    /* Errors are sticky. */
    CHECK_INT(rf_httpres_feed(&r, "P/1.1 200 OK\r\n", 14), RF_HTTPRES_ERROR);
    CHECK_INT(rf_httpres_eof(&r), RF_HTTPRES_ERROR);
    rf_httpres_free(&r);

    /* Control bytes from the server never reach the message verbatim. */
    CHECK(fails_with("HTTP/1.1 2\x01\x7f OK\r\n\r\n", "\"HTTP/1.1 2?? OK\""));
}

void test_httpres_malformed_headers(void)
{
    static const char *const cases[][2] = {
        {"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "malformed header line \"NoColon\""},
        {"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "malformed header line"},
        {"HTTP/1.1 200 OK\r\nName : x\r\n\r\n", "malformed header line"},
        {"HTTP/1.1 200 OK\r\n: x\r\n\r\n", "malformed header line"},
        {"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "obsolete header line folding"},
    };
    CHECK(all_fail(cases, sizeof(cases) / sizeof(cases[0])));

    struct rf_httpres r;
    static const char nul[] = "HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n";
    rf_httpres_init(&r, 0);
    CHECK_INT(rf_httpres_feed(&r, nul, sizeof(nul) - 1), RF_HTTPRES_ERROR);
    CHECK(has(r.err, "NUL byte"));
    rf_httpres_free(&r);
}

void test_httpres_bad_content_length(void)
{
    static const char *const cases[][2] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "bad Content-Length \"abc\""},
        {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n", "bad Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n", "bad Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "bad Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", "bad Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
         "bad Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "bad Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n", "bad Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "bad Content-Length"},
    };
    CHECK(all_fail(cases, sizeof(cases) / sizeof(cases[0])));

    /* Identical repeats are allowed (RFC 9110 section 8.6). */
    struct rf_httpres r;
    CHECK_INT(parse_str(&r,
                        "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n"
                        "content-length:2\r\n\r\nok",
                        0),
              RF_HTTPRES_DONE);
    CHECK_STR(r.body, "ok");
    rf_httpres_free(&r);
}

void test_httpres_bad_chunks(void)
{
#define CHUNKED "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    static const char *const cases[][2] = {
        {CHUNKED "zz\r\n", "bad chunk size (byte 0x7a)"},
        {CHUNKED "\r\n", "bad chunk size"},
        {CHUNKED ";ext\r\n", "bad chunk size"},
        {CHUNKED "-5\r\n", "bad chunk size"},
        {CHUNKED "5 x\r\nhello\r\n0\r\n\r\n", "bad chunk size"},
        {CHUNKED "5\rX", "CR not followed by LF"},
        {CHUNKED "5\r\nhelloX\r\n0\r\n\r\n", "missing CRLF after chunk data"},
        {CHUNKED "5\r\nhello\rX0\r\n\r\n", "missing CRLF after chunk data"},
        {CHUNKED "0\r\n\rX", "bad chunked trailer"},
    };
    CHECK(all_fail(cases, sizeof(cases) / sizeof(cases[0])));
#undef CHUNKED
}

void test_httpres_truncated(void)
{
    static const char *const cases[][2] = {
        {"", "connection closed before any response"},
        {"HTTP/1.1 200 OK\r\nContent-Le", "closed inside the head"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
         "truncated body: connection closed with 7 bytes missing"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "truncated chunked body"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", "truncated chunked body"},
        {"HTTP/1.1 100 Continue\r\n\r\n", "closed inside the head"},
    };
    CHECK(all_fail(cases, sizeof(cases) / sizeof(cases[0])));
}

/* ---- test server ------------------------------------------------------------ */

/* The parser cases the burst tests need, by path. */
static void respond(struct tserver *s, struct ts_conn *c)
{
    (void)s;
    static const char cl[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\n\r\nhello";
    static const char chunked[] = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n";
    static const char closed[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbye";
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    static const char notfound[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    const char *sp = strchr(c->head, ' ');
    const char *path = sp ? sp + 1 : "";
#define IS(p) (strncmp(path, p " ", strlen(p) + 1) == 0)
    if (IS("/cl")) {
        ts_send(c, cl, sizeof(cl) - 1);
    } else if (IS("/chunked")) {
        ts_send(c, chunked, sizeof(chunked) - 1);
    } else if (IS("/close")) {
        ts_send(c, closed, sizeof(closed) - 1);
        ts_close(c);
    } else if (IS("/continue")) {
        ts_send(c, cont, sizeof(cont) - 1);
    } else if (IS("/head")) {
        ts_send(c, head, sizeof(head) - 1);
    } else if (IS("/count")) {
        char resp[128];
        char num[32];
        int nl = snprintf(num, sizeof(num), "%zu", c->total);
        int rl = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", nl,
                          num);
        ts_send(c, resp, (size_t)rl);
    } else if (IS("/drop")) {
        ts_close(c);
    } else if (!IS("/slow")) {
        ts_send(c, notfound, sizeof(notfound) - 1);
    }
#undef IS
}

static void req_to(struct rf_burst_req *q, const struct sockaddr_in *a, const char *data)
{
    memset(q, 0, sizeof(*q));
    memcpy(&q->addr, a, sizeof(*a));
    q->addrlen = sizeof(*a);
    q->data = data;
    q->len = strlen(data);
}

/* Timing fields of a successful request are present and in causal order. */
static int timing_ok(const struct rf_burst_res *r)
{
    return r->t_connected_ns > 0 && r->t_connected_ns <= r->t_lastbyte_ns &&
           r->t_lastbyte_ns <= r->t_firstbyte_ns && r->t_firstbyte_ns <= r->t_done_ns;
}

/* ---- burst tests ----------------------------------------------------------- */

#define SYNC_N 40

void test_burst_lastbyte_sync(void)
{
    static const char get[] = "GET /cl HTTP/1.1\r\nHost: t\r\nX-Pad: 0123456789\r\n\r\n";
    struct tserver *s = ts_start(sizeof(get) - 2, 0, respond, NULL);
    CHECK(s != NULL);
    struct rf_burst_req reqs[SYNC_N];
    struct rf_burst_res res[SYNC_N];
    for (size_t i = 0; i < SYNC_N; i++)
        req_to(&reqs[i], &s->addr, get);
    struct rf_burst_opts o = {.sync = RF_BURST_LASTBYTE, .timeout_ms = 5000};
    char err[128] = "";
    int rc = rf_burst_run(reqs, SYNC_N, &o, res, err, sizeof(err));
    ts_stop(s);

    uint64_t max_connected = 0, min_last = UINT64_MAX, max_last = 0;
    int all_ok = 1;
    for (size_t i = 0; i < SYNC_N; i++) {
        if (res[i].err || res[i].http.status != 200 || !timing_ok(&res[i]) ||
            strcmp(res[i].http.body, "hello") != 0) {
            fprintf(stderr, "  req %zu: err %d %s status %d\n", i, res[i].err, res[i].err_msg,
                    res[i].http.status);
            all_ok = 0;
            continue;
        }
        if (res[i].t_connected_ns > max_connected)
            max_connected = res[i].t_connected_ns;
        if (res[i].t_lastbyte_ns < min_last)
            min_last = res[i].t_lastbyte_ns;
        if (res[i].t_lastbyte_ns > max_last)
            max_last = res[i].t_lastbyte_ns;
    }
    size_t ready = s->ready_at_first, acc = s->accepted_at_first, done = s->completed;
    int terr = s->thread_err;
    free(s);
    rf_burst_res_free(res, SYNC_N);
    CHECK_INT(rc, 0);
    CHECK(all_ok);
    CHECK_INT(terr, 0);
    CHECK_INT(done, SYNC_N);
    /* Server's view: when the first request completed, all N were there with
     * everything but their final byte. */
    CHECK_INT(acc, SYNC_N);
    CHECK_INT(ready, SYNC_N);
    /* Prober's view: no final byte left before every connection was up, and
     * the release itself is one short loop. */
    CHECK(min_last >= max_connected);
    CHECK(max_last - min_last < 200ull * 1000 * 1000);
}

void test_burst_none_mode(void)
{
    static const char *const paths[] = {
        "GET /cl HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /close HTTP/1.1\r\nHost: t\r\n\r\n",
        "POST /continue HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    };
    static const int want_status[] = {200, 201, 200, 201};
    static const char *const want_body[] = {"hello", "hello world", "bye", "ok"};
    struct tserver *s = ts_start(0, 0, respond, NULL);
    CHECK(s != NULL);
    struct rf_burst_req reqs[8];
    struct rf_burst_res res[8];
    for (size_t i = 0; i < 8; i++)
        req_to(&reqs[i], &s->addr, paths[i % 4]);
    struct rf_burst_opts o = {.sync = RF_BURST_NONE, .timeout_ms = 5000};
    char err[128] = "";
    int rc = rf_burst_run(reqs, 8, &o, res, err, sizeof(err));
    ts_stop(s);
    free(s);
    int ok = 1;
    for (size_t i = 0; i < 8; i++) {
        if (res[i].err || res[i].http.status != want_status[i % 4] || !timing_ok(&res[i]) ||
            strcmp(res[i].http.body, want_body[i % 4]) != 0) {
            fprintf(stderr, "  req %zu: err %d %s status %d body %s\n", i, res[i].err,
                    res[i].err_msg, res[i].http.status, res[i].http.body);
            ok = 0;
        }
    }
    int ka_close = res[2].http.keep_alive, ka_cl = res[0].http.keep_alive;
    size_t n = 0;
    const char *xt = rf_httpres_header(&res[0].http, "x-test", &n);
    int xt_ok = xt && n == 3 && memcmp(xt, "yes", 3) == 0;
    rf_burst_res_free(res, 8);
    CHECK_INT(rc, 0);
    CHECK(ok);
    CHECK_INT(ka_close, 0);
    CHECK_INT(ka_cl, 1);
    CHECK(xt_ok);
}

/* Requests larger than the largest send buffer (tcp_wmem max, 4 MiB by
 * default) to a server that stalls force partial writes and EAGAIN while the
 * prefix is sent; the barrier must still hold. */
void test_burst_large_requests(void)
{
    enum { NBIG = 3, BODY = 6 * 1000 * 1000 };
    char *big = malloc(BODY + 128);
    CHECK(big != NULL);
    int hl =
        snprintf(big, 128, "POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", BODY);
    memset(big + hl, 'a', BODY);
    big[hl + BODY] = '\0';
    size_t len = (size_t)hl + BODY;
    struct tserver *s = ts_start(len - 1, 30, respond, NULL);
    if (!s)
        free(big);
    CHECK(s != NULL);
    struct rf_burst_req reqs[NBIG];
    struct rf_burst_res res[NBIG];
    for (size_t i = 0; i < NBIG; i++)
        req_to(&reqs[i], &s->addr, big);
    struct rf_burst_opts o = {.sync = RF_BURST_LASTBYTE, .timeout_ms = 5000};
    char err[128] = "";
    int rc = rf_burst_run(reqs, NBIG, &o, res, err, sizeof(err));
    ts_stop(s);
    char want[32];
    snprintf(want, sizeof(want), "%zu", len);
    int ok = 1;
    for (size_t i = 0; i < NBIG; i++) {
        if (res[i].err || res[i].http.status != 200 || !timing_ok(&res[i]) ||
            strcmp(res[i].http.body, want) != 0) {
            fprintf(stderr, "  req %zu: err %d %s status %d\n", i, res[i].err, res[i].err_msg,
                    res[i].http.status);
            ok = 0;
        }
    }
    size_t ready = s->ready_at_first;
    free(s);
    free(big);
    rf_burst_res_free(res, NBIG);
    CHECK_INT(rc, 0);
    CHECK(ok);
    CHECK_INT(ready, NBIG);
}

void test_burst_head_request(void)
{
    struct tserver *s = ts_start(0, 0, respond, NULL);
    CHECK(s != NULL);
    struct rf_burst_req reqs[2];
    struct rf_burst_res res[2];
    req_to(&reqs[0], &s->addr, "HEAD /head HTTP/1.1\r\nHost: t\r\n\r\n");
    reqs[0].head_request = 1;
    req_to(&reqs[1], &s->addr, "GET /cl HTTP/1.1\r\nHost: t\r\n\r\n");
    struct rf_burst_opts o = {.sync = RF_BURST_LASTBYTE, .timeout_ms = 3000};
    char err[128] = "";
    int rc = rf_burst_run(reqs, 2, &o, res, err, sizeof(err));
    ts_stop(s);
    free(s);
    int e0 = res[0].err, st0 = res[0].http.status, e1 = res[1].err;
    size_t bl0 = res[0].http.body_len;
    rf_burst_res_free(res, 2);
    CHECK_INT(rc, 0);
    /* Had the parser waited for the advertised 5 bytes, this would time out. */
    CHECK_INT(e0, 0);
    CHECK_INT(st0, 200);
    CHECK_INT(bl0, 0);
    CHECK_INT(e1, 0);
}

void test_burst_refused(void)
{
    /* A bound socket that never listens: connecting to it is refused, and
     * holding it open keeps anyone else from taking the port meanwhile. */
    struct sockaddr_in dead = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(dead);
    int dfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(dfd >= 0);
    if (bind(dfd, (struct sockaddr *)&dead, sizeof(dead)) < 0 ||
        getsockname(dfd, (struct sockaddr *)&dead, &al) < 0) {
        close(dfd);
        CHECK(!"bind");
    }
    static const char get[] = "GET /cl HTTP/1.1\r\nHost: t\r\n\r\n";
    struct tserver *s = ts_start(sizeof(get) - 2, 0, respond, NULL);
    if (!s)
        close(dfd);
    CHECK(s != NULL);
    struct rf_burst_req reqs[5];
    struct rf_burst_res res[5];
    for (size_t i = 0; i < 5; i++)
        req_to(&reqs[i], i % 2 ? &dead : &s->addr, get);
    struct rf_burst_opts o = {.sync = RF_BURST_LASTBYTE, .timeout_ms = 3000};
    char err[128] = "";
    int rc = rf_burst_run(reqs, 5, &o, res, err, sizeof(err));
    ts_stop(s);
    close(dfd);
    size_t ready = s->ready_at_first;
    free(s);
    int ok = 1;
    for (size_t i = 0; i < 5; i++) {
        int good = i % 2 ? res[i].err == ECONNREFUSED && has(res[i].err_msg, "connect") &&
                               res[i].http.status == 0 && res[i].t_done_ns > 0
                         : res[i].err == 0 && res[i].http.status == 200 && timing_ok(&res[i]);
        if (!good) {
            fprintf(stderr, "  req %zu: err %d %s status %d\n", i, res[i].err, res[i].err_msg,
                    res[i].http.status);
            ok = 0;
        }
    }
    rf_burst_res_free(res, 5);
    CHECK_INT(rc, 0);
    CHECK(ok);
    /* Refused connections must not hold back the release of the others. */
    CHECK_INT(ready, 3);
}

void test_burst_timeout(void)
{
    struct tserver *s = ts_start(0, 0, respond, NULL);
    CHECK(s != NULL);
    struct rf_burst_req reqs[2];
    struct rf_burst_res res[2];
    req_to(&reqs[0], &s->addr, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    req_to(&reqs[1], &s->addr, "GET /cl HTTP/1.1\r\nHost: t\r\n\r\n");
    struct rf_burst_opts o = {.sync = RF_BURST_LASTBYTE, .timeout_ms = 200};
    char err[128] = "";
    uint64_t t0 = rf_burst_now_ns();
    int rc = rf_burst_run(reqs, 2, &o, res, err, sizeof(err));
    uint64_t took = rf_burst_now_ns() - t0;
    ts_stop(s);
    free(s);
    int e0 = res[0].err, e1 = res[1].err;
    int msg_ok = has(res[0].err_msg, "timed out after 200 ms waiting for the response");
    int lb = res[0].t_lastbyte_ns > 0 && res[0].t_firstbyte_ns == 0;
    rf_burst_res_free(res, 2);
    CHECK_INT(rc, 0);
    CHECK_INT(e0, ETIMEDOUT);
    CHECK(msg_ok);
    CHECK(lb);
    CHECK_INT(e1, 0);
    CHECK(took >= 200ull * 1000 * 1000);
    CHECK(took < 1500ull * 1000 * 1000);
}

void test_burst_closed_without_response(void)
{
    struct tserver *s = ts_start(0, 0, respond, NULL);
    CHECK(s != NULL);
    struct rf_burst_req reqs[1];
    struct rf_burst_res res[1];
    req_to(&reqs[0], &s->addr, "GET /drop HTTP/1.1\r\nHost: t\r\n\r\n");
    char err[128] = "";
    int rc = rf_burst_run(reqs, 1, NULL, res, err, sizeof(err));
    ts_stop(s);
    free(s);
    int e = res[0].err;
    int msg_ok = has(res[0].err_msg, "connection closed before any response");
    rf_burst_res_free(res, 1);
    CHECK_INT(rc, 0);
    CHECK_INT(e, RF_BURST_ERR_TRUNCATED);
    CHECK(msg_ok);
}

void test_burst_max_response(void)
{
    struct tserver *s = ts_start(0, 0, respond, NULL);
    CHECK(s != NULL);
    struct rf_burst_req reqs[1];
    struct rf_burst_res res[1];
    req_to(&reqs[0], &s->addr, "GET /cl HTTP/1.1\r\nHost: t\r\n\r\n");
    struct rf_burst_opts o = {.sync = RF_BURST_NONE, .timeout_ms = 3000, .max_response = 40};
    char err[128] = "";
    int rc = rf_burst_run(reqs, 1, &o, res, err, sizeof(err));
    ts_stop(s);
    free(s);
    int e = res[0].err;
    int msg_ok = has(res[0].err_msg, "bad response: response exceeds max size of 40 bytes");
    rf_burst_res_free(res, 1);
    CHECK_INT(rc, 0);
    CHECK_INT(e, RF_BURST_ERR_PROTO);
    CHECK(msg_ok);
}

void test_burst_empty_request(void)
{
    static const char get[] = "GET /cl HTTP/1.1\r\nHost: t\r\n\r\n";
    struct tserver *s = ts_start(sizeof(get) - 2, 0, respond, NULL);
    CHECK(s != NULL);
    struct rf_burst_req reqs[3];
    struct rf_burst_res res[3];
    req_to(&reqs[0], &s->addr, get);
    req_to(&reqs[1], &s->addr, "");
    req_to(&reqs[2], &s->addr, "x");
    reqs[2].addrlen = sizeof(reqs[2].addr) + 1;
    char err[128] = "";
    int rc = rf_burst_run(reqs, 3, NULL, res, err, sizeof(err));
    ts_stop(s);
    free(s);
    int e0 = res[0].err, e1 = res[1].err, e2 = res[2].err;
    int m1 = has(res[1].err_msg, "empty request"), m2 = has(res[2].err_msg, "address length");
    rf_burst_res_free(res, 3);
    CHECK_INT(rc, 0);
    CHECK_INT(e0, 0);
    CHECK_INT(e1, EINVAL);
    CHECK(m1);
    CHECK_INT(e2, EINVAL);
    CHECK(m2);
}

void test_burst_setup_errors(void)
{
    struct rf_burst_req req;
    struct rf_burst_res res;
    struct sockaddr_in a = {.sin_family = AF_INET};
    req_to(&req, &a, "x");
    char err[128] = "";
    /* n is checked before reqs or res are touched, so one entry suffices. */
    CHECK_INT(rf_burst_run(&req, RF_BURST_MAX + 1, NULL, &res, err, sizeof(err)), -1);
    CHECK(has(err, "too many requests: 10001 (max 10000)"));

    struct rf_burst_opts bad_sync = {.sync = (enum rf_burst_sync)7};
    CHECK_INT(rf_burst_run(&req, 1, &bad_sync, &res, err, sizeof(err)), -1);
    CHECK(has(err, "unknown sync mode 7"));

    struct rf_burst_opts bad_timeout = {.timeout_ms = -5};
    CHECK_INT(rf_burst_run(&req, 1, &bad_timeout, &res, err, sizeof(err)), -1);
    CHECK(has(err, "negative timeout_ms"));

    /* No error buffer is fine too. */
    CHECK_INT(rf_burst_run(&req, RF_BURST_MAX + 1, NULL, &res, NULL, 0), -1);

    /* An empty burst runs trivially. */
    CHECK_INT(rf_burst_run(&req, 0, NULL, &res, err, sizeof(err)), 0);

    uint64_t a1 = rf_burst_now_ns(), a2 = rf_burst_now_ns();
    CHECK(a1 > 0 && a2 >= a1);
}
