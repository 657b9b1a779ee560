/* The text report: what people read on a terminal, a round at a time. */
#include <stdlib.h>
#include <string.h>

#include "probe/report.h"
#include "probe/reqfile.h"

struct text {
    FILE *f;
    const struct rf_probe_target *t;
};

void rf_probe_exp_label(char *buf, size_t len, const struct rf_probe_exp *x)
{
    if (x->kind == RF_PROBE_EXP_NO5XX)
        snprintf(buf, len, "no-5xx");
    else
        snprintf(buf, len, "%s %s", rf_probe_exp_kind_name(x->kind), x->spec);
}

void rf_probe_stats_print(FILE *f, struct rf_probe_stats *s)
{
    struct rf_probe_figs fg;
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
    rf_probe_stats_figs(s, &fg);
    if (fg.has_lat)
        fprintf(f, "  latency   min %s   p50 %s   p99 %s   max %s\n", fg.lat_min, fg.lat_p50,
                fg.lat_p99, fg.lat_max);
    if (fg.nspread == 1)
        fprintf(f, "  spread    %s (first to last final byte sent)\n", fg.spread_one);
    else if (fg.nspread > 1)
        fprintf(f, "  spread    min %s   median %s   max %s over %zu bursts\n", fg.spread_min,
                fg.spread_median, fg.spread_max, fg.nspread);
}

void rf_probe_groups_print(FILE *f, const struct rf_probe_group *g, size_t ng,
                           const struct rf_probe_stats *st)
{
    for (size_t k = 0; k < ng; k++) {
        unsigned short order[RF_PROBE_STATUS_MAX];
        size_t no = rf_probe_status_order(&st[k], order);
        fprintf(f, "  %-9s %s ×%zu:", k ? "" : "group", g[k].name, st[k].requests);
        for (size_t j = 0; j < no; j++)
            fprintf(f, "%s%u ×%zu", j ? "   " : " ", order[j], st[k].status[order[j]]);
        if (st[k].no_response)
            fprintf(f, "%sno response ×%zu", no ? "   " : " ", st[k].no_response);
        fputc('\n', f);
    }
}

static void print_requests(FILE *f, const struct rf_probe_target *t, const struct rf_probe_round *r)
{
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < r->n; i++)
        if (r->res[i].t_lastbyte_ns && r->res[i].t_lastbyte_ns < first)
            first = r->res[i].t_lastbyte_ns;
    int width = 0;
    for (size_t g = 0; g < t->ngroups; g++)
        if ((int)strlen(t->groups[g].name) > width)
            width = (int)strlen(t->groups[g].name);
    for (size_t i = 0; i < r->n; i++) {
        const struct rf_burst_res *q = &r->res[i];
        char lat[32] = "-", off[32] = "-";
        if (q->t_lastbyte_ns) {
            rf_probe_fmt_ns(off, sizeof(off), q->t_lastbyte_ns - first);
            if (!q->err && q->t_done_ns >= q->t_lastbyte_ns)
                rf_probe_fmt_ns(lat, sizeof(lat), q->t_done_ns - q->t_lastbyte_ns);
        }
        char grp[RF_PROBE_GROUP_NAME_MAX + 4] = "";
        if (t->ngroups)
            snprintf(grp, sizeof(grp), " %-*s", width, t->groups[r->group_of[i]].name);
        if (q->err)
            fprintf(f, "    #%-5zu%s no response: %s\n", i, grp, q->err_msg);
        else
            fprintf(f, "    #%-5zu%s %3d   latency %-10s final byte +%s\n", i, grp, q->http.status,
                    lat, off);
    }
}

static void print_expectation(FILE *f, int first, const struct rf_probe_exp *x,
                              const struct rf_probe_exp_res *er)
{
    char label[400];
    rf_probe_exp_label(label, sizeof(label), x);
    fprintf(f, "  %-9s %s  %-32s ", first ? "expect" : "", er->pass ? "PASS" : "FAIL", label);
    if (er->got < 0)
        fprintf(f, "want %ld", er->want);
    else
        fprintf(f, "got %ld, want %ld", er->got, er->want);
    if (er->detail[0])
        fprintf(f, " (%s)", er->detail);
    fputc('\n', f);
}

static int text_begin(void *ctx, const struct rf_probe_target *t, char *err, size_t errlen)
{
    struct text *x = ctx;
    FILE *f = x->f;
    (void)err;
    (void)errlen;
    x->t = t;
    if (t->ngroups) {
        fprintf(f, "racefree probe: %zu requests in %zu groups (", t->n, t->ngroups);
        for (size_t g = 0; g < t->ngroups; g++)
            fprintf(f, "%s%s %zu × %s %s", g ? ", " : "", t->groups[g].name, t->groups[g].count,
                    t->groups[g].method, t->groups[g].target);
        fprintf(f, ")%s%s, %u round%s, sync %s, timeout %d ms\n", t->given_url ? " at " : "",
                t->given_url ? t->given_url : "", t->rounds, t->rounds == 1 ? "" : "s", t->sync,
                t->timeout_ms);
    } else {
        fprintf(f, "racefree probe: %zu × %s %s, %u round%s, sync %s, timeout %d ms\n", t->n,
                t->method, t->given_url, t->rounds, t->rounds == 1 ? "" : "s", t->sync,
                t->timeout_ms);
    }
    fflush(f);
    return 0;
}

static void text_round(void *ctx, const struct rf_probe_round *r)
{
    struct text *x = ctx;
    const struct rf_probe_target *t = x->t;
    const struct rf_probe_spread_verdict *v = &r->spread;
    FILE *f = x->f;
    fprintf(f, "round %u/%u\n", r->round, t->rounds);
    rf_probe_stats_print(f, r->stats);
    if (t->ngroups)
        rf_probe_groups_print(f, t->groups, t->ngroups, r->group_stats);
    if (t->server_time) {
        char a[32];
        rf_probe_fmt_ns(a, sizeof(a), v->server_ns);
        if (v->nstamps >= 2)
            fprintf(f, "  server    spread %s (%s in %zu of %zu responses)\n", a, t->server_time,
                    v->nstamps, r->n);
        else
            fprintf(f, "  server    spread unknown (%s in %zu of %zu responses)\n", t->server_time,
                    v->nstamps, r->n);
    }
    if (v->inconclusive) {
        char a[32];
        rf_probe_fmt_ns(a, sizeof(a), v->judged_ns);
        if (v->judged_what)
            fprintf(f, "  INCONCLUSIVE  %s spread %s is over --max-spread %ld µs\n", v->judged_what,
                    a, t->max_spread_us);
        else
            fprintf(f, "  INCONCLUSIVE  no spread known (no final byte was sent)\n");
    }
    if (r->verify) {
        if (r->verify->err)
            fprintf(f, "  verify    GET %s: no response: %s\n", r->verify_url, r->verify->err_msg);
        else
            fprintf(f, "  verify    GET %s answered %d\n", r->verify_url, r->verify->http.status);
    }
    for (size_t k = 0; k < r->nexps; k++)
        print_expectation(f, k == 0, &r->exps[k], &r->exp_res[k]);
    if (t->per_request)
        print_requests(f, t, r);
}

static int text_end(void *ctx, const struct rf_probe_summary *s, char *err, size_t errlen)
{
    struct text *x = ctx;
    const struct rf_probe_target *t = x->t;
    FILE *f = x->f;
    (void)err;
    (void)errlen;
    if (t->rounds > 1 && s->rounds_done > 0) {
        fprintf(f, "total over %u round%s\n", s->rounds_done, s->rounds_done == 1 ? "" : "s");
        rf_probe_stats_print(f, s->stats);
        if (t->ngroups)
            rf_probe_groups_print(f, t->groups, t->ngroups, s->group_stats);
        for (size_t k = 0; k < s->nexps; k++) {
            char label[400];
            rf_probe_exp_label(label, sizeof(label), &s->exps[k]);
            fprintf(f, "  %-9s %s  %-32s held in %zu of %u rounds\n", k ? "" : "expect",
                    s->exp_held[k] == s->rounds_done ? "PASS" : "FAIL", label, s->exp_held[k],
                    s->rounds_done);
        }
    }
    if (s->rounds_done > 0) {
        if (s->exit_code == 0)
            fprintf(f, "PASS: %s\n", s->nexps ? "every expectation held" : "no expectations given");
        else
            fprintf(f, "%s: %s\n",
                    s->exit_code == 1   ? "FAIL"
                    : s->exit_code == 3 ? "INCONCLUSIVE"
                                        : "ERROR",
                    s->error);
    }
    fflush(f);
    free(x);
    return 0;
}

static const struct rf_probe_reporter_ops text_ops = {
    .begin = text_begin, .round = text_round, .end = text_end, .discard = free};

int rf_probe_reporter_text(struct rf_probe_reporter *rep, FILE *out)
{
    struct text *x = calloc(1, sizeof(*x));
    if (!x)
        return -1;
    x->f = out;
    *rep = (struct rf_probe_reporter){.ops = &text_ops, .ctx = x};
    return 0;
}
