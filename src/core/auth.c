/* auth.c — see auth.h.
 *
 * Order of the checks in auth_verify, each a reason of its own: size and
 * shape (three canonical base64url parts), the header (a JSON object whose
 * "alg" is exactly the configured one), the signature over the first two
 * parts as sent, and only then the claims. Nothing of the payload is
 * parsed before its signature has been checked. */
#include "tickerd/auth.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <strings.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_BUCKETS 1024
#define AUTH_SECRET_MIN 32 /* RFC 7518 §3.2: an HS256 key of at least the hash's size */
#define AUTH_HEADER_MAX 1024

typedef enum { AUTH_ALG_HS256 = 1, AUTH_ALG_RS256, AUTH_ALG_ES256 } auth_alg;

typedef struct auth_key {
    auth_alg alg;
    unsigned char secret[512];
    size_t secret_len;
    EVP_PKEY *pkey;
} auth_key;

/* A sub with sessions: its count (entries exist only while > 0). */
typedef struct auth_subject {
    struct auth_subject *next;
    uint32_t count;
    char sub[];
} auth_subject;

struct auth {
    int mode;
    auth_key key;
    char issuer[256], audience[256];
    int64_t leeway_us, reauth_before_us, timeout_us;
    auth_stats stats;
    auth_subject *subjects[AUTH_BUCKETS];
};

struct auth_token {
    int64_t deadline_us;
    uint32_t max_conns;
    uint32_t npatterns;
    uint8_t all;
    char sub[AUTH_SUB_MAX];
    const char *patterns[]; /* then the patterns' text */
};

static const char *const result_names[AUTH_E_COUNT] = {
    "ok",      "missing",       "malformed",  "bad_alg",     "bad_signature", "expired",
    "not_yet_valid", "bad_claims", "max_conns", "subject_changed", "internal",
};
static const char *const result_texts[AUTH_E_COUNT] = {
    "ok",
    "a token is required: Authorization: Bearer, the token query parameter, or an auth op first",
    "the token is not a JWT (three base64url parts of JSON objects)",
    "the token's alg is not the one this server verifies",
    "the token's signature does not verify",
    "the token has expired",
    "the token is not valid yet (nbf)",
    "the token's claims are missing or malformed (sub, exp, symbols, max_conns, iss, aud)",
    "this subject already holds max_conns sessions",
    "a new token must name the session's sub",
    "internal error checking the token",
};

const char *auth_result_name(auth_result r) { return r < AUTH_E_COUNT ? result_names[r] : "?"; }
const char *auth_result_text(auth_result r) { return r < AUTH_E_COUNT ? result_texts[r] : "?"; }
auth_stats *auth_counters(auth *a) { return &a->stats; }
const auth_stats *auth_get_stats(const auth *a) { return &a->stats; }
int auth_enabled(const auth *a) { return a && a->mode == CFG_AUTH_TOKEN; }
int64_t auth_reauth_before_us(const auth *a) { return a->reauth_before_us; }
int64_t auth_timeout_us(const auth *a) { return a->timeout_us; }

void auth_count_failure(auth *a, auth_result r)
{
    if (a && r > AUTH_OK && r < AUTH_E_COUNT)
        a->stats.failures[r]++;
}

/* ---- keys ---- */

static int auth_fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int auth_fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *auth_ssl_error(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (!e)
        snprintf(buf, cap, "no key found");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}

static void auth_key_free(auth_key *k)
{
    EVP_PKEY_free(k->pkey);
    OPENSSL_cleanse(k->secret, sizeof(k->secret));
    memset(k, 0, sizeof(*k));
}

static int auth_read_secret_file(const char *path, auth_key *k, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return auth_fail(err, cap, "auth.secret_file: %s: %s", path, strerror(errno));
    size_t n = fread(k->secret, 1, sizeof(k->secret), f);
    int more = fgetc(f) != EOF;
    fclose(f);
    if (more)
        return auth_fail(err, cap, "auth.secret_file: %s: longer than %zu bytes", path,
                         sizeof(k->secret));
    /* an editor's (or echo's) final newline is not part of the secret */
    while (n && (k->secret[n - 1] == '\n' || k->secret[n - 1] == '\r'))
        n--;
    k->secret_len = n;
    return 0;
}

static EVP_PKEY *auth_read_pem(const char *path, char *err, size_t cap)
{
    char why[256];
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        auth_fail(err, cap, "auth.public_key_file: %s: %s", path, strerror(errno));
        ERR_clear_error();
        return NULL;
    }
    EVP_PKEY *k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    if (!k) { /* a certificate carries the key as well */
        ERR_clear_error();
        (void)BIO_reset(b);
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (x) {
            k = X509_get_pubkey(x);
            X509_free(x);
        }
    }
    BIO_free(b);
    if (!k)
        auth_fail(err, cap,
                  "auth.public_key_file: %s: not a PEM public key (BEGIN PUBLIC KEY) or certificate (%s)",
                  path, auth_ssl_error(why, sizeof(why)));
    ERR_clear_error();
    return k;
}

static int auth_load_key(const cfg_auth *c, auth_key *k, char *err, size_t cap)
{
    memset(k, 0, sizeof(*k));
    int nkeys = !!c->secret[0] + !!c->secret_file[0] + !!c->public_key_file[0];
    if (nkeys != 1)
        return auth_fail(err, cap,
                         "auth: mode \"token\" needs exactly one of auth.secret, auth.secret_file "
                         "(HS256) or auth.public_key_file (RS256, ES256); %d given",
                         nkeys);
    const char *want = c->algorithm;
    if (want[0] && strcmp(want, "HS256") && strcmp(want, "RS256") && strcmp(want, "ES256"))
        return auth_fail(err, cap, "auth.algorithm: must be \"HS256\", \"RS256\" or \"ES256\"");
    if (!c->public_key_file[0]) {
        if (want[0] && strcmp(want, "HS256"))
            return auth_fail(err, cap, "auth.algorithm: %s needs auth.public_key_file, not a secret",
                             want);
        k->alg = AUTH_ALG_HS256;
        if (c->secret[0]) {
            k->secret_len = strlen(c->secret);
            memcpy(k->secret, c->secret, k->secret_len);
        } else if (auth_read_secret_file(c->secret_file, k, err, cap)) {
            return -1;
        }
        if (k->secret_len < AUTH_SECRET_MIN) {
            auth_key_free(k);
            return auth_fail(err, cap, "%s: at least %d bytes (HS256 needs a 256-bit key)",
                             c->secret[0] ? "auth.secret" : "auth.secret_file", AUTH_SECRET_MIN);
        }
        return 0;
    }
    if (!strcmp(want, "HS256"))
        return auth_fail(err, cap, "auth.algorithm: HS256 needs auth.secret or auth.secret_file");
    EVP_PKEY *pk = auth_read_pem(c->public_key_file, err, cap);
    if (!pk)
        return -1;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        k->alg = AUTH_ALG_RS256;
        if (EVP_PKEY_get_bits(pk) < 2048) {
            EVP_PKEY_free(pk);
            return auth_fail(err, cap, "auth.public_key_file: an RSA key of at least 2048 bits");
        }
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64] = "";
        size_t glen = 0;
        if (!EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) ||
            (strcmp(group, "prime256v1") && strcmp(group, "P-256"))) {
            EVP_PKEY_free(pk);
            ERR_clear_error();
            return auth_fail(err, cap, "auth.public_key_file: ES256 needs an EC key on P-256, not %s",
                             group[0] ? group : "this curve");
        }
        k->alg = AUTH_ALG_ES256;
    } else {
        EVP_PKEY_free(pk);
        return auth_fail(err, cap, "auth.public_key_file: an RSA or EC P-256 key (RS256, ES256)");
    }
    if (want[0] && strcmp(want, k->alg == AUTH_ALG_RS256 ? "RS256" : "ES256")) {
        EVP_PKEY_free(pk);
        return auth_fail(err, cap, "auth.algorithm: %s does not match the %s key in auth.public_key_file",
                         want, k->alg == AUTH_ALG_RS256 ? "RSA" : "EC");
    }
    k->pkey = pk;
    return 0;
}

static void auth_apply(auth *a, const cfg_auth *c)
{
    snprintf(a->issuer, sizeof(a->issuer), "%s", c->issuer);
    snprintf(a->audience, sizeof(a->audience), "%s", c->audience);
    a->leeway_us = (int64_t)c->leeway_s * 1000000;
    a->reauth_before_us = (int64_t)c->reauth_before_s * 1000000;
    a->timeout_us = (int64_t)c->auth_timeout_ms * 1000;
}

auth *auth_create(const cfg_auth *c, char *err, size_t errcap)
{
    auth *a = calloc(1, sizeof(*a));
    if (!a) {
        auth_fail(err, errcap, "auth: out of memory");
        return NULL;
    }
    a->mode = c->mode;
    auth_apply(a, c);
    if (a->mode == CFG_AUTH_TOKEN && auth_load_key(c, &a->key, err, errcap)) {
        free(a);
        return NULL;
    }
    return a;
}

void auth_destroy(auth *a)
{
    if (!a)
        return;
    auth_key_free(&a->key);
    for (int i = 0; i < AUTH_BUCKETS; i++)
        while (a->subjects[i]) {
            auth_subject *s = a->subjects[i];
            a->subjects[i] = s->next;
            free(s);
        }
    free(a);
}

int auth_reload(auth *a, const cfg_auth *c, char *err, size_t errcap)
{
    auth_key k;
    if (a->mode == CFG_AUTH_TOKEN && auth_load_key(c, &k, err, errcap))
        return -1;
    if (a->mode == CFG_AUTH_TOKEN) {
        auth_key_free(&a->key);
        a->key = k;
    }
    auth_apply(a, c);
    if (c->mode != a->mode) {
        snprintf(err, errcap, "auth.mode cannot change live; keeping \"%s\" until a restart",
                 a->mode == CFG_AUTH_TOKEN ? "token" : "none");
        return 1;
    }
    return 0;
}

/* ---- base64url (RFC 4648 §5, no padding, canonical) ---- */

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes in[0..n) into out (room for n * 3 / 4 bytes); -1 when a byte is
 * outside the alphabet, the length is impossible, or the unused low bits of
 * the last character are not zero (a second spelling of the same bytes). */
static long b64url_decode(const char *in, size_t n, unsigned char *out)
{
    if (n % 4 == 1)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    long o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc) /* leftover bits must be zero */
        return -1;
    return o;
}

/* ---- verification ---- */

static json_t *auth_part_json(const char *p, size_t n, size_t max)
{
    if (!n || n > max)
        return NULL;
    unsigned char *buf = malloc(n * 3 / 4 + 1);
    if (!buf)
        return NULL;
    long len = b64url_decode(p, n, buf);
    json_t *j = NULL;
    if (len > 0) {
        json_error_t e;
        j = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, &e);
        if (j && !json_is_object(j)) {
            json_decref(j);
            j = NULL;
        }
    }
    free(buf);
    return j;
}

static auth_result auth_check_header(const auth *a, const json_t *h)
{
    const char *alg = json_string_value(json_object_get(h, "alg"));
    static const char *const names[] = {"", "HS256", "RS256", "ES256"};
    if (!alg || strcmp(alg, names[a->key.alg]))
        return AUTH_E_ALG;
    /* RFC 7515 §4.1.11: extensions we do not know must be refused */
    if (json_object_get(h, "crit"))
        return AUTH_E_ALG;
    const json_t *typ = json_object_get(h, "typ");
    if (typ && !(json_is_string(typ) && !strcasecmp(json_string_value(typ), "JWT")))
        return AUTH_E_MALFORMED;
    return AUTH_OK;
}

static auth_result auth_check_signature(const auth *a, const char *signed_part, size_t signed_len,
                                        const unsigned char *sig, size_t siglen)
{
    if (a->key.alg == AUTH_ALG_HS256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        if (!HMAC(EVP_sha256(), a->key.secret, (int)a->key.secret_len,
                  (const unsigned char *)signed_part, signed_len, mac, &maclen))
            return AUTH_E_INTERNAL;
        /* constant time: how much of a forged MAC matched must not show */
        return siglen == maclen && !CRYPTO_memcmp(mac, sig, maclen) ? AUTH_OK : AUTH_E_SIGNATURE;
    }
    unsigned char *der = NULL;
    const unsigned char *use = sig;
    size_t uselen = siglen;
    if (a->key.alg == AUTH_ALG_ES256) {
        /* JWS carries R || S (RFC 7518 §3.4); OpenSSL verifies DER */
        if (siglen != 64)
            return AUTH_E_SIGNATURE;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
        int dlen = -1;
        if (es && r && s && ECDSA_SIG_set0(es, r, s)) {
            r = s = NULL; /* owned by es now */
            dlen = i2d_ECDSA_SIG(es, &der);
        }
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        if (dlen <= 0) {
            ERR_clear_error();
            return AUTH_E_INTERNAL;
        }
        use = der;
        uselen = (size_t)dlen;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, a->key.pkey) == 1 &&
             EVP_DigestVerify(ctx, use, uselen, (const unsigned char *)signed_part, signed_len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ERR_clear_error();
    return ok ? AUTH_OK : AUTH_E_SIGNATURE;
}

static int auth_text_ok(const char *s, size_t n, size_t max)
{
    if (!n || n >= max)
        return 0;
    for (size_t i = 0; i < n; i++) /* echoed in replies and logs: printable ASCII, no quotes */
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '"' || s[i] == '\\')
            return 0;
    return 1;
}

static int auth_aud_ok(const auth *a, const json_t *aud)
{
    if (!a->audience[0])
        return 1;
    if (json_is_string(aud))
        return !strcmp(json_string_value(aud), a->audience);
    size_t i;
    const json_t *v;
    json_array_foreach(aud, i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), a->audience))
            return 1;
    return 0;
}

static auth_token *auth_claims(const auth *a, const json_t *p, int64_t now_us, auth_result *why)
{
    *why = AUTH_E_CLAIMS;
    const json_t *sub = json_object_get(p, "sub"), *exp = json_object_get(p, "exp"),
                 *nbf = json_object_get(p, "nbf"), *syms = json_object_get(p, "symbols"),
                 *mc = json_object_get(p, "max_conns");
    if (!json_is_string(sub) || !auth_text_ok(json_string_value(sub), json_string_length(sub), AUTH_SUB_MAX))
        return NULL;
    if (!json_is_number(exp) || (nbf && !json_is_number(nbf)))
        return NULL;
    if (!json_is_array(syms) || json_array_size(syms) > AUTH_PATTERNS_MAX)
        return NULL;
    if (mc && !(json_is_integer(mc) && json_integer_value(mc) >= 1 && json_integer_value(mc) <= 1000000))
        return NULL;
    if (a->issuer[0] && !(json_is_string(json_object_get(p, "iss")) &&
                          !strcmp(json_string_value(json_object_get(p, "iss")), a->issuer)))
        return NULL;
    if (!auth_aud_ok(a, json_object_get(p, "aud")))
        return NULL;
    double e = json_number_value(exp);
    if (!isfinite(e) || e < 0 || e > 1e12)
        return NULL;
    /* times in µs: the leeway is for the issuer's clock, not ours */
    int64_t exp_us = (int64_t)(e * 1e6);
    if (now_us >= exp_us + a->leeway_us) {
        *why = AUTH_E_EXPIRED;
        return NULL;
    }
    if (nbf) {
        double nb = json_number_value(nbf);
        if (!isfinite(nb) || nb > 1e12)
            return NULL;
        if (now_us < (int64_t)(nb * 1e6) - a->leeway_us) {
            *why = AUTH_E_NOT_YET_VALID;
            return NULL;
        }
    }
    size_t n = json_array_size(syms), text = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(syms, i);
        if (!json_is_string(v) || !auth_text_ok(json_string_value(v), json_string_length(v), AUTH_PATTERN_MAX))
            return NULL;
        text += json_string_length(v) + 1;
    }
    auth_token *t = calloc(1, sizeof(*t) + n * sizeof(char *) + text);
    if (!t) {
        *why = AUTH_E_INTERNAL;
        return NULL;
    }
    char *o = (char *)(t->patterns + n);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(syms, i);
        size_t len = json_string_length(v);
        memcpy(o, json_string_value(v), len + 1);
        t->patterns[i] = o;
        t->all |= len == 1 && o[0] == '*';
        o += len + 1;
    }
    t->npatterns = (uint32_t)n;
    t->deadline_us = exp_us + a->leeway_us;
    t->max_conns = mc ? (uint32_t)json_integer_value(mc) : 0;
    memcpy(t->sub, json_string_value(sub), json_string_length(sub) + 1);
    *why = AUTH_OK;
    return t;
}

auth_token *auth_verify(auth *a, const char *jwt, size_t len, int64_t now_us, auth_result *why)
{
    auth_result r = AUTH_E_MALFORMED;
    auth_token *t = NULL;
    json_t *h = NULL, *p = NULL;
    unsigned char *sig = NULL;
    if (!a || a->mode != CFG_AUTH_TOKEN) {
        r = AUTH_E_INTERNAL;
        goto out;
    }
    if (!jwt || !len) {
        r = AUTH_E_MISSING;
        goto out;
    }
    if (len > AUTH_TOKEN_MAX)
        goto out;
    const char *d1 = memchr(jwt, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jwt)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - jwt)))
        goto out; /* exactly three parts (a JWE has five) */
    size_t hlen = (size_t)(d1 - jwt), plen = (size_t)(d2 - d1 - 1), slen = len - (size_t)(d2 + 1 - jwt);
    h = auth_part_json(jwt, hlen, AUTH_HEADER_MAX);
    if (!h)
        goto out;
    if ((r = auth_check_header(a, h)) != AUTH_OK)
        goto out;
    r = AUTH_E_MALFORMED;
    if (!plen || !slen)
        goto out; /* an empty signature is the "none" algorithm in disguise */
    sig = malloc(slen * 3 / 4 + 1);
    if (!sig) {
        r = AUTH_E_INTERNAL;
        goto out;
    }
    long siglen = b64url_decode(d2 + 1, slen, sig);
    if (siglen <= 0)
        goto out;
    /* the payload's alphabet is checked before any cryptography runs */
    for (size_t i = 0; i < plen; i++)
        if (b64_val((unsigned char)d1[1 + i]) < 0)
            goto out;
    if ((r = auth_check_signature(a, jwt, (size_t)(d2 - jwt), sig, (size_t)siglen)) != AUTH_OK)
        goto out;
    r = AUTH_E_MALFORMED;
    p = auth_part_json(d1 + 1, plen, AUTH_TOKEN_MAX);
    if (!p)
        goto out;
    t = auth_claims(a, p, now_us, &r);
out:
    json_decref(h);
    json_decref(p);
    free(sig);
    if (!t)
        auth_count_failure(a, r);
    *why = t ? AUTH_OK : r;
    return t;
}

void auth_token_free(auth_token *t) { free(t); }
const char *auth_token_sub(const auth_token *t) { return t->sub; }
int64_t auth_token_deadline_us(const auth_token *t) { return t->deadline_us; }
uint32_t auth_token_max_conns(const auth_token *t) { return t->max_conns; }
size_t auth_token_npatterns(const auth_token *t) { return t->npatterns; }
const char *auth_token_pattern(const auth_token *t, size_t i) { return t->patterns[i]; }
int auth_token_allows_all(const auth_token *t) { return t->all; }

/* Glob with '*' only: the greedy walk that backs up to the last star,
 * O(len(pattern) × len(symbol)) at worst, both bounded (64 bytes). */
int auth_pattern_match(const char *p, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return !*p;
}

int auth_token_allows(const auth_token *t, const char *symbol)
{
    if (t->all)
        return 1;
    for (uint32_t i = 0; i < t->npatterns; i++)
        if (auth_pattern_match(t->patterns[i], symbol))
            return 1;
    return 0;
}

/* ---- sessions per sub ---- */

static unsigned auth_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % AUTH_BUCKETS;
}

static auth_subject **auth_find(const auth *a, const char *sub)
{
    auth_subject **pp = (auth_subject **)&a->subjects[auth_hash(sub)];
    while (*pp && strcmp((*pp)->sub, sub))
        pp = &(*pp)->next;
    return pp;
}

int auth_would_admit(const auth *a, const auth_token *t)
{
    if (!t->max_conns)
        return 1;
    auth_subject *s = *auth_find(a, t->sub);
    return !s || s->count < t->max_conns;
}

auth_result auth_session_acquire(auth *a, const auth_token *t)
{
    auth_subject **pp = auth_find(a, t->sub);
    if (t->max_conns && *pp && (*pp)->count >= t->max_conns) {
        auth_count_failure(a, AUTH_E_MAX_CONNS);
        return AUTH_E_MAX_CONNS;
    }
    if (!*pp) {
        size_t n = strlen(t->sub);
        auth_subject *s = calloc(1, sizeof(*s) + n + 1);
        if (!s) {
            auth_count_failure(a, AUTH_E_INTERNAL);
            return AUTH_E_INTERNAL;
        }
        memcpy(s->sub, t->sub, n + 1);
        *pp = s;
    }
    (*pp)->count++;
    a->stats.sessions++;
    a->stats.accepted++;
    return AUTH_OK;
}

void auth_session_release(auth *a, const char *sub)
{
    auth_subject **pp = auth_find(a, sub);
    if (!*pp)
        return;
    a->stats.sessions--;
    if (--(*pp)->count == 0) {
        auth_subject *s = *pp;
        *pp = s->next;
        free(s);
    }
}
