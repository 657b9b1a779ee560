/* TLS for the probe's bursts (OpenSSL). OpenSSL never touches a socket here:
 * it reads and writes memory BIOs, and the burst engines move the bytes. That
 * way a request's held-back final bytes can be encrypted into a finished
 * record during the connection phase, and the release writes that record
 * with one send(), exactly as it writes a plain final byte. */
#ifndef RF_PROBE_TLS_H
#define RF_PROBE_TLS_H

#include <stddef.h>

/* What every connection of a run shares: trust settings and ALPN. */
struct rf_tls_ctx;
/* One connection's TLS state and its encrypted bytes not yet sent. */
struct rf_tls;

enum rf_tls_alpn {
    RF_TLS_ALPN_HTTP1 = 0, /* offer http/1.1 only: the HTTP/1.1 engine cannot speak h2 */
    RF_TLS_ALPN_H2 = 1,    /* offer h2, then http/1.1 */
};

/* Certificate verification is on unless insecure: the system's CAs, or only
 * the ones in cacert (a PEM file) when it is non-NULL. Returns NULL with err
 * filled (unreadable cacert, OpenSSL failure). Free with rf_tls_ctx_free. */
struct rf_tls_ctx *rf_tls_ctx_new(const char *cacert, int insecure, enum rf_tls_alpn alpn,
                                  char *err, size_t errlen);
void rf_tls_ctx_free(struct rf_tls_ctx *x);

/* A client connection to host (a name or an IP literal, no brackets): SNI is
 * sent for names, and the certificate must match host unless the context is
 * insecure. x must outlive the result. Returns NULL with err filled. */
struct rf_tls *rf_tls_new(struct rf_tls_ctx *x, const char *host, char *err, size_t errlen);
void rf_tls_free(struct rf_tls *t);

/* Advances the handshake on fd (non-blocking). Returns 1 when it is complete,
 * 0 when it waits for fd (*want_write: for writability as well as input), or
 * -1 with err filled; a certificate that fails verification says so and
 * names --cacert and --insecure. */
int rf_tls_handshake(struct rf_tls *t, int fd, int *want_write, char *err, size_t errlen);

/* The protocol the server picked by ALPN ("h2", "http/1.1"), or "" if none. */
const char *rf_tls_alpn(const struct rf_tls *t);

/* Encrypts p[0, len) into records queued on t, without sending anything.
 * Returns 0, or -1 with err filled. */
int rf_tls_encrypt(struct rf_tls *t, const void *p, size_t len, char *err, size_t errlen);

/* Encrypted bytes queued and not yet sent. */
size_t rf_tls_pending(const struct rf_tls *t);

/* Sends queued bytes to fd with as few send()s as the socket allows.
 * Returns 1 when nothing is left, 0 when the socket is full, -1 with *e set
 * to an errno. */
int rf_tls_flush(struct rf_tls *t, int fd, int *e);

/* Reads from fd and decrypts into buf. Returns the plaintext length (> 0),
 * 0 at end of stream (close_notify or the peer closing), -1 when fd has
 * nothing more for now, -2 with err filled on a TLS or socket error. Never
 * sends: queued bytes (a held final record) stay queued until rf_tls_flush. */
long rf_tls_recv(struct rf_tls *t, int fd, char *buf, size_t cap, char *err, size_t errlen);

/* Bytes already read from the socket that rf_tls_recv has not returned yet.
 * epoll cannot see them: a reader that stops early must not wait for it. */
int rf_tls_buffered(const struct rf_tls *t);

#endif
