#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/slug.h"
#include "unit.h"

void test_slug_cases(void);
void test_slug_decomposed_equals_precomposed(void);
void test_slug_invalid_utf8(void);
void test_slug_long_name_cuts_at_hyphen(void);
void test_slug_long_word_hard_cut(void);
void test_slug_cut_at_every_boundary(void);
void test_slug_every_code_point(void);
void test_slug_random_bytes_invariants(void);
void test_slug_small_buffer(void);

static const char *slug(const char *in, size_t len)
{
    static char out[RF_SLUG_MAX + 1];
    size_t n = rf_slugify(in, len, out, sizeof(out));
    return n == strlen(out) ? out : "(length mismatch)";
}

/* sizeof, not strlen, so a case may hold a NUL byte. */
#define SLUG(lit) slug(lit, sizeof(lit) - 1)

/* True when s is [a-z0-9]+ joined by single '-', at most RF_SLUG_MAX bytes. */
static int well_formed(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RF_SLUG_MAX || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-' ? s[i + 1] == '-' : !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

struct slug_case {
    const char *in;
    size_t len;
    const char *want;
};

/* sizeof, not strlen, as in SLUG. */
/* clang-format off */
#define T(in, want) {in, sizeof(in) - 1, want}
/* clang-format on */

static const struct slug_case cases[] = {
    /* clang-format off */
    /* ASCII */
    T("Launch Party", "launch-party"),
    T("Launch Party 2", "launch-party-2"),
    T("launch-party-2", "launch-party-2"),
    T("HELLO World", "hello-world"),
    T("2024", "2024"),
    T("Q3 2024 All-Hands", "q3-2024-all-hands"),
    T("Rock & Roll", "rock-roll"),
    T("C++ / C#", "c-c"),
    T("a.b,c;d:e", "a-b-c-d-e"),
    T("Bob's Party", "bob-s-party"),
    /* separators: leading, trailing, runs, controls */
    T("  --Hello--  ", "hello"),
    T("a   ---  ___ b", "a-b"),
    T("tab\tnew\nline\r\x7f", "tab-new-line"),
    T("nul\0byte", "nul-byte"),
    T("a\xc2\xa0" "b", "a-b"), /* NO-BREAK SPACE */
    /* French, German, Nordic, Dutch */
    T("Café Crème", "cafe-creme"),
    T("Fête de la Musique à Paris", "fete-de-la-musique-a-paris"),
    T("Œuvre d'Été", "oeuvre-d-ete"),
    T("naïve façade, déjà vu", "naive-facade-deja-vu"),
    T("Straße München", "strasse-munchen"),
    T("GROẞE Übung", "grosse-ubung"),
    T("Ærø Ålborg Øresund", "aero-alborg-oresund"),
    T("Þórshöfn Eiðar", "thorshofn-eidar"),
    T("Smörgåsbord", "smorgasbord"),
    T("Ĳsselmeer", "ijsselmeer"),
    /* Polish, Czech, Romanian, Turkish, Maltese, Azerbaijani */
    T("Zażółć gęślą jaźń", "zazolc-gesla-jazn"),
    T("Łódź", "lodz"),
    T("Příliš žluťoučký kůň úpěl", "prilis-zlutoucky-kun-upel"),
    T("Dvořák", "dvorak"),
    T("Mărțişor Ștefan", "martisor-stefan"),
    T("İstanbul ılık", "istanbul-ilik"),
    T("Ġgantija Ħal Saflieni", "ggantija-hal-saflieni"),
    T("Bakı Həftəsi", "baki-heftesi"),
    /* Vietnamese: stacked accents and đ */
    T("Tiếng Việt", "tieng-viet"),
    T("Đà Nẵng", "da-nang"),
    T("Phở Hà Nội", "pho-ha-noi"),
    /* Spanish, Portuguese */
    T("Año Nuevo", "ano-nuevo"),
    T("São Paulo", "sao-paulo"),
    /* other Latin forms with a decomposition to ASCII */
    T("ﬁnal ﬂight", "final-flight"),
    T("ＦＵＬＬ ｗｉｄｔｈ ２０２４", "full-width-2024"),
    T("𝐁𝐨𝐥𝐝 𝑃𝑎𝑟𝑡𝑦", "bold-party"),
    T("25 \u212a", "25-k"), /* KELVIN SIGN */
    /* symbols and numerals that are not letters stay separators */
    T("2×3÷4", "2-3-4"),
    T("m² ½", "m"),
    /* emoji: single, ZWJ sequences, flags, keycaps, skin tones */
    T("Party 🎉", "party"),
    T("🎉🎉🎉", "event"),
    T("👨‍👩‍👧 Family Day", "family-day"),
    T("Fans 🇫🇷 vs 🇩🇪", "fans-vs"),
    T("#1️⃣ Fan", "1-fan"),
    T("Wave👋🏽Hello", "wave-hello"),
    /* CJK, RTL, other scripts, mixed */
    T("東京", "event"),
    T("Tokyo 東京 2025", "tokyo-2025"),
    T("مرحبا Hello", "hello"),
    T("שלום Shalom עולם", "shalom"),
    T("Москва Moscow", "moscow"),
    T("Ελλάδα 2004", "2004"),
    T("한국 Seoul", "seoul"),
    /* nothing usable */
    T("", "event"),
    T("!!!", "event"),
    T(" - ", "event"),
    T("\xcc\x81", "event"), /* a lone combining accent */
    /* clang-format on */
};

/* 1 when every case slugs to its want, well formed; else the first that
 * does not fails the test (the caller returns). */
static int cases_hold(const struct slug_case *c, size_t n, const char *table)
{
    for (size_t i = 0; i < n; i++) {
        const char *got = slug(c[i].in, c[i].len);
        if (strcmp(got, c[i].want) != 0 || !well_formed(got)) {
            unit_fail(__FILE__, __LINE__, "%s[%zu] \"%s\": got \"%s\", want \"%s\"%s", table, i,
                      c[i].in, got, c[i].want, well_formed(got) ? "" : " (not well formed)");
            return 0;
        }
    }
    return 1;
}

#define CHECK_CASES(c)                                                                             \
    do {                                                                                           \
        if (!cases_hold(c, sizeof(c) / sizeof((c)[0]), #c))                                        \
            return;                                                                                \
    } while (0)

void test_slug_cases(void)
{
    CHECK_CASES(cases);
    CHECK(sizeof(cases) / sizeof(cases[0]) >= 40);
}

void test_slug_decomposed_equals_precomposed(void)
{
    static const struct slug_case nfd[] = {
        /* clang-format off */
        /* NFD spellings: base letter followed by U+0301, U+0308, U+0323 + U+0302, U+030A. */
        T("Cafe\xcc\x81", "cafe"),
        T("Café", "cafe"), /* the same slug as the NFD spelling above */
        T("Mu\xcc\x88nchen", "munchen"),
        T("Vie\xcc\xa3\xcc\x82t", "viet"),
        T("A\xcc\x8alborg", "alborg"),
        /* An accent on a folded letter, a digit, and a dropped-accent run of several marks. */
        T("\xc3\xb8\xcc\x81ya", "oya"),
        T("x1\xcc\x81y", "x1y"),
        T("e\xcc\x81\xcc\x81\xcc\x81z", "ez"),
        /* Extended and Supplement blocks count as accents too (U+1AB0, U+1DC4). */
        T("a\xe1\xaa\xb0" "b\xe1\xb7\x84" "c", "abc"),
        /* With no letter before it, an accent adds nothing: no '-', no letter. */
        T("\xcc\x81" "abc", "abc"),
        T("a \xcc\x81" "b", "a-b"),
        T("\xe6\x9d\xb1\xcc\x81" "x", "x"),
        /* clang-format on */
    };
    CHECK_CASES(nfd);
}

void test_slug_invalid_utf8(void)
{
    static const struct slug_case bad[] = {
        /* clang-format off */
        T("\xff\xfe", "event"),
        T("bad\xff" "byte", "bad-byte"),
        T("\x80" "abc", "abc"), /* lone continuation byte */
        T("caf\xc3", "caf"), /* truncated at the end */
        T("caf\xc3 x", "caf-x"), /* truncated before ASCII */
        T("a\xe1\xba" "b", "a-b"), /* truncated 3-byte sequence */
        /* Overlong forms of '/', 'A' and 'a' must not decode to ASCII. */
        T("a\xc0\xaf" "b", "a-b"),
        T("x\xc1\x81y", "x-y"),
        T("x\xe0\x81\xa1y", "x-y"),
        T("x\xf0\x80\x81\xa1y", "x-y"),
        /* Overlong é (U+00E9 as 3 bytes) is not a Latin letter either. */
        T("caf\xe0\x83\xa9", "caf"),
        /* UTF-16 surrogates encoded in UTF-8 (CESU-8 style), alone and paired. */
        T("a\xed\xa0\x80" "b", "a-b"),
        T("a\xed\xa0\xbd\xed\xb8\x80" "b", "a-b"),
        /* Past U+10FFFF, and the bytes that can never appear (F5..FF). */
        T("\xf4\x90\x80\x80x", "x"),
        T("x\xf5\x80\x80\x80y\xfe", "x-y"),
        /* The last valid code points on each side of the surrogate gap still work. */
        T("a\xed\x9f\xbf" "b\xee\x80\x80" "c", "a-b-c"),
        T("a\xf4\x8f\xbf\xbf" "b", "a-b"),
        /* clang-format on */
    };
    CHECK_CASES(bad);
}

static void repeat(char *buf, size_t *n, const char *s, size_t times)
{
    size_t len = strlen(s);
    for (size_t t = 0; t < times; t++) {
        memcpy(buf + *n, s, len);
        *n += len;
    }
}

void test_slug_long_name_cuts_at_hyphen(void)
{
    char name[1100], want[RF_SLUG_MAX + 1];
    size_t n = 0;

    /* "word " x 205 = 1025 bytes. The 65th slug byte is a '-', so all 64 bytes stay. */
    repeat(name, &n, "word ", 205);
    CHECK(n > 1024);
    const char *got = slug(name, n);
    CHECK_INT(strlen(got), 64);
    n = 0;
    repeat(want, &n, "word-", 12);
    repeat(want, &n, "word", 1);
    want[n] = '\0';
    CHECK_STR(got, want);

    /* "Abcdef " repeated: the limit falls inside the 10th word, so the slug ends after the 9th. */
    n = 0;
    repeat(name, &n, "Abcdef ", 150);
    got = slug(name, n);
    CHECK_INT(strlen(got), 9 * 7 - 1);
    CHECK(well_formed(got));
    CHECK(got[strlen(got) - 1] == 'f');

    /* Accented 1 KB name: folding happens before the cut, so the cut counts ASCII bytes. */
    n = 0;
    repeat(name, &n, "Été à Zürich ", 60);
    got = slug(name, n);
    CHECK(well_formed(got));
    CHECK(strncmp(got, "ete-a-zurich-ete-a-zurich-", 26) == 0);
    CHECK(strlen(got) <= RF_SLUG_MAX);

    /* 1 KB of emoji then one word: junk is skipped however long it is. */
    n = 0;
    repeat(name, &n, "🎉", 256);
    repeat(name, &n, " End", 1);
    CHECK_STR(slug(name, n), "end");
}

void test_slug_long_word_hard_cut(void)
{
    char name[300], want[RF_SLUG_MAX + 1];
    size_t n = 0;

    memset(want, 'x', RF_SLUG_MAX);
    want[RF_SLUG_MAX] = '\0';

    repeat(name, &n, "x", 100);
    CHECK_STR(slug(name, n), want);
    n = 0;
    repeat(name, &n, "x", 65);
    CHECK_STR(slug(name, n), want);
    n = 0;
    repeat(name, &n, "x", 64);
    CHECK_STR(slug(name, n), want);
    /* Exactly 64 then more words: the boundary is right at the limit. */
    repeat(name, &n, " tail", 1);
    CHECK_STR(slug(name, n), want);

    /* A fold that straddles the limit ("ß" → "ss") is hard-cut inside it. */
    n = 0;
    repeat(name, &n, "x", 63);
    repeat(name, &n, "ß", 1);
    want[63] = 's';
    CHECK_STR(slug(name, n), want);

    /* A short word then a long one: the cut keeps the short word rather than cutting the
     * long one mid-way. */
    n = 0;
    repeat(name, &n, "A ", 1);
    repeat(name, &n, "y", 100);
    CHECK_STR(slug(name, n), "a");
}

void test_slug_cut_at_every_boundary(void)
{
    /* k letters, a separator run, then a long word: whatever k, no trailing '-' and the cut
     * lands on the boundary (or at the hard limit once the first word fills it). */
    for (size_t k = 1; k <= 80; k++) {
        char name[200], want[RF_SLUG_MAX + 1];
        size_t n = 0;
        repeat(name, &n, "a", k);
        repeat(name, &n, " -- ", 1);
        repeat(name, &n, "b", 90);
        size_t wn = k < RF_SLUG_MAX ? k : RF_SLUG_MAX;
        memset(want, 'a', wn);
        want[wn] = '\0';
        const char *got = slug(name, n);
        if (strcmp(got, want) != 0) {
            unit_fail(__FILE__, __LINE__, "k=%zu: got \"%s\"", k, got);
            return;
        }
    }
    /* Two words around the limit: "a"*k + " " + "b"*m fits when k + 1 + m <= 64. */
    for (size_t k = 1; k <= 64; k++) {
        for (size_t m = 1; m <= 66 - k; m++) {
            char name[200];
            size_t n = 0;
            repeat(name, &n, "a", k);
            repeat(name, &n, " ", 1);
            repeat(name, &n, "b", m);
            const char *got = slug(name, n);
            size_t want = k + 1 + m <= RF_SLUG_MAX ? k + 1 + m : (k == 64 ? 64 : k);
            if (strlen(got) != want || !well_formed(got)) {
                unit_fail(__FILE__, __LINE__, "k=%zu m=%zu: got \"%s\"", k, m, got);
                return;
            }
        }
    }
}

static size_t put_utf8(char *p, uint32_t cp)
{
    if (cp < 0x80) {
        p[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (char)(0xC0 | (cp >> 6));
        p[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (char)(0xE0 | (cp >> 12));
        p[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        p[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    p[0] = (char)(0xF0 | (cp >> 18));
    p[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    p[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    p[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

void test_slug_every_code_point(void)
{
    /* Every code point between two letters: it either folds to 1-3 of [a-z0-9], vanishes as
     * an accent, or separates. Surrogates are encoded too (ill-formed) and must separate. */
    size_t folded = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        char name[8];
        size_t n = 0;
        name[n++] = 'a';
        n += put_utf8(name + n, cp);
        name[n++] = 'z';
        const char *got = slug(name, n);
        size_t len = strlen(got);
        int ok = well_formed(got) && got[0] == 'a' && got[len - 1] == 'z' && len <= 5;
        if (ok && cp >= 0xD800 && cp <= 0xDFFF)
            ok = strcmp(got, "a-z") == 0;
        if (ok && cp >= 0x0300 && cp <= 0x036F)
            ok = strcmp(got, "az") == 0;
        if (!ok) {
            unit_fail(__FILE__, __LINE__, "U+%04X: got \"%s\"", (unsigned)cp, got);
            return;
        }
        if (cp >= 0x80 && strchr(got, '-') == NULL && len > 2)
            folded++;
    }
    /* Every table entry is reachable by the binary search: the generated table has 1535
     * entries; accents are not counted here. */
    CHECK_INT(folded, 1535);
    /* First and last entries of the table, and a few from each kind of source. */
    CHECK_STR(SLUG("\xc3\x80"), "a");         /* U+00C0 */
    CHECK_STR(SLUG("\xf0\x9d\x9f\xbf"), "9"); /* U+1D7FF MATHEMATICAL MONOSPACE DIGIT NINE */
    CHECK_STR(SLUG("\xef\xac\x83"), "ffi");   /* U+FB03 */
    CHECK_STR(SLUG("\xc8\xa0"), "n");         /* U+0220, via its lower-case partner */
}

void test_slug_random_bytes_invariants(void)
{
    /* Deterministic noise biased toward pieces that matter (ASCII, separators, Latin, accents,
     * CJK, emoji, broken bytes): the slug is always well-formed and a fixed point. */
    static const char *const pieces[] = {
        "a",
        "Z",
        "7",
        " ",
        "-",
        "--",
        "é",
        "ß",
        "Œ",
        "\xcc\x81",
        "東",
        "🎉",
        "\xe2\x80\x8d",
        "\xff",
        "\xc3",
        "\xed\xa0\x80",
        "\xc0\xaf",
        "ﬃ",
        "ａ",
        "x",
        "yy",
        "\t",
    };
    uint64_t state = 12345; /* 31-bit LCG in 64 bits: no wrap-around, even for -fsanitize=integer */
    for (int iter = 0; iter < 20000; iter++) {
        char name[600];
        size_t n = 0;
        state = (state * 1103515245u + 12345u) & 0x7FFFFFFFu;
        size_t count = (state >> 16) % 120;
        for (size_t j = 0; j < count; j++) {
            state = (state * 1103515245u + 12345u) & 0x7FFFFFFFu;
            const char *p = pieces[(state >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(p);
            memcpy(name + n, p, pl);
            n += pl;
        }
        char out[RF_SLUG_MAX + 1], again[RF_SLUG_MAX + 1];
        size_t len = rf_slugify(name, n, out, sizeof(out));
        if (len != strlen(out) || !well_formed(out)) {
            unit_fail(__FILE__, __LINE__, "iter %d: got \"%s\"", iter, out);
            return;
        }
        CHECK_INT(rf_slugify(out, len, again, sizeof(again)), len);
        CHECK_STR(again, out);
    }
}

void test_slug_small_buffer(void)
{
    char out[RF_SLUG_MAX + 1];
    memset(out, 'q', sizeof(out));
    CHECK_INT(rf_slugify("abc", 3, out, RF_SLUG_MAX), 0);
    CHECK(out[0] == '\0');
    CHECK_INT(rf_slugify("abc", 3, out, 0), 0);
    CHECK_INT(rf_slugify(NULL, 0, out, sizeof(out)), 5);
    CHECK_STR(out, "event");
    /* The output never touches bytes past the slug's NUL. */
    memset(out, 'q', sizeof(out));
    CHECK_INT(rf_slugify("ab", 2, out, sizeof(out)), 2);
    CHECK(out[3] == 'q');
}
