#include <string.h>

#include "api/api.h"
#include "core/hooks.h"
#include "core/rules.h"
#include "store/store.h"

static json_t *resource_json(const struct rf_resource *o)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", o->id, "type", o->type, "name", o->name,
                     "status", o->status, "createdAt", o->created_at);
}

static json_t *resource_item(const void *o)
{
    return resource_json(o);
}

static void resource_commit(struct rf_req *r);

void rf_api_resource_create(struct rf_req *r)
{
    static const struct rf_field fields[] = {
        {"type", RF_F_STRING, 1},
        {"name", RF_F_STRING, 1},
    };
    static const char *const types[] = {"postgres", "redis", "mongodb"};
    if (rf_input_require(r, fields, RF_NFIELDS(fields)))
        return;
    const char *type = json_string_value(json_object_get(r->body, "type"));
    size_t t;
    for (t = 0; t < 3 && strcmp(types[t], type) != 0; t++)
        ;
    if (t == 3) {
        rf_reply_problem_field(r, RF_P_INVALID_TYPE, "type",
                               "type is one of postgres, redis, mongodb.");
        return;
    }
    if (rf_api_check_name(r, json_object_get(r->body, "name")))
        return;
    /* Test builds: a provisioning backend that fails, to prove a 5xx
     * releases the idempotency reservation. */
    if (rf_fault("resources.fail")) {
        rf_reply_problem(r, RF_P_PROVISIONING_FAILED, "The provisioning backend failed.");
        r->resp.retry_after = 1;
        return;
    }
    /* The simulated call to a real backend: a timer, so the wait holds no
     * worker and no database lock, and other requests go on meanwhile. */
    if (r->app->provision_delay_ms > 0)
        rf_req_defer(r, r->app->provision_delay_ms, resource_commit);
    else
        resource_commit(r);
}

/* After provisioning: the row, in the request's transaction. */
static void resource_commit(struct rf_req *r)
{
    struct rf_resource o;
    struct rf_db_error e;
    int over;
    int rc = rf_store_resource_create(
        r->app->db, r->tx, r->a, r->ws, json_string_value(json_object_get(r->body, "type")),
        json_string_value(json_object_get(r->body, "name")), r->app->resource_quota, &o, &over, &e);
    if (rf_api_db_failed(r, rc, e.detail))
        return;
    if (over) {
        rf_reply_problem(r, RF_P_QUOTA_EXCEEDED,
                         "This workspace already holds its quota of %lld resources.",
                         r->app->resource_quota);
        return;
    }
    rf_reply_json(r, 201, json_pack("{s:o}", "resource", resource_json(&o)));
}

void rf_api_resource_get(struct rf_req *r)
{
    struct rf_resource o;
    struct rf_db_error e;
    int found;
    int rc = rf_store_resource_get(r->app->db, r->a, r->ws, r->params[0], &o, &found, &e);
    if (rf_api_lookup_failed(r, rc, e.detail, found, "No such resource."))
        return;
    rf_api_reply_object(r, "resource", resource_json(&o), o.version);
}

void rf_api_resource_delete(struct rf_req *r)
{
    rf_api_delete(r, rf_store_resource_delete, "No such resource.");
}

void rf_api_resource_list(struct rf_req *r)
{
    struct rf_api_page pg;
    struct rf_resource *list = NULL;
    struct rf_db_error e;
    if (rf_api_page_params(r, &pg))
        return;
    int rc = rf_store_resource_list(r->app->db, r->a, r->ws, pg.after_created, pg.after_id,
                                    pg.limit, &list, &pg.n, &pg.more, &e);
    rf_api_page_reply(r, rc, e.detail, &pg, list, sizeof(*list), resource_item);
}
