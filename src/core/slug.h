/* Event slugs (docs/API.md, Events): the URL-safe, human-readable base of an event's unique slug.
 * Pure function, no allocation, no locale: unit-tested in tests/unit/test_slug.c. */
#ifndef RF_SLUG_H
#define RF_SLUG_H

#include <stddef.h>

#define RF_SLUG_MAX 64

/* Slug of a UTF-8 name (len bytes; the name is valid UTF-8, already checked by the JSON parser,
 * but be robust to invalid bytes: treat them as separators). Writes a NUL-terminated slug of at
 * most RF_SLUG_MAX bytes into out (outlen >= RF_SLUG_MAX + 1) and returns its length (>= 1).
 *
 * The slug is [a-z0-9]+ runs joined by single '-'. ASCII letters are lower-cased; Latin
 * letters fold to ASCII (é→e, ß→ss, ø→o, æ→ae, …); combining accents (U+0300–U+036F and the
 * other Combining Diacritical Marks blocks) are dropped, so "e" U+0301 gives "e" like "é";
 * every other run of characters or invalid bytes becomes one '-', never leading or trailing.
 * A slug longer than RF_SLUG_MAX is cut at its last '-' within the limit, or hard at
 * RF_SLUG_MAX bytes when that prefix has no '-'. An empty slug becomes "event". Reading stops
 * as soon as the cut is decided (RF_SLUG_MAX + 1 slug bytes are known).
 *
 * name may be NULL when len is 0. Returns 0 (and writes "" if outlen > 0) only when outlen is
 * below RF_SLUG_MAX + 1, a caller bug. */
size_t rf_slugify(const char *name, size_t len, char *out, size_t outlen);

#endif
