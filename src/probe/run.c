/* racefree probe's run (run.h): from the parsed options to the requests of
 * each round, the burst engine, --verify, the expectations, the statistics
 * and the reporters' calls. */
#include <errno.h>
#include <jansson.h>
#include <sched.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe/run.h"

/* All request bytes of one burst live in memory at once. */
#define BURST_BYTES_MAX ((size_t)256 << 20)
/* Response memory of one burst, shared out between its requests. */
#define RESPONSES_BYTES_MAX ((size_t)256 << 20)
#define RESPONSE_MIN ((size_t)16 << 10)
#define RESPONSE_MAX ((size_t)8 << 20)
/* Exit status of a run whose bursts were too loose to tell (--max-spread). */
#define EXIT_INCONCLUSIVE 3

void rf_probe_msg(FILE *f, const char *fmt, ...)
{
    va_list ap;
    fputs("racefree probe: ", f);
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
}

int rf_probe_method_ok(const char *m)
{
    return rf_probe_name_ok(m, strlen(m), 32);
}

void rf_probe_run_init(struct run *r, struct opts *o, FILE *out, FILE *err)
{
    memset(r, 0, sizeof(*r));
    r->o = o;
    r->out = out;
    r->err = err;
    rf_probe_stats_init(&r->total);
}

static const char *sync_name(enum rf_burst_sync s)
{
    return s == RF_BURST_LASTBYTE ? "lastbyte" : s == RF_BURST_PACKET ? "packet" : "none";
}

/* One context per ALPN offer: h2 only for a --sync packet burst, since
 * HTTP/1.1 bytes cannot go down a connection the server made h2. */
static int tls_contexts(struct run *r, int burst)
{
    struct opts *o = r->o;
    char e[384];
    if (!r->tls_h1) {
        r->tls_h1 = rf_tls_ctx_new(o->cacert, o->insecure, RF_TLS_ALPN_HTTP1, e, sizeof(e));
        if (!r->tls_h1) {
            rf_probe_msg(r->err, "%s", e);
            return -1;
        }
    }
    if (burst && o->sync == RF_BURST_PACKET && !r->tls_burst) {
        r->tls_burst = rf_tls_ctx_new(o->cacert, o->insecure, RF_TLS_ALPN_H2, e, sizeof(e));
        if (!r->tls_burst) {
            rf_probe_msg(r->err, "%s", e);
            return -1;
        }
    }
    return 0;
}

/* Loads every --request file and lays out the release order. */
static int prepare_groups(struct run *r)
{
    struct opts *o = r->o;
    char e[600];
    for (size_t g = 0; g < o->nrequests; g++) {
        r->ngroups++;
        if (rf_probe_group_load(&r->groups[g], o->group_names[g], o->group_paths[g],
                                o->group_path_len[g], o->group_counts[g], o->url, o->headers,
                                o->nheaders, &r->vars, e, sizeof(e)) < 0) {
            rf_probe_msg(r->err, "%s", e);
            return -1;
        }
    }
    r->slot_group = calloc(o->n, sizeof(*r->slot_group));
    r->slot_index = calloc(o->n, sizeof(*r->slot_index));
    if (!r->slot_group || !r->slot_index) {
        rf_probe_msg(r->err, "out of memory for %zu requests", o->n);
        return -1;
    }
    rf_probe_groups_interleave(o->group_counts, r->ngroups, r->slot_group);
    size_t seen[RF_PROBE_GROUPS_MAX] = {0};
    for (size_t k = 0; k < o->n; k++)
        r->slot_index[k] = seen[r->slot_group[k]]++;
    for (size_t g = 0; g < r->ngroups; g++)
        rf_probe_stats_init(&r->group_total[g]);
    return 0;
}

/* --warmup-request 'METHOD /path': checked once, sent as is. */
static int prepare_warmup(struct run *r)
{
    const char *w = r->o->warmup_request ? r->o->warmup_request : "GET /";
    const char *sp = strchr(w, ' ');
    size_t ml = sp ? (size_t)(sp - w) : 0;
    char m[40];
    if (ml == 0 || ml >= sizeof(m) || sp[1] != '/' || strlen(sp + 1) > RF_PROBE_URL_MAX) {
        rf_probe_msg(r->err, "--warmup-request wants 'METHOD /path', got \"%.60s\"", w);
        return -1;
    }
    memcpy(m, w, ml);
    m[ml] = '\0';
    if (!rf_probe_method_ok(m)) {
        rf_probe_msg(r->err, "--warmup-request: bad method \"%s\"", m);
        return -1;
    }
    for (const char *p = sp + 1; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            rf_probe_msg(r->err,
                         "--warmup-request: the path contains a space or control character");
            return -1;
        }
    snprintf(r->warmup_method, sizeof(r->warmup_method), "%s", m);
    snprintf(r->warmup_path, sizeof(r->warmup_path), "%s", sp + 1);
    return 0;
}

/* Compiles every template once, before anything is sent. */
static int prepare(struct run *r)
{
    struct opts *o = r->o;
    char e[384];

    for (size_t k = 0; k < o->nvars; k++)
        if (rf_probe_vars_add(&r->vars, o->vars[k], e, sizeof(e)) < 0) {
            rf_probe_msg(r->err, "--var: %s", e);
            return -1;
        }
    if (o->url && strlen(o->url) > RF_PROBE_URL_MAX) {
        rf_probe_msg(r->err, "URL longer than %d bytes", RF_PROBE_URL_MAX);
        return -1;
    }
    if (rf_probe_tpl_compile(&r->spec.url, o->url ? o->url : "", o->url ? strlen(o->url) : 0,
                             &r->vars, e, sizeof(e)) < 0) {
        rf_probe_msg(r->err, "URL: %s", e);
        return -1;
    }
    for (size_t k = 0; k < o->nheaders; k++)
        if (rf_probe_reqspec_header(&r->spec, o->headers[k], &r->vars, e, sizeof(e)) < 0) {
            rf_probe_msg(r->err, "%s", e);
            return -1;
        }
    if (o->data) {
        char *file = NULL;
        const char *body = o->data;
        size_t len = strlen(body);
        if (body[0] == '@') {
            file = rf_probe_read_file(body + 1, RF_PROBE_BODY_MAX, &len, e, sizeof(e));
            if (!file) {
                rf_probe_msg(r->err, "-d: %s", e);
                return -1;
            }
            body = file;
        } else if (len > RF_PROBE_BODY_MAX) {
            rf_probe_msg(r->err, "-d: body longer than %zu bytes", RF_PROBE_BODY_MAX);
            return -1;
        }
        int rc = rf_probe_tpl_compile(&r->spec.body, body, len, &r->vars, e, sizeof(e));
        free(file);
        if (rc < 0) {
            rf_probe_msg(r->err, "-d: %s", e);
            return -1;
        }
        r->spec.has_body = 1;
    }
    if (o->nrequests && prepare_groups(r) < 0)
        return -1;
    if (prepare_warmup(r) < 0)
        return -1;
    /* Catch a bad URL (https, no host) before printing a report header. */
    const struct rf_probe_tpl *urls[2 + RF_PROBE_GROUPS_MAX] = {&r->spec.url, NULL};
    size_t nurls = 1;
    if (o->nrequests) {
        /* The groups' URLs, base included, are what the burst aims at. */
        nurls = 0;
        for (size_t g = 0; g < r->ngroups; g++)
            urls[nurls++] = &r->groups[g].spec.url;
    }
    if (o->verify) {
        if (strlen(o->verify) > RF_PROBE_URL_MAX ||
            rf_probe_tpl_compile(&r->verify, o->verify, strlen(o->verify), &r->vars, e, sizeof(e)) <
                0) {
            rf_probe_msg(r->err, "--verify: %s",
                         strlen(o->verify) > RF_PROBE_URL_MAX ? "URL too long" : e);
            return -1;
        }
        r->has_verify = 1;
        urls[nurls++] = &r->verify;
    }
    for (size_t k = 0; k < nurls; k++) {
        struct rf_probe_buf b;
        struct rf_probe_url u;
        struct rf_probe_tpl_ctx c = {.i = 0, .round = 1, .vars = &r->vars};
        rf_probe_buf_init(&b, RF_PROBE_URL_MAX);
        int rc = rf_probe_tpl_expand(urls[k], &c, &b, e, sizeof(e));
        if (rc == 0)
            rc = rf_probe_url_parse(b.p, &u, e, sizeof(e));
        rf_probe_buf_free(&b);
        if (rc < 0) {
            rf_probe_msg(r->err, "%s%s", urls[k] == &r->verify ? "--verify: " : "", e);
            return -1;
        }
        if (k == 0)
            r->tls = u.tls;
        if (u.tls && tls_contexts(r, k == 0) < 0)
            return -1;
    }
    if (o->sync == RF_BURST_PACKET && !r->tls && !o->h2c) {
        rf_probe_msg(r->err,
                     "--sync packet needs HTTP/2: an https:// URL (h2 by ALPN), or --h2c for "
                     "HTTP/2 without TLS");
        return -1;
    }
    if (o->h2c && r->tls) {
        rf_probe_msg(r->err, "--h2c is for http:// URLs; https:// negotiates h2 by ALPN");
        return -1;
    }
    snprintf(r->method, sizeof(r->method), "%s",
             r->ngroups  ? r->groups[0].method
             : o->method ? o->method
             : o->data   ? "POST"
                         : "GET");
    r->dynamic = r->spec.url.dynamic || (r->spec.has_body && r->spec.body.dynamic);
    for (size_t k = 0; k < r->spec.nhdr; k++)
        r->dynamic |= r->spec.hdr[k].dynamic;
    for (size_t g = 0; g < r->ngroups; g++)
        r->dynamic |= r->groups[g].dynamic;
    for (size_t k = 0; k < o->nexps; k++)
        r->need_json |= o->exps[k].kind == RF_PROBE_EXP_DISTINCT;
    size_t share = RESPONSES_BYTES_MAX / o->n;
    r->max_response = share < RESPONSE_MIN   ? RESPONSE_MIN
                      : share > RESPONSE_MAX ? RESPONSE_MAX
                                             : share;
    if (sodium_init() < 0) {
        rf_probe_msg(r->err, "libsodium failed to initialise");
        return -1;
    }
    return 0;
}

/* Resolves once per host:port: a name lookup per request would put the
 * resolver's latency inside the run, and the answer does not change. */
static int resolve(struct run *r, const struct rf_probe_url *u, struct rf_burst_req *q)
{
    for (size_t k = 0; k < r->ncache; k++) {
        struct cached_addr *c = &r->cache[k];
        if (!strcmp(c->host, u->host) && !strcmp(c->port, u->port)) {
            q->addr = c->addr;
            q->addrlen = c->addrlen;
            return 0;
        }
    }
    char e[256];
    if (rf_probe_resolve(u->host, u->port, r->o->timeout_ms, &q->addr, &q->addrlen, e, sizeof(e)) <
        0) {
        snprintf(r->errmsg, sizeof(r->errmsg), "%s", e);
        return -1;
    }
    /* A full cache simply resolves again; URLs with many hosts are rare. */
    if (r->ncache < RF_PROBE_RESOLVE_CACHE) {
        struct cached_addr *c = &r->cache[r->ncache++];
        snprintf(c->host, sizeof(c->host), "%s", u->host);
        snprintf(c->port, sizeof(c->port), "%s", u->port);
        c->addr = q->addr;
        c->addrlen = q->addrlen;
    }
    return 0;
}

struct round_data {
    struct rf_probe_buf *bufs;
    struct rf_probe_buf *wbufs; /* --warmup: the warm-up request of each slot */
    struct rf_burst_req *reqs;
    struct rf_burst_res *res;
    json_t **bodies;
    struct rf_burst_req vreq;
    struct rf_burst_res vres;
    struct rf_probe_buf vbuf, vurl;
    json_t *vbody;
    int have_vres;
    size_t n;
    char (*hosts)[256]; /* https: each request's certificate name */
    char vhost[256];
};

static void round_free(struct round_data *d)
{
    if (d->res)
        rf_burst_res_free(d->res, d->n);
    if (d->have_vres)
        rf_burst_res_free(&d->vres, 1);
    for (size_t i = 0; d->bufs && i < d->n; i++)
        rf_probe_buf_free(&d->bufs[i]);
    for (size_t i = 0; d->wbufs && i < d->n; i++)
        rf_probe_buf_free(&d->wbufs[i]);
    free(d->wbufs);
    for (size_t i = 0; d->bodies && i < d->n; i++)
        json_decref(d->bodies[i]);
    json_decref(d->vbody);
    rf_probe_buf_free(&d->vbuf);
    rf_probe_buf_free(&d->vurl);
    free(d->bufs);
    free(d->reqs);
    free(d->res);
    free(d->bodies);
    free(d->hosts);
}

static int method_has_length(const char *m)
{
    return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
}

/* Builds every request of one round; only the first when they are all the
 * same, so a large body is held once rather than N times. */
static int build_round(struct run *r, unsigned rnd, struct round_data *d)
{
    size_t n = r->o->n, total = 0;
    struct rf_probe_buf url;
    struct rf_probe_url u;
    char e[384];
    int rc = -1;
    rf_probe_buf_init(&url, RF_PROBE_URL_MAX);
    for (size_t i = 0; i < n; i++) {
        struct rf_burst_req *q = &d->reqs[i];
        if (i > 0 && !r->dynamic && !r->ngroups) {
            *q = d->reqs[0];
            total += q->len;
            continue;
        }
        const struct rf_probe_reqspec *sp = &r->spec;
        const char *method = r->method;
        struct rf_probe_tpl_ctx c = {.i = i, .round = rnd, .vars = &r->vars};
        if (r->ngroups) {
            const struct rf_probe_group *g = &r->groups[r->slot_group[i]];
            sp = &g->spec;
            method = g->method;
            /* A group's file reads as it would alone: {{i}} counts within it. */
            c.i = r->slot_index[i];
        }
        rf_probe_buf_init(&d->bufs[i], RF_PROBE_HEAD_MAX + RF_PROBE_BODY_MAX);
        if (rf_probe_request_build(sp, method, 1, &sp->url, &c, &url, &u, &d->bufs[i], e,
                                   sizeof(e)) < 0) {
            snprintf(r->errmsg, sizeof(r->errmsg), "request %zu: %s", i, e);
            goto out;
        }
        if (resolve(r, &u, q) < 0)
            goto out;
        q->data = d->bufs[i].p;
        q->len = d->bufs[i].len;
        q->head_request = !strcmp(method, "HEAD");
        if (u.tls != r->tls) {
            snprintf(r->errmsg, sizeof(r->errmsg),
                     "request %zu: every request of a burst must "
                     "use the URL's scheme",
                     i);
            goto out;
        }
        if (u.tls) {
            snprintf(d->hosts[i], sizeof(d->hosts[i]), "%s", u.host);
            q->host = d->hosts[i];
        }
        if (r->o->warmup) {
            struct rf_probe_buf *w = &d->wbufs[i];
            rf_probe_buf_init(w, RF_PROBE_HEAD_MAX);
            /* Keep-alive said out loud: HTTP/1.0-minded servers close otherwise. */
            if (rf_probe_buf_addf(w,
                                  "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: racefree-probe\r\n"
                                  "Connection: keep-alive\r\n%s\r\n",
                                  r->warmup_method, r->warmup_path, u.authority,
                                  method_has_length(r->warmup_method) ? "Content-Length: 0\r\n"
                                                                      : "") < 0) {
                snprintf(r->errmsg, sizeof(r->errmsg), "warm-up request too long");
                goto out;
            }
            q->warmup = w->p;
            q->warmup_len = w->len;
            q->warmup_head = !strcmp(r->warmup_method, "HEAD");
        }
        total += q->len;
        if (total > BURST_BYTES_MAX) {
            snprintf(r->errmsg, sizeof(r->errmsg), "the requests of one burst exceed %zu bytes",
                     BURST_BYTES_MAX);
            goto out;
        }
    }
    rc = 0;
out:
    rf_probe_buf_free(&url);
    return rc;
}

static int run_verify(struct run *r, unsigned rnd, struct round_data *d)
{
    struct rf_probe_url u;
    char e[384];
    struct rf_probe_tpl_ctx c = {.i = 0, .round = rnd, .vars = &r->vars};
    if (rf_probe_request_build(&r->spec, "GET", 0, &r->verify, &c, &d->vurl, &u, &d->vbuf, e,
                               sizeof(e)) < 0) {
        snprintf(r->errmsg, sizeof(r->errmsg), "--verify: %s", e);
        return -1;
    }
    if (resolve(r, &u, &d->vreq) < 0)
        return -1;
    d->vreq.data = d->vbuf.p;
    d->vreq.len = d->vbuf.len;
    snprintf(d->vhost, sizeof(d->vhost), "%s", u.host);
    d->vreq.host = d->vhost;
    struct rf_burst_opts bo = {.sync = RF_BURST_NONE,
                               .timeout_ms = r->o->timeout_ms,
                               .max_response = RESPONSE_MAX,
                               .tls = u.tls ? r->tls_h1 : NULL};
    if (rf_burst_run(&d->vreq, 1, &bo, &d->vres, e, sizeof(e)) < 0) {
        snprintf(r->errmsg, sizeof(r->errmsg), "--verify: %s", e);
        return -1;
    }
    d->have_vres = 1;
    d->vbody = rf_probe_body_json(&d->vres);
    return 0;
}

/* Real-time priority for the burst only: on a host where the server shares
 * the CPUs, every final byte wakes a server thread, and at normal priority
 * that thread may preempt the release loop, stretching the spread by its
 * whole run time. The burst sleeps in epoll_wait, so it cannot hog a CPU. */
static int rt_enter(struct run *r, int *policy, struct sched_param *saved)
{
    if (!r->o->rt || r->rt_state < 0)
        return 0;
    *policy = sched_getscheduler(0);
    if (*policy < 0 || sched_getparam(0, saved) < 0) {
        r->rt_state = -1;
        return 0;
    }
    struct sched_param p = {.sched_priority = 1};
    if (sched_setscheduler(0, SCHED_FIFO, &p) < 0) {
        rf_probe_msg(r->err, "--rt: cannot use real-time priority (%s); running at normal priority",
                     strerror(errno));
        r->rt_state = -1;
        return 0;
    }
    r->rt_state = 1;
    return 1;
}

static void rt_leave(int policy, const struct sched_param *saved)
{
    /* Going back down needs no privilege. */
    (void)sched_setscheduler(0, policy, saved);
}

/* Fires one burst and reports it. */
int rf_probe_run_round(struct run *r, unsigned rnd)
{
    struct opts *o = r->o;
    size_t n = o->n;
    struct round_data d = {.n = n};
    struct rf_probe_stats st;
    struct rf_probe_exp_res er[RF_PROBE_EXPECT_MAX];
    char e[384];
    int rc = -1;

    rf_probe_stats_init(&st);
    rf_probe_buf_init(&d.vbuf, RF_PROBE_HEAD_MAX);
    rf_probe_buf_init(&d.vurl, RF_PROBE_URL_MAX);
    d.bufs = calloc(n, sizeof(*d.bufs));
    d.reqs = calloc(n, sizeof(*d.reqs));
    d.res = calloc(n, sizeof(*d.res));
    d.bodies = calloc(n, sizeof(*d.bodies));
    if (r->tls)
        d.hosts = calloc(n, sizeof(*d.hosts));
    d.wbufs = o->warmup ? calloc(n, sizeof(*d.wbufs)) : NULL;
    if (!d.bufs || !d.reqs || !d.res || !d.bodies || (r->tls && !d.hosts) ||
        (o->warmup && !d.wbufs)) {
        snprintf(r->errmsg, sizeof(r->errmsg), "out of memory for %zu requests", n);
        goto out;
    }
    if (build_round(r, rnd, &d) < 0)
        goto out;
    struct rf_burst_opts bo = {.sync = o->sync,
                               .timeout_ms = o->timeout_ms,
                               .max_response = r->max_response,
                               .warmup = o->warmup};
    if (r->tls)
        bo.tls = o->sync == RF_BURST_PACKET ? r->tls_burst : r->tls_h1;
    int policy = SCHED_OTHER;
    struct sched_param saved = {0};
    int rt = rt_enter(r, &policy, &saved);
    uint64_t t0 = rf_burst_now_ns();
    int brc = rf_burst_run(d.reqs, n, &bo, d.res, e, sizeof(e));
    if (rt)
        rt_leave(policy, &saved);
    if (brc < 0) {
        snprintf(r->errmsg, sizeof(r->errmsg), "%s", e);
        goto out;
    }
    if (r->has_verify && run_verify(r, rnd, &d) < 0)
        goto out;
    if (r->need_json)
        for (size_t i = 0; i < n; i++)
            d.bodies[i] = rf_probe_body_json(&d.res[i]);

    struct rf_probe_stats gst[RF_PROBE_GROUPS_MAX];
    for (size_t g = 0; g < r->ngroups; g++)
        rf_probe_stats_init(&gst[g]);
    size_t group_n[RF_PROBE_GROUPS_MAX];
    for (size_t g = 0; g < r->ngroups; g++)
        group_n[g] = r->groups[g].count;
    struct rf_probe_view v = {.res = d.res,
                              .n = n,
                              .bodies = d.bodies,
                              .group_of = r->ngroups ? r->slot_group : NULL,
                              .group_n = group_n,
                              .verify = d.have_vres ? &d.vres : NULL,
                              .verify_body = d.vbody};
    for (size_t k = 0; k < o->nexps; k++) {
        rf_probe_exp_eval(&o->exps[k], &v, &er[k]);
        if (er[k].pass) {
            r->exp_held[k]++;
        } else if (r->exp_failures++ == 0) {
            snprintf(r->first_failure, sizeof(r->first_failure), "round %u: %s%s%s", rnd,
                     rf_probe_exp_kind_name(o->exps[k].kind), o->exps[k].spec[0] ? " " : "",
                     o->exps[k].spec);
        }
    }
    int oom =
        rf_probe_stats_add(&st, d.res, n, rnd) < 0 || rf_probe_stats_merge(&r->total, &st) < 0 ||
        (r->ngroups && rf_probe_group_stats_add(gst, r->ngroups, d.res, r->slot_group, n, rnd) < 0);
    for (size_t g = 0; g < r->ngroups && !oom; g++)
        oom = rf_probe_stats_merge(&r->group_total[g], &gst[g]) < 0;
    if (oom) {
        for (size_t g = 0; g < r->ngroups; g++)
            rf_probe_stats_free(&gst[g]);
        snprintf(r->errmsg, sizeof(r->errmsg), "out of memory for the statistics");
        goto out;
    }
    struct rf_probe_round rr = {.round = rnd,
                                .res = d.res,
                                .n = n,
                                .t0_ns = t0,
                                .stats = &st,
                                .exps = o->exps,
                                .exp_res = er,
                                .nexps = o->nexps,
                                .verify_url = d.have_vres ? d.vurl.p : NULL,
                                .verify = d.have_vres ? &d.vres : NULL,
                                .group_of = r->ngroups ? r->slot_group : NULL,
                                .group_names = r->group_names,
                                .ngroups = r->ngroups,
                                .group_stats = gst};
    rf_probe_spread_judge(d.res, n, o->server_time, o->max_spread_us, &st, &rr.spread);
    if (rr.spread.inconclusive && r->inconclusive++ == 0)
        r->first_inconclusive = rnd;
    if (d.have_vres && d.vres.err && r->total.no_response == 0) {
        /* The verify GET counts as a request without a response too. */
        r->total.first_err_i = -1;
        r->total.first_err_round = rnd;
        snprintf(r->total.first_err, sizeof(r->total.first_err), "--verify: %s", d.vres.err_msg);
    }
    if (d.have_vres && d.vres.err)
        r->total.no_response++;
    for (size_t k = 0; k < r->nreps; k++)
        r->reps[k].ops->round(r->reps[k].ctx, &rr);
    for (size_t g = 0; g < r->ngroups; g++)
        rf_probe_stats_free(&gst[g]);
    rc = 0;
out:
    rf_probe_stats_free(&st);
    round_free(&d);
    return rc;
}

/* What the report names as the target: the URL, or the first group's file
 * target when the files say where they go. */
static const char *target_url(const struct run *r)
{
    if (r->o->url)
        return r->o->url;
    return r->ngroups ? r->groups[0].target : "";
}

int rf_probe_run_finish(struct run *r, int setup_failed)
{
    struct opts *o = r->o;
    int code = 0;
    char why[600] = "";

    if (setup_failed) {
        code = 2;
        snprintf(why, sizeof(why), "%s", r->errmsg);
    } else if (r->total.no_response) {
        code = 2;
        if (r->total.first_err_i >= 0)
            snprintf(why, sizeof(why),
                     "%zu request%s got no response (first: round %u, request %ld: %s)",
                     r->total.no_response, r->total.no_response == 1 ? "" : "s",
                     r->total.first_err_round, r->total.first_err_i, r->total.first_err);
        else
            snprintf(why, sizeof(why), "round %u: %s", r->total.first_err_round,
                     r->total.first_err);
    } else if (r->exp_failures) {
        code = 1;
        snprintf(why, sizeof(why), "%zu expectation check%s failed (first: %s)", r->exp_failures,
                 r->exp_failures == 1 ? "" : "s", r->first_failure);
    } else if (r->inconclusive) {
        /* A failure found in a loose burst is still a failure; a pass is not
         * a pass unless the requests really arrived together. */
        code = EXIT_INCONCLUSIVE;
        snprintf(why, sizeof(why),
                 "%u of %u round%s spread over --max-spread %ld µs (first: round %u); the "
                 "expectations held but prove nothing",
                 r->inconclusive, r->rounds_done, r->rounds_done == 1 ? "" : "s", o->max_spread_us,
                 r->first_inconclusive);
    }
    struct rf_probe_summary sum = {.stats = &r->total,
                                   .group_stats = r->group_total,
                                   .rounds_done = r->rounds_done,
                                   .exps = o->exps,
                                   .exp_held = r->exp_held,
                                   .nexps = o->nexps,
                                   .inconclusive_rounds = r->inconclusive,
                                   .realtime = r->rt_state > 0,
                                   .exit_code = code,
                                   .error = why[0] ? why : NULL};
    for (size_t k = 0; k < r->nreps; k++) {
        char e[300];
        /* The report was asked for, so losing it is an error like a usage one. */
        if (r->reps[k].ops->end(r->reps[k].ctx, &sum, e, sizeof(e)) < 0) {
            code = sum.exit_code = 2;
            snprintf(why, sizeof(why), "%s", e);
            sum.error = why;
        }
    }
    r->nreps = 0;
    if (code == 2)
        rf_probe_msg(r->err, "%s", why);
    return code;
}

/* Starts the reporters before anything is sent: an unwritable --report
 * path is a usage error. */
static int open_reporters(struct run *r)
{
    struct opts *o = r->o;
    for (size_t g = 0; g < r->ngroups; g++)
        r->group_names[g] = r->groups[g].name;
    r->target = (struct rf_probe_target){.method = r->method,
                                         .url = target_url(r),
                                         .given_url = o->url,
                                         .n = o->n,
                                         .rounds = o->rounds,
                                         .sync = sync_name(o->sync),
                                         .timeout_ms = o->timeout_ms,
                                         .groups = r->groups,
                                         .ngroups = r->ngroups,
                                         .warmup = o->warmup,
                                         .server_time = o->server_time,
                                         .max_spread_us = o->max_spread_us,
                                         .per_request = o->per_request,
                                         .exps = o->exps,
                                         .nexps = o->nexps};
    if ((o->report && rf_probe_reporter_html(&r->reps[r->nreps++], o->report) < 0) ||
        (o->json ? rf_probe_reporter_json(&r->reps[r->nreps++], r->out)
                 : rf_probe_reporter_text(&r->reps[r->nreps++], r->out)) < 0) {
        r->nreps--;
        rf_probe_msg(r->err, "out of memory");
        return -1;
    }
    for (size_t k = 0; k < r->nreps; k++) {
        char e[400];
        if (r->reps[k].ops->begin(r->reps[k].ctx, &r->target, e, sizeof(e)) < 0) {
            rf_probe_msg(r->err, "%s", e);
            return -1;
        }
    }
    return 0;
}

int rf_probe_run_start(struct run *r)
{
    if (prepare(r) < 0)
        return -1;
    return open_reporters(r);
}

void rf_probe_run_free(struct run *r)
{
    rf_probe_reqspec_free(&r->spec);
    for (size_t g = 0; g < r->ngroups; g++) {
        rf_probe_group_free(&r->groups[g]);
        rf_probe_stats_free(&r->group_total[g]);
    }
    free(r->slot_group);
    free(r->slot_index);
    if (r->has_verify)
        rf_probe_tpl_free(&r->verify);
    rf_probe_vars_free(&r->vars);
    rf_tls_ctx_free(r->tls_burst);
    rf_tls_ctx_free(r->tls_h1);
    rf_probe_stats_free(&r->total);
    for (size_t k = 0; k < r->nreps; k++)
        r->reps[k].ops->discard(r->reps[k].ctx);
    r->nreps = 0;
}
