/* Expectations of the prober: the invariants a race must not break, checked
 * against one burst's responses. Counts may be written relative to the burst
 * size (N, N-1) so that one command line works for any -n. */
#ifndef RF_PROBE_EXPECT_H
#define RF_PROBE_EXPECT_H

#include <jansson.h>
#include <stddef.h>

#include "probe/burst.h"

/* COUNT: "7", "N" or "N-k". */
struct rf_probe_count {
    int of_n; /* relative to the burst size */
    long k;   /* the number, or what is subtracted from N */
};

int rf_probe_count_parse(struct rf_probe_count *c, const char *s, char *err, size_t errlen);
/* The count for a burst of n; negative when N-k has k > n (callers reject
 * that up front). */
long rf_probe_count_value(const struct rf_probe_count *c, size_t n);

#define RF_PROBE_JPATH_MAX_DEPTH 32
#define RF_PROBE_JPATH_MAX_LEN 256

/* A small dotted path into a JSON document: ".user.id", ".data.0.id",
 * ".data[0].id", "." for the root. A numeric step indexes an array (negative
 * counts from the end) or names an object member. */
struct rf_probe_jpath {
    char text[RF_PROBE_JPATH_MAX_LEN + 1]; /* as written */
    char *store;                           /* owned: the steps, NUL-separated */
    const char *steps[RF_PROBE_JPATH_MAX_DEPTH];
    size_t n;
};

int rf_probe_jpath_parse(struct rf_probe_jpath *p, const char *s, size_t len, char *err,
                         size_t errlen);
/* Borrowed reference into root, or NULL when the path does not exist. */
json_t *rf_probe_jpath_get(const struct rf_probe_jpath *p, json_t *root);
void rf_probe_jpath_free(struct rf_probe_jpath *p);

enum rf_probe_exp_kind {
    RF_PROBE_EXP_STATUS,       /* --expect-status CODE=COUNT */
    RF_PROBE_EXP_NO5XX,        /* --expect-no-5xx */
    RF_PROBE_EXP_DISTINCT,     /* --expect-distinct JSONPATH=COUNT */
    RF_PROBE_EXP_VERIFY_COUNT, /* --expect-verify-count JSONPATH=COUNT */
};

struct rf_probe_exp {
    enum rf_probe_exp_kind kind;
    char spec[320]; /* the argument as given, for the report */
    /* STATUS and DISTINCT written "GROUP:..." count only the requests of that
     * group of a mixed burst, and their N is the group's size. The caller
     * resolves the name into group_ix. */
    char group[65];
    unsigned group_ix;
    int status; /* STATUS: 100..599, or 1..5 for a class written "2xx" */
    struct rf_probe_jpath path;
    struct rf_probe_count count;
};

/* arg is ignored for NO5XX; STATUS and DISTINCT take an optional "GROUP:"
 * prefix. Returns 0, or -1 with err filled. */
int rf_probe_exp_parse(struct rf_probe_exp *e, enum rf_probe_exp_kind kind, const char *arg,
                       char *err, size_t errlen);
void rf_probe_exp_free(struct rf_probe_exp *e);
/* "status", "no-5xx", "distinct" or "verify-count". */
const char *rf_probe_exp_kind_name(enum rf_probe_exp_kind kind);

/* What one burst produced, as the expectations see it. */
struct rf_probe_view {
    const struct rf_burst_res *res;
    size_t n;
    json_t *const *bodies;             /* n entries: parsed JSON body or NULL */
    const unsigned *group_of;          /* n entries: request's group, or NULL (one group) */
    const size_t *group_n;             /* requests per group, when group_of is set */
    const struct rf_burst_res *verify; /* the --verify GET, or NULL */
    json_t *verify_body;
};

struct rf_probe_exp_res {
    int pass;
    long want, got;
    char detail[384]; /* why it failed, or what was seen; may be empty */
};

void rf_probe_exp_eval(const struct rf_probe_exp *e, const struct rf_probe_view *v,
                       struct rf_probe_exp_res *out);

/* Parses a response body as JSON when it looks like JSON; NULL otherwise.
 * The caller owns the reference. */
json_t *rf_probe_body_json(const struct rf_burst_res *r);

#endif
