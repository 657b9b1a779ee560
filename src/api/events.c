#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/rules.h"
#include "core/slug.h"
#include "core/util.h"
#include "store/store.h"

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
    if (rf_api_check_name(r, jname))
        return;
    char starts[RF_TIME_MAX];
    if (jstart) {
        int64_t ms;
        if (rf_time_parse(json_string_value(jstart), &ms) != 0) {
            rf_reply_problem_field(r, RF_P_INVALID_STARTS_AT, "startsAt",
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
    int rc = rf_store_event_create(r->app->db, r->tx, r->a, r->ws, name, base,
                                   jstart ? starts : NULL, &ev, &e);
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
    if (rf_api_lookup_failed(r, rc, e.detail, found, "No event with this slug."))
        return;
    rf_reply_json(r, 200, json_pack("{s:o}", "event", event_json(&ev)));
    rf_api_etag(r, ev.version);
}

void rf_api_event_delete(struct rf_req *r)
{
    struct rf_db_error e;
    int found;
    int rc = rf_store_event_delete(r->app->db, r->ws, r->params[0], &found, &e);
    if (rf_api_lookup_failed(r, rc, e.detail, found, "No event with this slug."))
        return;
    rf_reply_empty(r, 204);
}

void rf_api_event_list(struct rf_req *r)
{
    int limit, n, more;
    const char *after_created, *after_id;
    struct rf_event *evs;
    struct rf_db_error e;
    if (rf_api_page_params(r, &limit, &after_created, &after_id))
        return;
    int rc = rf_store_event_list(r->app->db, r->a, r->ws, after_created, after_id, limit, &evs,
                                 &n, &more, &e);
    if (rc != RF_DB_OK) {
        rf_reply_db_error(r, rc, e.detail);
        return;
    }
    json_t *data = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(data, event_json(&evs[i]));
    const char *next = more ? rf_api_cursor(r->a, evs[n - 1].created_at, evs[n - 1].id) : NULL;
    rf_reply_json(r, 200, json_pack("{s:o, s:s?}", "data", data, "cursor", next));
}
