/* tls.c — see tls.h. */
#include "tickerd/tls.h"

#include <errno.h>
#include <stdarg.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int tls_fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int tls_fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    ERR_clear_error();
    return -1;
}

/* OpenSSL's last error as text ("" when none). */
static const char *tls_ossl_error(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    buf[0] = 0;
    if (e)
        ERR_error_string_n(e, buf, cap);
    return buf;
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static void tls_time_text(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;
    if (!ASN1_TIME_to_tm(t, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, cap, "(unreadable date)");
}

static int tls_check_cert(const char *cert, X509 **out, char *err, size_t cap)
{
    char why[256];
    FILE *f = fopen(cert, "r");
    if (!f)
        return tls_fail(err, cap, "server.tls.cert: cannot read %s: %s", cert, strerror(errno));
    X509 *x = PEM_read_X509(f, NULL, tls_no_passphrase, NULL);
    fclose(f);
    if (!x)
        return tls_fail(err, cap, "server.tls.cert: %s holds no PEM certificate (%s)", cert,
                        tls_ossl_error(why, sizeof(why)));
    char when[40];
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        tls_time_text(X509_get0_notAfter(x), when, sizeof(when));
        X509_free(x);
        return tls_fail(err, cap, "server.tls.cert: the certificate in %s expired at %s", cert,
                        when);
    }
    if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
        tls_time_text(X509_get0_notBefore(x), when, sizeof(when));
        X509_free(x);
        return tls_fail(err, cap, "server.tls.cert: the certificate in %s is not valid before %s",
                        cert, when);
    }
    *out = x;
    return 0;
}

int tls_check(const char *cert, const char *key, const char *ca, char *err, size_t cap)
{
    char why[256];
    X509 *x = NULL;
    if (tls_check_cert(cert, &x, err, cap))
        return -1;
    FILE *f = fopen(key, "r");
    if (!f) {
        X509_free(x);
        return tls_fail(err, cap, "server.tls.key: cannot read %s: %s", key, strerror(errno));
    }
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, tls_no_passphrase, NULL);
    fclose(f);
    if (!pk) {
        X509_free(x);
        return tls_fail(err, cap,
                        "server.tls.key: %s holds no unencrypted PEM private key (%s)", key,
                        tls_ossl_error(why, sizeof(why)));
    }
    int match = X509_check_private_key(x, pk);
    X509_free(x);
    EVP_PKEY_free(pk);
    if (match != 1)
        return tls_fail(err, cap,
                        "server.tls.key: %s does not match the certificate in server.tls.cert (%s)",
                        key, cert);
    /* What lws will do with them: the whole chain file, into a context. */
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return tls_fail(err, cap, "server.tls.cert: out of memory");
    int rc = 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        rc = tls_fail(err, cap, "server.tls.cert: %s: the chain cannot be loaded (%s)", cert,
                      tls_ossl_error(why, sizeof(why)));
    else if (ca && ca[0] && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        f = fopen(ca, "r");
        if (!f)
            rc = tls_fail(err, cap, "server.tls.ca: cannot read %s: %s", ca, strerror(errno));
        else {
            fclose(f);
            rc = tls_fail(err, cap, "server.tls.ca: %s holds no PEM certificate (%s)", ca,
                          tls_ossl_error(why, sizeof(why)));
        }
    }
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

void tls_harden(void *ssl_ctx)
{
    SSL_CTX *ctx = ssl_ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12);
    /* An idle connection gives its 16 KB+ record buffers back between
     * records. lws 4.1.6 also sets this on each server SSL it accepts
     * (openssl-server.c): here it holds for every SSL of the context
     * whatever lws does. What an idle TLS connection still holds (~15 KB,
     * mostly OpenSSL 3.0's SSL object itself) is measured in
     * docs/performance.md#tls-issue-11. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

int tls_reload(void *ssl_ctx, const char *cert, const char *key, const char *ca, char *err,
               size_t cap)
{
    SSL_CTX *ctx = ssl_ctx;
    char why[256];
    if (tls_check(cert, key, ca, err, cap))
        return -1;
    /* The check loaded the same files into a scratch context: these can only
     * fail if the files changed in between (then the next SIGHUP mends it). */
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        return tls_fail(err, cap, "server.tls.cert: %s changed while being loaded (%s)", cert,
                        tls_ossl_error(why, sizeof(why)));
    if (ca && ca[0]) {
        /* A fresh store: a CA taken out of the bundle stops being trusted. */
        X509_STORE *st = X509_STORE_new();
        if (!st || X509_STORE_load_locations(st, ca, NULL) != 1) {
            X509_STORE_free(st);
            return tls_fail(err, cap, "server.tls.ca: %s changed while being loaded", ca);
        }
        SSL_CTX_set_cert_store(ctx, st);
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    ERR_clear_error();
    return 0;
}

int64_t tls_not_after(void *ssl_ctx)
{
    X509 *x = ssl_ctx ? SSL_CTX_get0_certificate(ssl_ctx) : NULL;
    struct tm tm;
    if (!x || !ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

/* ---- the redirect listener ---- */

static int tls_redirect_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                                 void *in, size_t len)
{
    (void)user;
    if (reason != LWS_CALLBACK_HTTP)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    const int *port = lws_get_protocol(wsi)->user;
    char host[256] = "", args[512] = "", loc[1400];
    if (lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) <= 0)
        snprintf(host, sizeof(host), "localhost");
    /* The Host without its port: "[::1]:8080" → "[::1]", "a.b:80" → "a.b". */
    char *colon = strrchr(host, ':');
    if (colon && (host[0] != '[' || colon > strchr(host, ']')))
        *colon = 0;
    for (char *c = host; *c; c++)
        if (*c == '/' || *c == '\\' || *c == '?' || *c == '#' || *c == '@')
            return lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, NULL) ? -1 : 1;
    int alen = lws_hdr_copy(wsi, args, sizeof(args), WSI_TOKEN_HTTP_URI_ARGS);
    char port_text[8] = "";
    if (*port != 443)
        snprintf(port_text, sizeof(port_text), ":%d", *port);
    int n = snprintf(loc, sizeof(loc), "https://%s%s%.*s%s%s", host, port_text, (int)len,
                     (const char *)in, alen > 0 ? "?" : "", alen > 0 ? args : "");
    if (n <= 0 || (size_t)n >= sizeof(loc))
        return lws_return_http_status(wsi, HTTP_STATUS_REQ_URI_TOO_LONG, NULL) ? -1 : 1;
    unsigned char buf[LWS_PRE + 2048], *p = buf + LWS_PRE, *end = buf + sizeof(buf) - 1;
    if (lws_http_redirect(wsi, HTTP_STATUS_MOVED_PERMANENTLY, (unsigned char *)loc, n, &p, end) < 0)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

struct lws_protocols tls_redirect_protocol(const int *https_port)
{
    struct lws_protocols p = {
        .name = TLS_REDIRECT_PROTOCOL_NAME,
        .callback = tls_redirect_callback,
        .user = (void *)https_port,
    };
    return p;
}
