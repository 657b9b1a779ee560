/* Keys past create and get: ratelimit and refill settings, credit
 * operations, reroll and delete. Each write is one store call whose SQL
 * carries the race rule (store/keys.c); this file only validates and
 * renders. */
#include <string.h>

#include "api/api.h"
#include "core/util.h"
#include "store/store.h"

#define RL_LIMIT_MAX 1000000000000000LL /* 10^15 */
#define RL_DURATION_MIN 1000LL
#define RL_DURATION_MAX (366LL * 86400000)
#define CREDITS_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON client */
#define OVERLAP_MAX (30LL * 86400000)
#define KEY_BYTES 32

static int rl_name_ok(const char *s, size_t n)
{
    if (n < 1 || n > RF_RATELIMIT_NAME_MAX || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
            !(s[i] >= '0' && s[i] <= '9') && !strchr("_.:-", s[i]))
            return 0;
    return 1;
}

static int int_in(json_t *v, long long lo, long long hi)
{
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

int rf_api_ratelimits_parse(struct rf_req *r, json_t *v, struct rf_ratelimits *out)
{
    static const struct rf_field fields[] = {
        {"name", RF_F_STRING, 1}, {"limit", RF_F_INT, 1}, {"duration", RF_F_INT, 1}};
    size_t i;
    json_t *o;
    const char *bad;
    out->n = 0;
    if (!json_is_array(v) || json_array_size(v) > RF_RATELIMITS_MAX)
        goto bad;
    json_array_foreach(v, i, o)
    {
        if (!json_is_object(o) || rf_input_check(o, fields, RF_NFIELDS(fields), &bad))
            goto bad;
        json_t *name = json_object_get(o, "name");
        if (!rl_name_ok(json_string_value(name), json_string_length(name)) ||
            !int_in(json_object_get(o, "limit"), 0, RL_LIMIT_MAX) ||
            !int_in(json_object_get(o, "duration"), RL_DURATION_MIN, RL_DURATION_MAX))
            goto bad;
        for (int j = 0; j < out->n; j++)
            if (!strcmp(out->v[j].name, json_string_value(name)))
                goto bad;
        out->v[out->n++] = (struct rf_ratelimit){
            json_string_value(name), json_integer_value(json_object_get(o, "limit")),
            json_integer_value(json_object_get(o, "duration"))};
    }
    return 0;
bad:
    rf_reply_problem_field(r, RF_P_INVALID_RATELIMITS, "ratelimits",
                           "ratelimits is an array of at most %d {\"name\", \"limit\", "
                           "\"duration\"} with distinct names (1-%d of A-Z a-z 0-9 _ . : -), "
                           "limit 0-10^15, duration %lld-%lld ms.",
                           RF_RATELIMITS_MAX, RF_RATELIMIT_NAME_MAX, RL_DURATION_MIN,
                           RL_DURATION_MAX);
    return -1;
}

json_t *rf_api_ratelimits_json(const struct rf_ratelimits *rl)
{
    json_t *a = json_array();
    for (int i = 0; a && i < rl->n; i++)
        json_array_append_new(a, json_pack("{s:s, s:I, s:I}", "name", rl->v[i].name, "limit",
                                           (json_int_t)rl->v[i].limit, "duration",
                                           (json_int_t)rl->v[i].duration));
    return a;
}

int rf_api_refill_parse(struct rf_req *r, json_t *v, struct rf_key_input *in)
{
    static const struct rf_field fields[] = {
        {"interval", RF_F_STRING, 1}, {"amount", RF_F_INT, 1}, {"refillDay", RF_F_INT, 0}};
    const char *bad;
    in->set_refill = v != NULL;
    in->refill = RF_REFILL_NONE;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v) || rf_input_check(v, fields, RF_NFIELDS(fields), &bad))
        goto bad;
    const char *iv = json_string_value(json_object_get(v, "interval"));
    json_t *day = json_object_get(v, "refillDay");
    in->refill = !strcmp(iv, "daily")     ? RF_REFILL_DAILY
                 : !strcmp(iv, "monthly") ? RF_REFILL_MONTHLY
                                          : RF_REFILL_NONE;
    if (in->refill == RF_REFILL_NONE || !int_in(json_object_get(v, "amount"), 0, CREDITS_MAX) ||
        (day && (in->refill != RF_REFILL_MONTHLY || !int_in(day, 1, 31))))
        goto bad;
    in->refill_amount = json_integer_value(json_object_get(v, "amount"));
    in->refill_day = day ? json_integer_value(day) : in->refill == RF_REFILL_MONTHLY ? 1 : 0;
    return 0;
bad:
    in->refill = RF_REFILL_NONE;
    rf_reply_problem_field(r, RF_P_INVALID_REFILL, "refill",
                           "refill is null or {\"interval\": \"daily\"|\"monthly\", \"amount\": "
                           "0-2^53, \"refillDay\": 1-31 (monthly only)}.");
    return -1;
}

int rf_api_key_mint(struct rf_req *r, char key[RF_API_KEY_MAX], char hash[65],
                    char start[RF_API_KEY_START + 1])
{
    if (rf_id_new(key, RF_API_KEY_MAX, "rf_", KEY_BYTES)) {
        rf_reply_db_error(r, RF_DB_ERROR, "key generation failed");
        return -1;
    }
    rf_sha256_hex(key, strlen(key), hash);
    memcpy(start, key, RF_API_KEY_START);
    start[RF_API_KEY_START] = '\0';
    return 0;
}

int rf_api_key_write_failed(struct rf_req *r, int rc, const char *detail, int found, int rerolled,
                            const char *why)
{
    if (rf_api_lookup_failed(r, rc, detail, found, "No such key."))
        return 1;
    if (rerolled) {
        rf_reply_problem(r, RF_P_KEY_REROLLED, "%s", why);
        return 1;
    }
    return 0;
}

void rf_api_key_delete(struct rf_req *r)
{
    struct rf_db_error e;
    int found;
    int rc = rf_store_key_delete(r->app->db, r->tx, r->ws, r->params[0], &found, &e);
    if (rf_api_lookup_failed(r, rc, e.detail, found, "No such key."))
        return;
    rf_reply_empty(r, 204);
}

void rf_api_key_credits(struct rf_req *r)
{
    static const struct rf_field fields[] = {{"op", RF_F_STRING, 1},
                                             {"value", RF_F_INT_OR_NULL, 1}};
    if (rf_input_require(r, fields, RF_NFIELDS(fields)))
        return;
    const char *ops = json_string_value(json_object_get(r->body, "op"));
    json_t *v = json_object_get(r->body, "value");
    enum rf_credit_op op = !strcmp(ops, "set")         ? RF_CREDITS_SET
                           : !strcmp(ops, "increment") ? RF_CREDITS_INCREMENT
                           : !strcmp(ops, "decrement") ? RF_CREDITS_DECREMENT
                                                       : (enum rf_credit_op) - 1;
    if ((int)op < 0 || (json_is_null(v) && op != RF_CREDITS_SET) ||
        (!json_is_null(v) && !int_in(v, 0, CREDITS_MAX))) {
        rf_reply_problem_field(r, RF_P_INVALID_CREDITS, (int)op < 0 ? "op" : "value",
                               "op is \"set\", \"increment\" or \"decrement\"; value an integer "
                               "0-2^53 (null, with set: unlimited).");
        return;
    }
    enum rf_credit_result res;
    int has;
    int64_t remaining;
    struct rf_db_error e;
    int rc = rf_store_key_credits(r->app->db, r->tx, r->ws, r->params[0], op, !json_is_null(v),
                                  json_integer_value(v), &res, &has, &remaining, &e);
    if (rf_api_key_write_failed(r, rc, e.detail, res != RF_CREDITS_NOT_FOUND,
                                res == RF_CREDITS_REROLLED,
                                "This key was rerolled: its credits are its successor's."))
        return;
    if (res == RF_CREDITS_UNLIMITED) {
        rf_reply_problem_field(r, RF_P_CREDITS_UNLIMITED, "op",
                               "The key has unlimited credits; set a number first.");
        return;
    }
    rf_reply_json(r, 200,
                  json_pack("{s:o}", "remaining", has ? json_integer(remaining) : json_null()));
}

void rf_api_key_reroll(struct rf_req *r)
{
    static const struct rf_field fields[] = {{"expiration", RF_F_INT, 0}};
    if (rf_input_require(r, fields, RF_NFIELDS(fields)))
        return;
    json_t *x = json_object_get(r->body, "expiration");
    if (x && !int_in(x, 0, OVERLAP_MAX)) {
        rf_reply_problem_field(r, RF_P_INVALID_EXPIRES, "expiration",
                               "expiration is how long the old key keeps working, 0-%lld ms.",
                               OVERLAP_MAX);
        return;
    }
    char key[RF_API_KEY_MAX], hash[65], start[RF_API_KEY_START + 1], new_id[64];
    if (rf_api_key_mint(r, key, hash, start))
        return;
    enum rf_reroll_result res;
    int64_t old_expires;
    struct rf_db_error e;
    int rc = rf_store_key_reroll(r->app->db, r->tx, r->a, r->ws, r->params[0], hash, start,
                                 x ? json_integer_value(x) : 0, new_id, &old_expires, &res, &e);
    if (rf_api_key_write_failed(r, rc, e.detail, res != RF_REROLL_NOT_FOUND,
                                res == RF_REROLL_ALREADY,
                                "This key was already rerolled; reroll its successor instead."))
        return;
    rf_reply_json(r, 201,
                  json_pack("{s:s, s:s, s:I}", "keyId", new_id, "key", key, "previousKeyExpires",
                            (json_int_t)old_expires));
    r->resp.secret_key = 1;
}
