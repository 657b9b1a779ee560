#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/rules.h"
#include "db/db.h"
#include "store/store.h"

#define PAGE_DEFAULT 20
#define PAGE_MAX 100

/* Cursors are opaque to clients: hex of "createdAt|id" of the last item. */
const char *rf_api_cursor(struct rf_arena *a, const char *created, const char *id)
{
    static const char hex[] = "0123456789abcdef";
    size_t cl = strlen(created), il = strlen(id), n = cl + 1 + il;
    char *out = rf_arena_alloc(a, n * 2 + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)(i < cl ? created[i] : i == cl ? '|' : id[i - cl - 1]);
        out[2 * i] = hex[c >> 4];
        out[2 * i + 1] = hex[c & 15];
    }
    out[n * 2] = '\0';
    return out;
}

static int cursor_decode(struct rf_arena *a, const char *cur, const char **created, const char **id)
{
    size_t n = strlen(cur);
    if (n == 0 || n % 2 || n > 512)
        return -1;
    char *buf = rf_arena_alloc(a, n / 2 + 1);
    if (!buf)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = cur[2 * i + (size_t)k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        if (v < 0x20 || v > 0x7e) /* timestamps and ids are printable ASCII */
            return -1;
        buf[i] = (char)v;
    }
    buf[n / 2] = '\0';
    char *bar = strchr(buf, '|');
    if (!bar || bar == buf || !bar[1])
        return -1;
    *bar = '\0';
    *created = buf;
    *id = bar + 1;
    return 0;
}

int rf_api_page_params(struct rf_req *r, struct rf_api_page *pg)
{
    const char *ql = r->query(r, "limit"), *qc = r->query(r, "cursor");
    pg->limit = PAGE_DEFAULT;
    pg->after_created = pg->after_id = NULL;
    pg->n = pg->more = 0;
    if (ql) {
        char *end;
        long v = strtol(ql, &end, 10);
        if (!*ql || *end || v < 1 || v > PAGE_MAX) {
            rf_reply_problem_field(r, RF_P_INVALID_QUERY, "limit",
                                   "limit is an integer from 1 to %d.", PAGE_MAX);
            return -1;
        }
        pg->limit = (int)v;
    }
    if (qc && *qc && cursor_decode(r->a, qc, &pg->after_created, &pg->after_id) != 0) {
        rf_reply_problem_field(r, RF_P_INVALID_QUERY, "cursor",
                               "cursor must be a value returned by this endpoint.");
        return -1;
    }
    return 0;
}

void rf_api_page_reply(struct rf_req *r, int rc, const char *detail, const struct rf_api_page *pg,
                       const void *items, size_t size, json_t *(*item_json)(const void *item))
{
    if (rc != RF_DB_OK) {
        rf_reply_db_error(r, rc, detail);
        return;
    }
    json_t *data = json_array(), *last = NULL;
    for (int i = 0; i < pg->n; i++) {
        json_t *j = item_json((const char *)items + (size_t)i * size);
        if (json_array_append_new(data, j) == 0)
            last = j;
    }
    /* The position of the last item shown, read as it was shown. */
    const char *created = json_string_value(json_object_get(last, "createdAt"));
    const char *id = json_string_value(json_object_get(last, "id"));
    const char *next = pg->more && created && id ? rf_api_cursor(r->a, created, id) : NULL;
    rf_reply_json(r, 200, json_pack("{s:o, s:s?}", "data", data, "cursor", next));
}

void rf_api_reply_object(struct rf_req *r, const char *name, json_t *obj, int64_t version)
{
    rf_reply_json(r, 200, json_pack("{s:o}", name, obj));
    rf_api_etag(r, version);
}

void rf_api_delete(struct rf_req *r, rf_api_delete_fn del, const char *not_found)
{
    struct rf_db_error e;
    int found;
    int rc = del(r->app->db, r->ws, r->params[0], &found, &e);
    if (rf_api_lookup_failed(r, rc, e.detail, found, not_found))
        return;
    rf_reply_empty(r, 204);
}

int rf_api_check_name(struct rf_req *r, json_t *v)
{
    if (v && json_is_string(v) && rf_name_check(json_string_value(v), json_string_length(v)) != 0) {
        rf_reply_problem_field(r, RF_P_INVALID_NAME, "name",
                               "A name is 1-%d bytes without control characters.", RF_NAME_MAX);
        return -1;
    }
    return 0;
}

int rf_api_db_failed(struct rf_req *r, int rc, const char *detail)
{
    if (rc == RF_DB_OK)
        return 0;
    rf_reply_db_error(r, rc, detail);
    return 1;
}

int rf_api_lookup_failed(struct rf_req *r, int rc, const char *detail, int found,
                         const char *not_found)
{
    if (rf_api_db_failed(r, rc, detail))
        return 1;
    if (!found) {
        rf_reply_problem(r, RF_P_NOT_FOUND, "%s", not_found);
        return 1;
    }
    return 0;
}

void rf_api_etag(struct rf_req *r, int64_t version)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "\"%" PRId64 "\"", version);
    r->resp.etag = rf_arena_strdup(r->a, buf);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110: If-Match = "*" / #entity-tag; entity-tag = [ "W/" ] DQUOTE
 * *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text. List elements are
 * separated by commas and optional whitespace; empty elements are allowed
 * (§5.6.1), but a value with no tag at all is not. */
int rf_api_if_match_parse(struct rf_arena *a, const char *h, const char **versions)
{
    size_t n = strlen(h), o = 1;
    char *out = rf_arena_alloc(a, n + 2);
    int tags = 0;
    *versions = NULL;
    if (!out)
        return -1;
    out[0] = ',';
    const char *p = h;
    while (is_ows(*p))
        p++;
    if (*p == '*') {
        for (p++; is_ows(*p); p++)
            ;
        if (*p)
            return -1; /* "*" stands alone */
        return 0;
    }
    for (;;) {
        while (is_ows(*p) || *p == ',')
            p++;
        if (!*p)
            break;
        int weak = 0;
        if (p[0] == 'W' && p[1] == '/') {
            weak = 1;
            p += 2;
        }
        if (*p != '"')
            return -1;
        const char *t = ++p;
        while (*p && *p != '"') {
            unsigned char c = (unsigned char)*p;
            if (c < 0x21 || c == 0x7f)
                return -1;
            p++;
        }
        if (*p != '"')
            return -1;
        size_t tl = (size_t)(p - t);
        p++;
        while (is_ows(*p))
            p++;
        if (*p && *p != ',')
            return -1;
        tags++;
        /* Ours are decimal versions without leading zeros. A weak tag never
         * matches (If-Match compares strongly); any other tag matches no
         * version, and keeping it out keeps ',' a safe separator. */
        int ours = !weak && tl > 0 && tl <= 19 && !(t[0] == '0');
        for (size_t i = 0; ours && i < tl; i++)
            ours = t[i] >= '0' && t[i] <= '9';
        if (ours) {
            memcpy(out + o, t, tl);
            o += tl;
            out[o++] = ',';
        }
    }
    if (tags == 0)
        return -1;
    out[o] = '\0';
    *versions = out;
    return 0;
}

int rf_api_if_match(struct rf_req *r, const char **versions)
{
    *versions = NULL;
    if (!r->if_match) {
        if (r->app->require_if_match) {
            rf_reply_problem(r, RF_P_PRECONDITION_REQUIRED,
                             "This server requires If-Match on PATCH: send the ETag of the "
                             "object you read (or *).");
            return -1;
        }
        return 0;
    }
    if (rf_api_if_match_parse(r->a, r->if_match, versions) != 0) {
        rf_reply_problem(r, RF_P_INVALID_IF_MATCH,
                         "If-Match is * or a list of entity tags, e.g. \"3\".");
        return -1;
    }
    return 0;
}

void rf_api_precondition_failed(struct rf_req *r)
{
    rf_reply_problem(r, RF_P_PRECONDITION_FAILED,
                     "The object changed since the ETag in If-Match: read it again.");
}
