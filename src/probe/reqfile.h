/* Mixed bursts: raw HTTP request files (--request FILE[:COUNT]) and the
 * groups they make. A limit-overrun race usually spans two endpoints (redeem
 * and checkout, change email and confirm), and the quickest way to describe
 * one is the request as a proxy or an editor saved it: Burp's "copy to
 * file", or a .http file. Each file is one group of requests; the burst
 * interleaves the groups so that no group lands all before another. */
#ifndef RF_PROBE_REQFILE_H
#define RF_PROBE_REQFILE_H

#include <stddef.h>
#include <stdio.h>

#include "probe/burst.h"
#include "probe/request.h"
#include "probe/template.h"

#define RF_PROBE_REQFILE_MAX (RF_PROBE_HEAD_MAX + RF_PROBE_BODY_MAX)
#define RF_PROBE_GROUPS_MAX 16
#define RF_PROBE_GROUP_NAME_MAX 64

struct rf_probe_reqfile_hdr {
    const char *name, *value; /* into rf_probe_reqfile.store, NUL-terminated */
};

/* One request file, parsed. Every pointer points into store, which the
 * struct owns. */
struct rf_probe_reqfile {
    char *store;
    const char *method;
    const char *target; /* "/path?q" (origin form) or "http://host/path" (absolute) */
    int absolute;
    struct rf_probe_reqfile_hdr hdr[RF_PROBE_HEADERS_MAX];
    size_t nhdr;
    const char *host; /* the Host header's value, or NULL */
    const char *body; /* NULL when the file has none */
    size_t body_len;
};

/* Parses data[0, len): optional blank lines, "# ..." and "// ..." comment
 * lines, then "METHOD TARGET [HTTP/x]", header lines, a blank line and the
 * body, with CRLF or LF line ends. The body runs to the end of the file, or
 * to a line starting with "###" (the request separator of .http files), less
 * one final line end. Content-Length and Connection are dropped (the probe
 * frames the body and picks the connection's fate); Transfer-Encoding,
 * folded header lines and bytes that cannot be in a request head are
 * refused. Returns 0, or -1 with err naming the line. f owns memory on 0
 * only; free it with rf_probe_reqfile_free. */
int rf_probe_reqfile_parse(struct rf_probe_reqfile *f, const char *data, size_t len, char *err,
                           size_t errlen);
void rf_probe_reqfile_free(struct rf_probe_reqfile *f);

/* Splits a --request argument: "[NAME=]FILE[:COUNT]". name receives NAME, or
 * FILE's base name without its extension; count the COUNT, or def. Returns
 * 0, or -1 with err filled (bad name, COUNT out of 1..max). path points into
 * arg, which must outlive it; path_len is its length. */
int rf_probe_reqarg_split(const char *arg, size_t def, size_t max,
                          char name[RF_PROBE_GROUP_NAME_MAX + 1], const char **path,
                          size_t *path_len, size_t *count, char *err, size_t errlen);

/* Whether s[0, n) is a group name: 1..RF_PROBE_GROUP_NAME_MAX of
 * [A-Za-z0-9_-]. */
int rf_probe_group_name_ok(const char *s, size_t n);

/* Compiles f into s (templates in the target, header values and body), aimed
 * at base when base is not NULL: base's scheme and authority replace those
 * of an absolute target, and the file's Host header is dropped in favour of
 * base's; without base, an origin-form target goes to http://Host. Headers
 * named in extra (the -H lines) replace the file's headers of the same name
 * and are added after them. method receives the method (at most 32 bytes).
 * Returns 0, or -1 with err filled; s must be zeroed beforehand and is
 * freed by the caller (rf_probe_reqspec_free) either way. */
int rf_probe_reqfile_spec(const struct rf_probe_reqfile *f, const char *base,
                          const char *const *extra, size_t nextra, const struct rf_probe_vars *vs,
                          struct rf_probe_reqspec *s, char method[40], char *err, size_t errlen);

/* The release order of a mixed burst: writes counts[0] + ... + counts[n-1]
 * group indices into out so that every prefix of out holds each group in
 * proportion to its count (2 and 1 give 0 1 0, not 0 0 1), so a group of one
 * lands in the middle of the others, not after them. */
void rf_probe_groups_interleave(const size_t *counts, size_t n, unsigned *out);

/* One group of a mixed burst, compiled from its file. */
struct rf_probe_group {
    char name[RF_PROBE_GROUP_NAME_MAX + 1];
    size_t count;
    struct rf_probe_reqspec spec;
    char method[40];
    char target[160]; /* the file's target, cut, for the report's first line */
    int dynamic;      /* its requests differ from one another */
};

/* Reads the file at path[0, path_len) and compiles it into g (see
 * rf_probe_reqfile_spec for base and extra); name and count come from
 * rf_probe_reqarg_split. Returns 0, or -1 with err filled; g is freed by
 * rf_probe_group_free either way. */
int rf_probe_group_load(struct rf_probe_group *g, const char *name, const char *path,
                        size_t path_len, size_t count, const char *base, const char *const *extra,
                        size_t nextra, const struct rf_probe_vars *vs, char *err, size_t errlen);
void rf_probe_group_free(struct rf_probe_group *g);

#endif
