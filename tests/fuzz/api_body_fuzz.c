/* libFuzzer target for the request bodies of every write endpoint: the
 * real route table, idempotency layer and handlers run against a real
 * SQLite database, as server.c's dispatch() would run them, minus the
 * socket.
 *
 * Input: byte 0 picks the route (bits 0-2: one of the eight POST/PATCH
 * routes), whether an Idempotency-Key is sent (bit 3) and which (bits 4-6:
 * 0-3 one of four keys shared by all inputs, so that a key meets other
 * bodies and routes; 4-7 a key of this input's own, so that its replay is
 * checked) and, for
 * PATCH, whether the target exists (bit 7). The rest is the body.
 *
 * Invariants: a hostile body can make the server say no (4xx), never fail
 * (5xx: a handler bug or an unhandled database error) and never give no
 * answer; every response with a body is one JSON object of the declared
 * type; a replay repeats the stored answer exactly. ASan and UBSan watch
 * the rest, LeakSanitizer the per-request memory. */
#include <jansson.h>
#include <unistd.h>

#include "fuzz.h"

#include "api/api.h"
#include "core/util.h"
#include "store/store.h"

/* A fresh database every so often bounds its growth (and so the cost of
 * each insert); between resets the keys and rows of earlier inputs are
 * there to collide with, as in a server that has been up a while. */
#define RESET_EVERY 20000
#define ARENA_LIMIT (16u * 1024 * 1024) /* as in server.c */

static const struct {
    const char *method, *path; /* PATCH: the path of a live object's id (or a missing one) */
} routes[8] = {
    {"POST", "/v1/users"},      {"PATCH", "/v1/users/"},     {"POST", "/v1/events"},
    {"POST", "/v1/identities"}, {"POST", "/v1/keys/verify"}, {"POST", "/v1/keys"},
    {"PATCH", "/v1/keys/"},     {"POST", "/v1/resources"},
};

static char dir[64], dbfile[128], dburl[160];
static struct rf_app app;
static char ws[64], user_id[64], key_id[64];
static unsigned long execs;
static int trace; /* RF_FUZZ_TRACE=1: one line per request, to see what a corpus reaches */

static const char *no_query(const struct rf_req *r, const char *name)
{
    (void)r;
    (void)name;
    return NULL;
}

struct answer {
    int status;
    char *body; /* malloc'd copy */
    size_t len;
    int replayed;
};

/* One request, as run_job() in src/http/server.c runs it. */
static void run(const char *method, const char *path, const char *idem_key, const char *body,
                size_t len, struct answer *out)
{
    struct rf_arena a;
    struct rf_req r;
    memset(&r, 0, sizeof(r));
    rf_arena_init(&a, ARENA_LIMIT);
    r.a = &a;
    r.app = &app;
    r.method = method;
    r.path = path;
    r.request_id = "req_fuzz";
    r.query = no_query;
    r.ws = ws;
    int known;
    char allow[64];
    const struct rf_route *rt =
        rf_route_match(rf_routes, rf_nroutes, method, path, &r, &known, allow, sizeof(allow));
    CHECK(rt && (rt->flags & RF_ROUTE_JSON) && (rt->flags & RF_ROUTE_IDEMPOTENT));

    /* As begin_request(): the body is parsed before a key is reserved, so
     * invalid JSON never takes (or finds) a reservation. */
    char err[256];
    r.body = rf_json_parse_object(body, len, err, sizeof(err));
    if (!r.body) {
        CHECK(err[0] != '\0');
        rf_reply_problem(&r, RF_P_INVALID_JSON, "Invalid JSON: %s.", err);
    } else if (!rf_api_idem_begin(&r, idem_key, body, len)) {
        rf_handler stage = rt->fn;
        for (int attempt = 0;; attempt++) {
            /* A deferred stage runs at once here: the wait is the server's. */
            while (!r.resp.status) {
                r.then = NULL;
                stage(&r);
                if (!r.then)
                    break;
                stage = r.then;
            }
            if (!r.resp.status) {
                fprintf(stderr, "handler %s gave no response\n", rt->name);
                abort();
            }
            if (!rf_api_idem_finish(&r, attempt))
                break;
            memset(&r.resp, 0, sizeof(r.resp));
        }
    }
    CHECK(!r.tx); /* the idempotency layer ended its transaction */

    struct rf_resp *rs = &r.resp;
    if (rs->status >= 500 || rs->status < 200 || (rs->status >= 300 && rs->status < 400)) {
        fprintf(stderr, "%s %s answered %d: %.*s\n", method, path, rs->status, (int)rs->body_len,
                rs->body ? rs->body : "");
        abort();
    }
    if (rs->status == 204) {
        CHECK(rs->body_len == 0);
    } else {
        CHECK(rs->body && rs->body_len > 0 && rs->ctype);
        CHECK(!strcmp(rs->ctype,
                      rs->status >= 400 ? "application/problem+json" : "application/json"));
        json_error_t je;
        json_t *j = json_loadb(rs->body, rs->body_len, JSON_REJECT_DUPLICATES, &je);
        if (!j || !json_is_object(j)) {
            fprintf(stderr, "not a JSON object (%s): %.*s\n", je.text, (int)rs->body_len, rs->body);
            abort();
        }
        if (rs->status >= 400)
            CHECK(json_integer_value(json_object_get(j, "status")) == rs->status);
        json_decref(j);
    }
    if (trace)
        fprintf(stderr, "%s %s%s%s -> %d %.*s\n", method, path, idem_key ? " key=" : "",
                idem_key ? idem_key : "", rs->status,
                (int)(rs->body_len < 160 ? rs->body_len : 160), rs->body ? rs->body : "");
    out->status = rs->status;
    out->len = rs->body_len;
    out->body = malloc(rs->body_len + 1);
    CHECK(out->body);
    memcpy(out->body, rs->body ? rs->body : "", rs->body_len);
    out->body[rs->body_len] = '\0';
    out->replayed = rs->replayed;

    json_decref(r.body);
    rf_arena_free(&a);
}

/* The id in {"user":{"id":…}} (obj "user") or at the top level (obj NULL). */
static void id_of(const struct answer *ans, const char *obj, const char *member, char *out,
                  size_t outlen)
{
    json_t *j = json_loadb(ans->body, ans->len, 0, NULL);
    const char *id = json_string_value(json_object_get(obj ? json_object_get(j, obj) : j, member));
    CHECK(id && strlen(id) < outlen);
    snprintf(out, outlen, "%s", id);
    json_decref(j);
}

static void db_remove(void)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[200];
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", dbfile, sfx[i]);
        unlink(p);
    }
}

static void db_close(void)
{
    rf_db_close(app.db);
    app.db = NULL;
    db_remove();
}

static void cleanup(void)
{
    db_close();
    rmdir(dir);
}

/* A migrated database with a workspace, a user and a key to PATCH. */
static void db_fresh(void)
{
    struct rf_db_error e;
    int applied, exists;
    char root[RF_ROOT_KEY_MAX];
    if (app.db)
        db_close();
    CHECK(rf_db_open(dburl, 1, &app.db, &e) == RF_DB_OK);
    CHECK(rf_store_migrate(app.db, &applied, &e) == RF_DB_OK);
    CHECK(rf_store_workspace_create(app.db, "fuzz", ws, root, &exists, &e) == RF_DB_OK);
    struct answer u, k;
    static const char ub[] = "{\"email\":\"seed@example.com\",\"name\":\"Seed\"}";
    static const char kb[] = "{\"name\":\"seed\"}";
    run("POST", "/v1/users", NULL, ub, sizeof(ub) - 1, &u);
    run("POST", "/v1/keys", NULL, kb, sizeof(kb) - 1, &k);
    CHECK(u.status == 201 && k.status == 201);
    id_of(&u, "user", "id", user_id, sizeof(user_id));
    id_of(&k, NULL, "keyId", key_id, sizeof(key_id));
    free(u.body);
    free(k.body);
}

static void init(void)
{
    CHECK(rf_util_init() == 0);
    rf_log_min = RF_LOG_ERROR; /* 5xx are logged at ERROR: keep those */
    trace = getenv("RF_FUZZ_TRACE") != NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/rf-fuzz-XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    CHECK(mkdtemp(dir));
    snprintf(dbfile, sizeof(dbfile), "%s/api.db", dir);
    snprintf(dburl, sizeof(dburl), "sqlite:%s", dbfile);
    app.provision_delay_ms = 0;
    app.fingerprint_window_s = 10;
    app.idempotency_lease_s = 60;
    app.idempotency_ttl_s = 86400;
    app.resource_quota = 1000;
    atexit(cleanup);
    db_fresh();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    if (!app.db)
        init();
    if (++execs % RESET_EVERY == 0)
        db_fresh();

    unsigned sel = data[0];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char path[160], key[32];
    const char *target = (sel & 0x80) ? "nope_0000" : (sel & 7) == 1 ? user_id : key_id;
    int patch = !strcmp(routes[sel & 7].method, "PATCH");
    snprintf(path, sizeof(path), "%s%s", routes[sel & 7].path, patch ? target : "");
    if (((sel >> 4) & 7) < 4) {
        snprintf(key, sizeof(key), "k%u", (sel >> 4) & 3);
    } else {
        uint64_t h = 1469598103934665603u; /* FNV-1a of the whole input */
        for (size_t i = 0; i < size; i++)
            h = (h ^ data[i]) * 1099511628211u;
        snprintf(key, sizeof(key), "own-%016llx", (unsigned long long)h);
    }
    const char *idem = (sel & 8) ? key : NULL;

    struct answer a = {0}, b = {0};
    run(routes[sel & 7].method, path, idem, body, len, &a);
    if (idem && a.status != 409 && a.status != 429) {
        /* The same request again: a stored answer comes back unchanged
         * (unless the key was already taken by another request). Every 2xx
         * is stored; a 4xx only once the handler began writing, so one
         * refused from the request alone (bad JSON, a field) is not: the
         * same request runs again and is refused again (docs/API.md). */
        run(routes[sel & 7].method, path, idem, body, len, &b);
        if (!strstr(a.body, "idempotency_key_reused")) {
            if (a.status < 300 || a.replayed)
                CHECK(b.replayed);
            static const char *const refused[] = {"\"invalid_json\"", "\"unknown_field\"",
                                                  "\"missing_field\"", "\"invalid_field\""};
            for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
                if (strstr(a.body, refused[i]))
                    CHECK(!b.replayed);
            CHECK(b.status == a.status);
            if (!b.replayed) {
                /* ran again: nothing to compare byte for byte */
            } else if ((sel & 7) == 5 && a.status == 201 && !a.replayed) {
                /* docs/API.md: a replayed key creation has "key": null, the
                 * plaintext is never stored; all else is the same. */
                json_t *ja = json_loadb(a.body, a.len, 0, NULL);
                json_t *jb = json_loadb(b.body, b.len, 0, NULL);
                CHECK(ja && jb && json_is_null(json_object_get(jb, "key")));
                json_object_set_new(ja, "key", json_null());
                CHECK(json_equal(ja, jb));
                json_decref(ja);
                json_decref(jb);
            } else {
                CHECK(b.len == a.len && memcmp(a.body, b.body, a.len) == 0);
            }
        }
        free(b.body);
    }
    free(a.body);
    return 0;
}
