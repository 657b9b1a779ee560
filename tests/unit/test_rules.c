#include "core/arena.h"
#include "core/rules.h"
#include "core/util.h"
#include "unit.h"

void test_email_normalize(void);
void test_email_invalid(void);
void test_username_rules(void);
void test_name_rules(void);
void test_base58_and_ids(void);
void test_arena_limit(void);
void test_utf8_printable(void);
void test_time_parse(void);

static const char *norm(const char *in)
{
    static char out[RF_EMAIL_MAX + 1];
    return rf_email_normalize(in, strlen(in), out, sizeof(out)) == 0 ? out : NULL;
}

void test_email_normalize(void)
{
    CHECK_STR(norm("Ann@Example.COM"), "ann@example.com");
    CHECK_STR(norm("  ann@example.com\t\n"), "ann@example.com");
    CHECK_STR(norm("a@b"), "a@b");
    CHECK_STR(norm("first.last+tag@sub.example.org"), "first.last+tag@sub.example.org");
    /* Non-ASCII bytes pass through untouched: only ASCII is case-folded. */
    CHECK_STR(norm("J\xc3\xb6rg@Example.de"), "j\xc3\xb6rg@example.de");
}

void test_email_invalid(void)
{
    static const char *bad[] = {
        "",
        "   ",
        "noat",
        "@example.com",
        "ann@",
        "a@b@c",
        "an n@example.com",
        "ann@exa\tmple.com",
        "ann@example.com\x01",
        "ann@\x7f",
        "@",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (norm(bad[i])) {
            unit_fail(__FILE__, __LINE__, "accepted bad email #%zu '%s'", i, bad[i]);
            return;
        }
    }
    char big[300];
    memset(big, 'a', sizeof(big));
    memcpy(big + 250, "@b.co", 6); /* 255 bytes */
    CHECK(norm(big) == NULL);
    big[249] = '\0';
    memcpy(big, "a@", 2);
    CHECK(norm(big) != NULL); /* 249 bytes */
    memset(big, 'x', 254);
    big[1] = '@';
    big[254] = '\0';
    CHECK(norm(big) != NULL); /* exactly 254 */
}

void test_username_rules(void)
{
    static const struct {
        const char *s;
        enum rf_username_check want;
    } cases[] = {
        {"octocat", RF_USERNAME_OK},
        {"Octo-Cat", RF_USERNAME_OK},
        {"a", RF_USERNAME_OK},
        {"a-b-c-1", RF_USERNAME_OK},
        {"123", RF_USERNAME_OK},
        {"", RF_USERNAME_INVALID},
        {"-a", RF_USERNAME_INVALID},
        {"a-", RF_USERNAME_INVALID},
        {"a--b", RF_USERNAME_INVALID},
        {"a_b", RF_USERNAME_INVALID},
        {"a.b", RF_USERNAME_INVALID},
        {"a b", RF_USERNAME_INVALID},
        {"caf\xc3\xa9", RF_USERNAME_INVALID},
        {"' OR 1=1 --", RF_USERNAME_INVALID},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", RF_USERNAME_OK},       /* 39 */
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", RF_USERNAME_INVALID}, /* 40 */
        {"admin", RF_USERNAME_RESERVED},
        {"ADMIN", RF_USERNAME_RESERVED},
        {"Root", RF_USERNAME_RESERVED},
        {"api", RF_USERNAME_RESERVED},
        {"www", RF_USERNAME_RESERVED},
        {"support", RF_USERNAME_RESERVED},
        {"help", RF_USERNAME_RESERVED},
        {"settings", RF_USERNAME_RESERVED},
        {"new", RF_USERNAME_RESERVED},
        {"me", RF_USERNAME_RESERVED},
        {"admins", RF_USERNAME_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum rf_username_check got = rf_username_check(cases[i].s, strlen(cases[i].s));
        if (got != cases[i].want) {
            unit_fail(__FILE__, __LINE__, "username '%s': got %d want %d", cases[i].s, got,
                      cases[i].want);
            return;
        }
    }
    char key[40];
    rf_username_key("Octo-Cat", 8, key);
    CHECK_STR(key, "octo-cat");
}

void test_name_rules(void)
{
    CHECK_INT(rf_name_check("Ann", 3), 0);
    CHECK_INT(rf_name_check("\xe5\xb1\xb1\xe7\x94\xb0", 6), 0);
    CHECK_INT(rf_name_check("", 0), -1);
    CHECK_INT(rf_name_check("a\nb", 3), -1);
    char big[RF_NAME_MAX + 1];
    memset(big, 'n', sizeof(big));
    CHECK_INT(rf_name_check(big, RF_NAME_MAX), 0);
    CHECK_INT(rf_name_check(big, RF_NAME_MAX + 1), -1);
}

void test_base58_and_ids(void)
{
    char out[64];
    CHECK_INT(rf_util_init(), 0);
    const unsigned char zero[] = {0, 0, 1};
    CHECK(rf_base58(out, sizeof(out), zero, 3) > 0);
    CHECK_STR(out, "112");
    const unsigned char hello[] = "hello world";
    rf_base58(out, sizeof(out), hello, 11);
    CHECK_STR(out, "StV1DL6CwTryKyV");
    CHECK(rf_base58(out, 3, hello, 11) < 0);
    char a[RF_ID_MAX], b[RF_ID_MAX];
    CHECK_INT(rf_id_new(a, sizeof(a), "usr_", 16), 0);
    CHECK_INT(rf_id_new(b, sizeof(b), "usr_", 16), 0);
    CHECK(strncmp(a, "usr_", 4) == 0 && strlen(a) >= 4 + 20);
    CHECK(strcmp(a, b) != 0);
    char h[65];
    rf_sha256_hex("abc", 3, h);
    CHECK_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char t[RF_TIME_MAX];
    rf_now_rfc3339(t);
    CHECK_INT(strlen(t), 24);
    CHECK(t[10] == 'T' && t[23] == 'Z');
}

void test_arena_limit(void)
{
    struct rf_arena a;
    rf_arena_init(&a, 10000);
    char *p = rf_arena_alloc(&a, 5000);
    CHECK(p != NULL);
    memset(p, 1, 5000);
    CHECK(rf_arena_alloc(&a, 6000) == NULL);
    CHECK(rf_arena_alloc(&a, (size_t)-1) == NULL);
    CHECK_STR(rf_arena_printf(&a, "%s-%d", "x", 42), "x-42");
    rf_arena_free(&a);
}

void test_utf8_printable(void)
{
    static const struct {
        const char *s;
        int ok;
    } cases[] = {
        {"abc", 1},
        {"caf\xc3\xa9", 1},
        {"\xe2\x82\xac", 1},
        {"\xf0\x9f\x8e\x89", 1},
        {"\xff", 0},
        {"\xc3", 0},
        {"\xc0\xaf", 0},
        {"\xe0\x80\xaf", 0},
        {"\xed\xa0\x80", 0},
        {"\xf4\x90\x80\x80", 0},
        {"a\tb", 0},
        {"a\x7f", 0},
        {"\xc2\x85", 0},
        {"\xe2\x82", 0},
        {"", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (rf_utf8_printable(cases[i].s, strlen(cases[i].s)) != cases[i].ok) {
            unit_fail(__FILE__, __LINE__, "case %zu: want %d", i, cases[i].ok);
            return;
        }
    }
}

void test_time_parse(void)
{
    int64_t ms;
    char out[RF_TIME_MAX];
    CHECK_INT(rf_time_parse("2026-12-31T20:00:00+01:00", &ms), 0);
    rf_time_format(ms, out);
    CHECK_STR(out, "2026-12-31T19:00:00.000Z");
    CHECK_INT(rf_time_parse("1970-01-01T00:00:00.5Z", &ms), 0);
    CHECK_INT(ms, 500);
    CHECK_INT(rf_time_parse("2024-02-29t12:00:00z", &ms), 0);
    static const char *bad[] = {"2023-02-29T00:00:00Z",      "2026-13-01T00:00:00Z",
                                "2026-01-01 00:00:00Z",      "2026-01-01T00:00:00",
                                "2026-01-01T24:00:00Z",      "0001-01-01T00:00:00+23:59",
                                "9999-12-31T23:59:59-01:00", "2026-01-01T00:00:00.Z",
                                "2026-01-01T00:00:00Zjunk",  "tomorrow"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rf_time_parse(bad[i], &ms) == 0) {
            unit_fail(__FILE__, __LINE__, "accepted '%s'", bad[i]);
            return;
        }
    }
}
