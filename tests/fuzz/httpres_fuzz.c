/* libFuzzer target for the prober's HTTP response reader.
 *
 * The first two input bytes choose a split step and options; the rest is
 * the server's byte stream. The stream is parsed twice, whole and in pieces,
 * and both parses must agree: the reader's promise is that any split of the
 * stream gives the same result. Invariants on the parsed response are
 * checked on the way (terminated buffers, the size bound, "extra"). */

#include "fuzz.h"

#include "probe/httpres.h"

static int parse(const char *s, size_t n, size_t step, size_t max, int head, struct rf_httpres *r,
                 size_t *consumed)
{
    int st = RF_HTTPRES_MORE;
    size_t off = 0;
    rf_httpres_init(r, max);
    r->head_request = head;
    *consumed = 0;
    while (off < n && st == RF_HTTPRES_MORE) {
        size_t k = n - off < step ? n - off : step;
        st = rf_httpres_feed(r, s + off, k);
        CHECK(r->extra <= k);
        if (st == RF_HTTPRES_DONE)
            *consumed = off + k - r->extra;
        else
            CHECK(r->extra == 0);
        off += k;
    }
    if (st == RF_HTTPRES_MORE)
        st = rf_httpres_eof(r);
    if (st != RF_HTTPRES_DONE)
        *consumed = 0;
    CHECK(r->priv.consumed <= r->priv.max_size);
    if (r->head)
        CHECK(r->head[r->head_len] == '\0');
    if (st == RF_HTTPRES_DONE) {
        CHECK(r->body != NULL);
        CHECK(r->body[r->body_len] == '\0');
        CHECK(r->status >= 100 && r->status <= 999);
        CHECK(r->body_len <= r->priv.consumed);
        /* Done means done: later bytes are left alone. */
        CHECK(rf_httpres_feed(r, "xyz", 3) == RF_HTTPRES_DONE && r->extra == 3);
        CHECK(rf_httpres_eof(r) == RF_HTTPRES_DONE);
        size_t vl = 0;
        const char *v = rf_httpres_header(r, "content-length", &vl);
        if (v)
            CHECK(v >= r->head && v + vl <= r->head + r->head_len);
        (void)rf_httpres_header(r, "connection", NULL);
    } else {
        CHECK(st == RF_HTTPRES_ERROR);
        CHECK(r->err[0] != '\0');
        CHECK(strnlen(r->err, sizeof(r->err)) < sizeof(r->err));
    }
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = (size_t)(data[0] % 17) + 1;
    int head = data[1] & 1;
    /* Small limits reach the "exceeds max size" paths; 0 is the default. */
    static const size_t maxes[] = {0, 1, 16, 64, 200, 1024};
    size_t max = maxes[(data[1] >> 1) % (sizeof(maxes) / sizeof(maxes[0]))];
    const char *s = (const char *)data + 2;
    size_t n = size - 2;

    struct rf_httpres a, b;
    size_t ca, cb;
    int sa = parse(s, n, n ? n : 1, max, head, &a, &ca);
    int sb = parse(s, n, step, max, head, &b, &cb);
    CHECK(sa == sb);
    if (sa == RF_HTTPRES_DONE) {
        CHECK(a.status == b.status);
        CHECK(a.keep_alive == b.keep_alive);
        CHECK(a.body_len == b.body_len && memcmp(a.body, b.body, a.body_len) == 0);
        CHECK(a.head_len == b.head_len && memcmp(a.head, b.head, a.head_len) == 0);
        CHECK(ca == cb);
    } else {
        CHECK(strcmp(a.err, b.err) == 0);
    }
    rf_httpres_free(&a);
    rf_httpres_free(&b);
    return 0;
}
