/* Incremental parser for one HTTP/1.1 response. The prober reads responses
 * from raw sockets in whatever pieces the kernel hands over, so the parser
 * accepts any split of the byte stream and never trusts the server: every
 * length is checked against max_size before memory is committed to it. */
#ifndef RF_PROBE_HTTPRES_H
#define RF_PROBE_HTTPRES_H

#include <stddef.h>
#include <stdint.h>

enum rf_httpres_state { RF_HTTPRES_MORE = 0, RF_HTTPRES_DONE = 1, RF_HTTPRES_ERROR = -1 };

/* Used when rf_httpres_init gets 0, or when feeding a zeroed struct. */
#define RF_HTTPRES_DEFAULT_MAX ((size_t)8 << 20)

/* Parser bookkeeping; callers must not rely on any of it. */
struct rf_httpres_priv {
    int phase;
    int minor;         /* HTTP/1.x minor version of the final response */
    size_t max_size;   /* limit on raw bytes consumed, framing included */
    size_t consumed;   /* raw bytes consumed so far, 1xx responses included */
    size_t head_cap;   /* allocated size of head */
    size_t body_cap;   /* allocated size of body */
    size_t line_start; /* offset in head of the line being received */
    uint64_t left;     /* body bytes still due (Content-Length or chunk) */
    int chunk_digits;  /* hex digits seen in the current chunk-size line */
};

struct rf_httpres {
    int status; /* e.g. 201 once the final status line is parsed; 0 before */
    char *head; /* status line + headers incl. final blank line, NUL-terminated */
    size_t head_len;
    char *body; /* decoded body, NUL-terminated; non-NULL once DONE */
    size_t body_len;
    int keep_alive;   /* 0 if "Connection: close", close-delimited, or HTTP/1.0 default */
    int head_request; /* set by the caller after init: response to HEAD has no body */
    size_t extra;     /* bytes of the last feed left unconsumed after DONE */
    char err[128];    /* reason when RF_HTTPRES_ERROR */
    struct rf_httpres_priv priv;
};

/* Resets r (it must not own memory: call rf_httpres_free first when reusing).
 * max_size bounds the raw bytes of the whole exchange, including 1xx interim
 * responses and chunk framing; 0 selects RF_HTTPRES_DEFAULT_MAX. A zeroed
 * struct is equivalent to rf_httpres_init(r, 0). */
void rf_httpres_init(struct rf_httpres *r, size_t max_size);

/* Consumes bytes until the response is complete. Returns the state; once DONE,
 * r->extra holds how many trailing bytes of this call were not consumed (they
 * belong to whatever follows), and later calls consume nothing. */
int rf_httpres_feed(struct rf_httpres *r, const char *data, size_t len);

/* Peer closed the connection: DONE when the body is delimited by close,
 * otherwise ERROR with the reason in r->err. */
int rf_httpres_eof(struct rf_httpres *r);

/* First header called name (case-insensitive) of the final response. Returns a
 * pointer into r->head (not NUL-terminated at the value's end) with
 * surrounding whitespace trimmed, its length in *len (len may be NULL), or
 * NULL if absent. */
const char *rf_httpres_header(const struct rf_httpres *r, const char *name, size_t *len);

/* Releases head and body; r must be re-initialised before reuse. */
void rf_httpres_free(struct rf_httpres *r);

#endif
