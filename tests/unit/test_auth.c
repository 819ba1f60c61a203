/* The JWT verifier (src/core/auth.c) on fixed vectors: tokens signed once by
 * node:crypto (HS256 with a known secret, RS256 / ES256 with the keys whose
 * public halves are below), checked at fixed times. Also base64url
 * strictness, alg confusion, the claims, the glob and max_conns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tickerd/auth.h"

#define NOW_US (1700000000LL * 1000000) /* between nbf 1e9 and exp 2e9 */
#define SECRET "unit-test-secret-0123456789abcdef-xyz"

static const char HS_GOOD[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMCwibmJmIjoxMDAwMDAwMDAwLCJzeW1ib2xzIjpbIkJUQy0qIiwiKi1VU0QiXSwibWF4X2Nvbm5zIjoyfQ.RXl4lYFKlMRXNmRUz24JKGNXogFLlau6VSANikJbTOo";
static const char HS_OTHER_KEY[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMCwibmJmIjoxMDAwMDAwMDAwLCJzeW1ib2xzIjpbIkJUQy0qIiwiKi1VU0QiXSwibWF4X2Nvbm5zIjoyfQ.qAytHBDC7pCHvXt82xNDNM9KFb8blJRYjNuZ_flbnZQ";
static const char HS_NONE[] =
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMCwibmJmIjoxMDAwMDAwMDAwLCJzeW1ib2xzIjpbIkJUQy0qIiwiKi1VU0QiXSwibWF4X2Nvbm5zIjoyfQ.";
static const char HS_NO_SYMBOLS[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMH0.Gq1QZhGYcZXtopp2xAhCKdK-nvbK1404Ri_98ZIvrss";
static const char HS_CRIT[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImNyaXQiOlsiZXhwIl19.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMCwibmJmIjoxMDAwMDAwMDAwLCJzeW1ib2xzIjpbIkJUQy0qIiwiKi1VU0QiXSwibWF4X2Nvbm5zIjoyfQ.55yNrwGBbyIAQVRz-NboU03BqxI8tQrcnwzrbQSUysI";
static const char HS_ISS_AUD[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMCwibmJmIjoxMDAwMDAwMDAwLCJzeW1ib2xzIjpbIkJUQy0qIiwiKi1VU0QiXSwibWF4X2Nvbm5zIjoyLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiYXVkIjpbImEiLCJ0aWNrZXJkIl19.jhcodWOhW9qoJjjgjIJtywHqAAnGycnWUQS4UY5ZBew";
static const char RS_GOOD[] =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMCwibmJmIjoxMDAwMDAwMDAwLCJzeW1ib2xzIjpbIkJUQy0qIiwiKi1VU0QiXSwibWF4X2Nvbm5zIjoyfQ.ofOQjbL2WU6ZCnL_f3DuB7LXDnloxpXRgfTRDOLae-I_SrehM1ugFVY6ENQE3BdYq_TboIvZIqXPISeXFEAiDQSM_l34D-NB6cWDymdXeAbHyEp0xXj8VvyLR0ECyS7H0FgEzUnLj16lIUpUV_ReG2OczxEilLZrnyeRtVcOldoFtmr2Z_5wrVBTh6YFIQa7axl472gAyds4C5DxipUV-qkMEcVmIIFhlaYq0hOzDY1Bgm7ggO7DJW8uamJLWw9dEB3NvDWTBz5J-xFFLMSMfFZH0EyhDpxkyLO30_LxnflemeAXx_PhYkNMJPIzxwNNoEtS35enMFjwJn5hyPb2Nw";
static const char RS_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAs55YrRddJZ25Lswf2DMs\n"
    "uM0Pi/WFpLiwjU183VVRrb084NNvqP75cjuP9dd2OiwQ9chUQIFjC3yzRsY7msPu\n"
    "PwvFl4QQKNtut5qeGSKHK0pSom+L16hGO+YA4+KLbSsrBDH0ETfNVZrkodO03unI\n"
    "ZrSgTnWheNr8hy3XIjfu+FBEzwhBI+n7FCSbvUIIUQ5j7me9pN3JUK7P7vHmaBZm\n"
    "QVBkZc8EK0uku7h+HoPZAYQNeWr/o7Fs+cYFvyf8HUIAwVpdnWlSZlJnubXFzhiG\n"
    "POJfKzwE6WVjZG5CkKNrTiqV3K6+pi08MYnrCtUrX6KARWMDvJ+I2ydr6Gr/fr04\n"
    "YwIDAQAB\n"
    "-----END PUBLIC KEY-----\n"
    "";
static const char RS_CONFUSED[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMCwibmJmIjoxMDAwMDAwMDAwLCJzeW1ib2xzIjpbIkJUQy0qIiwiKi1VU0QiXSwibWF4X2Nvbm5zIjoyfQ.gnIqfyejtiF6gsa2-hK6w5-b8Ao9htT3aoqYjBAF3TU";
static const char ES_GOOD[] =
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMCwibmJmIjoxMDAwMDAwMDAwLCJzeW1ib2xzIjpbIkJUQy0qIiwiKi1VU0QiXSwibWF4X2Nvbm5zIjoyfQ.lcx3NJvidEHOgV0VB1o5O3rHQGEQWGno3aDZ1SZDP2z1pmM0SgJ9Na1_UvWVUcjKBTssqRb6oxM3ZSeQRFGrnA";
static const char ES_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEjt5C+Kn22Fyhmr88yEctvSa8IkPd\n"
    "bAaAvODe5aVZJ9dv/n0AL3sUNxfD/WGREGHNrJl+mWI2GuZfXleX/VncKA==\n"
    "-----END PUBLIC KEY-----\n"
    "";

static auth *make(const char *secret, const char *pem, cfg_auth *c)
{
    char err[512] = "";
    memset(c, 0, sizeof(*c));
    c->mode = CFG_AUTH_TOKEN;
    c->reauth_before_s = 30;
    c->auth_timeout_ms = 1000;
    if (secret)
        snprintf(c->secret, sizeof(c->secret), "%s", secret);
    if (pem) {
        char path[] = "/tmp/test_auth_XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        CHECK(write(fd, pem, strlen(pem)) == (ssize_t)strlen(pem));
        close(fd);
        snprintf(c->public_key_file, sizeof(c->public_key_file), "%s", path);
        auth *a = auth_create(c, err, sizeof(err));
        unlink(path);
        if (!a)
            fprintf(stderr, "  %s\n", err);
        return a;
    }
    auth *a = auth_create(c, err, sizeof(err));
    if (!a)
        fprintf(stderr, "  %s\n", err);
    return a;
}

static auth_result verify(auth *a, const char *tok, int64_t now)
{
    auth_result why = AUTH_E_COUNT;
    auth_token *t = auth_verify(a, tok, strlen(tok), now, &why);
    CHECK((t != NULL) == (why == AUTH_OK));
    auth_token_free(t);
    return why;
}

static void hs256(void)
{
    cfg_auth c;
    auth *a = make(SECRET, NULL, &c);
    CHECK(a != NULL);
    if (!a)
        return;
    auth_result why;
    auth_token *t = auth_verify(a, HS_GOOD, strlen(HS_GOOD), NOW_US, &why);
    CHECK(t && why == AUTH_OK);
    if (t) {
        CHECK(!strcmp(auth_token_sub(t), "alice"));
        CHECK(auth_token_deadline_us(t) == 2000000000LL * 1000000);
        CHECK(auth_token_max_conns(t) == 2);
        CHECK(auth_token_npatterns(t) == 2 && !strcmp(auth_token_pattern(t, 1), "*-USD"));
        CHECK(auth_token_allows(t, "BTC-EUR") && auth_token_allows(t, "ETH-USD"));
        CHECK(!auth_token_allows(t, "ETH-EUR") && !auth_token_allows(t, "USD-JPY"));
        CHECK(!auth_token_allows_all(t));
        /* max_conns 2 */
        CHECK(auth_session_acquire(a, t) == AUTH_OK);
        CHECK(auth_session_acquire(a, t) == AUTH_OK);
        CHECK(!auth_would_admit(a, t));
        CHECK(auth_session_acquire(a, t) == AUTH_E_MAX_CONNS);
        auth_session_release(a, "alice");
        CHECK(auth_would_admit(a, t));
        auth_session_release(a, "alice");
        CHECK(auth_get_stats(a)->sessions == 0);
        auth_token_free(t);
    }
    CHECK(verify(a, HS_OTHER_KEY, NOW_US) == AUTH_E_SIGNATURE);
    CHECK(verify(a, HS_NONE, NOW_US) == AUTH_E_ALG);
    CHECK(verify(a, HS_CRIT, NOW_US) == AUTH_E_ALG);
    CHECK(verify(a, HS_NO_SYMBOLS, NOW_US) == AUTH_E_CLAIMS);
    CHECK(verify(a, RS_GOOD, NOW_US) == AUTH_E_ALG);
    /* exp 2e9, nbf 1e9, leeway 0 */
    CHECK(verify(a, HS_GOOD, 2000000000LL * 1000000) == AUTH_E_EXPIRED);
    CHECK(verify(a, HS_GOOD, 1999999999LL * 1000000) == AUTH_OK);
    CHECK(verify(a, HS_GOOD, 999999999LL * 1000000) == AUTH_E_NOT_YET_VALID);
    CHECK(auth_get_stats(a)->failures[AUTH_E_EXPIRED] == 1);
    auth_destroy(a);

    /* leeway: 5 s either side */
    c.leeway_s = 5;
    char err[256];
    a = auth_create(&c, err, sizeof(err));
    CHECK(verify(a, HS_GOOD, 2000000004LL * 1000000) == AUTH_OK);
    CHECK(verify(a, HS_GOOD, 2000000005LL * 1000000) == AUTH_E_EXPIRED);
    CHECK(verify(a, HS_GOOD, 999999996LL * 1000000) == AUTH_OK);
    auth_destroy(a);

    /* issuer and audience */
    snprintf(c.issuer, sizeof(c.issuer), "https://issuer.example");
    snprintf(c.audience, sizeof(c.audience), "tickerd");
    a = auth_create(&c, err, sizeof(err));
    CHECK(verify(a, HS_ISS_AUD, NOW_US) == AUTH_OK);
    CHECK(verify(a, HS_GOOD, NOW_US) == AUTH_E_CLAIMS); /* no iss / aud */
    auth_destroy(a);
}

/* Shape and base64url: every mutation is refused before any key is used. */
static void malformed(void)
{
    cfg_auth c;
    auth *a = make(SECRET, NULL, &c);
    if (!a)
        return;
    char buf[1024];
    const char *bad[] = {"", "a", "a.b", "a.b.c.d", "..", "eyJ.eyJ.", "x.y.z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        auth_result r = verify(a, bad[i], NOW_US);
        CHECK(r == AUTH_E_MALFORMED || (i == 0 && r == AUTH_E_MISSING));
    }
    /* padding, and a non-canonical last character of the signature */
    snprintf(buf, sizeof(buf), "%s=", HS_GOOD);
    CHECK(verify(a, buf, NOW_US) == AUTH_E_MALFORMED);
    snprintf(buf, sizeof(buf), "%s", HS_GOOD);
    char *last = buf + strlen(buf) - 1; /* 'o': 43 chars, 2 low bits unused */
    *last = 'p';
    CHECK(verify(a, buf, NOW_US) == AUTH_E_MALFORMED);
    /* a tampered payload: one bit */
    snprintf(buf, sizeof(buf), "%s", HS_GOOD);
    char *dot = strchr(buf, '.');
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    CHECK(verify(a, buf, NOW_US) == AUTH_E_SIGNATURE || verify(a, buf, NOW_US) == AUTH_E_MALFORMED);
    /* too long */
    char *huge = malloc(AUTH_TOKEN_MAX + 2);
    memset(huge, 'A', AUTH_TOKEN_MAX + 1);
    huge[AUTH_TOKEN_MAX + 1] = 0;
    CHECK(verify(a, huge, NOW_US) == AUTH_E_MALFORMED);
    free(huge);
    auth_destroy(a);
}

static void rs256_es256(void)
{
    cfg_auth c;
    auth *rs = make(NULL, RS_PEM, &c);
    CHECK(rs != NULL);
    if (rs) {
        CHECK(verify(rs, RS_GOOD, NOW_US) == AUTH_OK);
        /* HS256 signed with the public key text: never an HMAC key here */
        CHECK(verify(rs, RS_CONFUSED, NOW_US) == AUTH_E_ALG);
        CHECK(verify(rs, HS_NONE, NOW_US) == AUTH_E_ALG);
        CHECK(verify(rs, ES_GOOD, NOW_US) == AUTH_E_ALG);
        auth_destroy(rs);
    }
    auth *es = make(NULL, ES_PEM, &c);
    CHECK(es != NULL);
    if (es) {
        CHECK(verify(es, ES_GOOD, NOW_US) == AUTH_OK);
        CHECK(verify(es, RS_GOOD, NOW_US) == AUTH_E_ALG);
        char buf[1024];
        snprintf(buf, sizeof(buf), "%s", ES_GOOD);
        char *sig = strrchr(buf, '.') + 1;
        sig[3] = sig[3] == 'A' ? 'B' : 'A';
        CHECK(verify(es, buf, NOW_US) == AUTH_E_SIGNATURE);
        auth_destroy(es);
    }
}

static void config_errors(void)
{
    cfg_auth c;
    char err[512];
    memset(&c, 0, sizeof(c));
    c.mode = CFG_AUTH_TOKEN;
    CHECK(!auth_create(&c, err, sizeof(err)) && strstr(err, "auth: mode"));
    snprintf(c.secret, sizeof(c.secret), "short");
    CHECK(!auth_create(&c, err, sizeof(err)) && strstr(err, "auth.secret: at least 32"));
    snprintf(c.secret, sizeof(c.secret), SECRET);
    snprintf(c.algorithm, sizeof(c.algorithm), "ES256");
    CHECK(!auth_create(&c, err, sizeof(err)) && strstr(err, "auth.algorithm"));
    c.secret[0] = 0;
    c.algorithm[0] = 0;
    snprintf(c.public_key_file, sizeof(c.public_key_file), "/nonexistent/key.pem");
    CHECK(!auth_create(&c, err, sizeof(err)) && strstr(err, "auth.public_key_file: /nonexistent/key.pem"));
    /* mode none: no key needed, nothing enabled */
    memset(&c, 0, sizeof(c));
    auth *a = auth_create(&c, err, sizeof(err));
    CHECK(a && !auth_enabled(a));
    auth_destroy(a);
}

static void patterns(void)
{
    CHECK(auth_pattern_match("*", "BTC-USD"));
    CHECK(auth_pattern_match("BTC-*", "BTC-USD") && !auth_pattern_match("BTC-*", "XBTC-USD"));
    CHECK(auth_pattern_match("*-USD", "ETH-USD") && !auth_pattern_match("*-USD", "ETH-USDT"));
    CHECK(auth_pattern_match("BTC-USD", "BTC-USD") && !auth_pattern_match("BTC-USD", "BTC-USDT"));
    CHECK(auth_pattern_match("*-*", "A-B") && !auth_pattern_match("*-*", "AB"));
    CHECK(auth_pattern_match("B*C*D", "BxxCyyD") && !auth_pattern_match("B*C*D", "BxxDyyC"));
}

int main(void)
{
    RUN(hs256);
    RUN(malformed);
    RUN(rs256_es256);
    RUN(config_errors);
    RUN(patterns);
    return check_done();
}
