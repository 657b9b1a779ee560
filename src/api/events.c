#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/rules.h"
#include "core/slug.h"
#include "core/util.h"
#include "store/store.h"

#define PAGE_DEFAULT 20
#define PAGE_MAX 100

static json_t *event_json(const struct rf_event *ev)
{
    return json_pack("{s:s, s:s, s:s, s:s?, s:s}", "id", ev->id, "name", ev->name, "slug",
                     ev->slug, "startsAt", ev->starts_at, "createdAt", ev->created_at);
}

void rf_api_event_create(struct rf_req *r)
{
    static const struct rf_field fields[] = {
        {"name", RF_F_STRING, 1},
        {"startsAt", RF_F_STRING, 0},
    };
    if (rf_input_require(r, fields, RF_NFIELDS(fields)))
        return;
    json_t *jname = json_object_get(r->body, "name");
    json_t *jstart = json_object_get(r->body, "startsAt");
    const char *name = json_string_value(jname);
    if (rf_name_check(name, json_string_length(jname)) != 0) {
        rf_reply_problem_field(r, 422, "invalid_name", "name",
                               "A name is 1-%d bytes without control characters.", RF_NAME_MAX);
        return;
    }
    char starts[RF_TIME_MAX];
    if (jstart) {
        int64_t ms;
        if (rf_time_parse(json_string_value(jstart), &ms) != 0) {
            rf_reply_problem_field(r, 422, "invalid_starts_at", "startsAt",
                                   "startsAt must be an RFC 3339 date-time, e.g. "
                                   "2026-12-31T20:00:00Z.");
            return;
        }
        rf_time_format(ms, starts); /* stored and shown in UTC */
    }
    char base[RF_SLUG_MAX + 1];
    rf_slugify(name, json_string_length(jname), base, sizeof(base));

    struct rf_event ev;
    struct rf_db_error e;
    int rc = rf_store_event_create(r->app->db, r->a, r->ws, name, base, jstart ? starts : NULL,
                                   &ev, &e);
    if (rc != RF_DB_OK) {
        rf_reply_db_error(r, rc, e.detail);
        return;
    }
    rf_reply_json(r, 201, json_pack("{s:o}", "event", event_json(&ev)));
}

void rf_api_event_get(struct rf_req *r)
{
    struct rf_event ev;
    struct rf_db_error e;
    int found;
    int rc = rf_store_event_get(r->app->db, r->a, r->ws, r->params[0], &ev, &found, &e);
    if (rc != RF_DB_OK) {
        rf_reply_db_error(r, rc, e.detail);
        return;
    }
    if (!found) {
        rf_reply_problem(r, 404, "not_found", "No event with this slug.");
        return;
    }
    rf_reply_json(r, 200, json_pack("{s:o}", "event", event_json(&ev)));
}

/* Cursors are opaque to clients: hex of "createdAt|id" of the last item. */
static char *cursor_encode(struct rf_arena *a, const char *created, const char *id)
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

static int cursor_decode(struct rf_arena *a, const char *cur, const char **created,
                         const char **id)
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

void rf_api_event_list(struct rf_req *r)
{
    const char *ql = r->query(r, "limit"), *qc = r->query(r, "cursor");
    int limit = PAGE_DEFAULT;
    if (ql) {
        char *end;
        long v = strtol(ql, &end, 10);
        if (!*ql || *end || v < 1 || v > PAGE_MAX) {
            rf_reply_problem_field(r, 422, "invalid_query", "limit",
                                   "limit is an integer from 1 to %d.", PAGE_MAX);
            return;
        }
        limit = (int)v;
    }
    const char *after_created = NULL, *after_id = NULL;
    if (qc && *qc && cursor_decode(r->a, qc, &after_created, &after_id) != 0) {
        rf_reply_problem_field(r, 422, "invalid_query", "cursor",
                               "cursor must be a value returned by this endpoint.");
        return;
    }
    struct rf_event *evs;
    int n, more;
    struct rf_db_error e;
    int rc = rf_store_event_list(r->app->db, r->a, r->ws, after_created, after_id, limit, &evs,
                                 &n, &more, &e);
    if (rc != RF_DB_OK) {
        rf_reply_db_error(r, rc, e.detail);
        return;
    }
    json_t *data = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(data, event_json(&evs[i]));
    const char *next = more ? cursor_encode(r->a, evs[n - 1].created_at, evs[n - 1].id) : NULL;
    rf_reply_json(r, 200, json_pack("{s:o, s:s?}", "data", data, "cursor", next));
}
