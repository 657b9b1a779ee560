/* Small shared helpers: random ids, hashing, time, logging. */
#ifndef RF_UTIL_H
#define RF_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Must run once before any other call here (initialises libsodium). */
int rf_util_init(void) __attribute__((warn_unused_result));

/* Writes prefix + base58 of nbytes CSPRNG bytes into out (NUL-terminated).
 * Returns 0, or -1 if outlen is too small. 16 bytes → ~22 chars. */
int rf_id_new(char *out, size_t outlen, const char *prefix, size_t nbytes);
#define RF_ID_MAX 64

/* Base58 (Bitcoin alphabet) of in[0..n); returns chars written or -1. */
int rf_base58(char *out, size_t outlen, const unsigned char *in, size_t n);

/* Lower-case hex SHA-256 of data into out[65]. */
void rf_sha256_hex(const void *data, size_t n, char out[65]);

/* Current UTC time as RFC 3339 with milliseconds: 2026-11-23T21:50:02.123Z */
#define RF_TIME_MAX 32
void rf_now_rfc3339(char out[RF_TIME_MAX]);
uint64_t rf_mono_ns(void);
/* An absolute time ms milliseconds from now on clock, for the timed waits
 * of pthreads (timedlock takes CLOCK_REALTIME, condvars their own clock). */
struct timespec rf_timespec_in(clockid_t clock, int64_t ms);
/* Milliseconds since the Unix epoch, now. */
int64_t rf_now_ms(void);
/* Parses RFC 3339 (YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM), 't'/'z' allowed,
 * years 0001-9999) into ms since the epoch. Returns 0, or -1 if invalid. */
int rf_time_parse(const char *s, int64_t *ms);
/* Formats ms since the epoch as RFC 3339 UTC with milliseconds. */
void rf_time_format(int64_t ms, char out[RF_TIME_MAX]);
/* Uniform random integer in [0, upper). */
uint32_t rf_rand_below(uint32_t upper);

/* snprintf into a caller's error buffer; a NULL or empty buffer is fine. */
void rf_errf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

enum rf_log_level { RF_LOG_DEBUG, RF_LOG_INFO, RF_LOG_WARN, RF_LOG_ERROR };
extern enum rf_log_level rf_log_min;
void rf_log(enum rf_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
