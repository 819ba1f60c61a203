/*
 * auth.h — signed tokens and what they entitle (auth.* in docs/config.md).
 *
 * auth.mode "token": every client session carries a JWT (RFC 7519) signed
 * with HS256 (auth.secret / auth.secret_file) or RS256 / ES256 (the public
 * key in auth.public_key_file). The JOSE part uses OpenSSL's primitives
 * (HMAC with a constant-time compare, EVP_DigestVerify); base64url and JSON
 * are checked strictly: exactly three parts, canonical base64url, a header
 * whose "alg" is the configured one ("none" and the other families are
 * refused, so an RSA public key can never be used as an HMAC secret), no
 * "crit", then the signature, and only then the claims:
 *   sub      string, required: the subject (max_conns counts per sub)
 *   exp      NumericDate, required; nbf optional; both with auth.leeway_s
 *   symbols  array of patterns, required: "BTC-USD", "BTC-*", "*-USD", "*"
 *   max_conns  optional integer: concurrent sessions of this sub
 *   iss / aud  checked when auth.issuer / auth.audience are set
 *
 * Free of lws and sockets (fuzzed on its own: tests/fuzz/fuzz_auth.c); the
 * transports reach it through the session layer and the gate (gate.h).
 * Runs on the lws service thread only.
 */
#ifndef TICKERD_AUTH_H
#define TICKERD_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "tickerd/cfg.h"

#define AUTH_TOKEN_MAX 4096   /* longest token accepted (it rides in a request head) */
#define AUTH_SUB_MAX 128      /* bytes of "sub", with the terminator */
#define AUTH_PATTERNS_MAX 256 /* entries of "symbols" */
#define AUTH_PATTERN_MAX 64   /* bytes of one pattern */

/* Why a token was refused (metric labels, the "reason" clients see). */
typedef enum {
    AUTH_OK = 0,
    AUTH_E_MISSING,       /* no token where one is required */
    AUTH_E_MALFORMED,     /* not three canonical base64url parts of JSON objects, or too long */
    AUTH_E_ALG,           /* "alg" is not the configured algorithm (or "none"), or "crit" */
    AUTH_E_SIGNATURE,     /* the signature does not verify */
    AUTH_E_EXPIRED,       /* now >= exp + leeway */
    AUTH_E_NOT_YET_VALID, /* now < nbf - leeway */
    AUTH_E_CLAIMS,        /* sub / exp / symbols / max_conns missing or malformed, iss / aud wrong */
    AUTH_E_MAX_CONNS,     /* the sub already holds max_conns sessions */
    AUTH_E_SUBJECT,       /* a re-auth naming another sub than the session's */
    AUTH_E_INTERNAL,      /* out of memory, an OpenSSL failure */
    AUTH_E_COUNT
} auth_result;

typedef struct auth_stats {
    uint64_t accepted;                /* sessions authenticated (and re-auths) */
    uint64_t failures[AUTH_E_COUNT];  /* tokens refused, by reason */
    uint64_t forbidden_subscribes;    /* subscribes naming symbols outside the token */
    uint64_t forbidden_requests;      /* HTTP API requests answered 403 for entitlements */
    uint64_t reauth_sent;             /* "reauth" messages sent before an expiry */
    uint64_t expired_closes;          /* sessions closed (4001) at their token's expiry */
    uint64_t unauthenticated_closes;  /* sessions closed (4002) without a valid token */
    uint64_t revoked_subscriptions;   /* subscriptions dropped by a narrower re-auth token */
    uint32_t sessions;                /* gauge: sessions holding a token */
} auth_stats;

typedef struct auth auth;
typedef struct auth_token auth_token;

/* Checks auth.* and loads its key; for mode none, an object that lets
 * everything through (auth_enabled 0). NULL with err naming the key
 * ("auth.public_key_file: ..."). cfg.c calls it to validate (then drops it),
 * the app to serve. */
auth *auth_create(const cfg_auth *c, char *err, size_t errcap);
void auth_destroy(auth *a);
/* A reload: new keys, issuer, audience, leeway and timings for the next
 * verifications (sessions keep their tokens until those expire). The mode
 * needs a restart: a changed one is kept and said in err (returns 1). -1
 * with err when the new key cannot be loaded (everything unchanged). */
int auth_reload(auth *a, const cfg_auth *c, char *err, size_t errcap);
int auth_enabled(const auth *a);
int64_t auth_reauth_before_us(const auth *a);
int64_t auth_timeout_us(const auth *a);

/* Verifies a token (len bytes, need not be terminated) at now_us (wall
 * clock). NULL with *why on refusal; refusals are counted by reason. */
auth_token *auth_verify(auth *a, const char *jwt, size_t len, int64_t now_us, auth_result *why);
void auth_token_free(auth_token *t);
const char *auth_token_sub(const auth_token *t);
/* exp + leeway in µs since the epoch: the session ends there. */
int64_t auth_token_deadline_us(const auth_token *t);
uint32_t auth_token_max_conns(const auth_token *t); /* 0 = no limit */
size_t auth_token_npatterns(const auth_token *t);
const char *auth_token_pattern(const auth_token *t, size_t i);
/* Does the token entitle symbol? */
int auth_token_allows(const auth_token *t, const char *symbol);
/* Does it hold the pattern "*" (so "*" needs no expansion)? */
int auth_token_allows_all(const auth_token *t);
/* The glob itself ('*' matches any run, also empty), for tests. */
int auth_pattern_match(const char *pattern, const char *symbol);

/* Concurrent sessions per sub: acquire before a session starts serving
 * (AUTH_E_MAX_CONNS, counted, when the sub is at its token's max_conns),
 * release when it ends. auth_would_admit only asks (before an upgrade). */
auth_result auth_session_acquire(auth *a, const auth_token *t);
void auth_session_release(auth *a, const char *sub);
int auth_would_admit(const auth *a, const auth_token *t);

/* "missing", "malformed", "bad_alg", ... (metric labels). */
const char *auth_result_name(auth_result r);
/* A sentence for clients and logs. */
const char *auth_result_text(auth_result r);
void auth_count_failure(auth *a, auth_result r);
auth_stats *auth_counters(auth *a);
const auth_stats *auth_get_stats(const auth *a);

#endif
