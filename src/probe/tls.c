#include "probe/tls.h"
#include "core/util.h"
#include "probe/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CHUNK 16384

struct rf_tls_ctx {
    SSL_CTX *ctx;
    int insecure;
};

struct rf_tls {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    char host[256];
    char *out; /* encrypted bytes for the socket: out[off, len) not yet sent */
    size_t len, off, cap;
    int eof;   /* the peer closed its side of the TCP connection */
    size_t rx; /* bytes the peer sent, encrypted */
};

/* The newest error on OpenSSL's queue, for a message. */
static void ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0) {
        snprintf(buf, len, "unknown error");
        return;
    }
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

struct rf_tls_ctx *rf_tls_ctx_new(const char *cacert, int insecure, enum rf_tls_alpn alpn,
                                  char *err, size_t errlen)
{
    /* ALPN wire format: each protocol prefixed by its length. */
    static const unsigned char alpn_h2[] = "\x02h2\x08http/1.1";
    static const unsigned char alpn_h1[] = "\x08http/1.1";
    char why[256];
    struct rf_tls_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        rf_errf(err, errlen, "out of memory");
        return NULL;
    }
    x->insecure = insecure;
    ERR_clear_error();
    x->ctx = SSL_CTX_new(TLS_client_method());
    if (!x->ctx) {
        ssl_reason(why, sizeof(why));
        rf_errf(err, errlen, "TLS: cannot create a context: %s", why);
        goto fail;
    }
    (void)SSL_CTX_set_min_proto_version(x->ctx, TLS1_2_VERSION);
    /* Every connection of a burst is fresh; resuming would only add state. */
    SSL_CTX_set_session_cache_mode(x->ctx, SSL_SESS_CACHE_OFF);
    if (alpn == RF_TLS_ALPN_H2
            ? SSL_CTX_set_alpn_protos(x->ctx, alpn_h2, sizeof(alpn_h2) - 1) != 0
            : SSL_CTX_set_alpn_protos(x->ctx, alpn_h1, sizeof(alpn_h1) - 1) != 0) {
        rf_errf(err, errlen, "TLS: cannot set ALPN");
        goto fail;
    }
    if (insecure) {
        SSL_CTX_set_verify(x->ctx, SSL_VERIFY_NONE, NULL);
        return x;
    }
    SSL_CTX_set_verify(x->ctx, SSL_VERIFY_PEER, NULL);
    if (cacert) {
        FILE *f = fopen(cacert, "r");
        if (!f) {
            rf_errf(err, errlen, "--cacert %s: %s", cacert, strerror(errno));
            goto fail;
        }
        fclose(f);
        if (SSL_CTX_load_verify_locations(x->ctx, cacert, NULL) != 1) {
            ssl_reason(why, sizeof(why));
            rf_errf(err, errlen, "--cacert %s: no PEM certificate could be loaded (%s)", cacert,
                    why);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(x->ctx) != 1) {
        ssl_reason(why, sizeof(why));
        rf_errf(err, errlen, "TLS: cannot load the system's CA certificates: %s", why);
        goto fail;
    }
    return x;
fail:
    rf_tls_ctx_free(x);
    return NULL;
}

void rf_tls_ctx_free(struct rf_tls_ctx *x)
{
    if (!x)
        return;
    SSL_CTX_free(x->ctx);
    free(x);
}

struct rf_tls *rf_tls_new(struct rf_tls_ctx *x, const char *host, char *err, size_t errlen)
{
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    struct rf_tls *t = calloc(1, sizeof(*t));
    if (!t) {
        rf_errf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(t->host, sizeof(t->host), "%s", host);
    ERR_clear_error();
    t->ssl = SSL_new(x->ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        rf_errf(err, errlen, "TLS: out of memory");
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    /* An empty input BIO means "come back later", not end of stream. */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_connect_state(t->ssl);
    int ok = 1;
    /* RFC 6066: SNI carries names only, never an address. */
    if (!is_ip)
        ok = SSL_set_tlsext_host_name(t->ssl, host) == 1;
    if (ok && !x->insecure)
        ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) == 1
                   : SSL_set1_host(t->ssl, host) == 1;
    if (!ok) {
        char why[256];
        ssl_reason(why, sizeof(why));
        rf_errf(err, errlen, "TLS: cannot set the server name %s: %s", host, why);
        rf_tls_free(t);
        return NULL;
    }
    return t;
}

void rf_tls_free(struct rf_tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t->out);
    free(t);
}

/* Moves what OpenSSL wrote into the memory BIO onto our send queue. */
static int drain(struct rf_tls *t)
{
    size_t want = (size_t)BIO_ctrl_pending(t->wbio);
    if (want == 0)
        return 0;
    if (t->off == t->len)
        t->off = t->len = 0;
    if (t->len + want > t->cap) {
        size_t cap = t->cap ? t->cap : CHUNK;
        while (cap < t->len + want)
            cap *= 2;
        char *p = realloc(t->out, cap);
        if (!p)
            return -1;
        t->out = p;
        t->cap = cap;
    }
    int got = BIO_read(t->wbio, t->out + t->len, (int)want);
    if (got > 0)
        t->len += (size_t)got;
    return 0;
}

size_t rf_tls_pending(const struct rf_tls *t)
{
    return t->len - t->off;
}

int rf_tls_flush(struct rf_tls *t, int fd, int *e)
{
    int st = rf_send_from(fd, t->out, t->len, &t->off, e);
    if (st == 1)
        t->off = t->len = 0;
    return st;
}

/* Feeds one read from fd to OpenSSL: 1 fed, 0 nothing yet, -1 error (*e, 0
 * for end of stream). */
static int feed(struct rf_tls *t, int fd, int *e)
{
    char buf[CHUNK];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            t->rx += (size_t)n;
            if (BIO_write(t->rbio, buf, (int)n) != (int)n) {
                *e = ENOMEM;
                return -1;
            }
            return 1;
        }
        if (n == 0) {
            t->eof = 1;
            *e = 0;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        *e = errno;
        return -1;
    }
}

static void handshake_error(struct rf_tls *t, char *err, size_t errlen)
{
    char why[256];
    long vr = SSL_get_verify_result(t->ssl);
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        /* A trusted certificate for another name: --cacert would not help. */
        ERR_clear_error();
        rf_errf(err, errlen,
                "TLS: certificate does not name %s (%s): use a host it names, or --insecure",
                t->host, X509_verify_cert_error_string(vr));
        return;
    }
    if (vr != X509_V_OK) {
        ERR_clear_error();
        rf_errf(err, errlen,
                "TLS: certificate of %s not trusted: %s (pass --cacert FILE with its CA, or "
                "--insecure)",
                t->host, X509_verify_cert_error_string(vr));
        return;
    }
    ssl_reason(why, sizeof(why));
    rf_errf(err, errlen, "TLS handshake with %s failed: %s%s", t->host, why,
            strstr(why, "wrong version number") ? " (a plain-HTTP server? use http://)" : "");
}

int rf_tls_handshake(struct rf_tls *t, int fd, int *want_write, char *err, size_t errlen)
{
    for (;;) {
        int e = 0;
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        int se = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
        if (drain(t) < 0) {
            rf_errf(err, errlen, "TLS: out of memory");
            return -1;
        }
        int f = rf_tls_flush(t, fd, &e);
        if (f < 0) {
            rf_errf(err, errlen, "TLS handshake with %s: send: %s", t->host, strerror(e));
            return -1;
        }
        /* Done: our last flight may still be queued; the first request bytes
         * are sent behind it. */
        if (r == 1)
            return 1;
        if (se != SSL_ERROR_WANT_READ) {
            handshake_error(t, err, errlen);
            return -1;
        }
        if (f == 0) {
            *want_write = 1;
            return 0;
        }
        int fr = feed(t, fd, &e);
        if (fr == 0) {
            *want_write = 0;
            return 0;
        }
        if (fr < 0) {
            /* A TLS server answers a hello it rejects with an alert; closing
             * without a byte is what many plain-HTTP servers do with one
             * (libmicrohttpd, unless the hello's random bytes happen to hold
             * a line end, which earns a 400: "wrong version number"). */
            if (e == 0 && t->rx == 0)
                rf_errf(err, errlen,
                        "TLS handshake with %s: the server closed the connection without a "
                        "TLS reply (a plain-HTTP server? use http://)",
                        t->host);
            else if (e == 0)
                rf_errf(err, errlen, "TLS handshake with %s: the server closed the connection",
                        t->host);
            else
                rf_errf(err, errlen, "TLS handshake with %s: recv: %s", t->host, strerror(e));
            return -1;
        }
    }
}

const char *rf_tls_alpn(const struct rf_tls *t)
{
    static char proto[32];
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (!p || n == 0 || n >= sizeof(proto))
        return "";
    /* Compared against literals only; the buffer is rewritten by each call. */
    memcpy(proto, p, n);
    proto[n] = '\0';
    return proto;
}

int rf_tls_encrypt(struct rf_tls *t, const void *p, size_t len, char *err, size_t errlen)
{
    const char *d = p;
    while (len > 0) {
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        ERR_clear_error();
        /* Memory BIOs grow as needed, so SSL_write takes everything. */
        int w = SSL_write(t->ssl, d, chunk);
        if (w <= 0) {
            char why[256];
            ssl_reason(why, sizeof(why));
            rf_errf(err, errlen, "TLS: cannot encrypt: %s", why);
            return -1;
        }
        d += w;
        len -= (size_t)w;
    }
    if (drain(t) < 0) {
        rf_errf(err, errlen, "TLS: out of memory");
        return -1;
    }
    return 0;
}

int rf_tls_buffered(const struct rf_tls *t)
{
    return SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0;
}

long rf_tls_recv(struct rf_tls *t, int fd, char *buf, size_t cap, char *err, size_t errlen)
{
    for (;;) {
        int e = 0;
        ERR_clear_error();
        int r = SSL_read(t->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
        int se = r > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
        /* A reply OpenSSL owes the peer (a key update) waits for the next
         * flush: sending here could release a held record early. */
        if (drain(t) < 0) {
            rf_errf(err, errlen, "TLS: out of memory");
            return -2;
        }
        if (r > 0)
            return r;
        if (se == SSL_ERROR_ZERO_RETURN)
            return 0;
        if (se != SSL_ERROR_WANT_READ) {
            char why[256];
            ssl_reason(why, sizeof(why));
            rf_errf(err, errlen, "TLS: %s", why);
            return -2;
        }
        /* Servers often close without close_notify; the HTTP framing
         * decides whether the response was complete. */
        if (t->eof)
            return 0;
        int fr = feed(t, fd, &e);
        if (fr == 0)
            return -1;
        if (fr < 0) {
            if (e == 0)
                return 0;
            rf_errf(err, errlen, "recv: %s", strerror(e));
            return -2;
        }
    }
}
