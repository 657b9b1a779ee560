/* Turning the command line into raw HTTP/1.1 request bytes for the burst
 * engine: URL parsing, name resolution, and the request head. For https://
 * the engine encrypts these same bytes (probe/tls.h); for HTTP/2 it turns
 * them into frames (probe/h2.h). */
#ifndef RF_PROBE_REQUEST_H
#define RF_PROBE_REQUEST_H

#include <stddef.h>
#include <sys/socket.h>

#include "probe/template.h"

#define RF_PROBE_URL_MAX 8192
#define RF_PROBE_HEAD_MAX ((size_t)64 << 10)
#define RF_PROBE_BODY_MAX ((size_t)1 << 20)
#define RF_PROBE_HEADERS_MAX 100

struct rf_probe_url {
    char host[256];      /* name or address, IPv6 without brackets */
    char port[6];        /* decimal, "80" (https: "443") when absent */
    char authority[270]; /* host[:port] as written, for the Host header */
    const char *path;    /* into the parsed string: "/..." with query, no fragment */
    size_t path_len;     /* 0 means "/" */
    int tls;             /* https:// */
};

/* Parses "http[s]://host[:port][/path][?query][#fragment]"; u->path points into
 * url, which must outlive u. Returns 0, or -1 with err filled. */
int rf_probe_url_parse(const char *url, struct rf_probe_url *u, char *err, size_t errlen);

/* Resolves host:port with getaddrinfo. When the name has several addresses
 * (localhost: ::1 and 127.0.0.1), the first that accepts a TCP connection
 * within timeout_ms wins, so the burst does not aim at an address nobody
 * listens on. Returns 0, or -1 with err filled. */
int rf_probe_resolve(const char *host, const char *port, int timeout_ms,
                     struct sockaddr_storage *addr, socklen_t *addrlen, char *err, size_t errlen);

struct rf_probe_reqspec {
    const char *method;
    struct rf_probe_tpl url;
    struct rf_probe_tpl hdr[RF_PROBE_HEADERS_MAX]; /* each a whole "Name: value" line */
    size_t nhdr;
    int has_body;
    struct rf_probe_tpl body;
    /* Set by rf_probe_reqspec_header: the caller's header replaces ours. */
    int user_host, user_ctype, user_connection, user_agent;
};

/* Checks and compiles one -H argument into s. Content-Length and
 * Transfer-Encoding are refused: the probe frames the body itself. */
int rf_probe_reqspec_header(struct rf_probe_reqspec *s, const char *h,
                            const struct rf_probe_vars *vs, char *err, size_t errlen);
void rf_probe_reqspec_free(struct rf_probe_reqspec *s);

/* Expands the templates for one request and writes the raw request into out
 * (which should allow RF_PROBE_HEAD_MAX + RF_PROBE_BODY_MAX bytes); u receives
 * the parsed URL, its path pointing into url_buf, which holds the expanded
 * URL and must stay alive while u is used. with_body == 0 sends no body
 * (the --verify GET reuses the headers of the burst). Returns 0, or -1 with
 * err filled. */
int rf_probe_request_build(const struct rf_probe_reqspec *s, const char *method, int with_body,
                           const struct rf_probe_tpl *url, const struct rf_probe_tpl_ctx *c,
                           struct rf_probe_buf *url_buf, struct rf_probe_url *u,
                           struct rf_probe_buf *out, char *err, size_t errlen);

#endif
