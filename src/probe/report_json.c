/* The JSON report: one document on stdout once every burst has run, for CI
 * jobs and scripts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probe/report.h"
#include "probe/reqfile.h"

/* Bytes of each response body the document carries. */
#define BODY_SNIPPET 1024

struct jrep {
    FILE *f;
    const struct rf_probe_target *t;
    json_t *rounds; /* one object per round */
};

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

json_t *rf_probe_groups_json(const struct rf_probe_group *g, size_t ng, struct rf_probe_stats *st,
                             int summary)
{
    json_t *o = json_object();
    for (size_t k = 0; o && k < ng; k++) {
        json_t *j = rf_probe_stats_json(&st[k], summary);
        json_object_set_new(j, "count", json_integer((json_int_t)g[k].count));
        json_object_set_new(o, g[k].name, j);
    }
    return o;
}

static json_t *opt_us(uint64_t t, uint64_t t0)
{
    if (!t || t < t0)
        return json_null();
    return json_real((double)((t - t0) / 100) / 10.0);
}

static json_t *body_snippet(const struct rf_burst_res *q)
{
    if (q->err || !q->http.body)
        return json_null();
    size_t n = q->http.body_len < BODY_SNIPPET ? q->http.body_len : BODY_SNIPPET;
    /* A cut may split a UTF-8 sequence; back off up to 3 bytes. */
    for (int back = 0; back < 4 && back <= (int)n; back++) {
        json_t *s = json_stringn(q->http.body, n - (size_t)back);
        if (s)
            return s;
    }
    return json_null();
}

static json_t *request_json(const struct rf_burst_res *q, size_t i, uint64_t t0)
{
    json_t *o = json_object();
    json_object_set_new(o, "i", json_integer((json_int_t)i));
    json_object_set_new(o, "status", q->err ? json_null() : json_integer(q->http.status));
    json_object_set_new(o, "error", q->err ? json_string(q->err_msg) : json_null());
    json_object_set_new(o, "latency_us",
                        q->err || !q->t_lastbyte_ns ? json_null()
                                                    : opt_us(q->t_done_ns, q->t_lastbyte_ns));
    json_object_set_new(o, "connected_us", opt_us(q->t_connected_ns, t0));
    json_object_set_new(o, "lastbyte_us", opt_us(q->t_lastbyte_ns, t0));
    json_object_set_new(o, "firstbyte_us", opt_us(q->t_firstbyte_ns, t0));
    json_object_set_new(o, "done_us", opt_us(q->t_done_ns, t0));
    json_object_set_new(o, "body", body_snippet(q));
    if (!q->err && q->http.body_len > BODY_SNIPPET)
        json_object_set_new(o, "body_truncated", json_true());
    return o;
}

static json_t *exp_json(const struct rf_probe_exp *x, const struct rf_probe_exp_res *er)
{
    return json_pack("{s:s, s:s, s:I, s:o, s:b, s:s}", "kind", rf_probe_exp_kind_name(x->kind),
                     "spec", x->spec, "want", (json_int_t)er->want, "got",
                     er->got < 0 ? json_null() : json_integer(er->got), "pass", er->pass, "detail",
                     er->detail);
}

static int json_begin(void *ctx, const struct rf_probe_target *t, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    ((struct jrep *)ctx)->t = t;
    return 0;
}

static void json_round(void *ctx, const struct rf_probe_round *r)
{
    struct jrep *x = ctx;
    const struct rf_probe_target *t = x->t;
    const struct rf_probe_spread_verdict *v = &r->spread;
    json_t *js = rf_probe_stats_json(r->stats, 0);
    json_t *jr = json_pack("{s:I}", "round", (json_int_t)r->round);
    json_t *je = json_array();
    json_object_update(jr, js);
    json_decref(js);
    if (r->verify)
        json_object_set_new(
            jr, "verify",
            json_pack("{s:s, s:o, s:o, s:o}", "url", r->verify_url, "status",
                      r->verify->err ? json_null() : json_integer(r->verify->http.status), "error",
                      r->verify->err ? json_string(r->verify->err_msg) : json_null(), "body",
                      body_snippet(r->verify)));
    for (size_t k = 0; k < r->nexps; k++)
        json_array_append_new(je, exp_json(&r->exps[k], &r->exp_res[k]));
    json_object_set_new(jr, "expectations", je);
    if (t->server_time) {
        json_object_set_new(jr, "server_spread_us",
                            v->nstamps >= 2 ? json_real((double)(v->server_ns / 100) / 10.0)
                                            : json_null());
        json_object_set_new(jr, "server_stamps", json_integer((json_int_t)v->nstamps));
    }
    if (t->max_spread_us >= 0)
        json_object_set_new(jr, "inconclusive", json_boolean(v->inconclusive));
    if (t->ngroups)
        json_object_set_new(jr, "groups",
                            rf_probe_groups_json(t->groups, t->ngroups, r->group_stats, 0));
    if (t->per_request) {
        json_t *ja = json_array();
        for (size_t i = 0; i < r->n; i++) {
            json_t *jq = request_json(&r->res[i], i, r->t0_ns);
            if (t->ngroups)
                json_object_set_new(jq, "group", json_string(t->groups[r->group_of[i]].name));
            json_array_append_new(ja, jq);
        }
        json_object_set_new(jr, "per_request", ja);
    }
    json_array_append_new(x->rounds, jr);
}

static json_t *target_json(const struct rf_probe_target *t, int realtime)
{
    json_t *jt = json_pack("{s:s, s:s, s:I, s:I, s:s, s:i, s:b}", "method", t->method, "url",
                           t->url, "n", (json_int_t)t->n, "rounds", (json_int_t)t->rounds, "sync",
                           t->sync, "timeout_ms", t->timeout_ms, "realtime", realtime);
    if (t->ngroups) {
        json_t *jg = json_array();
        for (size_t g = 0; g < t->ngroups; g++)
            json_array_append_new(jg, json_pack("{s:s, s:s, s:s, s:I}", "name", t->groups[g].name,
                                                "method", t->groups[g].method, "target",
                                                t->groups[g].target, "count",
                                                (json_int_t)t->groups[g].count));
        json_object_set_new(jt, "groups", jg);
    }
    json_object_set_new(jt, "warmup", json_integer(t->warmup));
    json_object_set_new(jt, "server_time",
                        t->server_time ? json_string(t->server_time) : json_null());
    json_object_set_new(jt, "max_spread_us",
                        t->max_spread_us >= 0 ? json_integer(t->max_spread_us) : json_null());
    return jt;
}

static int json_end(void *ctx, const struct rf_probe_summary *s, char *err, size_t errlen)
{
    struct jrep *x = ctx;
    const struct rf_probe_target *t = x->t;
    (void)err;
    (void)errlen;
    json_t *doc = json_object();
    json_object_set_new(doc, "target", target_json(t, s->realtime));
    json_object_set(doc, "rounds", x->rounds);
    json_t *tot = rf_probe_stats_json(s->stats, 1);
    json_t *je = json_array();
    for (size_t k = 0; k < s->nexps; k++)
        json_array_append_new(
            je, json_pack("{s:s, s:s, s:b, s:I, s:I}", "kind",
                          rf_probe_exp_kind_name(s->exps[k].kind), "spec", s->exps[k].spec, "pass",
                          s->exp_held[k] == s->rounds_done && s->rounds_done > 0, "rounds_held",
                          (json_int_t)s->exp_held[k], "rounds", (json_int_t)s->rounds_done));
    json_object_set_new(tot, "expectations", je);
    if (t->ngroups)
        json_object_set_new(tot, "groups",
                            rf_probe_groups_json(t->groups, t->ngroups, s->group_stats, 1));
    if (t->max_spread_us >= 0)
        json_object_set_new(tot, "inconclusive_rounds", json_integer(s->inconclusive_rounds));
    json_object_set_new(doc, "total", tot);
    json_object_set_new(doc, "pass", json_boolean(s->exit_code == 0));
    json_object_set_new(doc, "exit_code", json_integer(s->exit_code));
    json_object_set_new(doc, "error", s->error ? json_string(s->error) : json_null());
    if (!json_object_get(doc, "error"))
        json_object_set_new(doc, "error", json_string("(unprintable error)"));
    char *str = json_dumps(doc, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(12));
    if (str) {
        fputs(str, x->f);
        fputc('\n', x->f);
    }
    free(str);
    json_decref(doc);
    json_decref(x->rounds);
    free(x);
    return 0;
}

static void json_discard(void *ctx)
{
    struct jrep *x = ctx;
    json_decref(x->rounds);
    free(x);
}

static const struct rf_probe_reporter_ops json_ops = {
    .begin = json_begin, .round = json_round, .end = json_end, .discard = json_discard};

int rf_probe_reporter_json(struct rf_probe_reporter *rep, FILE *out)
{
    struct jrep *x = calloc(1, sizeof(*x));
    if (!x || !(x->rounds = json_array())) {
        free(x);
        return -1;
    }
    x->f = out;
    *rep = (struct rf_probe_reporter){.ops = &json_ops, .ctx = x};
    return 0;
}
