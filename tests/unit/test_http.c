#include <stdio.h>
#include <stdlib.h>

#include "api/api.h"
#include "http/http.h"
#include "unit.h"

void test_json_parse_object(void);
void test_json_parse_errors(void);
void test_input_check(void);
void test_route_match(void);
void test_if_match_parse(void);

/* RFC 9110 §13.1.1 If-Match, as the form RF_IF_VERSION_SQL takes: ",v,"
 * for the strong tags that can be ours, NULL for "*". */
void test_if_match_parse(void)
{
    static const struct {
        const char *h, *want; /* want NULL with rc 0: "*" */
        int rc;
    } cases[] = {
        {"\"3\"", ",3,", 0},
        {" \"3\" ", ",3,", 0},
        {"\"3\", \"17\"", ",3,17,", 0},
        {"\"3\",,\t\"4\"", ",3,4,", 0}, /* empty list elements are allowed */
        {"\"3\",", ",3,", 0},
        {"*", NULL, 0},
        {" * ", NULL, 0},
        {"W/\"3\"", ",", 0}, /* weak: never matches */
        {"\"abc\"", ",", 0}, /* not ours: never matches */
        {"\"03\"", ",", 0},  /* not ours either: byte-wise unequal to "3" */
        {"\"1,2\"", ",", 0}, /* an etagc comma must not split a version */
        {"\"%\"", ",", 0},   /* nor a LIKE wildcard match anything */
        {"\"\"", ",", 0},    /* the empty tag is valid, and not ours */
        {"W/\"3\", \"4\"", ",4,", 0},
        {"3", NULL, -1},
        {"\"3", NULL, -1},
        {"\"3\" \"4\"", NULL, -1},
        {"*, \"3\"", NULL, -1},
        {"\"3\", *", NULL, -1},
        {"", NULL, -1},
        {",", NULL, -1},
        {"W/3", NULL, -1},
        {"w/\"3\"", NULL, -1},
        {"\"a b\"", NULL, -1},
        {"\"\x7f\"", NULL, -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rf_arena a;
        const char *v = "unset";
        rf_arena_init(&a, 0);
        int rc = rf_api_if_match_parse(&a, cases[i].h, &v);
        int ok = rc == cases[i].rc &&
                 (rc != 0 || (cases[i].want ? v && !strcmp(v, cases[i].want) : v == NULL));
        if (!ok)
            unit_fail(__FILE__, __LINE__, "If-Match '%s': rc %d, versions %s", cases[i].h, rc,
                      rc == 0 && v ? v : "(null)");
        rf_arena_free(&a);
        if (!ok)
            return;
    }
}

void test_json_parse_object(void)
{
    char err[256];
    json_t *j = rf_json_parse_object("{\"a\":1}", 7, err, sizeof(err));
    CHECK(j != NULL);
    json_decref(j);
    j = rf_json_parse_object(" {\"a\":[1,{\"b\":null}]}\n", 22, err, sizeof(err));
    CHECK(j != NULL);
    json_decref(j);
}

void test_json_parse_errors(void)
{
    static const struct {
        const char *in;
        const char *want; /* substring of the error */
    } cases[] = {
        {"", "empty"},
        {"[1,2]", "object"},
        {"\"s\"", "object"},
        {"null", "object"},
        {"{\"a\":1", "byte"},
        {"{\"a\":1}}", "byte"},
        {"{\"a\":1,\"a\":2}", "duplicate"},
        {"{\"a\":\"\xff\"}", "byte"},
        {"{\"a\":\"\\u0000\"}", "byte"},
        {"{'a':1}", "byte"},
        {"{\"a\":NaN}", "byte"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = rf_json_parse_object(cases[i].in, strlen(cases[i].in), err, sizeof(err));
        if (j || !strstr(err, cases[i].want)) {
            unit_fail(__FILE__, __LINE__, "case %zu '%s': got %s / '%s'", i, cases[i].in,
                      j ? "object" : "error", err);
            json_decref(j);
            return;
        }
    }
    /* Depth: 32 levels pass, 33 fail. */
    char deep[200];
    size_t n = 0;
    for (int d = 0; d < 33; d++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, d == 0 ? "{\"a\":" : "[");
    deep[n++] = '1';
    for (int d = 32; d >= 0; d--)
        deep[n++] = d == 0 ? '}' : ']';
    json_t *j = rf_json_parse_object(deep, n, err, sizeof(err));
    CHECK(j == NULL);
    CHECK(strstr(err, "nesting") != NULL);
    j = rf_json_parse_object(deep + 1, n - 2, err, sizeof(err)); /* not an object */
    CHECK(j == NULL);
}

void test_input_check(void)
{
    static const struct rf_field f[] = {
        {"email", RF_F_STRING, 1},
        {"name", RF_F_STRING, 0},
        {"username", RF_F_STRING_OR_NULL, 0},
        {"n", RF_F_INT, 0},
    };
    const char *bad;
    char err[64];
    json_t *j;

    static const char ok[] = "{\"email\":\"a@b\",\"username\":null}";
    j = rf_json_parse_object(ok, strlen(ok), err, sizeof(err));
    CHECK_INT(rf_input_check(j, f, 4, &bad), RF_INPUT_OK);
    json_decref(j);

    j = json_pack("{s:s, s:i}", "email", "a@b", "extra", 1);
    CHECK_INT(rf_input_check(j, f, 4, &bad), RF_INPUT_UNKNOWN);
    CHECK_STR(bad, "extra");
    json_decref(j);

    j = json_pack("{s:s}", "name", "x");
    CHECK_INT(rf_input_check(j, f, 4, &bad), RF_INPUT_MISSING);
    CHECK_STR(bad, "email");
    json_decref(j);

    j = json_pack("{s:i}", "email", 3);
    CHECK_INT(rf_input_check(j, f, 4, &bad), RF_INPUT_TYPE);
    CHECK_STR(bad, "email");
    json_decref(j);

    j = json_pack("{s:s, s:n}", "email", "a@b", "name");
    CHECK_INT(rf_input_check(j, f, 4, &bad), RF_INPUT_TYPE);
    CHECK_STR(bad, "name");
    json_decref(j);

    j = json_pack("{s:s, s:f}", "email", "a@b", "n", 1.5);
    CHECK_INT(rf_input_check(j, f, 4, &bad), RF_INPUT_TYPE);
    json_decref(j);
}

static void h_a(struct rf_req *r)
{
    (void)r;
}

void test_route_match(void)
{
    static const struct rf_route routes[] = {
        {"GET", "/healthz", h_a, 0, "h"},         {"POST", "/v1/users", h_a, 0, "c"},
        {"GET", "/v1/users/{id}", h_a, 0, "g"},   {"PATCH", "/v1/users/{id}", h_a, 0, "p"},
        {"GET", "/v1/a/{x}/b/{y}", h_a, 0, "ab"},
    };
    struct rf_arena a;
    struct rf_req r = {0};
    int known;
    char allow[64];
    rf_arena_init(&a, 0);
    r.a = &a;
    const struct rf_route *m;

    m = rf_route_match(routes, 5, "GET", "/v1/users/usr_1", &r, &known, allow, sizeof(allow));
    CHECK(m == &routes[2]);
    CHECK_STR(r.params[0], "usr_1");
    m = rf_route_match(routes, 5, "PATCH", "/v1/users/u", &r, &known, allow, sizeof(allow));
    CHECK(m == &routes[3]);
    m = rf_route_match(routes, 5, "GET", "/v1/a/1/b/2", &r, &known, allow, sizeof(allow));
    CHECK(m == &routes[4]);
    CHECK_STR(r.params[0], "1");
    CHECK_STR(r.params[1], "2");
    CHECK_INT(r.nparams, 2);

    m = rf_route_match(routes, 5, "DELETE", "/v1/users/u", &r, &known, allow, sizeof(allow));
    CHECK(m == NULL);
    CHECK_INT(known, 1);
    CHECK_STR(allow, "GET, PATCH");

    static const char *const misses[] = {
        "/v1/users/", "/v1/users/a/b", "/v1/user", "/healthz/", "/", "", "/v1/a//b/2", "/V1/users"};
    for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++) {
        m = rf_route_match(routes, 5, "GET", misses[i], &r, &known, allow, sizeof(allow));
        if (m || known) {
            unit_fail(__FILE__, __LINE__, "'%s' matched", misses[i]);
            break;
        }
    }
    rf_arena_free(&a);
}
