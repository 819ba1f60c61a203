/*
 * tls.h — TLS on the listener (server.tls.*): checking the PEM files before
 * lws sees them, the modern defaults put on the serving vhost's SSL_CTX,
 * re-reading the certificate on SIGHUP, and the optional plain listener that
 * answers 301 to https (server.tls.redirect_port).
 *
 * Why check before lws: lws 4.1.6 reports an unreadable, mismatched or expired
 * certificate as a log line and a failed vhost (or not at all, for an expired
 * one), which tickerd could only turn into "vhost creation failed". The
 * operator is owed the key and the reason (exit 2).
 */
#ifndef TICKERD_TLS_H
#define TICKERD_TLS_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

/* What /metrics shows of TLS (the app keeps it). */
typedef struct tls_stats {
    int64_t not_after;        /* the certificate in use expires then (Unix s); 0 = no TLS */
    uint64_t reloads;         /* SIGHUPs that re-read the certificate */
    uint64_t reload_failures; /* SIGHUPs whose files were refused (the old one kept) */
} tls_stats;

/* TLS 1.2 suites: ECDHE key exchange, AEAD ciphers only (TLS 1.3 keeps
 * OpenSSL's own, all AEAD). No RSA key exchange, CBC, RC4, 3DES, DHE. */
#define TLS_CIPHERS_12                                                                   \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                          \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                          \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* The files server.tls names: cert a readable PEM certificate (chain) valid
 * now, key a readable unencrypted PEM private key matching it, ca (may be ""
 * or NULL) a readable PEM bundle. 0, or -1 with a message in err that starts
 * with the key at fault ("server.tls.key: ..."). No side effects. */
int tls_check(const char *cert, const char *key, const char *ca, char *err, size_t cap);

/* Modern defaults on a server SSL_CTX (lws' vhost context, from the
 * LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS callback): TLS 1.2 at
 * least, no renegotiation, no compression, server cipher preference. */
void tls_harden(void *ssl_ctx);

/* SIGHUP: re-reads cert, key (and ca when ca_too) into the live SSL_CTX after
 * tls_check passed on them. Handshakes from then on get the new certificate;
 * connections already up keep their session (OpenSSL copies the certificate
 * into each SSL at SSL_new). 0, or -1 with err (the context is unchanged when
 * the check fails). */
int tls_reload(void *ssl_ctx, const char *cert, const char *key, const char *ca, char *err,
               size_t cap);

/* notAfter of the certificate in ssl_ctx as Unix seconds (0 when none). */
int64_t tls_not_after(void *ssl_ctx);

/* The plain listener's protocol: every request is answered 301 to
 * https://<its Host without port>:<*https_port><path>[?query]. */
struct lws_protocols tls_redirect_protocol(const int *https_port);
#define TLS_REDIRECT_PROTOCOL_NAME "tickerd-redirect"

#endif
