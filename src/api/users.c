#include <string.h>

#include "api/api.h"
#include "core/metrics.h"
#include "core/rules.h"
#include "store/store.h"

static json_t *user_json(const struct rf_user *u)
{
    return json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s}", "id", u->id, "email", u->email, "name",
                     u->name, "username", u->username, "createdAt", u->created_at, "updatedAt",
                     u->updated_at);
}

static json_t *user_item(const void *u)
{
    return user_json(u);
}

static void user_create_done(struct rf_req *r);
static void user_create_reply(struct rf_req *r, int rc, const struct rf_db_error *e,
                              const struct rf_user *u, int created);

void rf_api_user_create(struct rf_req *r)
{
    static const struct rf_field fields[] = {
        {"email", RF_F_STRING, 1},
        {"name", RF_F_STRING, 0},
    };
    if (rf_input_require(r, fields, RF_NFIELDS(fields)))
        return;
    json_t *jemail = json_object_get(r->body, "email");
    json_t *jname = json_object_get(r->body, "name");
    char email[RF_EMAIL_MAX + 1];
    if (strlen(json_string_value(jemail)) != json_string_length(jemail) ||
        rf_email_normalize(json_string_value(jemail), json_string_length(jemail), email,
                           sizeof(email)) != 0) {
        rf_reply_problem_field(r, RF_P_INVALID_EMAIL, "email",
                               "An email has one '@' with text on both sides, at most %d bytes.",
                               RF_EMAIL_MAX);
        return;
    }
    if (rf_api_check_name(r, jname))
        return;

    const char *name = jname ? json_string_value(jname) : NULL;
    struct rf_user *u = rf_arena_alloc(r->a, sizeof(*u));
    if (!u) {
        rf_reply_db_error(r, RF_DB_ERROR, "out of memory");
        return;
    }
    /* Outside the idempotency layer's transaction a create may ride in a
     * shared batch (PostgreSQL), waiting for it without a worker. */
    struct rf_db_error e;
    int created;
    if (!r->tx) {
        const char *kept = rf_arena_strdup(r->a, email); /* outlives this call */
        struct rf_user_wait *w = NULL;
        rf_req_park(r, user_create_done);
        int rc = kept ? rf_store_user_create_async(r->app->db, r->a, r->ws, kept, name, u,
                                                   rf_req_wake, r, &w, &e)
                      : rf_db_fail(&e, RF_DB_ERROR, "out of memory");
        if (rc == RF_DB_OK && w) {
            r->wait = w;
            return;
        }
        r->then = NULL;
        if (rf_api_db_failed(r, rc, e.detail))
            return;
    }
    int rc = rf_store_user_create(r->app->db, r->tx, r->a, r->ws, email, name, u, &created, &e);
    user_create_reply(r, rc, &e, u, created);
}

static void user_create_reply(struct rf_req *r, int rc, const struct rf_db_error *e,
                              const struct rf_user *u, int created)
{
    if (rc != RF_DB_OK) {
        rf_reply_db_error(r, rc, e->detail);
        return;
    }
    if (!created)
        rf_metrics_create_existing(RF_METRICS_EXISTING_USER);
    rf_reply_json(r, created ? 201 : 200,
                  json_pack("{s:o, s:b}", "user", user_json(u), "created", created));
}

/* After a batched create: its outcome, kept in r->wait. */
static void user_create_done(struct rf_req *r)
{
    struct rf_db_error e;
    int created;
    const struct rf_user *u;
    int rc = rf_store_user_create_result(r->wait, &u, &created, &e);
    user_create_reply(r, rc, &e, u, created);
}

void rf_api_user_get(struct rf_req *r)
{
    struct rf_user u;
    struct rf_db_error e;
    int found;
    int rc = rf_store_user_get(r->app->db, r->a, r->ws, r->params[0], &u, &found, &e);
    if (rf_api_lookup_failed(r, rc, e.detail, found, "No such user."))
        return;
    rf_api_reply_object(r, "user", user_json(&u), u.version);
}

/* Without ?email=: every user, a keyset page at a time. */
static void user_page(struct rf_req *r)
{
    struct rf_api_page pg;
    struct rf_user *us = NULL;
    struct rf_db_error e;
    if (rf_api_page_params(r, &pg))
        return;
    int rc = rf_store_user_list(r->app->db, r->a, r->ws, pg.after_created, pg.after_id, pg.limit,
                                &us, &pg.n, &pg.more, &e);
    rf_api_page_reply(r, rc, e.detail, &pg, us, sizeof(*us), user_item);
}

void rf_api_user_list(struct rf_req *r)
{
    const char *q = r->query(r, "email");
    char email[RF_EMAIL_MAX + 1];
    if (!q) {
        user_page(r);
        return;
    }
    json_t *data = json_array();
    /* An address that cannot be valid cannot match: an empty list, not an error. */
    if (rf_email_normalize(q, strlen(q), email, sizeof(email)) == 0) {
        struct rf_user u;
        struct rf_db_error e;
        int found;
        int rc = rf_store_user_by_email(r->app->db, r->a, r->ws, email, &u, &found, &e);
        if (rc != RF_DB_OK) {
            json_decref(data);
            rf_reply_db_error(r, rc, e.detail);
            return;
        }
        if (found)
            json_array_append_new(data, user_json(&u));
    }
    rf_reply_json(r, 200, json_pack("{s:o, s:n}", "data", data, "cursor"));
}

void rf_api_user_patch(struct rf_req *r)
{
    static const struct rf_field fields[] = {
        {"username", RF_F_STRING_OR_NULL, 0},
        {"name", RF_F_STRING, 0},
    };
    struct rf_user_patch p = {0};
    if (rf_api_if_match(r, &p.if_versions) || rf_input_require(r, fields, RF_NFIELDS(fields)))
        return;
    json_t *jname = json_object_get(r->body, "name");
    json_t *juser = json_object_get(r->body, "username");
    if (rf_api_check_name(r, jname))
        return;
    p.name = jname ? json_string_value(jname) : NULL;
    if (juser) {
        p.set_username = 1;
        if (json_is_string(juser)) {
            const char *s = json_string_value(juser);
            size_t n = json_string_length(juser);
            enum rf_username_check uc =
                strlen(s) != n ? RF_USERNAME_INVALID : rf_username_check(s, n);
            if (uc == RF_USERNAME_INVALID) {
                rf_reply_problem_field(r, RF_P_INVALID_USERNAME, "username",
                                       "A username is 1-%d letters, digits or single hyphens, "
                                       "not starting or ending with a hyphen.",
                                       RF_USERNAME_MAX);
                return;
            }
            if (uc == RF_USERNAME_RESERVED) {
                rf_reply_problem_field(r, RF_P_USERNAME_RESERVED, "username",
                                       "This username is reserved.");
                return;
            }
            p.username = s;
        }
    }

    struct rf_user u;
    struct rf_db_error e;
    int found;
    int rc = rf_store_user_update(r->app->db, r->tx, r->a, r->ws, r->params[0], &p, &u, &found, &e);
    if (rc == RF_DB_UNIQUE && strstr(e.constraint, "username")) {
        rf_reply_problem_field(r, RF_P_USERNAME_TAKEN, "username",
                               "Another user already has this username.");
        return;
    }
    if (rc == RF_DB_OK && found == RF_STORE_STALE) {
        rf_api_precondition_failed(r);
        return;
    }
    if (rf_api_lookup_failed(r, rc, e.detail, found, "No such user."))
        return;
    rf_api_reply_object(r, "user", user_json(&u), u.version);
}

void rf_api_user_delete(struct rf_req *r)
{
    rf_api_delete(r, rf_store_user_delete, "No such user.");
}
