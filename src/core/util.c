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

int rf_id_new(char *out, size_t outlen, const char *prefix, size_t nbytes)
{
    unsigned char raw[64];
    size_t pl = strlen(prefix);
    if (nbytes > sizeof(raw) || pl >= outlen)
        return -1;
    randombytes_buf(raw, nbytes);
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
