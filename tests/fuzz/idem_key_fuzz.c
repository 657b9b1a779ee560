/* libFuzzer target for the Idempotency-Key header parser
 * (rf_api_idem_parse_key, src/api/idempotency.c). The input is the header
 * value, a C string as libmicrohttpd hands it over; the output buffer is
 * the size the server uses, allocated exactly so ASan sees an overrun.
 *
 * Invariants: an accepted key is 1-255 printable ASCII characters; a bare
 * key is the header itself; and the key, quoted again as an RFC 8941
 * sf-string, parses back to itself (bare and quoted spellings of one key
 * must name one reservation). */

#include "fuzz.h"

#include "api/api.h"

#define KEY_MAX 255
#define OUT_LEN (KEY_MAX + 2) /* as in rf_api_idem_begin */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *h = malloc(size + 1), *out = malloc(OUT_LEN), *again = malloc(OUT_LEN);
    char *quoted = malloc(2 * OUT_LEN + 3);
    CHECK(h && out && again && quoted);
    memcpy(h, data, size);
    h[size] = '\0';

    if (rf_api_idem_parse_key(h, out, OUT_LEN) == 0) {
        size_t n = strlen(out);
        CHECK(n >= 1 && n <= KEY_MAX);
        for (size_t i = 0; i < n; i++)
            CHECK(out[i] >= 0x20 && out[i] <= 0x7e);
        if (h[0] != '"' || strlen(h) < 2)
            CHECK(strcmp(out, h) == 0);

        size_t q = 0;
        quoted[q++] = '"';
        for (size_t i = 0; i < n; i++) {
            if (out[i] == '"' || out[i] == '\\')
                quoted[q++] = '\\';
            quoted[q++] = out[i];
        }
        quoted[q++] = '"';
        quoted[q] = '\0';
        CHECK(rf_api_idem_parse_key(quoted, again, OUT_LEN) == 0);
        CHECK(strcmp(out, again) == 0);
    }
    free(h);
    free(out);
    free(again);
    free(quoted);
    return 0;
}
