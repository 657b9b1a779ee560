#include "core/util.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum rf_log_level rf_log_min = RF_LOG_INFO;

int rf_util_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

int rf_base58(char *out, size_t outlen, const unsigned char *in, size_t n)
{
    static const char alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    unsigned char digits[128];
    size_t nd = 0;
    if (n > 64)
        return -1;
    /* Repeated division of the big-endian number by 58, digits little-endian. */
    for (size_t i = 0; i < n; i++) {
        unsigned carry = in[i];
        for (size_t j = 0; j < nd; j++) {
            carry += (unsigned)digits[j] << 8;
            digits[j] = (unsigned char)(carry % 58);
            carry /= 58;
        }
        while (carry) {
            digits[nd++] = (unsigned char)(carry % 58);
            carry /= 58;
        }
    }
    size_t zeros = 0;
    while (zeros < n && in[zeros] == 0)
        zeros++;
    if (zeros + nd + 1 > outlen)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < zeros; i++)
        out[k++] = '1';
    for (size_t i = nd; i > 0; i--)
        out[k++] = alphabet[digits[i - 1]];
    out[k] = '\0';
    return (int)k;
}

/* Ids need unpredictable bytes on every request; a getrandom() system call
 * each time was a measurable share of a /healthz request. Instead each
 * thread keeps a ChaCha20 key seeded once from the kernel and ratchets it:
 * every call draws the next key and the output from the current one, so
 * earlier ids cannot be recomputed from a later state (as arc4random). */
static void id_random(unsigned char *out, size_t n)
{
    static _Thread_local unsigned char key[randombytes_SEEDBYTES];
    static _Thread_local int seeded;
    unsigned char stream[randombytes_SEEDBYTES + 64];
    if (!seeded) {
        randombytes_buf(key, sizeof(key));
        seeded = 1;
    }
    randombytes_buf_deterministic(stream, sizeof(key) + n, key);
    memcpy(key, stream, sizeof(key));
    memcpy(out, stream + sizeof(key), n);
    sodium_memzero(stream, sizeof(stream));
}

int rf_id_new(char *out, size_t outlen, const char *prefix, size_t nbytes)
{
    unsigned char raw[64];
    size_t pl = strlen(prefix);
    if (nbytes > sizeof(raw) || pl >= outlen)
        return -1;
    id_random(raw, nbytes);
    memcpy(out, prefix, pl);
    return rf_base58(out + pl, outlen - pl, raw, nbytes) < 0 ? -1 : 0;
}

void rf_sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, n);
    sodium_bin2hex(out, 65, h, sizeof(h));
}

void rf_now_rfc3339(char out[RF_TIME_MAX])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, RF_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, RF_TIME_MAX - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

struct timespec rf_timespec_in(clockid_t clock, int64_t ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    if (ms < 0)
        ms = 0;
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

uint64_t rf_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t rf_rand_below(uint32_t upper)
{
    return upper ? randombytes_uniform(upper) : 0;
}

void rf_log(enum rf_log_level lvl, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (lvl < rf_log_min)
        return;
    char msg[1024], ts[RF_TIME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rf_now_rfc3339(ts);
    /* One write per line so lines from several threads never interleave. */
    fprintf(stderr, "%s racefree %s: %s\n", ts, names[lvl], msg);
}

int64_t rf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil): no timegm, no TZ environment. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int rf_time_parse(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, sec, frac_ms = 0;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        int n = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0 || n > 9)
            return -1;
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    int off_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    if (sec == 60) /* a leap second folds onto the next second */
        sec = 59, frac_ms = 999;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_min * 60;
    /* In UTC the instant must still have a four-digit year to print. */
    if (t < days_from_civil(1, 1, 1) * 86400 || t >= days_from_civil(10000, 1, 1) * 86400)
        return -1;
    *ms = t * 1000 + frac_ms;
    return 0;
}

void rf_time_format(int64_t ms, char out[RF_TIME_MAX])
{
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int msec = (int)(ms - (int64_t)secs * 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, RF_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, RF_TIME_MAX - n, ".%03dZ", msec % 1000);
}

void rf_errf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (!buf || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}
