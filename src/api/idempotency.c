/* The Idempotency-Key layer (docs/API.md, Idempotency), applied by the route table to
 * every POST and PATCH under /v1 (RF_ROUTE_IDEMPOTENT).
 *
 *   begin:  parse the key; take the reservation with one unique insert
 *           (or answer: replay, 409 in progress, 422 reused); open the
 *           request's transaction (r->tx), which the handler's store
 *           writes join instead of committing.
 *   finish: a storable response is written into the reservation row in
 *           the handler's own transaction and committed with it: after a
 *           crash at any point a retry either replays or runs a handler
 *           whose earlier run left nothing. Any other response rolls the
 *           handler's writes back and releases the reservation, so an
 *           immediate retry runs anew.
 *
 * Storable (Stripe: "results are only saved if an API endpoint started
 * executing"): every 2xx, and a 4xx other than 409/429 once the handler
 * has begun its database transaction (its first write joined r->tx). A
 * 4xx before that — a field the handler refused, 428 — was decided from
 * the request alone, ran nothing, and is not stored: the client's
 * corrected retry with the same key runs. (415, 400 invalid_json and 400
 * for a bad or repeated key are answered before a reservation is taken.) */
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/hooks.h"
#include "core/metrics.h"
#include "core/util.h"
#include "store/store.h"

#define IDEM_KEY_MAX 255

/* Bare (Stripe) or an RFC 8941 sf-string (the IETF draft): 1-255 printable
 * ASCII characters once unquoted. Writes the key into out. */
int rf_api_idem_parse_key(const char *h, char *out, size_t outlen)
{
    size_t n = 0, len = strlen(h);
    if (len >= 2 && h[0] == '"') {
        if (h[len - 1] != '"')
            return -1;
        for (size_t i = 1; i < len - 1; i++) {
            char c = h[i];
            if (c == '\\') {
                if (i + 1 >= len - 1 || (h[i + 1] != '"' && h[i + 1] != '\\'))
                    return -1;
                c = h[++i];
            } else if (c == '"' || c < 0x20 || c > 0x7e) {
                return -1;
            }
            if (n + 1 >= outlen)
                return -1;
            out[n++] = c;
        }
    } else {
        for (size_t i = 0; i < len; i++) {
            if (h[i] < 0x20 || h[i] > 0x7e || h[i] == '"' || n + 1 >= outlen)
                return -1;
            out[n++] = h[i];
        }
    }
    out[n] = '\0';
    return n >= 1 && n <= IDEM_KEY_MAX ? 0 : -1;
}

int rf_api_idem_begin(struct rf_req *r, const char *header, const char *body, size_t len)
{
    struct rf_app *app = r->app;
    char key[IDEM_KEY_MAX + 2], fp[65];
    const char *kind = "key";
    int unkeyed_create = !strcmp(r->method, "POST") && !strcmp(r->path, "/v1/resources");
    if (!header && !(unkeyed_create && app->fingerprint_window_s > 0))
        return 0; /* nothing to reserve: most requests, no hash */

    /* SHA-256 over method, path and body bytes, fed in pieces. */
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)r->method, strlen(r->method) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)r->path, strlen(r->path) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)body, len);
    /* A precondition is part of the request: a retry with another If-Match
     * is another request (422 reused), never the replay of a 412 or 200
     * decided under the first one. Absent, it adds nothing, so fingerprints
     * of requests without it are as before. */
    if (r->if_match) {
        crypto_hash_sha256_update(&st, (const unsigned char *)"\0If-Match\0", 10);
        crypto_hash_sha256_update(&st, (const unsigned char *)r->if_match, strlen(r->if_match));
    }
    unsigned char h[32];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(fp, sizeof(fp), h, sizeof(h));

    if (header) {
        if (rf_api_idem_parse_key(header, key, sizeof(key)) != 0) {
            rf_reply_problem(r, RF_P_INVALID_IDEMPOTENCY_KEY,
                             "Idempotency-Key is 1-%d printable ASCII characters, bare or as a "
                             "quoted string.",
                             IDEM_KEY_MAX);
            return 1;
        }
    } else {
        /* No key: the body itself (within the workspace) is the key. */
        kind = "fp";
        memcpy(key, fp, sizeof(fp));
    }

    struct rf_idem *k = rf_arena_alloc(r->a, sizeof(*k));
    if (!k) {
        rf_reply_db_error(r, RF_DB_ERROR, "out of memory");
        return 1;
    }
    memset(k, 0, sizeof(*k));
    k->ws = r->ws;
    k->kind = kind;
    k->key = rf_arena_strdup(r->a, key);
    k->fingerprint = rf_arena_strdup(r->a, fp);
    if (!k->key || !k->fingerprint) {
        rf_reply_db_error(r, RF_DB_ERROR, "out of memory");
        return 1;
    }
    enum rf_idem_outcome out;
    struct rf_db_error e;
    int rc = rf_store_idem_reserve(app->db, r->a, k, rf_now_ms(),
                                   (int64_t)app->idempotency_lease_s * 1000, &out, &e);
    if (rf_api_db_failed(r, rc, e.detail))
        return 1;
    static const enum rf_metrics_idem counted[] = {
        [RF_IDEM_RESERVED] = RF_METRICS_IDEM_RESERVED,
        [RF_IDEM_REPLAY] = RF_METRICS_IDEM_REPLAYED,
        [RF_IDEM_IN_PROGRESS] = RF_METRICS_IDEM_IN_PROGRESS,
        [RF_IDEM_MISMATCH] = RF_METRICS_IDEM_REUSED,
        [RF_IDEM_TAKEN_OVER] = RF_METRICS_IDEM_TAKEN_OVER,
    };
    rf_metrics_idem(counted[out]);
    switch (out) {
    case RF_IDEM_REPLAY:
        r->resp.status = k->status;
        r->resp.ctype = k->ctype;
        r->resp.body = k->body;
        r->resp.body_len = k->body ? strlen(k->body) : 0;
        r->resp.replayed = 1;
        r->resp.etag = k->etag;
        return 1;
    case RF_IDEM_IN_PROGRESS:
        rf_reply_problem(r, RF_P_IDEMPOTENCY_KEY_IN_PROGRESS,
                         "A request with this %s is still running; retry shortly.",
                         header ? "Idempotency-Key" : "body");
        r->resp.retry_after = 1;
        return 1;
    case RF_IDEM_MISMATCH:
        rf_reply_problem(r, RF_P_IDEMPOTENCY_KEY_REUSED,
                         "This Idempotency-Key was used with a different request.");
        return 1;
    case RF_IDEM_TAKEN_OVER:
        rf_log(RF_LOG_WARN, "request %s: took over an expired idempotency lease", r->request_id);
        /* fallthrough */
    case RF_IDEM_RESERVED:
        break;
    }
    struct rf_tx *tx = rf_arena_alloc(r->a, sizeof(*tx));
    if (!tx) {
        /* The reservation stands until its lease ends: a retry gets 409. */
        rf_reply_db_error(r, RF_DB_ERROR, "out of memory");
        return 1;
    }
    rf_tx_open(tx, app->db);
    r->idem = k;
    r->tx = tx;
    return 0;
}

/* Whole-handler runs after a RETRY at COMMIT. Each run's statements have
 * rf_tx_run's own attempts and time budget; this bounds how many runs. */
#define IDEM_MAX_RUNS 12

/* The body kept for replays. A new API key's plaintext exists only in the
 * response that made it (docs/SECURITY.md §4.2: only its SHA-256 is stored), so the
 * stored copy of a key create or reroll has "key": null; a replay still
 * tells the client which key was made. */
static const char *stored_body(struct rf_req *r)
{
    if (!r->resp.secret_key || !r->resp.body)
        return r->resp.body;
    json_t *j = json_loadb(r->resp.body, r->resp.body_len, 0, NULL);
    char *s = NULL;
    if (j && json_object_set_new(j, "key", json_null()) == 0)
        s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    const char *out = s ? rf_arena_strdup(r->a, s) : NULL;
    free(s);
    return out;
}

int rf_api_idem_finish(struct rf_req *r, int attempt)
{
    struct rf_idem *k = r->idem;
    struct rf_db_error e;
    if (!k)
        return 0;
    int st = r->resp.status;
    int began = r->tx && r->tx->c;
    int storable =
        (st >= 200 && st < 300) || (st >= 400 && st < 500 && st != 409 && st != 429 && began);
    if (storable) {
        int64_t keep_s =
            strcmp(k->kind, "fp") == 0 ? r->app->fingerprint_window_s : r->app->idempotency_ttl_s;
        const char *body = stored_body(r);
        int rc;
        if (r->resp.body && !body) {
            rf_tx_end(r->tx, NULL, NULL, 0, &e); /* rolls the handler's writes back */
            rc = rf_db_fail(&e, RF_DB_ERROR, "out of memory storing the response");
        } else {
            struct rf_idem_done d = {k,    st,           r->resp.ctype,
                                     body, r->resp.etag, rf_now_ms() + keep_s * 1000};
            rc = rf_tx_end(r->tx, rf_store_idem_complete_tx, &d, 1, &e);
        }
        if (rc == RF_DB_OK) {
            rf_metrics_idem(RF_METRICS_IDEM_COMPLETED);
            r->idem = NULL;
            r->tx = NULL;
            /* Test builds: die after the commit, before the response is
             * sent; the retry must replay what was stored. */
            if (rf_fault("idem.crash_after_commit"))
                raise(SIGKILL);
            return 0;
        }
        if (rc == RF_DB_RETRY && attempt + 1 < IDEM_MAX_RUNS) {
            /* A serialization failure or deadlock at COMMIT: everything was
             * rolled back and the reservation is still ours, so the whole
             * handler runs again, as rf_tx_run would run a transaction. */
            rf_metrics_db_retry(e.retry);
            rf_tx_backoff(attempt);
            rf_tx_open(r->tx, r->app->db);
            return 1;
        }
        r->idem = NULL;
        r->tx = NULL;
        if (rc == RF_DB_UNIQUE) {
            /* Our lease ran out and another request took the key over: our
             * writes were rolled back, the other run is the one that counts. */
            rf_reply_problem(r, RF_P_IDEMPOTENCY_KEY_IN_PROGRESS,
                             "This request outlived its idempotency lease; retry shortly.");
            r->resp.retry_after = 1;
            return 0;
        }
        rf_reply_db_error(r, rc, e.detail);
    } else {
        r->idem = NULL;
        rf_tx_end(r->tx, NULL, NULL, 0, &e);
        r->tx = NULL;
    }
    /* 5xx, 409, 429, a 4xx before any write, or a failed completion: free
     * the key for a retry. */
    if (rf_store_idem_release(r->app->db, k, &e) == RF_DB_OK)
        rf_metrics_idem(RF_METRICS_IDEM_RELEASED);
    else
        rf_log(RF_LOG_WARN, "request %s: could not release idempotency key: %s", r->request_id,
               e.detail);
    return 0;
}
