#include "probe/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rf_probe_stats_init(struct rf_probe_stats *s)
{
    memset(s, 0, sizeof(*s));
    s->first_err_i = -1;
}

void rf_probe_stats_free(struct rf_probe_stats *s)
{
    free(s->lat_ns);
    free(s->spread_ns);
    rf_probe_stats_init(s);
}

static int push(uint64_t **arr, size_t *n, size_t *cap, uint64_t v)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        uint64_t *p = realloc(*arr, ncap * sizeof(*p));
        if (!p)
            return -1;
        *arr = p;
        *cap = ncap;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

int rf_probe_stats_add(struct rf_probe_stats *s, const struct rf_burst_res *res, size_t n,
                       unsigned rnd)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    s->sorted = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rf_burst_res *r = &res[i];
        s->requests++;
        if (r->t_lastbyte_ns) {
            lo = r->t_lastbyte_ns < lo ? r->t_lastbyte_ns : lo;
            hi = r->t_lastbyte_ns > hi ? r->t_lastbyte_ns : hi;
        }
        if (r->err) {
            if (s->no_response++ == 0) {
                s->first_err_i = (long)i;
                s->first_err_round = rnd;
                snprintf(s->first_err, sizeof(s->first_err), "%s", r->err_msg);
            }
            continue;
        }
        int st = r->http.status;
        if (st > 0 && st < RF_PROBE_STATUS_MAX)
            s->status[st]++;
        if (st >= 500)
            s->n5xx++;
        /* A server may answer before the final byte is released (a 4xx on the
         * headers alone); there is no latency to speak of then. */
        if (r->t_lastbyte_ns && r->t_done_ns >= r->t_lastbyte_ns &&
            push(&s->lat_ns, &s->nlat, &s->lat_cap, r->t_done_ns - r->t_lastbyte_ns) < 0)
            return -1;
    }
    if (hi && push(&s->spread_ns, &s->nspread, &s->spread_cap, hi - lo) < 0)
        return -1;
    return 0;
}

int rf_probe_stats_merge(struct rf_probe_stats *dst, const struct rf_probe_stats *src)
{
    dst->sorted = 0;
    dst->requests += src->requests;
    for (size_t k = 0; k < RF_PROBE_STATUS_MAX; k++)
        dst->status[k] += src->status[k];
    dst->n5xx += src->n5xx;
    if (src->no_response && dst->no_response == 0) {
        dst->first_err_i = src->first_err_i;
        dst->first_err_round = src->first_err_round;
        memcpy(dst->first_err, src->first_err, sizeof(dst->first_err));
    }
    dst->no_response += src->no_response;
    for (size_t k = 0; k < src->nlat; k++)
        if (push(&dst->lat_ns, &dst->nlat, &dst->lat_cap, src->lat_ns[k]) < 0)
            return -1;
    for (size_t k = 0; k < src->nspread; k++)
        if (push(&dst->spread_ns, &dst->nspread, &dst->spread_cap, src->spread_ns[k]) < 0)
            return -1;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void sort_all(struct rf_probe_stats *s)
{
    if (s->sorted)
        return;
    qsort(s->lat_ns, s->nlat, sizeof(uint64_t), cmp_u64);
    qsort(s->spread_ns, s->nspread, sizeof(uint64_t), cmp_u64);
    s->sorted = 1;
}

static uint64_t pct(const uint64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    double rank = ceil(q * (double)n);
    size_t k = rank < 1 ? 0 : (size_t)rank - 1;
    return v[k < n ? k : n - 1];
}

uint64_t rf_probe_stats_lat(struct rf_probe_stats *s, double q)
{
    sort_all(s);
    return pct(s->lat_ns, s->nlat, q);
}

uint64_t rf_probe_stats_spread(struct rf_probe_stats *s, double q)
{
    sort_all(s);
    return pct(s->spread_ns, s->nspread, q);
}

void rf_probe_fmt_ns(char *buf, size_t len, uint64_t ns)
{
    if (ns < 1000)
        snprintf(buf, len, "%llu ns", (unsigned long long)ns);
    else if (ns < 1000000)
        snprintf(buf, len, "%.1f µs", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, len, "%.2f ms", (double)ns / 1e6);
    else
        snprintf(buf, len, "%.2f s", (double)ns / 1e9);
}

size_t rf_probe_status_order(const struct rf_probe_stats *s, unsigned short *out)
{
    unsigned char shown[RF_PROBE_STATUS_MAX] = {0};
    size_t n = 0;
    for (;;) {
        size_t best = 0;
        for (size_t k = 1; k < RF_PROBE_STATUS_MAX; k++)
            if (s->status[k] && !shown[k] && (best == 0 || s->status[k] > s->status[best]))
                best = k;
        if (!best)
            return n;
        shown[best] = 1;
        out[n++] = (unsigned short)best;
    }
}

void rf_probe_stats_print(FILE *f, struct rf_probe_stats *s)
{
    char a[32], b[32], c[32], d[32];
    unsigned short order[RF_PROBE_STATUS_MAX];
    size_t n = rf_probe_status_order(s, order);
    int any = n > 0;
    fprintf(f, "  status    ");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%u ×%zu", i ? "   " : "", (unsigned)order[i], s->status[order[i]]);
    if (s->no_response)
        fprintf(f, "%sno response ×%zu", any ? "   " : "", s->no_response);
    else if (!any)
        fprintf(f, "(none)");
    fputc('\n', f);
    fprintf(f, "  5xx       %zu\n", s->n5xx);
    if (s->no_response)
        fprintf(f, "  no reply  %zu (first: round %u request %ld: %s)\n", s->no_response,
                s->first_err_round, s->first_err_i, s->first_err);
    if (s->nlat) {
        rf_probe_fmt_ns(a, sizeof(a), rf_probe_stats_lat(s, 0));
        rf_probe_fmt_ns(b, sizeof(b), rf_probe_stats_lat(s, 0.5));
        rf_probe_fmt_ns(c, sizeof(c), rf_probe_stats_lat(s, 0.99));
        rf_probe_fmt_ns(d, sizeof(d), rf_probe_stats_lat(s, 1));
        fprintf(f, "  latency   min %s   p50 %s   p99 %s   max %s\n", a, b, c, d);
    }
    if (s->nspread == 1) {
        rf_probe_fmt_ns(a, sizeof(a), s->spread_ns[0]);
        fprintf(f, "  spread    %s (first to last final byte sent)\n", a);
    } else if (s->nspread > 1) {
        rf_probe_fmt_ns(a, sizeof(a), rf_probe_stats_spread(s, 0));
        rf_probe_fmt_ns(b, sizeof(b), rf_probe_stats_spread(s, 0.5));
        rf_probe_fmt_ns(c, sizeof(c), rf_probe_stats_spread(s, 1));
        fprintf(f, "  spread    min %s   median %s   max %s over %zu bursts\n", a, b, c,
                s->nspread);
    }
}

static json_t *us(uint64_t ns)
{
    /* 0.1 µs resolution is finer than anything the clock and kernel promise. */
    return json_real(round((double)ns / 100.0) / 10.0);
}

json_t *rf_probe_stats_json(struct rf_probe_stats *s, int summary)
{
    json_t *o = json_object();
    json_t *hist = json_object();
    for (size_t k = 1; k < RF_PROBE_STATUS_MAX; k++)
        if (s->status[k]) {
            char key[8];
            snprintf(key, sizeof(key), "%zu", k);
            json_object_set_new(hist, key, json_integer((json_int_t)s->status[k]));
        }
    json_object_set_new(o, "requests", json_integer((json_int_t)s->requests));
    json_object_set_new(o, "status", hist);
    json_object_set_new(o, "5xx", json_integer((json_int_t)s->n5xx));
    json_object_set_new(o, "no_response", json_integer((json_int_t)s->no_response));
    if (s->no_response)
        json_object_set_new(o, "first_error",
                            json_pack("{s:I, s:I, s:s}", "round", (json_int_t)s->first_err_round,
                                      "i", (json_int_t)s->first_err_i, "error", s->first_err));
    if (s->nlat)
        json_object_set_new(o, "latency_us",
                            json_pack("{s:o, s:o, s:o, s:o}", "min", us(rf_probe_stats_lat(s, 0)),
                                      "p50", us(rf_probe_stats_lat(s, 0.5)), "p99",
                                      us(rf_probe_stats_lat(s, 0.99)), "max",
                                      us(rf_probe_stats_lat(s, 1))));
    else
        json_object_set_new(o, "latency_us", json_null());
    if (s->nspread == 1 && !summary)
        json_object_set_new(o, "spread_us", us(s->spread_ns[0]));
    else if (s->nspread >= 1)
        json_object_set_new(o, "spread_us",
                            json_pack("{s:o, s:o, s:o}", "min", us(rf_probe_stats_spread(s, 0)),
                                      "median", us(rf_probe_stats_spread(s, 0.5)), "max",
                                      us(rf_probe_stats_spread(s, 1))));
    else
        json_object_set_new(o, "spread_us", json_null());
    return o;
}
