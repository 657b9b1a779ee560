/* Figures of the prober's report: what a burst (or all of them) produced,
 * as text for people and as JSON for CI jobs. */
#ifndef RF_PROBE_REPORT_H
#define RF_PROBE_REPORT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "probe/burst.h"

#define RF_PROBE_STATUS_MAX 600

struct rf_probe_stats {
    size_t requests;
    size_t status[RF_PROBE_STATUS_MAX]; /* responses by status code */
    size_t n5xx;
    size_t no_response; /* refused, reset, timed out or malformed */
    long first_err_i;   /* index of the first request without a response, -1 if none */
    unsigned first_err_round;
    char first_err[160];
    uint64_t *lat_ns; /* owned; final byte sent -> response complete, responses only */
    size_t nlat, lat_cap;
    uint64_t *spread_ns; /* owned; one per burst: first to last final byte */
    size_t nspread, spread_cap;
    int sorted;
};

void rf_probe_stats_init(struct rf_probe_stats *s);
void rf_probe_stats_free(struct rf_probe_stats *s);
/* Adds one burst. Returns 0, or -1 when out of memory. */
int rf_probe_stats_add(struct rf_probe_stats *s, const struct rf_burst_res *res, size_t n,
                       unsigned rnd);
/* Adds another set of figures (a round into the total). */
int rf_probe_stats_merge(struct rf_probe_stats *dst, const struct rf_probe_stats *src);
/* Nearest-rank percentile (q in [0, 1]) of the latencies; 0 when none. */
uint64_t rf_probe_stats_lat(struct rf_probe_stats *s, double q);
/* Same over the per-burst spreads. */
uint64_t rf_probe_stats_spread(struct rf_probe_stats *s, double q);

/* Formats ns for people: "850 ns", "38.2 µs", "3.41 ms", "1.20 s". */
void rf_probe_fmt_ns(char *buf, size_t len, uint64_t ns);

/* Writes the histogram, 5xx, no-response, latency and spread lines. */
void rf_probe_stats_print(FILE *f, struct rf_probe_stats *s);
/* The status codes seen, most frequent first (ties: lower code first), so
 * that the winners and losers of a race read at a glance in every report.
 * Writes at most RF_PROBE_STATUS_MAX codes into out; returns how many. */
size_t rf_probe_status_order(const struct rf_probe_stats *s, unsigned short *out);
/* The same as a JSON object (new reference). spread_us is a number for one
 * burst, or {min, median, max} when summary is set (the total, so that its
 * shape does not depend on --rounds). */
json_t *rf_probe_stats_json(struct rf_probe_stats *s, int summary);

#endif
