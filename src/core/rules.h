/* Domain rules for user input: email normalisation and username syntax.
 * Pure functions, no allocation: unit-tested in tests/unit/test_rules.c. */
#ifndef RF_RULES_H
#define RF_RULES_H

#include <stddef.h>

#define RF_EMAIL_MAX 254
#define RF_USERNAME_MAX 39
#define RF_NAME_MAX 200

/* Trims ASCII whitespace, lower-cases ASCII letters, checks one '@' with
 * non-empty sides, no spaces/control chars, ≤ 254 bytes.
 * Writes the normalised form into out (size ≥ RF_EMAIL_MAX + 1).
 * Returns 0 when valid, -1 otherwise. */
int rf_email_normalize(const char *in, size_t len, char *out, size_t outlen);

enum rf_username_check { RF_USERNAME_OK = 0, RF_USERNAME_INVALID, RF_USERNAME_RESERVED };

/* GitHub-style: 1–39 of [A-Za-z0-9-], no leading/trailing/double hyphen,
 * not a reserved name (compared case-insensitively). */
enum rf_username_check rf_username_check(const char *s, size_t len);

/* ASCII lower-case of s into out (size ≥ len + 1): the uniqueness key. */
void rf_username_key(const char *s, size_t len, char *out);

/* 1 when s[0..len) is well-formed UTF-8 (no overlongs, surrogates or
 * code points past U+10FFFF) without control characters. Bytes that reach
 * the database must pass this: PostgreSQL rejects malformed UTF-8. */
int rf_utf8_printable(const char *s, size_t len);

/* A display name: 1–200 bytes, no control characters (UTF-8 already
 * validated by the JSON parser). Returns 0 when valid. */
int rf_name_check(const char *s, size_t len);

#endif
