#include "core/rules.h"
#include "core/util.h"
#include "core/arena.h"
#include "unit.h"

void test_email_normalize(void);
void test_email_invalid(void);
void test_username_rules(void);
void test_name_rules(void);
void test_base58_and_ids(void);
void test_arena_limit(void);

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
        "", "   ", "noat", "@example.com", "ann@", "a@b@c", "an n@example.com",
        "ann@exa\tmple.com", "ann@example.com\x01", "ann@\x7f", "@",
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
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", RF_USERNAME_OK},   /* 39 */
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
