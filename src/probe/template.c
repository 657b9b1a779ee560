#include "probe/template.h"
#include "core/util.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum seg_kind { SEG_LIT, SEG_I, SEG_ROUND, SEG_UUID, SEG_RAND, SEG_VAR };

struct rf_probe_tpl_seg {
    enum seg_kind kind;
    size_t off, len; /* SEG_LIT: span of t->src */
    size_t var;      /* SEG_VAR: index into the vars */
};

/* ---- bounded buffer ------------------------------------------------------ */

void rf_probe_buf_init(struct rf_probe_buf *b, size_t max)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static int buf_reserve(struct rf_probe_buf *b, size_t extra)
{
    if (extra > b->max - b->len)
        return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    /* Never allocate more than the bound allows, however the doubling lands. */
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    char *p = realloc(b->p, ncap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = ncap;
    return 0;
}

int rf_probe_buf_add(struct rf_probe_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int rf_probe_buf_adds(struct rf_probe_buf *b, const char *s)
{
    return rf_probe_buf_add(b, s, strlen(s));
}

int rf_probe_buf_addf(struct rf_probe_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || buf_reserve(b, (size_t)k) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)k;
    return 0;
}

void rf_probe_buf_free(struct rf_probe_buf *b)
{
    free(b->p);
    rf_probe_buf_init(b, b->max);
}

/* ---- variables ----------------------------------------------------------- */

int rf_probe_name_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static const struct rf_probe_var *find_var(const struct rf_probe_vars *vs, const char *name,
                                           size_t n, size_t *idx)
{
    if (!vs)
        return NULL;
    for (size_t k = 0; k < vs->n; k++)
        if (strlen(vs->v[k].name) == n && memcmp(vs->v[k].name, name, n) == 0) {
            if (idx)
                *idx = k;
            return &vs->v[k];
        }
    return NULL;
}

char *rf_probe_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        rf_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *data = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                rf_errf(err, errlen, "%s is larger than %zu bytes", path, max);
                goto fail;
            }
            size_t ncap = cap ? cap * 2 : 4096;
            if (ncap > max + 2)
                ncap = max + 2;
            char *p = realloc(data, ncap);
            if (!p) {
                rf_errf(err, errlen, "out of memory reading %s", path);
                goto fail;
            }
            data = p;
            cap = ncap;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        rf_errf(err, errlen, "cannot read %s", path);
        goto fail;
    }
    if (n > max) {
        rf_errf(err, errlen, "%s is larger than %zu bytes", path, max);
        goto fail;
    }
    if (!is_stdin)
        fclose(f);
    /* n <= max < cap, so the terminator fits. */
    data[n] = '\0';
    *len = n;
    return data;
fail:
    free(data);
    if (!is_stdin)
        fclose(f);
    return NULL;
}

/* The line of d[0, len) that starts at i: returns where it ends (its '\n',
 * or len), and *e where its text ends (before a CR). */
static size_t line_end(const char *d, size_t len, size_t i, size_t *e)
{
    size_t j = i;
    while (j < len && d[j] != '\n')
        j++;
    *e = j > i && d[j - 1] == '\r' ? j - 1 : j;
    return j;
}

/* Splits data in place into its non-empty lines. */
static int split_lines(struct rf_probe_var *v, size_t len, const char *path, char *err,
                       size_t errlen)
{
    size_t count = 0;
    char *d = v->data;
    for (size_t i = 0; i < len; i++)
        if (d[i] == '\0') {
            rf_errf(err, errlen, "%s contains a NUL byte", path);
            return -1;
        }
    for (size_t i = 0, j, e; i < len; i = j + 1) {
        j = line_end(d, len, i, &e);
        count += e > i;
    }
    if (count == 0) {
        rf_errf(err, errlen, "%s has no non-empty line", path);
        return -1;
    }
    if (count > RF_PROBE_VAR_LINES_MAX) {
        rf_errf(err, errlen, "%s has more than %d lines", path, RF_PROBE_VAR_LINES_MAX);
        return -1;
    }
    v->vals = calloc(count, sizeof(*v->vals));
    if (!v->vals) {
        rf_errf(err, errlen, "out of memory for %zu lines", count);
        return -1;
    }
    for (size_t i = 0, j, e; i < len; i = j + 1) {
        j = line_end(d, len, i, &e);
        d[e] = '\0'; /* e <= j <= len, and data[len] is the terminator */
        if (e > i)
            v->vals[v->nvals++] = d + i;
    }
    return 0;
}

int rf_probe_vars_add(struct rf_probe_vars *vs, const char *spec, char *err, size_t errlen)
{
    const char *eq = strchr(spec, '=');
    if (!eq) {
        rf_errf(err, errlen, "--var wants NAME=value or NAME=@file, got \"%s\"", spec);
        return -1;
    }
    size_t nl = (size_t)(eq - spec);
    if (!rf_probe_name_ok(spec, nl, RF_PROBE_VAR_NAME_MAX)) {
        rf_errf(err, errlen, "bad variable name \"%.*s\" (1-%d of A-Z a-z 0-9 _ -)",
                (int)(nl > 64 ? 64 : nl), spec, RF_PROBE_VAR_NAME_MAX);
        return -1;
    }
    if (find_var(vs, spec, nl, NULL)) {
        rf_errf(err, errlen, "variable %.*s given twice", (int)nl, spec);
        return -1;
    }
    if (vs->n >= RF_PROBE_VARS_MAX) {
        rf_errf(err, errlen, "more than %d variables", RF_PROBE_VARS_MAX);
        return -1;
    }
    struct rf_probe_var *v = &vs->v[vs->n];
    memset(v, 0, sizeof(*v));
    memcpy(v->name, spec, nl);
    v->name[nl] = '\0';
    const char *val = eq + 1;
    if (val[0] == '@') {
        size_t len;
        v->data = rf_probe_read_file(val + 1, RF_PROBE_VAR_FILE_MAX, &len, err, errlen);
        if (!v->data)
            return -1;
        if (split_lines(v, len, val + 1, err, errlen) < 0) {
            free(v->vals);
            free(v->data);
            memset(v, 0, sizeof(*v));
            return -1;
        }
    } else {
        v->data = strdup(val);
        v->vals = calloc(1, sizeof(*v->vals));
        if (!v->data || !v->vals) {
            free(v->data);
            free(v->vals);
            memset(v, 0, sizeof(*v));
            rf_errf(err, errlen, "out of memory");
            return -1;
        }
        v->vals[0] = v->data;
        v->nvals = 1;
    }
    vs->n++;
    return 0;
}

void rf_probe_vars_free(struct rf_probe_vars *vs)
{
    for (size_t k = 0; k < vs->n; k++) {
        free(vs->v[k].vals);
        free(vs->v[k].data);
    }
    vs->n = 0;
}

/* ---- templates ----------------------------------------------------------- */

static int add_seg(struct rf_probe_tpl *t, size_t *cap, struct rf_probe_tpl_seg s)
{
    if (t->nsegs == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct rf_probe_tpl_seg *p = realloc(t->segs, ncap * sizeof(*p));
        if (!p)
            return -1;
        t->segs = p;
        *cap = ncap;
    }
    t->segs[t->nsegs++] = s;
    return 0;
}

static int span_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

int rf_probe_tpl_compile(struct rf_probe_tpl *t, const char *src, size_t len,
                         const struct rf_probe_vars *vs, char *err, size_t errlen)
{
    size_t cap = 0;
    memset(t, 0, sizeof(*t));
    t->src = malloc(len + 1);
    if (!t->src) {
        rf_errf(err, errlen, "out of memory");
        return -1;
    }
    if (len)
        memcpy(t->src, src, len);
    t->src[len] = '\0';

    size_t lit = 0, i = 0;
    while (i < len) {
        if (!(i + 1 < len && src[i] == '{' && src[i + 1] == '{')) {
            i++;
            continue;
        }
        const char *close = NULL;
        for (size_t j = i + 2; j + 1 < len; j++)
            if (src[j] == '}' && src[j + 1] == '}') {
                close = src + j;
                break;
            }
        if (!close) {
            rf_errf(err, errlen, "unterminated \"{{\" at offset %zu", i);
            goto fail;
        }
        const char *name = src + i + 2;
        size_t nl = (size_t)(close - name);
        /* Spaces inside the braces are a common style; allow them. */
        while (nl > 0 && *name == ' ') {
            name++;
            nl--;
        }
        while (nl > 0 && name[nl - 1] == ' ')
            nl--;
        struct rf_probe_tpl_seg s = {.kind = SEG_LIT};
        if (span_is(name, nl, "i")) {
            s.kind = SEG_I;
        } else if (span_is(name, nl, "round")) {
            s.kind = SEG_ROUND;
        } else if (span_is(name, nl, "uuid")) {
            s.kind = SEG_UUID;
        } else if (span_is(name, nl, "rand")) {
            s.kind = SEG_RAND;
        } else if (nl > 4 && memcmp(name, "var.", 4) == 0) {
            if (!find_var(vs, name + 4, nl - 4, &s.var)) {
                rf_errf(err, errlen, "{{%.*s}}: no --var %.*s was given", (int)(nl > 80 ? 80 : nl),
                        name, (int)(nl - 4 > 64 ? 64 : nl - 4), name + 4);
                goto fail;
            }
            s.kind = SEG_VAR;
        } else {
            rf_errf(err, errlen,
                    "unknown placeholder {{%.*s}} (known: i, round, uuid, rand, var.NAME)",
                    (int)(nl > 80 ? 80 : nl), name);
            goto fail;
        }
        if (i > lit) {
            struct rf_probe_tpl_seg l = {.kind = SEG_LIT, .off = lit, .len = i - lit};
            if (add_seg(t, &cap, l) < 0)
                goto oom;
        }
        if (add_seg(t, &cap, s) < 0)
            goto oom;
        /* A single-valued variable expands the same everywhere. */
        if (s.kind != SEG_VAR || vs->v[s.var].nvals > 1)
            t->dynamic = 1;
        i = (size_t)(close - src) + 2;
        lit = i;
    }
    if (len > lit) {
        struct rf_probe_tpl_seg l = {.kind = SEG_LIT, .off = lit, .len = len - lit};
        if (add_seg(t, &cap, l) < 0)
            goto oom;
    }
    return 0;
oom:
    rf_errf(err, errlen, "out of memory");
fail:
    rf_probe_tpl_free(t);
    return -1;
}

static void uuid_v4(char out[37])
{
    unsigned char b[16];
    randombytes_buf(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[b[i] >> 4];
        out[k++] = hex[b[i] & 15];
    }
    out[k] = '\0';
}

int rf_probe_tpl_expand(const struct rf_probe_tpl *t, const struct rf_probe_tpl_ctx *c,
                        struct rf_probe_buf *out, char *err, size_t errlen)
{
    for (size_t k = 0; k < t->nsegs; k++) {
        const struct rf_probe_tpl_seg *s = &t->segs[k];
        int rc = 0;
        switch (s->kind) {
        case SEG_LIT:
            rc = rf_probe_buf_add(out, t->src + s->off, s->len);
            break;
        case SEG_I:
            rc = rf_probe_buf_addf(out, "%zu", c->i);
            break;
        case SEG_ROUND:
            rc = rf_probe_buf_addf(out, "%u", c->round);
            break;
        case SEG_UUID: {
            char u[37];
            if (sodium_init() < 0) {
                rf_errf(err, errlen, "libsodium failed to initialise");
                return -1;
            }
            uuid_v4(u);
            rc = rf_probe_buf_add(out, u, 36);
            break;
        }
        case SEG_RAND: {
            uint64_t r;
            if (sodium_init() < 0) {
                rf_errf(err, errlen, "libsodium failed to initialise");
                return -1;
            }
            randombytes_buf(&r, sizeof(r));
            /* 63 bits: stays positive wherever it is parsed as a signed integer. */
            rc = rf_probe_buf_addf(out, "%" PRIu64, r >> 1);
            break;
        }
        case SEG_VAR: {
            const struct rf_probe_var *v = &c->vars->v[s->var];
            rc = rf_probe_buf_adds(out, v->vals[c->i % v->nvals]);
            break;
        }
        }
        if (rc < 0) {
            rf_errf(err, errlen, "expansion exceeds %zu bytes", out->max);
            return -1;
        }
    }
    if (!out->p && rf_probe_buf_add(out, "", 0) < 0) {
        rf_errf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void rf_probe_tpl_free(struct rf_probe_tpl *t)
{
    free(t->src);
    free(t->segs);
    memset(t, 0, sizeof(*t));
}
