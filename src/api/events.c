#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/rules.h"
#include "core/slug.h"
#include "core/util.h"
#include "store/store.h"

static json_t *event_json(const struct rf_event *ev)
{
    return json_pack("{s:s, s:s, s:s, s:s?, s:s}", "id", ev->id, "name", ev->name, "slug", ev->slug,
                     "startsAt", ev->starts_at, "createdAt", ev->created_at);
}

static json_t *event_item(const void *ev)
{
    return event_json(ev);
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
    if (rf_api_db_failed(r, rc, e.detail))
        return;
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
    rf_api_reply_object(r, "event", event_json(&ev), ev.version);
}

void rf_api_event_delete(struct rf_req *r)
{
    rf_api_delete(r, rf_store_event_delete, "No event with this slug.");
}

void rf_api_event_list(struct rf_req *r)
{
    struct rf_api_page pg;
    struct rf_event *evs = NULL;
    struct rf_db_error e;
    if (rf_api_page_params(r, &pg))
        return;
    int rc = rf_store_event_list(r->app->db, r->a, r->ws, pg.after_created, pg.after_id, pg.limit,
                                 &evs, &pg.n, &pg.more, &e);
    rf_api_page_reply(r, rc, e.detail, &pg, evs, sizeof(*evs), event_item);
}
