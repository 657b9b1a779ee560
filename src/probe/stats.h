/* The prober's statistics, computed here once for every report format:
 * status histogram, 5xx and no-response counts, latency percentiles, the
 * release spread of each burst, the figures people read (formatted once),
 * and whether a burst was tight enough to prove anything (--max-spread). */
#ifndef RF_PROBE_STATS_H
#define RF_PROBE_STATS_H

#include <stddef.h>
#include <stdint.h>

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
/* The status codes seen, most frequent first (ties: lower code first), so
 * that the winners and losers of a race read at a glance in every report.
 * Writes at most RF_PROBE_STATUS_MAX codes into out; returns how many. */
size_t rf_probe_status_order(const struct rf_probe_stats *s, unsigned short *out);

/* Adds one burst's figures to per-group stats st[0, ng): request i goes to
 * st[group_of[i]]. Returns 0, or -1 when out of memory. */
int rf_probe_group_stats_add(struct rf_probe_stats *st, size_t ng, const struct rf_burst_res *res,
                             const unsigned *group_of, size_t n, unsigned rnd);

/* Formats ns for people: "850 ns", "38.2 µs", "3.41 ms", "1.20 s". */
void rf_probe_fmt_ns(char *buf, size_t len, uint64_t ns);

/* The latency and spread lines as people read them, formatted once so that
 * the text and HTML reports cannot disagree. */
struct rf_probe_figs {
    int has_lat;
    char lat_min[32], lat_p50[32], lat_p99[32], lat_max[32];
    size_t nspread; /* 0: none; 1: spread_one; more: the three below */
    char spread_one[32], spread_min[32], spread_median[32], spread_max[32];
};
void rf_probe_stats_figs(struct rf_probe_stats *s, struct rf_probe_figs *f);

/* Did a burst's requests arrive together? The server's own clock says best
 * when 2+ responses carry --server-time; otherwise the release spread is all
 * there is. */
struct rf_probe_spread_verdict {
    size_t nstamps;          /* responses carrying the --server-time header */
    uint64_t server_ns;      /* their spread, when nstamps >= 2 */
    const char *judged_what; /* "server", "release", or NULL: nothing known */
    uint64_t judged_ns;
    int inconclusive; /* looser than --max-spread (or nothing known) */
};
/* server_time may be NULL (no --server-time), max_spread_us < 0 for none;
 * st holds this burst's figures alone. */
void rf_probe_spread_judge(const struct rf_burst_res *res, size_t n, const char *server_time,
                           long max_spread_us, const struct rf_probe_stats *st,
                           struct rf_probe_spread_verdict *v);

#endif
