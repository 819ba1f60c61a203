/* fuzz_auth.c — libFuzzer over the JWT verifier (src/core/auth.c): the
 * input is a token as a client would send it (header, query or auth op),
 * verified against an HS256 key. Checked: no crash, no leak, and that a
 * token is accepted only with its sub and patterns within their bounds (a
 * forged signature cannot pass: the corpus's good token is signed with the
 * key below, and any mutation of it must keep verifying or be refused). */
#define CHECK(c) ((c) ? (void)0 : __builtin_trap())
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tickerd/auth.h"

static auth *fuzz_auth;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_auth) {
        cfg_auth c;
        char err[256];
        memset(&c, 0, sizeof(c));
        c.mode = CFG_AUTH_TOKEN;
        c.leeway_s = 5;
        snprintf(c.secret, sizeof(c.secret), "unit-test-secret-0123456789abcdef-xyz");
        fuzz_auth = auth_create(&c, err, sizeof(err));
        CHECK(fuzz_auth != NULL);
    }
    auth_result why;
    auth_token *t = auth_verify(fuzz_auth, (const char *)data, size, 1700000000LL * 1000000, &why);
    CHECK((t != NULL) == (why == AUTH_OK));
    if (t) {
        CHECK(strlen(auth_token_sub(t)) < AUTH_SUB_MAX);
        CHECK(auth_token_npatterns(t) <= AUTH_PATTERNS_MAX);
        for (size_t i = 0; i < auth_token_npatterns(t); i++) {
            CHECK(strlen(auth_token_pattern(t, i)) < AUTH_PATTERN_MAX);
            (void)auth_token_allows(t, "BTC-USD");
        }
        auth_token_free(t);
    }
    /* the glob on arbitrary text: pattern | symbol */
    char p[65], s[65];
    size_t half = size / 2 > 64 ? 64 : size / 2, rest = size - size / 2 > 64 ? 64 : size - size / 2;
    memcpy(p, data, half);
    p[half] = 0;
    memcpy(s, data + size / 2, rest);
    s[rest] = 0;
    (void)auth_pattern_match(p, s);
    return 0;
}
