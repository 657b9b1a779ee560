/* The HTTP/2 response path of --sync packet (probe/h2.h), fed server byte
 * streams built here: HPACK by nghttp2's own deflater, frames by hand, so a
 * test states exactly what the server sent. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe/h2.h"
#include "probe/httpres.h"
#include "unit.h"

void test_probeh2_response(void);
void test_probeh2_split(void);
void test_probeh2_rst_stream(void);
void test_probeh2_goaway(void);
void test_probeh2_limit(void);
void test_probeh2_garbage(void);

struct stream {
    uint8_t buf[8192];
    size_t len;
};

static void frame(struct stream *s, uint8_t type, uint8_t flags, uint32_t id, const void *p,
                  size_t n)
{
    uint8_t *d = s->buf + s->len;
    d[0] = (uint8_t)(n >> 16);
    d[1] = (uint8_t)(n >> 8);
    d[2] = (uint8_t)n;
    d[3] = type;
    d[4] = flags;
    d[5] = (uint8_t)(id >> 24);
    d[6] = (uint8_t)(id >> 16);
    d[7] = (uint8_t)(id >> 8);
    d[8] = (uint8_t)id;
    if (n)
        memcpy(d + 9, p, n);
    s->len += 9 + n;
}

static void settings(struct stream *s)
{
    frame(s, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
}

/* HEADERS with END_HEADERS (and END_STREAM when end): status plus one
 * content-type header. */
static void headers(struct stream *s, nghttp2_hd_deflater *d, uint32_t id, const char *status,
                    int end)
{
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/json", 12, 16, NGHTTP2_NV_FLAG_NONE},
    };
    uint8_t blk[512];
    ssize_t n = nghttp2_hd_deflate_hd(d, blk, sizeof(blk), nv, 2);
    frame(s, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | (end ? NGHTTP2_FLAG_END_STREAM : 0), id,
          blk, n > 0 ? (size_t)n : 0);
}

static void data(struct stream *s, uint32_t id, const char *body, int end)
{
    frame(s, NGHTTP2_DATA, end ? NGHTTP2_FLAG_END_STREAM : 0, id, body, strlen(body));
}

static void u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Two streams answered: 201 with a body in two DATA frames, 200 without. */
static void two_answers(struct stream *s)
{
    nghttp2_hd_deflater *d;
    memset(s, 0, sizeof(*s));
    nghttp2_hd_deflate_new(&d, 4096);
    settings(s);
    headers(s, d, 1, "201", 0);
    headers(s, d, 3, "200", 1);
    data(s, 1, "{\"user\":", 0);
    data(s, 1, "{\"id\":\"u1\"}}", 1);
    nghttp2_hd_deflate_del(d);
}

void test_probeh2_response(void)
{
    struct stream s;
    struct rf_burst_res res[2];
    size_t len;
    two_answers(&s);
    CHECK_INT(rf_h2_parse_responses(s.buf, s.len, 0, 2, 0, res), 0);
    CHECK_INT(res[0].err, 0);
    CHECK_INT(res[0].http.status, 201);
    CHECK_STR(res[0].http.body, "{\"user\":{\"id\":\"u1\"}}");
    const char *ct = rf_httpres_header(&res[0].http, "Content-Type", &len);
    CHECK(ct && len == 16 && !memcmp(ct, "application/json", 16));
    CHECK(!strncmp(res[0].http.head, "HTTP/2 201\r\n", 12));
    CHECK_INT(res[1].err, 0);
    CHECK_INT(res[1].http.status, 200);
    CHECK_INT(res[1].http.body_len, 0);
    CHECK(res[1].http.body && res[1].http.body[0] == '\0');
    CHECK(res[0].t_firstbyte_ns > 0 && res[0].t_done_ns >= res[0].t_firstbyte_ns);
    rf_burst_res_free(res, 2);
}

/* Any split of the stream gives the same answers. */
void test_probeh2_split(void)
{
    struct stream s;
    struct rf_burst_res res[2];
    two_answers(&s);
    for (size_t chunk = 1; chunk < 24; chunk += 5) {
        CHECK_INT(rf_h2_parse_responses(s.buf, s.len, chunk, 2, 0, res), 0);
        CHECK_INT(res[0].http.status, 201);
        CHECK_STR(res[0].http.body, "{\"user\":{\"id\":\"u1\"}}");
        CHECK_INT(res[1].http.status, 200);
        rf_burst_res_free(res, 2);
    }
}

/* SETTINGS, one control frame (type on stream id), then a 200 on stream answered. */
static void control_then_200(struct stream *s, uint8_t type, uint32_t id, const uint8_t *p,
                             size_t len, uint32_t answered)
{
    nghttp2_hd_deflater *d;
    nghttp2_hd_deflate_new(&d, 4096);
    settings(s);
    frame(s, type, 0, id, p, len);
    headers(s, d, answered, "200", 1);
    nghttp2_hd_deflate_del(d);
}

void test_probeh2_rst_stream(void)
{
    struct stream s = {.len = 0};
    struct rf_burst_res res[2];
    uint8_t code[4];
    u32(code, NGHTTP2_REFUSED_STREAM);
    control_then_200(&s, NGHTTP2_RST_STREAM, 1, code, 4, 3);
    CHECK_INT(rf_h2_parse_responses(s.buf, s.len, 0, 2, 0, res), 0);
    CHECK_INT(res[0].err, RF_BURST_ERR_RESET);
    CHECK(strstr(res[0].err_msg, "stream reset") && strstr(res[0].err_msg, "REFUSED_STREAM"));
    CHECK_INT(res[1].err, 0);
    CHECK_INT(res[1].http.status, 200);
    rf_burst_res_free(res, 2);
}

/* Streams above GOAWAY's last stream id were never processed. */
void test_probeh2_goaway(void)
{
    struct stream s = {.len = 0};
    struct rf_burst_res res[3];
    uint8_t ga[8];
    u32(ga, 1);
    u32(ga + 4, NGHTTP2_NO_ERROR);
    control_then_200(&s, NGHTTP2_GOAWAY, 0, ga, 8, 1);
    CHECK_INT(rf_h2_parse_responses(s.buf, s.len, 0, 3, 0, res), 0);
    CHECK_INT(res[0].err, 0);
    CHECK_INT(res[0].http.status, 200);
    CHECK_INT(res[1].err, RF_BURST_ERR_RESET);
    CHECK(strstr(res[1].err_msg, "GOAWAY") != NULL);
    CHECK_INT(res[2].err, RF_BURST_ERR_RESET);
    rf_burst_res_free(res, 3);
}

/* A body over the response bound fails that stream alone. */
void test_probeh2_limit(void)
{
    struct stream s;
    struct rf_burst_res res[2];
    two_answers(&s);
    CHECK_INT(rf_h2_parse_responses(s.buf, s.len, 0, 2, 60, res), 0);
    CHECK_INT(res[0].err, RF_BURST_ERR_PROTO);
    CHECK(strstr(res[0].err_msg, "larger than 60") != NULL);
    CHECK_INT(res[1].err, 0);
    rf_burst_res_free(res, 2);
}

/* Not HTTP/2 at all (an HTTP/1.1 server answering h2c): every request fails
 * as malformed, none is left pending. */
void test_probeh2_garbage(void)
{
    static const char h1[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    struct rf_burst_res res[2];
    CHECK_INT(rf_h2_parse_responses((const uint8_t *)h1, sizeof(h1) - 1, 0, 2, 0, res), 0);
    CHECK_INT(res[0].err, RF_BURST_ERR_PROTO);
    CHECK(strstr(res[0].err_msg, "HTTP/2") != NULL);
    CHECK_INT(res[1].err, RF_BURST_ERR_PROTO);
    rf_burst_res_free(res, 2);
}
