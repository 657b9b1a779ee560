#include "core/slug.h"

#include <stdint.h>
#include <string.h>

#include "core/latin_fold.h"

/* Not a Unicode scalar value, so it can stand for "ill-formed byte". */
#define BAD_CP UINT32_C(0xFFFFFFFF)

/* Decodes one scalar value from s[0..n), n >= 1, and returns the bytes it used. Only the
 * well-formed sequences of Unicode Table 3-7 are accepted, so overlong forms, surrogates and
 * values above U+10FFFF can never alias an ASCII letter or a Latin letter. Anything else
 * yields BAD_CP after one byte: the continuation bytes that follow are ill-formed on their
 * own, and consecutive separators collapse into one '-' anyway. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;

    *cp = BAD_CP;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0; /* below is overlong */
        else if (c == 0xED)
            hi = 0x9F; /* above is a surrogate */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90; /* below is overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above is past U+10FFFF */
    } else {
        return 1;
    }
    if (n <= need || s[1] < lo || s[1] > hi)
        return 1;
    uint32_t v = c & (0x3Fu >> need);
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 1;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    *cp = v;
    return need + 1;
}

/* Combining Diacritical Marks and its Extended, Supplement and Half Marks blocks: the accents
 * that decomposed (NFD) Latin text carries after its base letter. */
static int is_combining_accent(uint32_t cp)
{
    return (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
           (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0xFE20 && cp <= 0xFE2F);
}

static const char *fold_lookup(uint32_t cp)
{
    size_t lo = 0, hi = sizeof(latin_fold) / sizeof(latin_fold[0]);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (latin_fold[mid].cp < cp)
            lo = mid + 1;
        else if (latin_fold[mid].cp > cp)
            hi = mid;
        else
            return latin_fold[mid].repl;
    }
    return NULL;
}

/* The slug is built in out with one byte of look-ahead kept in flags, instead of a scratch
 * copy: the cut rule only needs to know whether the byte after the limit is a '-'. */
struct slug_buf {
    char *out;
    size_t n;
    int sep_pending; /* a separator run was seen since the last emitted character */
    int full;        /* a byte past RF_SLUG_MAX exists; next_is_sep says which */
    int next_is_sep;
};

static void emit(struct slug_buf *b, char c)
{
    if (b->full)
        return;
    if (b->sep_pending && b->n > 0) {
        if (b->n == RF_SLUG_MAX) {
            b->full = 1;
            b->next_is_sep = 1;
            return;
        }
        b->out[b->n++] = '-';
    }
    b->sep_pending = 0;
    if (b->n == RF_SLUG_MAX) {
        b->full = 1;
        b->next_is_sep = 0;
        return;
    }
    b->out[b->n++] = c;
}

size_t rf_slugify(const char *name, size_t len, char *out, size_t outlen)
{
    if (outlen < RF_SLUG_MAX + 1) {
        if (outlen > 0)
            out[0] = '\0';
        return 0;
    }

    struct slug_buf b = {.out = out};
    const unsigned char *s = (const unsigned char *)name;
    size_t i = 0;

    /* Combining accents are skipped wherever they are: after a letter they belong to it (NFD
     * spelling, "e" U+0301 = "é"); anywhere else they sit in a separator run, where dropping
     * them changes nothing. */
    while (i < len && !b.full) {
        uint32_t cp;
        i += utf8_next(s + i, len - i, &cp);
        if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
            emit(&b, (char)cp);
        } else if (cp >= 'A' && cp <= 'Z') {
            emit(&b, (char)(cp - 'A' + 'a'));
        } else if (!is_combining_accent(cp)) {
            const char *repl = cp >= 0x80 ? fold_lookup(cp) : NULL;
            if (repl == NULL)
                b.sep_pending = 1;
            for (; repl && *repl; repl++)
                emit(&b, *repl);
        }
    }

    if (b.full && !b.next_is_sep) {
        /* The limit falls inside a word: end at the previous word boundary. No '-' at all
         * means one long word, which can only be hard-cut. The slug never starts with '-', so
         * a '-' found here leaves a non-empty slug. */
        size_t dash = b.n;
        while (dash > 0 && out[dash - 1] != '-')
            dash--;
        if (dash > 0)
            b.n = dash - 1;
    }
    if (b.n == 0) {
        memcpy(out, "event", sizeof("event"));
        return sizeof("event") - 1;
    }
    out[b.n] = '\0';
    return b.n;
}
