/* The prober's reports. A reporter is a small plugin: a context and three
 * calls, begin (before the first burst), round (after each), end (once,
 * with the verdict). The CLI fires the bursts, computes the figures once
 * (probe/stats.h) and hands the same view to every reporter it runs: the
 * text or JSON one on stdout, and the HTML one when --report asks for it.
 * docs/PROBE.md, "Report formats", says how to add one. */
#ifndef RF_PROBE_REPORT_H
#define RF_PROBE_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "probe/burst.h"
#include "probe/expect.h"
#include "probe/stats.h"

struct rf_probe_group;

/* What a run aims at, known before anything is sent. */
struct rf_probe_target {
    const char *method; /* the first group's with --request */
    const char *url;    /* as given, templates unexpanded; the first group's target without one */
    const char *given_url; /* the URL argument, NULL with --request and no URL */
    size_t n;
    unsigned rounds;
    const char *sync; /* "lastbyte", "packet" or "none" */
    int timeout_ms;
    size_t max_rows;                     /* HTML: rows drawn at most; 0 = RF_PROBE_HTML_MAX_ROWS */
    const struct rf_probe_group *groups; /* --request groups, ngroups of them */
    size_t ngroups;
    unsigned warmup;
    const char *server_time; /* --server-time HEADER, or NULL */
    long max_spread_us;      /* -1: none */
    int per_request;         /* --per-request */
    const struct rf_probe_exp *exps;
    size_t nexps;
};

/* One burst, with its figures. */
struct rf_probe_round {
    unsigned round; /* 1-based */
    const struct rf_burst_res *res;
    size_t n;
    uint64_t t0_ns;               /* burst start, the timeline's zero (CLOCK_MONOTONIC) */
    struct rf_probe_stats *stats; /* this burst's figures (sorted in place) */
    const struct rf_probe_exp *exps;
    const struct rf_probe_exp_res *exp_res; /* nexps results, same order */
    size_t nexps;
    const char *verify_url;            /* expanded --verify URL, or NULL */
    const struct rf_burst_res *verify; /* its response, or NULL */
    /* A mixed burst (--request): request i belongs to group group_of[i];
     * NULL for a burst of one kind of request. */
    const unsigned *group_of;
    const char *const *group_names; /* ngroups names */
    size_t ngroups;
    struct rf_probe_stats *group_stats; /* ngroups figures (sorted in place) */
    /* --server-time and --max-spread: how tight the burst was; zero (nothing
     * known, not inconclusive) when neither was asked for. */
    struct rf_probe_spread_verdict spread;
};

/* All bursts, and the verdict. */
struct rf_probe_summary {
    struct rf_probe_stats *stats;       /* every burst's figures (sorted in place) */
    struct rf_probe_stats *group_stats; /* per --request group, ngroups of them */
    unsigned rounds_done;
    const struct rf_probe_exp *exps;
    const size_t *exp_held; /* nexps entries: bursts in which each held */
    size_t nexps;
    unsigned inconclusive_rounds;
    int realtime;      /* --rt was applied */
    int exit_code;     /* 0, 1, 2 or 3, as the probe exits */
    const char *error; /* why the exit code is not 0, or NULL */
};

/* What a report format implements; one static table per format. */
struct rf_probe_reporter_ops {
    /* Before the first burst; t outlives the reporter. Returns 0, or -1
     * with err filled: nothing is sent then (exit 2). */
    int (*begin)(void *ctx, const struct rf_probe_target *t, char *err, size_t errlen);
    void (*round)(void *ctx, const struct rf_probe_round *r);
    /* Writes the verdict and frees ctx (always). Returns 0, or -1 with err
     * filled when the report could not be written: the run then exits 2,
     * and reporters ended after this one see that verdict. */
    int (*end)(void *ctx, const struct rf_probe_summary *s, char *err, size_t errlen);
    /* Frees ctx of a reporter that will not be ended (a begin failed). */
    void (*discard)(void *ctx);
};

struct rf_probe_reporter {
    const struct rf_probe_reporter_ops *ops;
    void *ctx;
};

/* The reporters. Each returns 0, or -1 when out of memory. */
int rf_probe_reporter_text(struct rf_probe_reporter *rep, FILE *out);
int rf_probe_reporter_json(struct rf_probe_reporter *rep, FILE *out);
int rf_probe_reporter_html(struct rf_probe_reporter *rep, const char *path);

/* Writes the histogram, 5xx, no-response, latency and spread lines. */
void rf_probe_stats_print(FILE *f, struct rf_probe_stats *s);
/* The same as a JSON object (new reference). spread_us is a number for one
 * burst, or {min, median, max} when summary is set (the total, so that its
 * shape does not depend on --rounds). */
json_t *rf_probe_stats_json(struct rf_probe_stats *s, int summary);
/* "  group     redeem ×10: 200 ×1  409 ×9" for each group. */
void rf_probe_groups_print(FILE *f, const struct rf_probe_group *g, size_t ng,
                           const struct rf_probe_stats *st);
/* {"redeem": {stats...}, ...} (new reference); summary as for
 * rf_probe_stats_json. */
json_t *rf_probe_groups_json(const struct rf_probe_group *g, size_t ng, struct rf_probe_stats *st,
                             int summary);

/* "no-5xx", or the kind and spec: how every report names an expectation. */
void rf_probe_exp_label(char *buf, size_t len, const struct rf_probe_exp *x);

#endif
