#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/metrics.h"
#include "core/util.h"
#include "db/db.h"
#include "http/http.h"

/* The rows of core/problems.h, by enum: this layer shapes a body from a row
 * and knows no code by name. */
static const struct {
    int status;
    const char *code, *title;
} problems[RF_P_COUNT] = {
#define XX(e, status, code, title, label) [RF_P_##e] = {status, #code, title},
    RF_PROBLEM_MAP(XX)
#undef XX
};

static void set_body(struct rf_req *r, int status, const char *ctype, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    r->resp.status = status;
    r->resp.ctype = ctype;
    r->resp.body = s ? rf_arena_strdup(r->a, s) : NULL;
    r->resp.body_len = r->resp.body ? strlen(r->resp.body) : 0;
    free(s);
    if (!r->resp.body) {
        /* Out of memory while answering: a fixed body still tells the truth. */
        r->resp.status = 500;
        r->resp.ctype = "application/problem+json";
        r->resp.body = "{\"type\":\"urn:racefree:error:internal_error\",\"status\":500,"
                       "\"code\":\"internal_error\"}";
        r->resp.body_len = strlen(r->resp.body);
    }
}

void rf_reply_empty(struct rf_req *r, int status)
{
    r->resp.status = status;
    r->resp.ctype = NULL;
    r->resp.body = NULL;
    r->resp.body_len = 0;
}

void rf_reply_json(struct rf_req *r, int status, json_t *j)
{
    set_body(r, status, "application/json", j);
}

void rf_reply_text(struct rf_req *r, int status, const char *ctype, const char *body, size_t len)
{
    r->resp.status = status;
    r->resp.ctype = ctype;
    r->resp.body = body;
    r->resp.body_len = len;
}

static void problem(struct rf_req *r, enum rf_problem p, const char *field, const char *fmt,
                    va_list ap)
{
    if ((unsigned)p >= RF_P_COUNT) /* an enum holds any int: never read past the table */
        p = RF_P_INTERNAL_ERROR;
    int status = problems[p].status;
    const char *code = problems[p].code;
    char detail[512];
    if (status == 409) /* every 409 passes here: one place counts them all */
        rf_metrics_conflict(code);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    char type[128];
    snprintf(type, sizeof(type), "urn:racefree:error:%s", code);
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type", type, "title",
                          problems[p].title, "status", status, "detail", detail, "code", code,
                          "requestId", r->request_id ? r->request_id : "");
    if (j && field)
        json_object_set_new(j, "field", json_string(field));
    if (!j) /* detail not UTF-8: every client text is cut with utf8_cut first */
        j = json_pack("{s:s, s:i, s:s}", "type", type, "status", status, "code", code);
    set_body(r, status, "application/problem+json", j);
}

void rf_reply_problem(struct rf_req *r, enum rf_problem p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem(r, p, NULL, fmt, ap);
    va_end(ap);
}

void rf_reply_problem_field(struct rf_req *r, enum rf_problem p, const char *field, const char *fmt,
                            ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem(r, p, field, fmt, ap);
    va_end(ap);
}

void rf_reply_db_error(struct rf_req *r, int db_code, const char *detail)
{
    if (db_code == RF_DB_UNAVAILABLE || db_code == RF_DB_RETRY) {
        /* RETRY here means the retry budget ran out under contention: a
         * transient condition the client should retry, never a 500. */
        rf_log(RF_LOG_WARN, "request %s: %s: %s", r->request_id, rf_db_strerror(db_code), detail);
        rf_reply_problem(r, RF_P_DATABASE_UNAVAILABLE,
                         "The database is unavailable or overloaded; retry shortly.");
        r->resp.retry_after = 1;
        return;
    }
    if (db_code == RF_DB_FULL) {
        /* Nothing was written; the request can be retried unchanged once an
         * operator frees space, so it is the client's 5xx, never a 500. */
        rf_log(RF_LOG_ERROR, "request %s: %s: %s", r->request_id, rf_db_strerror(db_code), detail);
        rf_reply_problem(r, RF_P_INSUFFICIENT_STORAGE,
                         "The database's disk is full; nothing was written. Retry once space "
                         "is freed.");
        return;
    }
    rf_log(RF_LOG_ERROR, "request %s: %s: %s", r->request_id, rf_db_strerror(db_code), detail);
    rf_reply_problem(r, RF_P_INTERNAL_ERROR, "Internal error; reference request %s.",
                     r->request_id);
}

/* ---- input ---- */

static int depth_ok(json_t *j, int depth)
{
    if (depth > RF_JSON_DEPTH_MAX)
        return 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if (!depth_ok(v, depth + 1))
                return 0;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            if (!depth_ok(v, depth + 1))
                return 0;
        }
    }
    return 1;
}

json_t *rf_json_parse_object(const char *buf, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    if (len == 0) {
        snprintf(err, errlen, "empty body: expected a JSON object");
        return NULL;
    }
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!j) {
        snprintf(err, errlen, "line %d, column %d (byte %d): %s", je.line, je.column, je.position,
                 je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        snprintf(err, errlen, "expected a JSON object at byte 0");
        json_decref(j);
        return NULL;
    }
    if (!depth_ok(j, 1)) {
        snprintf(err, errlen, "nesting deeper than %d levels", RF_JSON_DEPTH_MAX);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Each field type: the JSON types it accepts, one bit per json_type, and
 * how a 422 names it. */
#define JT(t) (1u << (t))
static const struct {
    unsigned accepts;
    const char *name;
} field_types[] = {
    [RF_F_STRING] = {JT(JSON_STRING), "a string"},
    [RF_F_STRING_OR_NULL] = {JT(JSON_STRING) | JT(JSON_NULL), "a string or null"},
    [RF_F_INT] = {JT(JSON_INTEGER), "an integer"},
    [RF_F_INT_OR_NULL] = {JT(JSON_INTEGER) | JT(JSON_NULL), "an integer or null"},
    [RF_F_BOOL] = {JT(JSON_TRUE) | JT(JSON_FALSE), "a boolean"},
    [RF_F_OBJECT] = {JT(JSON_OBJECT), "an object"},
    [RF_F_OBJECT_OR_NULL] = {JT(JSON_OBJECT) | JT(JSON_NULL), "an object or null"},
    [RF_F_ARRAY] = {JT(JSON_ARRAY), "an array"},
};
#undef JT

static int type_ok(json_t *v, enum rf_field_type t)
{
    return (field_types[t].accepts >> json_typeof(v)) & 1u;
}

enum rf_input_err rf_input_check(json_t *obj, const struct rf_field *fields, size_t n,
                                 const char **bad)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        size_t i;
        for (i = 0; i < n && strcmp(fields[i].name, k) != 0; i++)
            ;
        *bad = k;
        if (i == n)
            return RF_INPUT_UNKNOWN;
        if (!type_ok(v, fields[i].type))
            return RF_INPUT_TYPE;
    }
    for (size_t i = 0; i < n; i++) {
        *bad = fields[i].name;
        if (fields[i].required && !json_object_get(obj, fields[i].name))
            return RF_INPUT_MISSING;
    }
    *bad = NULL;
    return RF_INPUT_OK;
}

/* Copies s into out, cut to fit at a UTF-8 character boundary. */
static void utf8_cut(char *out, size_t outlen, const char *s)
{
    size_t n = 0, keep = 0;
    while (s[n] && n < outlen - 1) {
        unsigned char c = (unsigned char)s[n];
        size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (n + len > outlen - 1)
            break;
        n += len;
        keep = n;
    }
    memcpy(out, s, keep);
    out[keep] = '\0';
}

void rf_reply_input_error(struct rf_req *r, enum rf_input_err err, const char *field,
                          const struct rf_field *fields, size_t n)
{
    /* Field names come from the client: bound and escape-proof them by
     * letting jansson encode them, and cut very long ones. */
    char shown[80];
    utf8_cut(shown, sizeof(shown), field ? field : "");
    switch (err) {
    case RF_INPUT_UNKNOWN:
        rf_reply_problem_field(r, RF_P_UNKNOWN_FIELD, shown, "Unknown field '%s'.", shown);
        break;
    case RF_INPUT_MISSING:
        rf_reply_problem_field(r, RF_P_MISSING_FIELD, shown, "Field '%s' is required.", shown);
        break;
    case RF_INPUT_TYPE:
        for (size_t i = 0; i < n; i++)
            if (strcmp(fields[i].name, field) == 0) {
                rf_reply_problem_field(r, RF_P_INVALID_FIELD, shown, "Field '%s' must be %s.",
                                       shown, field_types[fields[i].type].name);
                return;
            }
        /* fallthrough */
    default:
        rf_reply_problem(r, RF_P_INVALID_FIELD, "Invalid input.");
    }
}

int rf_input_require(struct rf_req *r, const struct rf_field *fields, size_t n)
{
    const char *bad;
    enum rf_input_err ie = rf_input_check(r->body, fields, n, &bad);
    if (ie == RF_INPUT_OK)
        return 0;
    rf_reply_input_error(r, ie, bad, fields, n);
    return -1;
}
