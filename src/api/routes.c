#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/util.h"
#include "store/store.h"

#define V1 (RF_ROUTE_AUTH)
/* Every POST and PATCH under /v1 takes a JSON body and an Idempotency-Key. */
#define V1_JSON (RF_ROUTE_AUTH | RF_ROUTE_JSON | RF_ROUTE_IDEMPOTENT)

const struct rf_route rf_routes[] = {
    {"GET", "/healthz", rf_api_healthz, RF_ROUTE_LOOP, "healthz"},
    {"GET", "/readyz", rf_api_readyz, 0, "readyz"},
    {"GET", "/metrics", rf_api_metrics, RF_ROUTE_LOOP, "metrics"},
    {"GET", "/openapi.json", rf_api_openapi, RF_ROUTE_LOOP, "openapi"},
    {"POST", "/v1/users", rf_api_user_create, V1_JSON, "users.create"},
    {"GET", "/v1/users", rf_api_user_list, V1, "users.list"},
    {"GET", "/v1/users/{id}", rf_api_user_get, V1, "users.get"},
    {"PATCH", "/v1/users/{id}", rf_api_user_patch, V1_JSON, "users.patch"},
    {"DELETE", "/v1/users/{id}", rf_api_user_delete, V1, "users.delete"},
    {"POST", "/v1/events", rf_api_event_create, V1_JSON, "events.create"},
    {"GET", "/v1/events", rf_api_event_list, V1, "events.list"},
    {"GET", "/v1/events/{slug}", rf_api_event_get, V1, "events.get"},
    {"DELETE", "/v1/events/{slug}", rf_api_event_delete, V1, "events.delete"},
    {"POST", "/v1/identities", rf_api_identity_create, V1_JSON, "identities.create"},
    {"GET", "/v1/identities", rf_api_identity_list, V1, "identities.list"},
    {"GET", "/v1/identities/{externalId}", rf_api_identity_get, V1, "identities.get"},
    {"PATCH", "/v1/identities/{externalId}", rf_api_identity_patch, V1_JSON, "identities.patch"},
    {"DELETE", "/v1/identities/{externalId}", rf_api_identity_delete, V1, "identities.delete"},
    /* before /v1/keys/{keyId}: the table is matched in order */
    {"POST", "/v1/keys/verify", rf_api_key_verify, V1_JSON, "keys.verify"},
    {"POST", "/v1/keys", rf_api_key_create, V1_JSON, "keys.create"},
    {"POST", "/v1/keys/{keyId}/credits", rf_api_key_credits, V1_JSON, "keys.credits"},
    {"POST", "/v1/keys/{keyId}/reroll", rf_api_key_reroll, V1_JSON, "keys.reroll"},
    {"GET", "/v1/keys", rf_api_key_list, V1, "keys.list"},
    {"GET", "/v1/keys/{keyId}", rf_api_key_get, V1, "keys.get"},
    {"PATCH", "/v1/keys/{keyId}", rf_api_key_patch, V1_JSON, "keys.patch"},
    {"DELETE", "/v1/keys/{keyId}", rf_api_key_delete, V1, "keys.delete"},
    {"POST", "/v1/resources", rf_api_resource_create, V1_JSON, "resources.create"},
    {"GET", "/v1/resources", rf_api_resource_list, V1, "resources.list"},
    {"GET", "/v1/resources/{id}", rf_api_resource_get, V1, "resources.get"},
    {"DELETE", "/v1/resources/{id}", rf_api_resource_delete, V1, "resources.delete"},
};
const size_t rf_nroutes = sizeof(rf_routes) / sizeof(rf_routes[0]);

/* Root keys resolved recently, by the SHA-256 of the key: every /v1
 * request authenticates, and on PostgreSQL the lookup is a round trip of
 * its own. Only hits are kept, for at most RF_API_AUTH_TTL_MS and never
 * past the key's own expiry: a rotated key is refused everywhere once its
 * overlap ends, since rotate-key makes that overlap at least the TTL. */
#define AUTH_SLOTS 256
#define AUTH_TTL_NS ((uint64_t)RF_API_AUTH_TTL_MS * 1000000u)

static struct {
    char hash[65];
    char ws[64];
    uint64_t until;
} auth_cache[AUTH_SLOTS];
static pthread_mutex_t auth_mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned auth_slot(const char *hash)
{
    return (unsigned)strtoul((char[]){hash[0], hash[1], hash[2], hash[3], 0}, NULL, 16) %
           AUTH_SLOTS;
}

/* Root keys are short; anything long is not one and need not be hashed. */
#define ROOT_KEY_MAX_LEN 128

int rf_api_auth_cached(struct rf_req *r, const char *token)
{
    char hash[65];
    if (strlen(token) > ROOT_KEY_MAX_LEN)
        return 1; /* decided: unknown */
    rf_sha256_hex(token, strlen(token), hash);
    unsigned slot = auth_slot(hash);
    uint64_t now = rf_mono_ns();
    pthread_mutex_lock(&auth_mu);
    if (auth_cache[slot].until > now && strcmp(auth_cache[slot].hash, hash) == 0) {
        r->ws = rf_arena_strdup(r->a, auth_cache[slot].ws);
        r->auth_until = auth_cache[slot].until;
    }
    pthread_mutex_unlock(&auth_mu);
    return r->ws != NULL;
}

void rf_api_authenticate(struct rf_req *r, const char *token)
{
    struct rf_db_error e;
    char hash[65];
    int64_t expires;
    if (rf_api_auth_cached(r, token))
        return;
    rf_sha256_hex(token, strlen(token), hash);
    unsigned slot = auth_slot(hash);
    uint64_t now = rf_mono_ns();
    int rc = rf_store_auth(r->app->db, r->a, token, &r->ws, &expires, &e);
    if (rf_api_db_failed(r, rc, e.detail))
        return;
    uint64_t ttl = AUTH_TTL_NS;
    if (expires) { /* a rotated key: cached no longer than it lives */
        int64_t left_ms = expires - rf_now_ms();
        ttl = left_ms <= 0                         ? 0
              : (uint64_t)left_ms * 1000000u < ttl ? (uint64_t)left_ms * 1000000u
                                                   : ttl;
    }
    r->auth_until = now + ttl;
    if (r->ws && ttl && strlen(r->ws) < sizeof(auth_cache[0].ws)) {
        pthread_mutex_lock(&auth_mu);
        memcpy(auth_cache[slot].hash, hash, sizeof(hash));
        snprintf(auth_cache[slot].ws, sizeof(auth_cache[slot].ws), "%s", r->ws);
        auth_cache[slot].until = now + ttl;
        pthread_mutex_unlock(&auth_mu);
    }
}

void rf_api_healthz(struct rf_req *r)
{
    rf_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void rf_api_readyz(struct rf_req *r)
{
    struct rf_db_error e;
    int rc = rf_store_ping(r->app->db, &e);
    if (rc != RF_DB_OK) {
        rf_reply_db_error(r, RF_DB_UNAVAILABLE, e.detail);
        return;
    }
    rf_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
}
