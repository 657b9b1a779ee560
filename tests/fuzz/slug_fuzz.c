/* libFuzzer target for event slugs (src/core/slug.c). The input is an
 * event name as any bytes, valid UTF-8 or not: the JSON parser only lets
 * valid UTF-8 through, but the slug promises robustness on its own.
 *
 * Checked on every input: the slug is 1..RF_SLUG_MAX bytes of [a-z0-9-]
 * with no leading, trailing or doubled '-', its length is the returned
 * one, it is its own slug (a slug names the event in URLs: slugging a slug
 * must not move it), ASCII case never matters, and a short buffer is
 * refused without a write past it. Buffers are sized exactly so that ASan
 * sees any overrun. */

#include "fuzz.h"

#include "core/slug.h"

static void check_shape(const char *s, size_t n)
{
    CHECK(n >= 1 && n <= RF_SLUG_MAX);
    CHECK(strlen(s) == n);
    CHECK(s[0] != '-' && s[n - 1] != '-');
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
        CHECK(!(c == '-' && s[i + 1] == '-'));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *name = (const char *)data;
    char *out = malloc(RF_SLUG_MAX + 1), *again = malloc(RF_SLUG_MAX + 1);
    char *upper = malloc(size ? size : 1), *small = malloc(RF_SLUG_MAX);
    CHECK(out && again && upper && small);

    size_t n = rf_slugify(size ? name : NULL, size, out, RF_SLUG_MAX + 1);
    check_shape(out, n);

    size_t m = rf_slugify(out, n, again, RF_SLUG_MAX + 1);
    CHECK(m == n && memcmp(out, again, n + 1) == 0);

    /* ASCII upper-casing leaves UTF-8 sequences alone (their bytes are all
     * >= 0x80), so it can only change letters the slug lower-cases anyway. */
    for (size_t i = 0; i < size; i++)
        upper[i] = (data[i] >= 'a' && data[i] <= 'z') ? (char)(data[i] - 'a' + 'A') : (char)data[i];
    m = rf_slugify(upper, size, again, RF_SLUG_MAX + 1);
    CHECK(m == n && memcmp(out, again, n + 1) == 0);

    CHECK(rf_slugify(name, size, small, RF_SLUG_MAX) == 0 && small[0] == '\0');

    free(out);
    free(again);
    free(upper);
    free(small);
    return 0;
}
