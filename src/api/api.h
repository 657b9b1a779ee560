/* The API: handlers that parse and validate JSON, make one store call and
 * render the result. The route table here is the single list of endpoints. */
#ifndef RF_API_H
#define RF_API_H

#include "db/db.h"
#include "http/http.h"

struct rf_app {
    struct rf_db *db;
    int provision_delay_ms;   /* simulated backend call before a resource commits */
    int fingerprint_window_s; /* unkeyed POST /v1/resources dedup window; 0 = off */
    int idempotency_lease_s;  /* in-flight reservation lease */
    int idempotency_ttl_s;    /* how long finished keys are replayed */
    long long resource_quota; /* per workspace; 0 = unlimited */
    int require_if_match;     /* a PATCH without If-Match is 428 */
};

extern const struct rf_route rf_routes[];
extern const size_t rf_nroutes;

/* One page of a list: where it starts and how long it may be (from the
 * query), then how many items the store found and whether more follow. */
struct rf_api_page {
    int limit;
    const char *after_created, *after_id; /* NULL: from the start */
    int n, more;
};
/* List pagination: reads ?limit= (1-100, default 20) and ?cursor= into pg;
 * replies 422 and returns -1 when either is bad. */
int rf_api_page_params(struct rf_req *r, struct rf_api_page *pg);
/* The end of every list handler: the store's error (rc, detail), or 200
 * {"data": [...], "cursor": ...} with pg->n items (size bytes apart, each
 * rendered by item_json, whose object has "id" and "createdAt") and, when
 * more follow, the cursor after the last one (else null). */
void rf_api_page_reply(struct rf_req *r, int rc, const char *detail, const struct rf_api_page *pg,
                       const void *items, size_t size, json_t *(*item_json)(const void *item));
/* The opaque cursor for the item after which the next page starts. */
const char *rf_api_cursor(struct rf_arena *a, const char *created, const char *id);

/* 200 {"<name>": obj} with version as the ETag: what a get or a patch of
 * one object answers. Takes obj. */
void rf_api_reply_object(struct rf_req *r, const char *name, json_t *obj, int64_t version);
/* A DELETE of the object the path names, by a store delete that commits on
 * its own: 204, 404 with not_found as detail, or the database's error. */
typedef int (*rf_api_delete_fn)(struct rf_db *db, const char *ws, const char *id, int *found,
                                struct rf_db_error *e);
void rf_api_delete(struct rf_req *r, rf_api_delete_fn del, const char *not_found);

/* Sets the response's ETag: the object's version as a strong entity tag,
 * "<version>" (docs/API.md). */
void rf_api_etag(struct rf_req *r, int64_t version);
/* Reads If-Match for a conditional write (RFC 9110 §13.1.1) into
 * *versions, the form RF_IF_VERSION_SQL takes (store.h): NULL when absent
 * or "*" (any existing object), else ",v1,v2," of the strong tags that can
 * be ours (weak tags never match If-Match; tags of another form match no
 * version: ","). Replies 400 invalid_if_match for a value that is not an
 * entity-tag list, 428 precondition_required when it is absent and the
 * server requires it, and returns -1 then. */
int rf_api_if_match(struct rf_req *r, const char **versions);
/* The parser behind it: 0 and *versions (arena; NULL for "*"), or -1 when
 * h is malformed. Public for tests/unit. */
int rf_api_if_match_parse(struct rf_arena *a, const char *h, const char **versions);
/* The answer to a conditional write the store reported RF_STORE_STALE. */
void rf_api_precondition_failed(struct rf_req *r);

/* Validates an optional "name" member (1-200 bytes, no control
 * characters); replies 422 invalid_name and returns -1 if bad. */
int rf_api_check_name(struct rf_req *r, json_t *v);
/* Replies with the database's error and returns 1 when rc is one; 0 for
 * RF_DB_OK. */
int rf_api_db_failed(struct rf_req *r, int rc, const char *detail);
/* The common end of a lookup: replies with the database error or 404
 * (not_found as detail) and returns 1; 0 when the object was found. */
int rf_api_lookup_failed(struct rf_req *r, int rc, const char *detail, int found,
                         const char *not_found);

/* Keys' shared pieces (api/keyops.c). "ratelimits": an array of
 * {"name", "limit", "duration"}; replies 422 and returns -1 when bad. */
struct rf_ratelimits;
struct rf_key_input;
int rf_api_ratelimits_parse(struct rf_req *r, json_t *v, struct rf_ratelimits *out);
json_t *rf_api_ratelimits_json(const struct rf_ratelimits *rl);
/* A new API key: the plaintext (shown once), its SHA-256 (stored) and
 * its first characters (shown in lists). Replies 500 and returns -1 when
 * randomness failed. */
#define RF_API_KEY_MAX 128
#define RF_API_KEY_START 8
int rf_api_key_mint(struct rf_req *r, char key[RF_API_KEY_MAX], char hash[65],
                    char start[RF_API_KEY_START + 1]);
/* The common end of a write to one key: the database's error, 404, or 409
 * key_rerolled (why as detail) when the key is an alias of its successor.
 * Returns 1 when it answered, 0 for a key the write changed. */
int rf_api_key_write_failed(struct rf_req *r, int rc, const char *detail, int found, int rerolled,
                            const char *why);
/* "refill": {"interval", "amount", "refillDay"?} or null into in. */
int rf_api_refill_parse(struct rf_req *r, json_t *v, struct rf_key_input *in);

/* The idempotency layer, for rf_server_opts (api/idempotency.c). */
int rf_api_idem_begin(struct rf_req *r, const char *header, const char *body, size_t len);
int rf_api_idem_finish(struct rf_req *r, int attempt);
/* The Idempotency-Key header parser: bare or an RFC 8941 sf-string, 1-255
 * printable ASCII characters once unquoted, written into out. Returns 0, or
 * -1 when invalid. Public for tests/fuzz/idem_key_fuzz.c. */
int rf_api_idem_parse_key(const char *h, char *out, size_t outlen);

/* How long a server trusts a root key it has looked up before asking the
 * database again: the lag of a revocation, which `workspace rotate-key`
 * waits out. */
#define RF_API_AUTH_TTL_MS 1000

/* For rf_server_opts.authenticate (may query the database) and
 * .auth_cached (a cache lookup only: 1 when decided). */
void rf_api_authenticate(struct rf_req *r, const char *token);
int rf_api_auth_cached(struct rf_req *r, const char *token);

/* Handlers, one per route, in src/api. */
void rf_api_healthz(struct rf_req *r);
void rf_api_readyz(struct rf_req *r);
void rf_api_metrics(struct rf_req *r);
void rf_api_openapi(struct rf_req *r);
void rf_api_user_create(struct rf_req *r);
void rf_api_user_get(struct rf_req *r);
void rf_api_user_list(struct rf_req *r);
void rf_api_user_patch(struct rf_req *r);
void rf_api_user_delete(struct rf_req *r);
void rf_api_event_create(struct rf_req *r);
void rf_api_event_get(struct rf_req *r);
void rf_api_event_list(struct rf_req *r);
void rf_api_event_delete(struct rf_req *r);
void rf_api_identity_create(struct rf_req *r);
void rf_api_identity_get(struct rf_req *r);
void rf_api_identity_list(struct rf_req *r);
void rf_api_identity_patch(struct rf_req *r);
void rf_api_identity_delete(struct rf_req *r);
void rf_api_key_create(struct rf_req *r);
void rf_api_key_get(struct rf_req *r);
void rf_api_key_list(struct rf_req *r);
void rf_api_key_patch(struct rf_req *r);
void rf_api_key_verify(struct rf_req *r);
void rf_api_key_delete(struct rf_req *r);
void rf_api_key_credits(struct rf_req *r);
void rf_api_key_reroll(struct rf_req *r);
void rf_api_resource_create(struct rf_req *r);
void rf_api_resource_get(struct rf_req *r);
void rf_api_resource_list(struct rf_req *r);
void rf_api_resource_delete(struct rf_req *r);

#endif
