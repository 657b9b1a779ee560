#include "probe/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe/servertime.h"

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

int rf_probe_group_stats_add(struct rf_probe_stats *st, size_t ng, const struct rf_burst_res *res,
                             const unsigned *group_of, size_t n, unsigned rnd)
{
    /* The stats take a contiguous array; a shallow copy per group is enough,
     * since they only read. */
    struct rf_burst_res *sub = malloc((n ? n : 1) * sizeof(*sub));
    if (!sub)
        return -1;
    int rc = 0;
    for (size_t g = 0; g < ng && rc == 0; g++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (group_of[i] == g)
                sub[k++] = res[i];
        rc = rf_probe_stats_add(&st[g], sub, k, rnd);
    }
    free(sub);
    return rc;
}

void rf_probe_stats_figs(struct rf_probe_stats *s, struct rf_probe_figs *f)
{
    memset(f, 0, sizeof(*f));
    f->has_lat = s->nlat > 0;
    if (f->has_lat) {
        rf_probe_fmt_ns(f->lat_min, sizeof(f->lat_min), rf_probe_stats_lat(s, 0));
        rf_probe_fmt_ns(f->lat_p50, sizeof(f->lat_p50), rf_probe_stats_lat(s, 0.5));
        rf_probe_fmt_ns(f->lat_p99, sizeof(f->lat_p99), rf_probe_stats_lat(s, 0.99));
        rf_probe_fmt_ns(f->lat_max, sizeof(f->lat_max), rf_probe_stats_lat(s, 1));
    }
    f->nspread = s->nspread;
    if (s->nspread == 1) {
        rf_probe_fmt_ns(f->spread_one, sizeof(f->spread_one), s->spread_ns[0]);
    } else if (s->nspread > 1) {
        rf_probe_fmt_ns(f->spread_min, sizeof(f->spread_min), rf_probe_stats_spread(s, 0));
        rf_probe_fmt_ns(f->spread_median, sizeof(f->spread_median), rf_probe_stats_spread(s, 0.5));
        rf_probe_fmt_ns(f->spread_max, sizeof(f->spread_max), rf_probe_stats_spread(s, 1));
    }
}

void rf_probe_spread_judge(const struct rf_burst_res *res, size_t n, const char *server_time,
                           long max_spread_us, const struct rf_probe_stats *st,
                           struct rf_probe_spread_verdict *v)
{
    memset(v, 0, sizeof(*v));
    v->nstamps = server_time ? rf_probe_servertime_spread(res, n, server_time, &v->server_ns) : 0;
    int server = v->nstamps >= 2;
    v->judged_what = server ? "server" : st->nspread ? "release" : NULL;
    v->judged_ns = server ? v->server_ns : st->nspread ? st->spread_ns[0] : 0;
    v->inconclusive =
        max_spread_us >= 0 && (!v->judged_what || v->judged_ns > (uint64_t)max_spread_us * 1000ull);
}
