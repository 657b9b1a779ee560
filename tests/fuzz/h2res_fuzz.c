/* libFuzzer target for the HTTP/2 response path of --sync packet
 * (rf_h2_parse_responses): the bytes a hostile server sends back on a
 * connection that carried a burst's streams.
 *
 * The first input byte chooses how many streams were sent (1..8) and the
 * second a split step; the rest is the server's byte stream. It is read
 * whole and in pieces: a request answered in both readings must be
 * answered the same. Whether a broken stream fails may depend on the split,
 * in nghttp2 rather than here (in pieces it can meet a stream error before
 * the connection error a whole read meets first, and it counts CONTINUATION
 * frames per read), so that is not required. Each outcome must be coherent (an answer has a status,
 * terminated head and body within the bound; a failure has a message and no status claimed as an
 * answer). */

#include "fuzz.h"

#include "probe/h2.h"

#define MAX_RESPONSE 4096

static void coherent(const struct rf_burst_res *r)
{
    if (r->err) {
        CHECK(r->err_msg[0] != '\0');
        return;
    }
    CHECK(r->http.status >= 200 && r->http.status <= 999);
    CHECK(r->http.head && r->http.head[r->http.head_len] == '\0');
    CHECK(r->http.body && r->http.body[r->http.body_len] == '\0');
    CHECK(r->http.head_len + r->http.body_len <= MAX_RESPONSE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rf_burst_res whole[8], split[8];
    if (size < 2)
        return 0;
    size_t n = (size_t)(data[0] % 8) + 1;
    size_t step = (size_t)(data[1] % 64) + 1;
    data += 2;
    size -= 2;
    if (rf_h2_parse_responses(data, size, 0, n, MAX_RESPONSE, whole) < 0)
        return 0;
    if (rf_h2_parse_responses(data, size, step, n, MAX_RESPONSE, split) < 0) {
        rf_burst_res_free(whole, n);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        coherent(&whole[i]);
        coherent(&split[i]);
        if (!whole[i].err && !split[i].err) {
            CHECK(whole[i].http.status == split[i].http.status);
            CHECK(whole[i].http.body_len == split[i].http.body_len);
            CHECK(!memcmp(whole[i].http.body, split[i].http.body, whole[i].http.body_len));
            CHECK(whole[i].http.head_len == split[i].http.head_len);
        }
    }
    rf_burst_res_free(whole, n);
    rf_burst_res_free(split, n);
    return 0;
}
