/* libFuzzer target for the user-input rules (src/core/rules.c): email
 * normalisation, username syntax and keys, the UTF-8 check that guards
 * every string on its way to the database, and display names. The first
 * input byte picks the function, the rest is its argument, passed in a
 * buffer of exactly its size (no NUL) so that ASan sees any over-read.
 *
 * Invariants: a normalised email is a fixed point (normalising it again
 * gives itself: it is the uniqueness key, two spellings of a mailbox must
 * not survive as two keys), has one '@' and no ASCII upper case, and
 * ignores surrounding whitespace and ASCII case; a username's validity
 * does not depend on ASCII case, and its key is its own key; the UTF-8
 * check agrees with an independent decoder written from Unicode's Table 3-7. */

#include "fuzz.h"

#include "core/rules.h"

static char *dup_exact(const uint8_t *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    CHECK(p);
    if (n)
        memcpy(p, s, n);
    return p;
}

/* Well-formed UTF-8 (Unicode 15, Table 3-7) without C0, DEL or C1 controls. */
static int ref_utf8_printable(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            cp = c;
            need = 0;
        } else if (c >= 0xc2 && c <= 0xdf) {
            cp = c & 0x1fu;
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            cp = c & 0x0fu;
            need = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            cp = c & 0x07u;
            need = 3;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            return 0;
        }
        if (n - i <= need)
            return 0;
        if (need && (s[i + 1] < lo || s[i + 1] > hi))
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
            return 0;
        i += need + 1;
    }
    return 1;
}

static int has_upper(const char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            return 1;
    return 0;
}

static void fuzz_email(const uint8_t *d, size_t n)
{
    char *in = dup_exact(d, n);
    char *out = malloc(RF_EMAIL_MAX + 1), *again = malloc(RF_EMAIL_MAX + 1);
    CHECK(out && again);
    if (rf_email_normalize(in, n, out, RF_EMAIL_MAX + 1) == 0) {
        size_t len = strlen(out);
        CHECK(len >= 3 && len <= RF_EMAIL_MAX);
        CHECK(!has_upper(out));
        CHECK(strchr(out, '@') && strchr(out, '@') == strrchr(out, '@'));
        CHECK(out[0] != '@' && out[len - 1] != '@');
        CHECK(rf_utf8_printable(out, len));
        CHECK(rf_email_normalize(out, len, again, RF_EMAIL_MAX + 1) == 0);
        CHECK(strcmp(out, again) == 0);

        /* The same address, padded and in upper case, is the same key. */
        char *padded = malloc(len + 2);
        CHECK(padded);
        padded[0] = ' ';
        for (size_t i = 0; i < len; i++)
            padded[i + 1] = (out[i] >= 'a' && out[i] <= 'z') ? (char)(out[i] - 32) : out[i];
        padded[len + 1] = '\t';
        CHECK(rf_email_normalize(padded, len + 2, again, RF_EMAIL_MAX + 1) == 0);
        CHECK(strcmp(out, again) == 0);
        free(padded);

        /* Exactly the room it needs is enough, one byte less never is. */
        char *exact = malloc(len + 1);
        CHECK(exact);
        CHECK(rf_email_normalize(in, n, exact, len + 1) == 0 && strcmp(exact, out) == 0);
        CHECK(rf_email_normalize(in, n, exact, len) == -1);
        free(exact);
    }
    free(in);
    free(out);
    free(again);
}

static void fuzz_username(const uint8_t *d, size_t n)
{
    char *in = dup_exact(d, n);
    char *key = malloc(n + 1), *key2 = malloc(n + 1);
    CHECK(key && key2);
    enum rf_username_check uc = rf_username_check(in, n);
    rf_username_key(in, n, key);
    CHECK(strlen(key) <= n && !has_upper(key));
    /* Ownership is decided on the key: the key must be judged like the name. */
    CHECK(rf_username_check(key, n) == uc);
    rf_username_key(key, n, key2);
    CHECK(memcmp(key, key2, n + 1) == 0);
    if (uc == RF_USERNAME_OK) {
        CHECK(n >= 1 && n <= RF_USERNAME_MAX);
        CHECK(memchr(in, '\0', n) == NULL);
        CHECK(rf_utf8_printable(in, n));
    }
    free(in);
    free(key);
    free(key2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0:
        fuzz_email(d, n);
        break;
    case 1:
        fuzz_username(d, n);
        break;
    case 2: {
        char *in = dup_exact(d, n);
        CHECK(rf_utf8_printable(in, n) == ref_utf8_printable(d, n));
        free(in);
        break;
    }
    case 3: {
        char *in = dup_exact(d, n);
        int ok = rf_name_check(in, n) == 0;
        CHECK(!ok || (n >= 1 && n <= RF_NAME_MAX && memchr(in, '\0', n) == NULL));
        free(in);
        break;
    }
    }
    return 0;
}
