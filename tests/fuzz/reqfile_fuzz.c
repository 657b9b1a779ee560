/* libFuzzer target for the request-file parser (--request FILE) and the
 * parsers around it: --request arguments and --server-time stamps. Request
 * files come from proxies, editors and colleagues; none may crash, overrun or
 * leak. Invariants: what parses has a method of token characters, a target in
 * origin or absolute form, no line break in any header, a body inside the
 * input; the same file with LF turned into CRLF parses to the same head; and
 * the request bytes made from it frame exactly its body. The first input byte
 * picks the parser, the rest is its input. */

#include "fuzz.h"

#include "probe/reqfile.h"
#include "probe/request.h"
#include "probe/servertime.h"
#include "probe/template.h"

static void check_parsed(const struct rf_probe_reqfile *f, size_t size)
{
    CHECK(f->method && f->method[0] && strlen(f->method) <= 32);
    CHECK(f->target && (f->target[0] == '/' || strstr(f->target, "://")));
    CHECK(!strpbrk(f->target, "\r\n "));
    for (size_t k = 0; k < f->nhdr; k++) {
        CHECK(f->hdr[k].name[0] && !strpbrk(f->hdr[k].name, "\r\n: "));
        CHECK(!strpbrk(f->hdr[k].value, "\r\n"));
    }
    CHECK(f->body_len <= size);
    CHECK(!f->body || f->body_len > 0);
}

static void same_head(const struct rf_probe_reqfile *a, const struct rf_probe_reqfile *b)
{
    CHECK(!strcmp(a->method, b->method) && !strcmp(a->target, b->target));
    CHECK(a->nhdr == b->nhdr);
    for (size_t k = 0; k < a->nhdr; k++)
        CHECK(!strcmp(a->hdr[k].name, b->hdr[k].name) && !strcmp(a->hdr[k].value, b->hdr[k].value));
}

static void build(const struct rf_probe_reqfile *f, int with_base)
{
    struct rf_probe_vars vs;
    struct rf_probe_reqspec s;
    char method[40], err[320];
    const char *extra[] = {"X-Extra: 1", "Host: h.example"};
    memset(&vs, 0, sizeof(vs));
    memset(&s, 0, sizeof(s));
    if (rf_probe_reqfile_spec(f, with_base ? "http://127.0.0.1:9/base" : NULL, extra,
                              with_base ? 1 : 2, &vs, &s, method, err, sizeof(err)) == 0) {
        struct rf_probe_buf url, out;
        struct rf_probe_url u;
        struct rf_probe_tpl_ctx c = {.i = 3, .round = 2, .vars = &vs};
        rf_probe_buf_init(&url, RF_PROBE_URL_MAX);
        rf_probe_buf_init(&out, RF_PROBE_HEAD_MAX + RF_PROBE_BODY_MAX);
        if (rf_probe_request_build(&s, method, 1, &s.url, &c, &url, &u, &out, err, sizeof(err)) ==
            0) {
            /* The head ends once, and Content-Length says what follows. */
            const char *end = strstr(out.p, "\r\n\r\n");
            CHECK(end);
            const char *cl = strstr(out.p, "\r\nContent-Length: ");
            size_t body = out.len - (size_t)(end + 4 - out.p);
            if (cl && cl < end)
                CHECK(strtoull(cl + 18, NULL, 10) == body);
            else
                CHECK(body == 0);
        } else {
            CHECK(err[0]);
        }
        rf_probe_buf_free(&url);
        rf_probe_buf_free(&out);
    } else {
        CHECK(err[0]);
    }
    rf_probe_reqspec_free(&s);
}

static void fuzz_reqfile(const char *s, size_t n, unsigned sel)
{
    struct rf_probe_reqfile f;
    char err[320];
    if (rf_probe_reqfile_parse(&f, s, n, err, sizeof(err)) < 0) {
        CHECK(err[0]);
        return;
    }
    check_parsed(&f, n);
    build(&f, sel & 1);
    /* The head does not depend on the line ends: try it with CRLF. */
    if (!memchr(s, '\r', n) && n < 4096) {
        char *crlf = malloc(2 * n + 1);
        size_t m = 0;
        CHECK(crlf);
        for (size_t k = 0; k < n; k++) {
            if (s[k] == '\n')
                crlf[m++] = '\r';
            crlf[m++] = s[k];
        }
        struct rf_probe_reqfile g;
        CHECK(rf_probe_reqfile_parse(&g, crlf, m, err, sizeof(err)) == 0);
        same_head(&f, &g);
        rf_probe_reqfile_free(&g);
        free(crlf);
    }
    rf_probe_reqfile_free(&f);
}

static void fuzz_reqarg(const char *s, size_t n)
{
    char arg[512], name[RF_PROBE_GROUP_NAME_MAX + 1], err[320];
    const char *path;
    size_t pl, count;
    if (n >= sizeof(arg))
        n = sizeof(arg) - 1;
    memcpy(arg, s, n);
    arg[n] = '\0';
    if (rf_probe_reqarg_split(arg, 20, 10000, name, &path, &pl, &count, err, sizeof(err)) == 0) {
        CHECK(rf_probe_group_name_ok(name, strlen(name)));
        CHECK(count >= 1 && count <= 10000);
        CHECK(pl > 0 && path >= arg && path + pl <= arg + strlen(arg));
    } else {
        CHECK(err[0]);
    }
}

static void fuzz_stamp(const char *s, size_t n)
{
    uint64_t ns;
    if (rf_probe_servertime_parse(s, n, &ns) == 0) {
        size_t digits = 0;
        for (size_t k = 0; k < n; k++)
            digits += s[k] >= '0' && s[k] <= '9';
        CHECK(digits > 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    switch (sel % 4) {
    case 0:
    case 1:
        fuzz_reqfile(s, n, sel >> 2);
        break;
    case 2:
        fuzz_reqarg(s, n);
        break;
    default:
        fuzz_stamp(s, n);
        break;
    }
    return 0;
}
