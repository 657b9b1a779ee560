/* probe/tls.h against an OpenSSL server in the same thread, over a
 * socketpair: the handshake with and without the right CA, the held final
 * byte as one ready record, and reading what the server sends back. The
 * certificate is made here (EC P-256, self-signed, for 127.0.0.1). */
#include <errno.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe/tls.h"
#include "unit.h"

void test_probetls_handshake_and_record(void);
void test_probetls_untrusted(void);
void test_probetls_name_mismatch(void);
void test_probetls_cacert_errors(void);

struct server {
    SSL_CTX *ctx;
    SSL *ssl;
    X509 *cert;
    EVP_PKEY *key;
    int fd[2]; /* [0] client side, [1] server side */
    char pem[64];
};

static X509 *self_signed(EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);
    X509V3_CTX v3;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
    X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "CA:TRUE");
    X509_add_ext(x, bc, -1);
    X509_EXTENSION_free(bc);
    X509_sign(x, key, EVP_sha256());
    return x;
}

static int server_start(struct server *s)
{
    memset(s, 0, sizeof(*s));
    s->key = EVP_EC_gen("P-256");
    if (!s->key)
        return -1;
    s->cert = self_signed(s->key);
    snprintf(s->pem, sizeof(s->pem), "/tmp/rf-unit-tls-%d.pem", (int)getpid());
    FILE *f = fopen(s->pem, "w");
    if (!f)
        return -1;
    PEM_write_X509(f, s->cert);
    fclose(f);
    s->ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(s->ctx, s->cert);
    SSL_CTX_use_PrivateKey(s->ctx, s->key);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s->fd) < 0)
        return -1;
    s->ssl = SSL_new(s->ctx);
    SSL_set_fd(s->ssl, s->fd[1]);
    SSL_set_accept_state(s->ssl);
    return 0;
}

static void server_stop(struct server *s)
{
    SSL_free(s->ssl);
    SSL_CTX_free(s->ctx);
    X509_free(s->cert);
    EVP_PKEY_free(s->key);
    if (s->fd[0] > 0)
        close(s->fd[0]);
    if (s->fd[1] > 0)
        close(s->fd[1]);
    unlink(s->pem);
}

/* Runs both ends of the handshake; returns the client's last answer. */
static int handshake(struct server *s, struct rf_tls *t, char *err, size_t errlen)
{
    int st = 0, want_write = 0;
    for (int k = 0; k < 100 && st == 0; k++) {
        st = rf_tls_handshake(t, s->fd[0], &want_write, err, errlen);
        (void)SSL_do_handshake(s->ssl);
    }
    return st;
}

void test_probetls_handshake_and_record(void)
{
    struct server s;
    char err[256] = "", buf[64];
    CHECK_INT(server_start(&s), 0);
    struct rf_tls_ctx *x = rf_tls_ctx_new(s.pem, 0, RF_TLS_ALPN_HTTP1, err, sizeof(err));
    CHECK(x != NULL);
    struct rf_tls *t = rf_tls_new(x, "127.0.0.1", err, sizeof(err));
    CHECK(t != NULL);
    CHECK_INT(handshake(&s, t, err, sizeof(err)), 1);

    /* The prefix goes out; the final byte waits as a finished record. */
    int e = 0;
    CHECK_INT(rf_tls_encrypt(t, "GET / HTTP/1.", 13, err, sizeof(err)), 0);
    CHECK_INT(rf_tls_flush(t, s.fd[0], &e), 1);
    CHECK_INT(rf_tls_pending(t), 0);
    CHECK_INT(rf_tls_encrypt(t, "1", 1, err, sizeof(err)), 0);
    size_t rec = rf_tls_pending(t);
    /* A TLS record: 5-byte header, the byte, and at least a tag. */
    CHECK(rec > 5 + 1);
    int got = SSL_read(s.ssl, buf, sizeof(buf));
    CHECK_INT(got, 13);
    CHECK(SSL_read(s.ssl, buf, sizeof(buf)) <= 0); /* nothing released yet */
    CHECK_INT(rf_tls_flush(t, s.fd[0], &e), 1);
    CHECK_INT(SSL_read(s.ssl, buf, sizeof(buf)), 1);
    CHECK(buf[0] == '1');

    /* What the server answers comes out decrypted; then end of stream. */
    CHECK_INT(SSL_write(s.ssl, "HTTP/1.1 204 \r\n\r\n", 17), 17);
    long n = 0;
    for (int k = 0; k < 10 && n <= 0; k++)
        n = rf_tls_recv(t, s.fd[0], buf, sizeof(buf), err, sizeof(err));
    CHECK_INT(n, 17);
    CHECK(!memcmp(buf, "HTTP/1.1 204", 12));
    CHECK_INT(rf_tls_recv(t, s.fd[0], buf, sizeof(buf), err, sizeof(err)), -1);
    SSL_shutdown(s.ssl);
    CHECK_INT(rf_tls_recv(t, s.fd[0], buf, sizeof(buf), err, sizeof(err)), 0);
    CHECK_STR(rf_tls_alpn(t), "");
    rf_tls_free(t);
    rf_tls_ctx_free(x);
    server_stop(&s);
}

/* One handshake against a fresh server: trusting its CA (own_ca) or the
 * system's, verifying or not, with the ALPN offer and the name given.
 * Returns what handshake() does, or -2 when the client could not be made. */
static int try_handshake(int own_ca, int insecure, enum rf_tls_alpn alpn, const char *host,
                         char *err, size_t errlen)
{
    struct server s;
    if (server_start(&s) != 0)
        return -2;
    int rc = -2;
    struct rf_tls_ctx *x = rf_tls_ctx_new(own_ca ? s.pem : NULL, insecure, alpn, err, errlen);
    struct rf_tls *t = x ? rf_tls_new(x, host, err, errlen) : NULL;
    if (t)
        rc = handshake(&s, t, err, errlen);
    rf_tls_free(t);
    rf_tls_ctx_free(x);
    server_stop(&s);
    return rc;
}

/* The CA is trusted but the certificate names 127.0.0.1 only. */
void test_probetls_name_mismatch(void)
{
    char err[256] = "";
    CHECK_INT(try_handshake(1, 0, RF_TLS_ALPN_HTTP1, "localhost", err, sizeof(err)), -1);
    CHECK(strstr(err, "does not name localhost") && strstr(err, "hostname mismatch"));
}

/* Without the CA the handshake fails and the message says what to do;
 * --insecure gets through. */
void test_probetls_untrusted(void)
{
    char err[256] = "";
    CHECK_INT(try_handshake(0, 0, RF_TLS_ALPN_H2, "127.0.0.1", err, sizeof(err)), -1);
    if (!strstr(err, "not trusted"))
        fprintf(stderr, "  err: %s\n", err);
    CHECK(strstr(err, "not trusted") && strstr(err, "--cacert") && strstr(err, "--insecure"));
    CHECK_INT(try_handshake(0, 1, RF_TLS_ALPN_H2, "127.0.0.1", err, sizeof(err)), 1);
}

void test_probetls_cacert_errors(void)
{
    char err[256] = "";
    CHECK(rf_tls_ctx_new("/nonexistent/ca.pem", 0, RF_TLS_ALPN_HTTP1, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "--cacert /nonexistent/ca.pem") && strstr(err, "No such file"));
    char path[64];
    snprintf(path, sizeof(path), "/tmp/rf-unit-notpem-%d", (int)getpid());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("not a certificate\n", f);
    fclose(f);
    CHECK(rf_tls_ctx_new(path, 0, RF_TLS_ALPN_HTTP1, err, sizeof(err)) == NULL);
    unlink(path);
    CHECK(strstr(err, "no PEM certificate") != NULL);
}
