#include "probe/expect.h"
#include "core/util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Distinct values are compared by their canonical JSON text; longer values
 * are cut here, which only affects values that differ past this point. */
#define VALUE_TEXT_MAX 1024
#define DETAIL_VALUES 4

/* ---- counts -------------------------------------------------------------- */

static int parse_ulong(const char *s, long *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

int rf_probe_count_parse(struct rf_probe_count *c, const char *s, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    if (s[0] == 'N' || s[0] == 'n') {
        c->of_n = 1;
        if (s[1] == '\0')
            return 0;
        if (s[1] == '-' && parse_ulong(s + 2, &c->k) == 0)
            return 0;
    } else if (parse_ulong(s, &c->k) == 0) {
        return 0;
    }
    rf_errf(err, errlen, "bad count \"%s\" (want a number, N, or N-k)", s);
    return -1;
}

long rf_probe_count_value(const struct rf_probe_count *c, size_t n)
{
    if (!c->of_n)
        return c->k;
    /* n <= RF_BURST_MAX, so it fits a long. */
    return (long)n - c->k;
}

/* ---- JSON paths ---------------------------------------------------------- */

int rf_probe_jpath_parse(struct rf_probe_jpath *p, const char *s, size_t len, char *err,
                         size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (len == 0 || s[0] != '.') {
        rf_errf(err, errlen, "JSON path \"%.*s\" must start with '.' (e.g. .user.id)",
                (int)(len > 64 ? 64 : len), s);
        return -1;
    }
    if (len > RF_PROBE_JPATH_MAX_LEN) {
        rf_errf(err, errlen, "JSON path longer than %d bytes", RF_PROBE_JPATH_MAX_LEN);
        return -1;
    }
    memcpy(p->text, s, len);
    p->text[len] = '\0';
    p->store = malloc(len + 1);
    if (!p->store) {
        rf_errf(err, errlen, "out of memory");
        return -1;
    }
    if (len == 1) {
        p->store[0] = '\0';
        return 0; /* "." is the whole document */
    }
    /* Each step is copied out followed by a NUL; the store never needs more
     * than the path itself plus one byte, since every step consumes at least
     * one separator byte. */
    size_t i = 0, w = 0;
    while (i < len) {
        int bracket = s[i] == '[';
        if (!bracket && s[i] != '.')
            goto bad;
        i++;
        size_t start = i;
        if (bracket) {
            while (i < len && s[i] != ']')
                i++;
            if (i == len)
                goto bad;
        } else {
            while (i < len && s[i] != '.' && s[i] != '[')
                i++;
        }
        size_t sl = i - start;
        if (sl == 0)
            goto bad;
        for (size_t k = start; k < i; k++)
            if (s[k] == '\0')
                goto bad;
        if (bracket) {
            i++; /* the ']' */
            long idx;
            const char *d = s + start;
            int neg = *d == '-';
            char num[24];
            if (sl - (size_t)neg >= sizeof(num) || sl == (size_t)neg)
                goto bad;
            memcpy(num, d + neg, sl - (size_t)neg);
            num[sl - (size_t)neg] = '\0';
            if (parse_ulong(num, &idx) < 0)
                goto bad;
        }
        if (p->n == RF_PROBE_JPATH_MAX_DEPTH) {
            rf_errf(err, errlen, "JSON path deeper than %d steps", RF_PROBE_JPATH_MAX_DEPTH);
            rf_probe_jpath_free(p);
            return -1;
        }
        memcpy(p->store + w, s + start, sl);
        p->steps[p->n++] = p->store + w;
        w += sl;
        p->store[w++] = '\0';
    }
    return 0;
bad:
    rf_errf(err, errlen, "bad JSON path \"%.*s\" (e.g. .user.id, .data.0.id, .data[0].id)",
            (int)(len > 64 ? 64 : len), s);
    rf_probe_jpath_free(p);
    return -1;
}

static int step_index(const char *step, size_t size, size_t *out)
{
    int neg = step[0] == '-';
    long v;
    if (parse_ulong(step + neg, &v) < 0)
        return -1;
    if (!neg) {
        if ((unsigned long)v >= size)
            return -1;
        *out = (size_t)v;
        return 0;
    }
    if (v == 0 || (unsigned long)v > size)
        return -1;
    *out = size - (size_t)v;
    return 0;
}

json_t *rf_probe_jpath_get(const struct rf_probe_jpath *p, json_t *root)
{
    json_t *cur = root;
    for (size_t k = 0; cur && k < p->n; k++) {
        size_t idx;
        if (json_is_object(cur))
            cur = json_object_get(cur, p->steps[k]);
        else if (json_is_array(cur) && step_index(p->steps[k], json_array_size(cur), &idx) == 0)
            cur = json_array_get(cur, idx);
        else
            cur = NULL;
    }
    return cur;
}

void rf_probe_jpath_free(struct rf_probe_jpath *p)
{
    free(p->store);
    memset(p, 0, sizeof(*p));
}

/* ---- expectations -------------------------------------------------------- */

const char *rf_probe_exp_kind_name(enum rf_probe_exp_kind kind)
{
    switch (kind) {
    case RF_PROBE_EXP_STATUS:
        return "status";
    case RF_PROBE_EXP_NO5XX:
        return "no-5xx";
    case RF_PROBE_EXP_DISTINCT:
        return "distinct";
    case RF_PROBE_EXP_VERIFY_COUNT:
        return "verify-count";
    }
    return "?";
}

static int parse_status(const char *s, size_t n, int *out)
{
    if (n != 3 || s[0] < '1' || s[0] > '5')
        return -1;
    if ((s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X')) {
        *out = s[0] - '0';
        return 0;
    }
    if (s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
        return -1;
    *out = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    return 0;
}

int rf_probe_exp_parse(struct rf_probe_exp *e, enum rf_probe_exp_kind kind, const char *arg,
                       char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    if (kind == RF_PROBE_EXP_NO5XX)
        return 0;
    size_t al = strlen(arg);
    if (al >= sizeof(e->spec)) {
        rf_errf(err, errlen, "--expect-%s argument longer than %zu bytes",
                rf_probe_exp_kind_name(kind), sizeof(e->spec) - 1);
        return -1;
    }
    memcpy(e->spec, arg, al + 1);
    /* "redeem:200=1": a status or a path never starts with a group name
     * followed by ':', so the prefix is unambiguous. */
    size_t gl = strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
    if ((kind == RF_PROBE_EXP_STATUS || kind == RF_PROBE_EXP_DISTINCT) && gl > 0 &&
        arg[gl] == ':') {
        if (gl >= sizeof(e->group)) {
            rf_errf(err, errlen, "--expect-%s %s: group name longer than %zu bytes",
                    rf_probe_exp_kind_name(kind), arg, sizeof(e->group) - 1);
            return -1;
        }
        memcpy(e->group, arg, gl);
        e->group[gl] = '\0';
        arg += gl + 1;
    }
    /* The last '=' splits, so a path may itself contain one. */
    const char *eq = strrchr(arg, '=');
    if (!eq) {
        rf_errf(err, errlen, "--expect-%s wants %s=COUNT, got \"%s\"", rf_probe_exp_kind_name(kind),
                kind == RF_PROBE_EXP_STATUS ? "CODE" : "JSONPATH", arg);
        return -1;
    }
    size_t ll = (size_t)(eq - arg);
    char cerr[128];
    if (rf_probe_count_parse(&e->count, eq + 1, cerr, sizeof(cerr)) < 0) {
        rf_errf(err, errlen, "--expect-%s %s: %s", rf_probe_exp_kind_name(kind), arg, cerr);
        return -1;
    }
    if (kind == RF_PROBE_EXP_STATUS) {
        if (parse_status(arg, ll, &e->status) < 0) {
            rf_errf(err, errlen, "--expect-status %s: bad status \"%.*s\" (100-599, or 2xx)", arg,
                    (int)(ll > 16 ? 16 : ll), arg);
            return -1;
        }
        return 0;
    }
    char perr[160];
    if (rf_probe_jpath_parse(&e->path, arg, ll, perr, sizeof(perr)) < 0) {
        rf_errf(err, errlen, "--expect-%s: %s", rf_probe_exp_kind_name(kind), perr);
        return -1;
    }
    return 0;
}

void rf_probe_exp_free(struct rf_probe_exp *e)
{
    rf_probe_jpath_free(&e->path);
}

json_t *rf_probe_body_json(const struct rf_burst_res *r)
{
    if (r->err || !r->http.body || r->http.body_len == 0)
        return NULL;
    const char *b = r->http.body;
    size_t n = r->http.body_len, k = 0;
    while (k < n && (b[k] == ' ' || b[k] == '\t' || b[k] == '\r' || b[k] == '\n'))
        k++;
    if (k == n || (b[k] != '{' && b[k] != '['))
        return NULL; /* not worth a parse: error pages, plain text */
    return json_loadb(b, n, 0, NULL);
}

static int status_matches(int want, int got)
{
    if (want < 10)
        return got / 100 == want;
    return got == want;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends text to a detail buffer, cutting rather than overflowing. */
static void detail_add(char *d, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void detail_add(char *d, size_t cap, const char *fmt, ...)
{
    size_t used = strnlen(d, cap);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d + used, cap - used, fmt, ap);
    va_end(ap);
}

static int in_scope(const struct rf_probe_exp *e, const struct rf_probe_view *v, size_t i)
{
    return !e->group[0] || !v->group_of || v->group_of[i] == e->group_ix;
}

static void eval_distinct(const struct rf_probe_exp *e, const struct rf_probe_view *v,
                          struct rf_probe_exp_res *out)
{
    char **vals = calloc(v->n ? v->n : 1, sizeof(*vals));
    size_t nv = 0, missing = 0;
    if (!vals) {
        out->pass = 0;
        rf_errf(out->detail, sizeof(out->detail), "out of memory");
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        if (!in_scope(e, v, i))
            continue;
        json_t *x = v->bodies[i] ? rf_probe_jpath_get(&e->path, v->bodies[i]) : NULL;
        char *s = x ? json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        if (!s) {
            missing++;
            continue;
        }
        if (strlen(s) > VALUE_TEXT_MAX)
            s[VALUE_TEXT_MAX] = '\0';
        vals[nv++] = s;
    }
    qsort(vals, nv, sizeof(*vals), cmp_str);
    long distinct = 0;
    for (size_t i = 0; i < nv; i++)
        if (i == 0 || strcmp(vals[i], vals[i - 1]) != 0) {
            if (distinct < DETAIL_VALUES)
                detail_add(out->detail, sizeof(out->detail), "%s%.48s", distinct ? ", " : "",
                           vals[i]);
            distinct++;
        }
    if (distinct > DETAIL_VALUES)
        detail_add(out->detail, sizeof(out->detail), ", ... (%ld more)", distinct - DETAIL_VALUES);
    if (missing)
        detail_add(out->detail, sizeof(out->detail), "%s%zu response%s without %s", nv ? "; " : "",
                   missing, missing == 1 ? "" : "s", e->path.text);
    for (size_t i = 0; i < nv; i++)
        free(vals[i]);
    free(vals);
    out->got = distinct;
    out->pass = out->got == out->want;
}

/* The path's length when it names an array; a plain integer is taken as a
 * count already made by the server (e.g. {"total": 3}). */
static void eval_verify_count(const struct rf_probe_exp *e, const struct rf_probe_view *v,
                              struct rf_probe_exp_res *out)
{
    const struct rf_burst_res *r = v->verify;
    out->got = -1;
    if (!r) {
        rf_errf(out->detail, sizeof(out->detail), "no --verify request was made");
        return;
    }
    if (r->err) {
        rf_errf(out->detail, sizeof(out->detail), "verify request failed: %s", r->err_msg);
        return;
    }
    if (r->http.status < 200 || r->http.status > 299) {
        rf_errf(out->detail, sizeof(out->detail), "verify request answered %d", r->http.status);
        return;
    }
    if (!v->verify_body) {
        rf_errf(out->detail, sizeof(out->detail), "verify response is not JSON");
        return;
    }
    json_t *x = rf_probe_jpath_get(&e->path, v->verify_body);
    if (json_is_array(x)) {
        out->got = (long)json_array_size(x);
    } else if (json_is_integer(x)) {
        json_int_t k = json_integer_value(x);
        out->got = k < 0 ? -1 : k > LONG_MAX ? LONG_MAX : (long)k;
    } else {
        rf_errf(out->detail, sizeof(out->detail), "%s in the verify response is %s", e->path.text,
                x ? "neither an array nor an integer" : "missing");
        return;
    }
    out->pass = out->got == out->want;
}

void rf_probe_exp_eval(const struct rf_probe_exp *e, const struct rf_probe_view *v,
                       struct rf_probe_exp_res *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = e->group[0] && v->group_of ? v->group_n[e->group_ix] : v->n;
    out->want = e->kind == RF_PROBE_EXP_NO5XX ? 0 : rf_probe_count_value(&e->count, n);
    switch (e->kind) {
    case RF_PROBE_EXP_STATUS:
        for (size_t i = 0; i < v->n; i++)
            if (in_scope(e, v, i) && !v->res[i].err &&
                status_matches(e->status, v->res[i].http.status))
                out->got++;
        out->pass = out->got == out->want;
        return;
    case RF_PROBE_EXP_NO5XX: {
        /* A request left without a response (reset, timeout, garbage) is at
         * least as bad as a 5xx: the server did not handle the burst. */
        long n5 = 0, nores = 0;
        for (size_t i = 0; i < v->n; i++) {
            if (v->res[i].err)
                nores++;
            else if (v->res[i].http.status >= 500)
                n5++;
        }
        out->got = n5 + nores;
        if (nores)
            rf_errf(out->detail, sizeof(out->detail), "%ld 5xx, %ld without a response", n5, nores);
        out->pass = out->got == 0;
        return;
    }
    case RF_PROBE_EXP_DISTINCT:
        eval_distinct(e, v, out);
        return;
    case RF_PROBE_EXP_VERIFY_COUNT:
        eval_verify_count(e, v, out);
        return;
    }
}
