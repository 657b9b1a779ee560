#include "probe/reqfile.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* How many of the n bytes at s are token characters (is_tchar),
 * from the start: a method or a header name. */
static size_t token_len(const char *s, size_t n)
{
    size_t k = 0;
    while (k < n && is_tchar(s[k]))
        k++;
    return k;
}

/* The line starting at p: its length without the line end in *n, and where
 * the next one starts. A file's last line may lack a line end. */
static const char *next_line(const char *p, const char *end, size_t *n)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl : end;
    *n = (size_t)(stop - p);
    if (*n > 0 && p[*n - 1] == '\r')
        (*n)--;
    return nl ? nl + 1 : end;
}

static int head_bytes_ok(const char *s, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

int rf_probe_reqfile_parse(struct rf_probe_reqfile *f, const char *data, size_t len, char *err,
                           size_t errlen)
{
    memset(f, 0, sizeof(*f));
    if (len > RF_PROBE_REQFILE_MAX) {
        rf_errf(err, errlen, "request file longer than %zu bytes", (size_t)RF_PROBE_REQFILE_MAX);
        return -1;
    }
    /* Every string is copied, NUL-terminated, into one block no larger than
     * the file plus a terminator per line. */
    size_t cap = len + RF_PROBE_HEADERS_MAX * 2 + 8, used = 0;
    char *st = malloc(cap);
    if (!st) {
        rf_errf(err, errlen, "out of memory");
        return -1;
    }
#define KEEP(dst, src, n)                                                                          \
    do {                                                                                           \
        memcpy(st + used, (src), (n));                                                             \
        st[used + (n)] = '\0';                                                                     \
        (dst) = st + used;                                                                         \
        used += (n) + 1;                                                                           \
    } while (0)

    const char *p = data, *end = data + len, *line;
    size_t n = 0, lineno = 0;
    for (;;) {
        if (p == end) {
            rf_errf(err, errlen, "no request line");
            goto fail;
        }
        line = p;
        p = next_line(p, end, &n);
        lineno++;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t'))
            k++;
        if (k == n || line[k] == '#' || (n - k >= 2 && line[k] == '/' && line[k + 1] == '/'))
            continue;
        break;
    }
    /* METHOD SP TARGET [SP HTTP/x]: the version is ignored, since the probe
     * speaks HTTP/1.1 whatever the capture was (Burp shows h2 as HTTP/2). */
    if (!head_bytes_ok(line, n)) {
        rf_errf(err, errlen, "line %zu: control character in the request line", lineno);
        goto fail;
    }
    size_t ml = token_len(line, n);
    if (ml == 0 || ml > 32 || ml >= n || line[ml] != ' ') {
        /* The line is not NUL-terminated: it is a slice of the file. */
        rf_errf(err, errlen, "line %zu: want \"METHOD TARGET [HTTP/1.1]\", got \"%.*s\"", lineno,
                (int)(n > 60 ? 60 : n), line);
        goto fail;
    }
    const char *t = line + ml + 1;
    size_t rest = n - ml - 1;
    while (rest > 0 && *t == ' ') {
        t++;
        rest--;
    }
    size_t tl = 0;
    while (tl < rest && t[tl] != ' ')
        tl++;
    const char *v = t + tl;
    size_t vl = rest - tl;
    while (vl > 0 && *v == ' ') {
        v++;
        vl--;
    }
    while (vl > 0 && v[vl - 1] == ' ')
        vl--;
    if (vl > 0 && (vl < 5 || strncmp(v, "HTTP/", 5) != 0 || memchr(v, ' ', vl))) {
        rf_errf(err, errlen, "line %zu: junk after the target: \"%.*s\"", lineno,
                (int)(vl > 40 ? 40 : vl), v);
        goto fail;
    }
    if (tl == 0) {
        rf_errf(err, errlen, "line %zu: no target after the method", lineno);
        goto fail;
    }
    if (t[0] == '/') {
        f->absolute = 0;
    } else if (tl > 7 && strncasecmp(t, "http://", 7) == 0) {
        f->absolute = 1;
    } else if (tl > 8 && strncasecmp(t, "https://", 8) == 0) {
        f->absolute = 1; /* the URL parser says what it thinks of https */
    } else {
        rf_errf(err, errlen, "line %zu: target must be /path or http://host/path, got \"%.*s\"",
                lineno, (int)(tl > 60 ? 60 : tl), t);
        goto fail;
    }
    if (tl > RF_PROBE_URL_MAX) {
        rf_errf(err, errlen, "line %zu: target longer than %d bytes", lineno, RF_PROBE_URL_MAX);
        goto fail;
    }
    KEEP(f->method, line, ml);
    KEEP(f->target, t, tl);

    for (;;) {
        if (p == end) {
            /* No blank line: a head without a body, as editors often save a GET. */
            break;
        }
        line = p;
        p = next_line(p, end, &n);
        lineno++;
        if (n == 0)
            break;
        if (line[0] == ' ' || line[0] == '\t') {
            rf_errf(err, errlen, "line %zu: folded header lines are not supported", lineno);
            goto fail;
        }
        if (!head_bytes_ok(line, n)) {
            rf_errf(err, errlen, "line %zu: control character in a header", lineno);
            goto fail;
        }
        size_t nl = token_len(line, n);
        if (nl == 0 || nl >= n || line[nl] != ':') {
            rf_errf(err, errlen, "line %zu: want \"Name: value\", got \"%.*s\"", lineno,
                    (int)(n > 60 ? 60 : n), line);
            goto fail;
        }
        const char *hv = line + nl + 1;
        size_t hvl = n - nl - 1;
        while (hvl > 0 && (*hv == ' ' || *hv == '\t')) {
            hv++;
            hvl--;
        }
        while (hvl > 0 && (hv[hvl - 1] == ' ' || hv[hvl - 1] == '\t'))
            hvl--;
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(line, name, nl) == 0)
        if (IS("Transfer-Encoding")) {
            rf_errf(err, errlen,
                    "line %zu: Transfer-Encoding in a request file is not supported; save the "
                    "body unchunked (the probe sends Content-Length)",
                    lineno);
            goto fail;
        }
        /* Recomputed from the body as sent, templates expanded. */
        if (IS("Content-Length") || IS("Connection"))
            continue;
        if (f->nhdr >= RF_PROBE_HEADERS_MAX) {
            rf_errf(err, errlen, "line %zu: more than %d headers", lineno, RF_PROBE_HEADERS_MAX);
            goto fail;
        }
        struct rf_probe_reqfile_hdr *h = &f->hdr[f->nhdr++];
        KEEP(h->name, line, nl);
        KEEP(h->value, hv, hvl);
        if (IS("Host") && !f->host)
            f->host = h->value;
#undef IS
    }

    if (p < end) {
        /* The body ends at a "###" line or the end of the file, less the
         * line end before either, which an editor adds and no API means. */
        const char *b = p, *stop = end;
        for (const char *q = p; q < end;) {
            size_t ln;
            const char *nx = next_line(q, end, &ln);
            if (ln >= 3 && !memcmp(q, "###", 3)) {
                stop = q;
                break;
            }
            q = nx;
        }
        if (stop > b && stop[-1] == '\n')
            stop--;
        if (stop > b && stop[-1] == '\r')
            stop--;
        if (stop > b) {
            size_t bl = (size_t)(stop - b);
            if (bl > RF_PROBE_BODY_MAX) {
                rf_errf(err, errlen, "body longer than %zu bytes", RF_PROBE_BODY_MAX);
                goto fail;
            }
            KEEP(f->body, b, bl);
            f->body_len = bl;
        }
    }
#undef KEEP
    f->store = st;
    return 0;
fail:
    free(st);
    memset(f, 0, sizeof(*f));
    return -1;
}

void rf_probe_reqfile_free(struct rf_probe_reqfile *f)
{
    free(f->store);
    memset(f, 0, sizeof(*f));
}

int rf_probe_group_name_ok(const char *s, size_t n)
{
    return rf_probe_name_ok(s, n, RF_PROBE_GROUP_NAME_MAX);
}

int rf_probe_reqarg_split(const char *arg, size_t def, size_t max,
                          char name[RF_PROBE_GROUP_NAME_MAX + 1], const char **path,
                          size_t *path_len, size_t *count, char *err, size_t errlen)
{
    const char *file = arg;
    const char *eq = strchr(arg, '=');
    const char *slash = strchr(arg, '/');
    name[0] = '\0';
    /* NAME=FILE, unless what precedes the '=' cannot be a name: then the
     * '=' belongs to a directory or file name. */
    if (eq && (!slash || eq < slash) && rf_probe_group_name_ok(arg, (size_t)(eq - arg))) {
        memcpy(name, arg, (size_t)(eq - arg));
        name[eq - arg] = '\0';
        file = eq + 1;
    }
    size_t fl = strlen(file);
    *count = def;
    const char *colon = strrchr(file, ':');
    if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
        char *e;
        unsigned long long c = strtoull(colon + 1, &e, 10);
        if (c < 1 || c > max || strlen(colon + 1) > 6) {
            rf_errf(err, errlen, "--request %.80s: COUNT wants 1..%zu", arg, max);
            return -1;
        }
        *count = (size_t)c;
        fl = (size_t)(colon - file);
    }
    if (fl == 0) {
        rf_errf(err, errlen, "--request %.80s: no file", arg);
        return -1;
    }
    *path = file;
    *path_len = fl;
    if (!name[0]) {
        const char *base = file;
        for (size_t k = 0; k < fl; k++)
            if (file[k] == '/')
                base = file + k + 1;
        size_t bl = (size_t)(file + fl - base);
        const char *dot = memchr(base, '.', bl);
        if (dot && dot > base)
            bl = (size_t)(dot - base);
        if (!rf_probe_group_name_ok(base, bl)) {
            rf_errf(err, errlen,
                    "--request %.80s: the file name makes no group name (1..%d of A-Z a-z 0-9 _ "
                    "-); write NAME=FILE",
                    arg, RF_PROBE_GROUP_NAME_MAX);
            return -1;
        }
        memcpy(name, base, bl);
        name[bl] = '\0';
    }
    return 0;
}

static int header_named(const char *line, const char *name)
{
    size_t nl = strlen(name);
    return strncasecmp(line, name, nl) == 0 && line[nl] == ':';
}

int rf_probe_reqfile_spec(const struct rf_probe_reqfile *f, const char *base,
                          const char *const *extra, size_t nextra, const struct rf_probe_vars *vs,
                          struct rf_probe_reqspec *s, char method[40], char *err, size_t errlen)
{
    char sub[320];
    struct rf_probe_buf url, line;
    int rc = -1;
    rf_probe_buf_init(&url, RF_PROBE_URL_MAX);
    rf_probe_buf_init(&line, RF_PROBE_HEAD_MAX);
    snprintf(method, 40, "%s", f->method);

    /* The path and query come from the file, where they go from base or the
     * file: a capture from staging replays against the CI server. */
    const char *path = f->target;
    if (f->absolute) {
        const char *a = strstr(f->target, "://") + 3;
        path = a + strcspn(a, "/?#");
    }
    int ok = 1;
    if (base) {
        const char *a = strstr(base, "://");
        a = a ? a + 3 : base;
        size_t origin = (size_t)(a - base) + strcspn(a, "/?#");
        ok = rf_probe_buf_add(&url, base, origin) == 0;
    } else if (f->absolute) {
        ok = rf_probe_buf_add(&url, f->target, (size_t)(path - f->target)) == 0;
    } else if (f->host && f->host[0]) {
        ok = rf_probe_buf_addf(&url, "http://%s", f->host) == 0;
    } else {
        rf_errf(err, errlen, "origin-form target %.60s needs a Host header or a URL argument",
                f->target);
        goto out;
    }
    ok = ok && rf_probe_buf_adds(&url, path) == 0;
    if (!ok) {
        rf_errf(err, errlen, "URL longer than %d bytes", RF_PROBE_URL_MAX);
        goto out;
    }
    if (rf_probe_tpl_compile(&s->url, url.p, url.len, vs, sub, sizeof(sub)) < 0) {
        rf_errf(err, errlen, "target: %s", sub);
        goto out;
    }
    for (size_t k = 0; k < f->nhdr; k++) {
        const struct rf_probe_reqfile_hdr *h = &f->hdr[k];
        int replaced = base && !strcasecmp(h->name, "Host");
        for (size_t j = 0; j < nextra && !replaced; j++)
            replaced = header_named(extra[j], h->name);
        if (replaced)
            continue;
        line.len = 0;
        if (rf_probe_buf_addf(&line, "%s: %s", h->name, h->value) < 0) {
            rf_errf(err, errlen, "header %.40s too long", h->name);
            goto out;
        }
        if (rf_probe_reqspec_header(s, line.p, vs, err, errlen) < 0)
            goto out;
    }
    for (size_t j = 0; j < nextra; j++)
        if (rf_probe_reqspec_header(s, extra[j], vs, err, errlen) < 0)
            goto out;
    if (f->body) {
        if (rf_probe_tpl_compile(&s->body, f->body, f->body_len, vs, sub, sizeof(sub)) < 0) {
            rf_errf(err, errlen, "body: %s", sub);
            goto out;
        }
        s->has_body = 1;
    }
    rc = 0;
out:
    rf_probe_buf_free(&url);
    rf_probe_buf_free(&line);
    return rc;
}

void rf_probe_groups_interleave(const size_t *counts, size_t n, unsigned *out)
{
    size_t taken[RF_PROBE_GROUPS_MAX] = {0}, total = 0;
    for (size_t g = 0; g < n && g < RF_PROBE_GROUPS_MAX; g++)
        total += counts[g];
    for (size_t k = 0; k < total; k++) {
        size_t best = SIZE_MAX;
        /* The group whose next request's ideal place, (taken + 1/2) / count
         * of the way through, comes first; compared without division. */
        for (size_t g = 0; g < n && g < RF_PROBE_GROUPS_MAX; g++) {
            if (taken[g] >= counts[g])
                continue;
            if (best == SIZE_MAX ||
                (2 * taken[g] + 1) * counts[best] < (2 * taken[best] + 1) * counts[g])
                best = g;
        }
        out[k] = (unsigned)best;
        taken[best]++;
    }
}

int rf_probe_group_load(struct rf_probe_group *g, const char *name, const char *path,
                        size_t path_len, size_t count, const char *base, const char *const *extra,
                        size_t nextra, const struct rf_probe_vars *vs, char *err, size_t errlen)
{
    char e[320], fname[4096];
    struct rf_probe_reqfile f;
    size_t len;
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->count = count;
    if (path_len >= sizeof(fname)) {
        rf_errf(err, errlen, "--request: file name longer than %zu bytes", sizeof(fname) - 1);
        return -1;
    }
    memcpy(fname, path, path_len);
    fname[path_len] = '\0';
    char *data = rf_probe_read_file(fname, RF_PROBE_REQFILE_MAX, &len, e, sizeof(e));
    if (!data) {
        rf_errf(err, errlen, "--request %s: %s", name, e);
        return -1;
    }
    int rc = rf_probe_reqfile_parse(&f, data, len, e, sizeof(e));
    free(data);
    if (rc < 0) {
        rf_errf(err, errlen, "--request %s (%.200s): %s", name, fname, e);
        return -1;
    }
    snprintf(g->target, sizeof(g->target), "%s", f.target);
    rc = rf_probe_reqfile_spec(&f, base, extra, nextra, vs, &g->spec, g->method, e, sizeof(e));
    rf_probe_reqfile_free(&f);
    if (rc < 0) {
        rf_errf(err, errlen, "--request %s (%.200s): %s", name, fname, e);
        return -1;
    }
    g->dynamic = g->spec.url.dynamic || (g->spec.has_body && g->spec.body.dynamic);
    for (size_t k = 0; k < g->spec.nhdr; k++)
        g->dynamic |= g->spec.hdr[k].dynamic;
    return 0;
}

void rf_probe_group_free(struct rf_probe_group *g)
{
    rf_probe_reqspec_free(&g->spec);
}
