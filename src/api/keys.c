#include <stdint.h>
#include <string.h>

#include "api/api.h"
#include "core/metrics.h"
#include "core/rules.h"
#include "core/util.h"
#include "store/store.h"

#define EXTERNAL_ID_MAX 255
#define META_MAX 4096

/* Stored meta is compact JSON text; shown as the object it was. */
static json_t *meta_json(const char *text)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    return j ? j : json_null();
}

static json_t *identity_json(const struct rf_identity *idn, int with_created)
{
    json_t *j = json_pack("{s:s, s:s, s:o}", "id", idn->id, "externalId", idn->external_id, "meta",
                          meta_json(idn->meta));
    if (j && with_created)
        json_object_set_new(j, "createdAt", json_string(idn->created_at));
    return j;
}

static json_t *identity_item(const void *idn)
{
    return identity_json(idn, 1);
}

static json_t *refill_json(const struct rf_key *k)
{
    if (k->refill == RF_REFILL_NONE)
        return json_null();
    json_t *j =
        json_pack("{s:s, s:I}", "interval", k->refill == RF_REFILL_DAILY ? "daily" : "monthly",
                  "amount", (json_int_t)k->refill_amount);
    if (j && k->refill == RF_REFILL_MONTHLY)
        json_object_set_new(j, "refillDay", json_integer(k->refill_day));
    return j;
}

static json_t *key_json(const struct rf_key *k)
{
    return json_pack("{s:s, s:s, s:s?, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:s}", "id", k->id,
                     "start", k->start, "name", k->name, "enabled", k->enabled, "remaining",
                     k->has_remaining ? json_integer(k->remaining) : json_null(), "expires",
                     k->has_expires ? json_integer(k->expires) : json_null(), "refill",
                     refill_json(k), "ratelimits", rf_api_ratelimits_json(&k->ratelimits), "meta",
                     meta_json(k->meta), "identity",
                     k->has_identity ? identity_json(&k->identity, 0) : json_null(), "createdAt",
                     k->created_at, "updatedAt", k->updated_at);
}

static json_t *key_item(const void *k)
{
    return key_json(k);
}

/* externalId: 1-255 bytes, no control characters, no '/' (it is a path
 * segment in GET /v1/identities/{externalId}). Replies 422 and returns -1. */
static int check_external_id(struct rf_req *r, json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    int ok = n >= 1 && n <= EXTERNAL_ID_MAX && strlen(s) == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f && s[i] != '/';
    if (!ok)
        rf_reply_problem_field(r, RF_P_INVALID_EXTERNAL_ID, "externalId",
                               "externalId is 1-%d bytes without control characters or '/'.",
                               EXTERNAL_ID_MAX);
    return ok ? 0 : -1;
}

/* meta: an object of at most 4 KiB once serialised. *out: arena text. */
static int meta_text(struct rf_req *r, json_t *v, const char **out)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    size_t n = s ? strlen(s) : 0;
    if (s && n <= META_MAX)
        *out = rf_arena_strndup(r->a, s, n);
    free(s);
    if (!*out) {
        rf_reply_problem_field(r, RF_P_INVALID_META, "meta",
                               "meta is a JSON object of at most %d bytes.", META_MAX);
        return -1;
    }
    return 0;
}

/* An identity as create, GET and a PATCH that set them show it: with its
 * ratelimits (rl NULL: without). */
static json_t *identity_with_limits(const struct rf_identity *idn, const struct rf_ratelimits *rl)
{
    json_t *j = identity_json(idn, 1);
    if (j && rl)
        json_object_set_new(j, "ratelimits", rf_api_ratelimits_json(rl));
    return j;
}

/* The members an identity's create and patch share: meta and ratelimits
 * (*jrl NULL when absent). Replies 422 and returns nonzero when bad. */
static int identity_input(struct rf_req *r, const char **meta, struct rf_ratelimits *rl,
                          json_t **jrl)
{
    return meta_text(r, json_object_get(r->body, "meta"), meta) ||
           ((*jrl = json_object_get(r->body, "ratelimits")) &&
            rf_api_ratelimits_parse(r, *jrl, rl));
}

void rf_api_identity_create(struct rf_req *r)
{
    static const struct rf_field fields[] = {
        {"externalId", RF_F_STRING, 1},
        {"meta", RF_F_OBJECT_OR_NULL, 0},
        {"ratelimits", RF_F_ARRAY, 0},
    };
    const char *meta;
    struct rf_ratelimits rl = {0};
    json_t *jrl;
    if (rf_input_require(r, fields, RF_NFIELDS(fields)) ||
        check_external_id(r, json_object_get(r->body, "externalId")) ||
        identity_input(r, &meta, &rl, &jrl))
        return;
    struct rf_identity idn;
    struct rf_db_error e;
    int exists;
    const char *xid = json_string_value(json_object_get(r->body, "externalId"));
    int rc =
        rf_store_identity_create(r->app->db, r->tx, r->a, r->ws, xid, meta, &rl, &idn, &exists, &e);
    if (rf_api_db_failed(r, rc, e.detail))
        return;
    if (exists) {
        rf_reply_problem_field(r, RF_P_IDENTITY_EXISTS, "externalId",
                               "An identity with this externalId already exists.");
        return;
    }
    rf_reply_json(r, 201, json_pack("{s:o}", "identity", identity_with_limits(&idn, &rl)));
}

void rf_api_identity_get(struct rf_req *r)
{
    struct rf_identity idn;
    struct rf_db_error e;
    int found;
    struct rf_ratelimits rl;
    int rc = rf_store_identity_get(r->app->db, r->a, r->ws, r->params[0], &idn, &rl, &found, &e);
    if (rf_api_lookup_failed(r, rc, e.detail, found, "No identity with this externalId."))
        return;
    rf_api_reply_object(r, "identity", identity_with_limits(&idn, &rl), idn.version);
}

void rf_api_identity_list(struct rf_req *r)
{
    struct rf_api_page pg;
    struct rf_identity *ids = NULL;
    struct rf_db_error e;
    if (rf_api_page_params(r, &pg))
        return;
    int rc = rf_store_identity_list(r->app->db, r->a, r->ws, pg.after_created, pg.after_id,
                                    pg.limit, &ids, &pg.n, &pg.more, &e);
    rf_api_page_reply(r, rc, e.detail, &pg, ids, sizeof(*ids), identity_item);
}

void rf_api_identity_patch(struct rf_req *r)
{
    static const struct rf_field fields[] = {{"meta", RF_F_OBJECT_OR_NULL, 0},
                                             {"ratelimits", RF_F_ARRAY, 0}};
    const char *versions, *meta;
    struct rf_ratelimits rl;
    json_t *jrl;
    if (rf_api_if_match(r, &versions) || rf_input_require(r, fields, RF_NFIELDS(fields)) ||
        identity_input(r, &meta, &rl, &jrl))
        return;
    struct rf_identity idn;
    struct rf_db_error e;
    int found;
    int rc = rf_store_identity_update(r->app->db, r->tx, r->a, r->ws, r->params[0],
                                      json_object_get(r->body, "meta") != NULL, meta,
                                      jrl ? &rl : NULL, versions, &idn, &found, &e);
    if (rc == RF_DB_OK && found == RF_STORE_STALE) {
        rf_api_precondition_failed(r);
        return;
    }
    if (rf_api_lookup_failed(r, rc, e.detail, found, "No identity with this externalId."))
        return;
    /* The ratelimits shown when set; GET shows them always. */
    rf_api_reply_object(r, "identity", identity_with_limits(&idn, jrl ? &rl : NULL), idn.version);
}

void rf_api_identity_delete(struct rf_req *r)
{
    rf_api_delete(r, rf_store_identity_delete, "No identity with this externalId.");
}

/* An integer member that null clears (expires, remaining): *set when it
 * is present, *has and *out when it is a number in [lo, hi]; outside that,
 * replies 422 p with detail and returns -1. */
static int nullable_int(struct rf_req *r, const char *name, int64_t lo, int64_t hi,
                        enum rf_problem p, const char *detail, int *set, int *has, int64_t *out)
{
    json_t *v = json_object_get(r->body, name);
    *set = v != NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_integer_value(v) < lo || json_integer_value(v) > hi) {
        rf_reply_problem_field(r, p, name, "%s", detail);
        return -1;
    }
    *has = 1;
    *out = json_integer_value(v);
    return 0;
}

/* Reads the key fields shared by create and patch into in. patch allows
 * null for clearing; create does not. Replies 422 and returns -1. */
static int key_input(struct rf_req *r, int patch, struct rf_key_input *in)
{
    json_t *v;
    memset(in, 0, sizeof(*in));
    if ((v = json_object_get(r->body, "name")) && !json_is_null(v)) {
        if (rf_api_check_name(r, v))
            return -1;
        in->name = json_string_value(v);
    }
    in->set_name = v != NULL;
    if ((v = json_object_get(r->body, "externalId")) && !json_is_null(v)) {
        if (check_external_id(r, v))
            return -1;
        in->external_id = json_string_value(v);
    }
    in->set_external_id = v != NULL;
    v = json_object_get(r->body, "meta");
    if (meta_text(r, v, &in->meta))
        return -1;
    in->set_meta = v != NULL;
    /* A key that is born expired is a mistake, not a use case; 2^53 - 1
     * is exact in every JSON client, and far from BIGINT's end. */
    if (nullable_int(r, "expires", rf_now_ms() + 1, INT64_MAX, RF_P_INVALID_EXPIRES,
                     "expires is a time in the future, in Unix milliseconds.", &in->set_expires,
                     &in->has_expires, &in->expires) ||
        nullable_int(r, "remaining", 0, 9007199254740991LL, RF_P_INVALID_REMAINING,
                     "remaining is an integer 0-2^53-1 (null: unlimited).", &in->set_remaining,
                     &in->has_remaining, &in->remaining))
        return -1;
    if ((v = json_object_get(r->body, "enabled"))) {
        in->set_enabled = 1;
        in->enabled = json_is_true(v);
    }
    if ((v = json_object_get(r->body, "ratelimits"))) {
        in->set_ratelimits = 1;
        if (rf_api_ratelimits_parse(r, v, &in->ratelimits))
            return -1;
    }
    if (rf_api_refill_parse(r, json_object_get(r->body, "refill"), in))
        return -1;
    if (in->set_refill && in->refill == RF_REFILL_NONE && !patch) {
        rf_reply_problem_field(r, RF_P_INVALID_REFILL, "refill",
                               "refill is an object on create (leave it out for none).");
        return -1;
    }
    return 0;
}

void rf_api_key_create(struct rf_req *r)
{
    static const struct rf_field fields[] = {
        {"name", RF_F_STRING, 0},      {"externalId", RF_F_STRING, 0}, {"meta", RF_F_OBJECT, 0},
        {"expires", RF_F_INT, 0},      {"remaining", RF_F_INT, 0},     {"enabled", RF_F_BOOL, 0},
        {"ratelimits", RF_F_ARRAY, 0}, {"refill", RF_F_OBJECT, 0},
    };
    struct rf_key_input in;
    if (rf_input_require(r, fields, RF_NFIELDS(fields)) || key_input(r, 0, &in))
        return;
    /* The plaintext exists only in this response; the database keeps its
     * SHA-256 and the first characters for display. */
    char key[RF_API_KEY_MAX], hash[65], start[RF_API_KEY_START + 1], key_id[64];
    if (rf_api_key_mint(r, key, hash, start))
        return;
    const char *identity_id;
    struct rf_db_error e;
    int rc = rf_store_key_create(r->app->db, r->tx, r->a, r->ws, hash, start, &in, key_id,
                                 &identity_id, &e);
    if (rf_api_db_failed(r, rc, e.detail))
        return;
    rf_reply_json(
        r, 201,
        json_pack("{s:s, s:s, s:s?}", "keyId", key_id, "key", key, "identityId", identity_id));
    r->resp.secret_key = 1;
}

void rf_api_key_patch(struct rf_req *r)
{
    static const struct rf_field fields[] = {
        {"name", RF_F_STRING_OR_NULL, 0},   {"externalId", RF_F_STRING_OR_NULL, 0},
        {"meta", RF_F_OBJECT_OR_NULL, 0},   {"expires", RF_F_INT_OR_NULL, 0},
        {"remaining", RF_F_INT_OR_NULL, 0}, {"enabled", RF_F_BOOL, 0},
        {"ratelimits", RF_F_ARRAY, 0},      {"refill", RF_F_OBJECT_OR_NULL, 0},
    };
    struct rf_key_input in;
    const char *versions;
    if (rf_api_if_match(r, &versions) || rf_input_require(r, fields, RF_NFIELDS(fields)) ||
        key_input(r, 1, &in))
        return;
    in.if_versions = versions;
    struct rf_key k;
    struct rf_db_error e;
    int found;
    int rc = rf_store_key_update(r->app->db, r->tx, r->a, r->ws, r->params[0], &in, &k, &found, &e);
    if (rc == RF_DB_OK && found == RF_STORE_STALE) {
        rf_api_precondition_failed(r);
        return;
    }
    if (rf_api_key_write_failed(r, rc, e.detail, found, found == RF_STORE_REROLLED,
                                "This key was rerolled: it follows its successor until it "
                                "expires; change the successor, or DELETE this key to end it "
                                "now."))
        return;
    rf_api_reply_object(r, "key", key_json(&k), k.version);
}

void rf_api_key_get(struct rf_req *r)
{
    struct rf_key k;
    struct rf_db_error e;
    int found;
    int rc = rf_store_key_get(r->app->db, r->a, r->ws, r->params[0], &k, &found, &e);
    if (rf_api_lookup_failed(r, rc, e.detail, found, "No such key."))
        return;
    rf_api_reply_object(r, "key", key_json(&k), k.version);
}

/* GET /v1/keys?externalId=: the keys of one identity, a keyset page at a
 * time. An externalId no identity has lists nothing. */
void rf_api_key_list(struct rf_req *r)
{
    struct rf_api_page pg;
    struct rf_key *ks = NULL;
    struct rf_db_error e;
    const char *xid = r->query(r, "externalId");
    if (!xid || !*xid) {
        rf_reply_problem_field(r, RF_P_INVALID_QUERY, "externalId",
                               "Give ?externalId= to list the keys of an identity.");
        return;
    }
    if (rf_api_page_params(r, &pg))
        return;
    int rc = rf_store_key_list(r->app->db, r->a, r->ws, xid, pg.after_created, pg.after_id,
                               pg.limit, &ks, &pg.n, &pg.more, &e);
    rf_api_page_reply(r, rc, e.detail, &pg, ks, sizeof(*ks), key_item);
}

/* "ratelimits": [{"name", "cost"?}] and "credits": {"cost"} of a verify. */
static int verify_input(struct rf_req *r, struct rf_verify_in *in)
{
    static const struct rf_field lf[] = {{"name", RF_F_STRING, 1}, {"cost", RF_F_INT, 0}};
    static const struct rf_field cf[] = {{"cost", RF_F_INT, 1}};
    const char *bad;
    json_t *v = json_object_get(r->body, "ratelimits"), *o;
    size_t i;
    in->credit_cost = 1;
    in->auto_limits = v == NULL;
    if (v && json_array_size(v) > RF_RATELIMITS_MAX)
        goto bad_limits;
    json_array_foreach(v, i, o)
    {
        json_t *name = json_object_get(o, "name"), *cost = json_object_get(o, "cost");
        if (!json_is_object(o) || rf_input_check(o, lf, RF_NFIELDS(lf), &bad) ||
            (cost && (json_integer_value(cost) < 0 || json_integer_value(cost) > 1000000000000000)))
            goto bad_limits;
        for (int j = 0; j < in->nlimits; j++)
            if (!strcmp(in->limits[j].name, json_string_value(name)))
                goto bad_limits;
        in->limits[in->nlimits].name = json_string_value(name);
        in->limits[in->nlimits++].cost = cost ? json_integer_value(cost) : 1;
    }
    if ((v = json_object_get(r->body, "credits"))) {
        if (rf_input_check(v, cf, RF_NFIELDS(cf), &bad) ||
            json_integer_value(json_object_get(v, "cost")) < 0) {
            rf_reply_problem_field(r, RF_P_INVALID_CREDITS, "credits",
                                   "credits is {\"cost\": an integer >= 0}.");
            return -1;
        }
        in->credit_cost = json_integer_value(json_object_get(v, "cost"));
    }
    return 0;
bad_limits:
    rf_reply_problem_field(r, RF_P_INVALID_RATELIMITS, "ratelimits",
                           "ratelimits is an array of at most %d {\"name\", \"cost\"?} with "
                           "distinct names and cost >= 0.",
                           RF_RATELIMITS_MAX);
    return -1;
}

static json_t *checks_json(const struct rf_verify_out *o)
{
    json_t *a = json_array();
    for (int i = 0; a && i < o->nchecks; i++) {
        const struct rf_rl_check *c = &o->checks[i];
        json_array_append_new(a,
                              json_pack("{s:s, s:I, s:I, s:I, s:b}", "name", c->name, "limit",
                                        (json_int_t)c->limit, "remaining", (json_int_t)c->remaining,
                                        "reset", (json_int_t)c->reset, "exceeded", c->exceeded));
    }
    return a;
}

void rf_api_key_verify(struct rf_req *r)
{
    static const struct rf_field fields[] = {
        {"key", RF_F_STRING, 1}, {"ratelimits", RF_F_ARRAY, 0}, {"credits", RF_F_OBJECT, 0}};
    static const char *const names[] = {"VALID",   "NOT_FOUND",      "DISABLED",
                                        "EXPIRED", "USAGE_EXCEEDED", "RATE_LIMITED"};
    struct rf_verify_in in = {0};
    if (rf_input_require(r, fields, RF_NFIELDS(fields)) || verify_input(r, &in))
        return;
    json_t *jkey = json_object_get(r->body, "key");
    const char *key = json_string_value(jkey);
    struct rf_verify_out *out = rf_arena_alloc(r->a, sizeof(*out));
    if (!out) {
        rf_reply_db_error(r, RF_DB_ERROR, "out of memory");
        return;
    }
    out->code = RF_VERIFY_NOT_FOUND;
    out->nchecks = 0;
    /* Anything that cannot be one of our keys is simply not found. */
    if (json_string_length(jkey) <= RF_API_KEY_MAX && strncmp(key, "rf_", 3) == 0) {
        char hash[65];
        struct rf_db_error e;
        rf_sha256_hex(key, json_string_length(jkey), hash);
        in.key_hash = hash;
        in.now_ms = rf_now_ms();
        int rc = rf_store_key_verify(r->app->db, r->tx, r->a, r->ws, &in, out, &e);
        if (rf_api_db_failed(r, rc, e.detail))
            return;
        if (out->unknown_limit) {
            rf_reply_problem_field(r, RF_P_UNKNOWN_RATELIMIT, "ratelimits",
                                   "Neither the key nor its identity has a ratelimit named "
                                   "'%.64s'.",
                                   out->unknown_limit);
            return;
        }
    }
    enum rf_verify_code code = out->code;
    const struct rf_key *k = &out->key;
    if (out->nchecks && (code == RF_VERIFY_VALID || code == RF_VERIFY_RATE_LIMITED))
        rf_metrics_ratelimit(code == RF_VERIFY_RATE_LIMITED ? RF_METRICS_RL_LIMITED
                                                            : RF_METRICS_RL_PASSED);
    json_t *j = json_pack("{s:b, s:s}", "valid", code == RF_VERIFY_VALID, "code", names[code]);
    if (j && code != RF_VERIFY_NOT_FOUND) {
        json_object_set_new(j, "keyId", json_string(k->id));
        if (k->has_identity)
            json_object_set_new(j, "identity", identity_json(&k->identity, 0));
        if (k->has_remaining)
            json_object_set_new(j, "remaining", json_integer(k->remaining));
        if (out->nchecks)
            json_object_set_new(j, "ratelimits", checks_json(out));
    }
    rf_reply_json(r, 200, j);
}
