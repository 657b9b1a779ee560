#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "unit.h"

void test_metrics_format_exact(void);
void test_metrics_format_cut_like_snprintf(void);
void test_metrics_retry_reasons(void);
void test_metrics_closed_label_sets(void);
void test_metrics_concurrent_counts_exact(void);

static char text[256 * 1024];
static const char *const names[] = {"a.get", "b\"q\\z"};

static const char *scrape(void)
{
    size_t n = rf_metrics_format(text, sizeof(text), names, 2);
    return n < sizeof(text) ? text : "(cut)";
}

/* The value of the one sample line that is exactly `series`, as text;
 * "(none)" when absent, "(twice)" when repeated. */
static const char *sample(const char *t, const char *series)
{
    static char v[64];
    size_t len = strlen(series);
    const char *found = NULL;
    for (const char *p = t; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, len) == 0 && p[len] == ' ') {
            if (found)
                return "(twice)";
            found = p + len + 1;
        }
    }
    if (!found)
        return "(none)";
    size_t n = strcspn(found, "\n");
    snprintf(v, sizeof(v), "%.*s", (int)n, found);
    return v;
}

#define H "racefree_http_request_duration_seconds"

struct want {
    const char *series, *value;
};

/* 1 when every series in w has its value in t; else the first that does
 * not fails the test (the caller returns). */
static int samples_are(const char *t, const struct want *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *got = sample(t, w[i].series);
        if (strcmp(got, w[i].value) != 0) {
            unit_fail(__FILE__, __LINE__, "sample %s == \"%s\", want \"%s\"", w[i].series, got,
                      w[i].value);
            return 0;
        }
    }
    return 1;
}

#define CHECK_SAMPLES(t, w)                                                                        \
    do {                                                                                           \
        if (!samples_are(t, w, sizeof(w) / sizeof((w)[0])))                                        \
            return;                                                                                \
    } while (0)

void test_metrics_format_exact(void)
{
    rf_metrics_reset();
    rf_metrics_request(0, 200, 300000);                    /* 0.3 ms: first bucket */
    rf_metrics_request(0, 404, 3000000);                   /* 3 ms: le=0.005 */
    rf_metrics_request(1, 799, 20000000000ull);            /* 20 s, odd status: above every bound */
    rf_metrics_request(RF_METRICS_UNMATCHED, 404, 500000); /* on the bound: le is inclusive */
    rf_metrics_request(1000, 405, 1);                      /* out of range: unmatched too */
    const char *t = scrape();

    static const struct want requests[] = {
        {"racefree_http_requests_total{route=\"a.get\",code=\"200\"}", "1"},
        {"racefree_http_requests_total{route=\"a.get\",code=\"404\"}", "1"},
        {"racefree_http_requests_total{route=\"b\\\"q\\\\z\",code=\"other\"}", "1"},
        {"racefree_http_requests_total{route=\"unmatched\",code=\"404\"}", "1"},
        {"racefree_http_requests_total{route=\"unmatched\",code=\"405\"}", "1"},
        {"racefree_http_requests_total{route=\"a.get\",code=\"201\"}", "(none)"},
    };
    CHECK_SAMPLES(t, requests);

    static const struct want durations[] = {
        {H "_bucket{route=\"a.get\",le=\"0.0005\"}", "1"},
        {H "_bucket{route=\"a.get\",le=\"0.0025\"}", "1"},
        {H "_bucket{route=\"a.get\",le=\"0.005\"}", "2"},
        {H "_bucket{route=\"a.get\",le=\"10\"}", "2"},
        {H "_bucket{route=\"a.get\",le=\"+Inf\"}", "2"},
        {H "_sum{route=\"a.get\"}", "0.003300000"},
        {H "_count{route=\"a.get\"}", "2"},
        {H "_bucket{route=\"b\\\"q\\\\z\",le=\"10\"}", "0"},
        {H "_bucket{route=\"b\\\"q\\\\z\",le=\"+Inf\"}", "1"},
        {H "_sum{route=\"b\\\"q\\\\z\"}", "20.000000000"},
        {H "_bucket{route=\"unmatched\",le=\"0.0005\"}", "2"},
        {H "_count{route=\"unmatched\"}", "2"},
    };
    CHECK_SAMPLES(t, durations);

    /* Every family has its HELP and TYPE once, before its samples. */
    const char *fams[][2] = {{"racefree_http_requests_total", "counter"},
                             {H, "histogram"},
                             {"racefree_db_retries_total", "counter"},
                             {"racefree_http_conflicts_total", "counter"},
                             {"racefree_create_existing_total", "counter"},
                             {"racefree_idempotency_outcomes_total", "counter"},
                             {"racefree_http_open_connections", "gauge"},
                             {"racefree_http_connections_total", "counter"},
                             {"process_start_time_seconds", "gauge"}};
    for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
        char type[160], help[160];
        snprintf(type, sizeof(type), "\n# TYPE %s %s\n", fams[i][0], fams[i][1]);
        snprintf(help, sizeof(help), "# HELP %s ", fams[i][0]);
        const char *at = strstr(t, type);
        CHECK(at && !strstr(at + 1, type));
        CHECK(strstr(t, help) && strstr(t, help) < at);
    }
    CHECK(strncmp(t, "# HELP ", 7) == 0);
    CHECK(t[strlen(t) - 1] == '\n');
    /* No batches observed: the group-commit family stays out. */
    CHECK(!strstr(t, "racefree_db_group_commit_batch_size"));
    rf_metrics_batch(1);
    rf_metrics_batch(3);
    rf_metrics_batch(500);
    t = scrape();
    static const struct want batches[] = {
        {"racefree_db_group_commit_batch_size_bucket{le=\"1\"}", "1"},
        {"racefree_db_group_commit_batch_size_bucket{le=\"4\"}", "2"},
        {"racefree_db_group_commit_batch_size_bucket{le=\"128\"}", "2"},
        {"racefree_db_group_commit_batch_size_bucket{le=\"+Inf\"}", "3"},
        {"racefree_db_group_commit_batch_size_sum", "504"},
        {"racefree_db_group_commit_batch_size_count", "3"},
    };
    CHECK_SAMPLES(t, batches);
}

void test_metrics_format_cut_like_snprintf(void)
{
    rf_metrics_reset();
    rf_metrics_request(0, 200, 1000);
    char small[100], *big;
    size_t need = rf_metrics_format(small, sizeof(small), names, 2);
    CHECK(need >= sizeof(small));
    CHECK_INT(strlen(small), sizeof(small) - 1);
    CHECK_INT(rf_metrics_format(NULL, 0, names, 2), need);
    big = malloc(need + 1);
    CHECK(big);
    size_t n = rf_metrics_format(big, need + 1, names, 2);
    int same = n == need && strlen(big) == need && strncmp(big, small, sizeof(small) - 1) == 0;
    free(big);
    CHECK(same);
}

void test_metrics_retry_reasons(void)
{
    /* The drivers decide the reason (tests/unit/test_db.c, test_pg.c);
     * here each one lands on its label, and a value out of range on
     * "other". */
    static const struct {
        int reason;
        const char *label;
    } cases[] = {
        {RF_DB_RETRY_BUSY, "busy"},
        {RF_DB_RETRY_LOCKED, "locked"},
        {RF_DB_RETRY_SERIALIZATION, "serialization"},
        {RF_DB_RETRY_DEADLOCK, "deadlock"},
        {RF_DB_RETRY_LOCK_TIMEOUT, "lock_timeout"},
        {RF_DB_RETRY_GROUP_COMMIT, "group_commit"},
        {RF_DB_RETRY_OTHER, "other"},
        {RF_DB_RETRY_N, "other"},
        {-1, "other"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rf_metrics_reset();
        rf_metrics_db_retry((enum rf_db_retry_reason)cases[i].reason);
        char series[96];
        snprintf(series, sizeof(series), "racefree_db_retries_total{reason=\"%s\"}",
                 cases[i].label);
        const char *t = scrape();
        if (strcmp(sample(t, series), "1") != 0)
            unit_fail(__FILE__, __LINE__, "reason %d not counted as %s", cases[i].reason,
                      cases[i].label);
    }
}

void test_metrics_closed_label_sets(void)
{
    rf_metrics_reset();
    rf_metrics_conflict("username_taken");
    rf_metrics_conflict("username_taken");
    rf_metrics_conflict("idempotency_key_in_progress");
    rf_metrics_conflict("something_new");
    rf_metrics_conflict(NULL);
    rf_metrics_create_existing(RF_METRICS_EXISTING_USER);
    rf_metrics_create_existing(RF_METRICS_EXISTING_N); /* ignored */
    for (int o = 0; o <= RF_METRICS_IDEM_N; o++)
        for (int k = 0; k <= o; k++)
            rf_metrics_idem((enum rf_metrics_idem)o);
    rf_metrics_connection(1);
    rf_metrics_connection(1);
    rf_metrics_connection(-1);
    const char *t = scrape();
    CHECK_STR(sample(t, "racefree_http_conflicts_total{code=\"username_taken\"}"), "2");
    CHECK_STR(sample(t, "racefree_http_conflicts_total{code=\"identity_exists\"}"), "0");
    CHECK_STR(sample(t, "racefree_http_conflicts_total{code=\"idempotency_key_in_progress\"}"),
              "1");
    CHECK_STR(sample(t, "racefree_http_conflicts_total{code=\"other\"}"), "2");
    CHECK(!strstr(t, "something_new"));
    CHECK_STR(sample(t, "racefree_create_existing_total{resource=\"users\"}"), "1");
    static const char *const outcomes[] = {"reserved",  "replayed", "in_progress", "reused",
                                           "completed", "released", "taken_over"};
    for (int o = 0; o < RF_METRICS_IDEM_N; o++) {
        char series[96], want[16];
        snprintf(series, sizeof(series), "racefree_idempotency_outcomes_total{outcome=\"%s\"}",
                 outcomes[o]);
        snprintf(want, sizeof(want), "%d", o + 1);
        CHECK_STR(sample(t, series), want);
    }
    CHECK_STR(sample(t, "racefree_http_connections_total"), "2");
    /* Open connections are not reset (they are real), so compare deltas. */
    rf_metrics_connection(-1);
}

#define PER_THREAD 50000

static void *hammer(void *arg)
{
    size_t route = (size_t)(uintptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++)
        rf_metrics_request(route, i % 2 ? 200 : 503, (uint64_t)(i % 7) * 1000000);
    return NULL;
}

/* Scrapes while two threads count: every scrape is well formed (buckets
 * cumulative, +Inf equal to _count), and no increment is lost. */
void test_metrics_concurrent_counts_exact(void)
{
    rf_metrics_reset();
    pthread_t th[2];
    for (uintptr_t i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, hammer, (void *)(i == 0 ? 0 : RF_METRICS_UNMATCHED)) ==
              0);
    int bad = 0;
    for (int s = 0; s < 20 && !bad; s++) {
        const char *t = scrape();
        long long prev = 0;
        for (const char *p = strstr(t, H "_bucket{route=\"a.get\""); p;
             p = strstr(p + 1, H "_bucket{route=\"a.get\"")) {
            long long v = atoll(strchr(p, ' ') + 1);
            bad |= v < prev;
            prev = v;
        }
        const char *c = sample(t, H "_count{route=\"a.get\"}");
        bad |= c[0] != '(' && atoll(c) != prev;
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK(!bad);
    const char *t = scrape();
    char want[16];
    snprintf(want, sizeof(want), "%d", PER_THREAD / 2);
    CHECK_STR(sample(t, "racefree_http_requests_total{route=\"a.get\",code=\"200\"}"), want);
    CHECK_STR(sample(t, "racefree_http_requests_total{route=\"unmatched\",code=\"503\"}"), want);
    snprintf(want, sizeof(want), "%d", PER_THREAD);
    CHECK_STR(sample(t, H "_count{route=\"unmatched\"}"), want);
}
