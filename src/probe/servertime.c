#include "probe/servertime.h"

#include <string.h>

int rf_probe_servertime_parse(const char *s, size_t n, uint64_t *ns)
{
    size_t k = 0;
    while (k < n && (s[k] == ' ' || s[k] == '\t'))
        k++;
    while (n > k && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    uint64_t ip = 0;
    size_t idig = 0;
    for (; k < n && s[k] >= '0' && s[k] <= '9'; k++, idig++) {
        if (idig >= 19)
            return -1;
        ip = ip * 10 + (uint64_t)(s[k] - '0');
    }
    if (idig == 0)
        return -1;
    /* Up to 9 fraction digits are kept, enough for nanoseconds of a second. */
    uint64_t fp = 0;
    size_t fdig = 0;
    if (k < n && s[k] == '.') {
        k++;
        size_t start = k;
        for (; k < n && s[k] >= '0' && s[k] <= '9'; k++)
            if (k - start < 9) {
                fp = fp * 10 + (uint64_t)(s[k] - '0');
                fdig++;
            }
        if (k == start)
            return -1;
    }
    if (k != n)
        return -1;
    uint64_t unit = ip < 100000000000ull         ? 1000000000ull
                    : ip < 100000000000000ull    ? 1000000ull
                    : ip < 100000000000000000ull ? 1000ull
                                                 : 1ull;
    if (ip > UINT64_MAX / unit)
        return -1;
    /* The fraction scaled to the unit: fp / 10^fdig units. */
    uint64_t frac = 0;
    if (fdig) {
        uint64_t p10 = 1;
        for (size_t d = 0; d < fdig; d++)
            p10 *= 10;
        frac = fp * unit / p10;
    }
    *ns = ip * unit + frac;
    return 0;
}

size_t rf_probe_servertime_spread(const struct rf_burst_res *res, size_t n, const char *header,
                                  uint64_t *spread_ns)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        size_t vl;
        uint64_t t;
        if (res[i].err || !res[i].http.head)
            continue;
        const char *v = rf_httpres_header(&res[i].http, header, &vl);
        if (!v || rf_probe_servertime_parse(v, vl, &t) < 0)
            continue;
        found++;
        if (t < lo)
            lo = t;
        if (t > hi)
            hi = t;
    }
    if (found >= 2)
        *spread_ns = hi - lo;
    return found;
}
