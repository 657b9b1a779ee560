#include <string.h>

#include "core/rules.h"
#include "http/http.h"

/* Matches one pattern against a path segment by segment. Params are
 * written only when the whole pattern matches. */
static int match(const char *pat, const char *path, struct rf_req *r)
{
    const char *vals[RF_MAX_PATH_PARAMS];
    size_t lens[RF_MAX_PATH_PARAMS];
    int n = 0;
    while (*pat && *path) {
        if (*pat == '{') {
            const char *end = strchr(path, '/');
            size_t len = end ? (size_t)(end - path) : strlen(path);
            /* libmicrohttpd has already %-decoded the path: a segment that is
             * not printable UTF-8 names nothing, so it matches nothing. */
            if (len == 0 || n == RF_MAX_PATH_PARAMS || !rf_utf8_printable(path, len))
                return 0;
            vals[n] = path;
            lens[n++] = len;
            path += len;
            pat = strchr(pat, '}');
            if (!pat)
                return 0;
            pat++;
        } else if (*pat++ != *path++) {
            return 0;
        }
    }
    if (*pat || *path)
        return 0;
    if (r) {
        for (int i = 0; i < n; i++) {
            r->params[i] = rf_arena_strndup(r->a, vals[i], lens[i]);
            if (!r->params[i])
                return 0;
        }
        r->nparams = n;
    }
    return 1;
}

const struct rf_route *rf_route_match(const struct rf_route *routes, size_t n, const char *method,
                                      const char *path, struct rf_req *r, int *path_known,
                                      char *allow, size_t allowlen)
{
    size_t used = 0;
    *path_known = 0;
    if (allowlen)
        allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!match(routes[i].pattern, path, NULL))
            continue;
        if (strcmp(routes[i].method, method) == 0)
            return match(routes[i].pattern, path, r) ? &routes[i] : NULL;
        *path_known = 1;
        size_t ml = strlen(routes[i].method);
        if (used + ml + 3 < allowlen) {
            if (used) {
                memcpy(allow + used, ", ", 2);
                used += 2;
            }
            memcpy(allow + used, routes[i].method, ml + 1);
            used += ml;
        }
    }
    return NULL;
}
