/* Request templates for the prober: URL, header values and body may carry
 * {{i}}, {{round}}, {{uuid}}, {{rand}} and {{var.NAME}}, so one command line
 * can make every request of a burst different (distinct emails, one id per
 * user from a file) or all of them identical, whichever the race needs.
 *
 * Templates are compiled once, so that a typo such as {{var.nmae}} is a usage
 * error before any request is sent, rather than a literal sent N times. */
#ifndef RF_PROBE_TEMPLATE_H
#define RF_PROBE_TEMPLATE_H

#include <stddef.h>

#define RF_PROBE_VARS_MAX 64
#define RF_PROBE_VAR_NAME_MAX 64
/* Bounds for --var NAME=@file: the whole file is held in memory. */
#define RF_PROBE_VAR_FILE_MAX ((size_t)16 << 20)
#define RF_PROBE_VAR_LINES_MAX 1000000

/* A growable byte buffer that refuses to grow past max, so a template
 * multiplied by N requests cannot exhaust memory. */
struct rf_probe_buf {
    char *p; /* NUL-terminated while len > 0 or after any append; owned */
    size_t len, cap, max;
};

/* Starts an empty buffer holding at most max bytes (NUL excluded). */
void rf_probe_buf_init(struct rf_probe_buf *b, size_t max);
/* Returns 0, or -1 when the result would exceed max or memory ran out
 * (b is unchanged then). */
int rf_probe_buf_add(struct rf_probe_buf *b, const char *s, size_t n);
int rf_probe_buf_adds(struct rf_probe_buf *b, const char *s);
int rf_probe_buf_addf(struct rf_probe_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rf_probe_buf_free(struct rf_probe_buf *b);

/* 1 when s[0, n) is 1..max letters, digits, '_' or '-': the one alphabet
 * of --var names, --request group names, header names we are given and
 * HTTP methods. */
int rf_probe_name_ok(const char *s, size_t n, size_t max);

/* Reads a whole file ("-" is stdin) of at most max bytes into a malloc'd,
 * NUL-terminated buffer the caller frees; NULL with err filled on failure. */
char *rf_probe_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

struct rf_probe_var {
    char name[RF_PROBE_VAR_NAME_MAX + 1];
    char **vals; /* owned; one per non-empty line of the file, or one value */
    size_t nvals;
    char *data; /* owned storage the vals point into */
};

struct rf_probe_vars {
    struct rf_probe_var v[RF_PROBE_VARS_MAX];
    size_t n;
};

/* Adds "NAME=value" or "NAME=@file" (one value per non-empty line, CR/LF
 * stripped). Returns 0, or -1 with err filled (bad name, duplicate, file
 * unreadable, empty or over the bounds above). */
int rf_probe_vars_add(struct rf_probe_vars *vs, const char *spec, char *err, size_t errlen);
void rf_probe_vars_free(struct rf_probe_vars *vs);

struct rf_probe_tpl_seg;

struct rf_probe_tpl {
    char *src; /* owned copy of the template text the literal segments point into */
    struct rf_probe_tpl_seg *segs; /* owned */
    size_t nsegs;
    int dynamic; /* expands differently per request or per round */
};

/* Compiles src[0, len). Variables are looked up in vs, which must outlive t
 * and not change afterwards. Returns 0, or -1 with err naming the bad
 * placeholder (unknown name, unknown variable, unterminated "{{"). */
int rf_probe_tpl_compile(struct rf_probe_tpl *t, const char *src, size_t len,
                         const struct rf_probe_vars *vs, char *err, size_t errlen);

struct rf_probe_tpl_ctx {
    size_t i;       /* request index in its burst, from 0 */
    unsigned round; /* burst number, from 1 */
    const struct rf_probe_vars *vars;
};

/* Appends the expansion to out. {{uuid}} and {{rand}} draw fresh random
 * values (libsodium, initialised here if needed) at every occurrence.
 * Returns 0, or -1 with err filled when out would exceed its max. */
int rf_probe_tpl_expand(const struct rf_probe_tpl *t, const struct rf_probe_tpl_ctx *c,
                        struct rf_probe_buf *out, char *err, size_t errlen);
void rf_probe_tpl_free(struct rf_probe_tpl *t);

#endif
