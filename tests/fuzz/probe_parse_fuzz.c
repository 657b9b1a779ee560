/* libFuzzer target for the parsers of the probe's command line: templates,
 * JSON paths, counts, expectations, URLs and -H headers. They take user
 * input, and templates also take --var file contents; none may crash,
 * overrun or leak, and expansions must stay inside their bound. The first
 * input byte picks the parser, the rest is its argument. */
#include <jansson.h>

#include "fuzz.h"

#include "probe/expect.h"
#include "probe/request.h"
#include "probe/template.h"

static json_t *doc;

static void fuzz_template(const char *s, size_t n, unsigned sel)
{
    struct rf_probe_vars vs = {0};
    char err[256];
    CHECK(rf_probe_vars_add(&vs, "a=one", err, sizeof(err)) == 0);
    CHECK(rf_probe_vars_add(&vs, "b=two", err, sizeof(err)) == 0);
    struct rf_probe_tpl t;
    if (rf_probe_tpl_compile(&t, s, n, &vs, err, sizeof(err)) == 0) {
        size_t max = (sel & 1) ? 64 : 4096;
        struct rf_probe_buf b;
        rf_probe_buf_init(&b, max);
        struct rf_probe_tpl_ctx c = {.i = sel * 7919u, .round = sel, .vars = &vs};
        if (rf_probe_tpl_expand(&t, &c, &b, err, sizeof(err)) == 0) {
            CHECK(b.len <= max && b.p && b.p[b.len] == '\0');
            /* Without placeholders a template is its own expansion. */
            if (!memmem(s, n, "{{", 2) && n <= max)
                CHECK(b.len == n && memcmp(b.p, s, n) == 0);
        }
        rf_probe_buf_free(&b);
        rf_probe_tpl_free(&t);
    } else {
        CHECK(err[0] != '\0');
    }
    rf_probe_vars_free(&vs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    if (!doc)
        doc =
            json_loads("{\"user\":{\"id\":\"u1\"},\"data\":[{\"id\":1},[2,3]],\"0\":{}}", 0, NULL);
    unsigned sel = data[0];
    /* Command-line arguments are C strings. */
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    size_t n = strlen(s);
    char err[400];

    switch (sel % 6) {
    case 0:
        fuzz_template((const char *)data + 1, size - 1, sel >> 3);
        break;
    case 1: {
        struct rf_probe_jpath p;
        if (rf_probe_jpath_parse(&p, s, n, err, sizeof(err)) == 0) {
            CHECK(p.n <= RF_PROBE_JPATH_MAX_DEPTH);
            (void)rf_probe_jpath_get(&p, doc);
            rf_probe_jpath_free(&p);
        }
        break;
    }
    case 2: {
        struct rf_probe_count c;
        if (rf_probe_count_parse(&c, s, err, sizeof(err)) == 0)
            CHECK(c.k >= 0);
        break;
    }
    case 3: {
        struct rf_probe_url u;
        if (rf_probe_url_parse(s, &u, err, sizeof(err)) == 0) {
            CHECK(u.host[0] && u.port[0]);
            CHECK(u.path >= s && u.path + u.path_len <= s + n);
        }
        break;
    }
    case 4: {
        struct rf_probe_exp e;
        enum rf_probe_exp_kind k = (enum rf_probe_exp_kind)((sel >> 3) % 4);
        if (rf_probe_exp_parse(&e, k, s, err, sizeof(err)) == 0)
            rf_probe_exp_free(&e);
        break;
    }
    case 5: {
        struct rf_probe_reqspec spec;
        struct rf_probe_vars vs = {0};
        memset(&spec, 0, sizeof(spec));
        if (rf_probe_reqspec_header(&spec, s, &vs, err, sizeof(err)) == 0)
            CHECK(spec.nhdr == 1);
        rf_probe_reqspec_free(&spec);
        break;
    }
    }
    free(s);
    return 0;
}
