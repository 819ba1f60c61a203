/*
 * fuzz_venue_generic.c — the libFuzzer target for the generic JSON mapper
 * (include/tickerd/venue_generic.h). The input's first line is a "map" config
 * (compiled with venue_generic_parse_map, so path syntax and validation are
 * fuzzed too); when it does not compile, one of a few fixed mappings is used.
 * The rest is a body parsed as a REST response (status 200 and 503, hint
 * "BTC-USD") and as a WebSocket message (status 0). Asserted: updates only
 * with VENUE_MSG_DATA, each with a non-empty symbol and the source, err
 * always terminated; a url template built from the first line fits its
 * reported length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/venue_generic.h"

#include "fuzz_common.h"

static const char *const fixed_maps[] = {
    "{\"items\":\"result.quotes\",\"symbol\":\"sym\",\"last\":\"px.last\",\"bid\":\"px.bid\","
    "\"ask\":\"px.ask\",\"volume\":\"vol24\",\"ts\":\"updated\",\"error\":\"error.message\"}",
    "{\"items\":\"$\",\"symbol\":\"$key\",\"last\":\"usd\",\"ts\":\"last_updated_at\",\"ts_unit\":\"s\"}",
    "{\"last\":\"data.0.c\",\"bid\":\"data.0.b\",\"ask\":\"data.0.a\",\"ts\":\"data.0.t\","
    "\"ts_unit\":\"rfc3339\",\"match\":{\"type\":\"ticker\"}}",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t k = 0;
    while (k < size && data[k] != '\n')
        k++;
    venue_generic g;
    cfg_error cerr;
    json_error_t je;
    json_t *m = json_loadb((const char *)data, k, 0, &je);
    int ok = m && venue_generic_parse_map(m, "feeds[0]", &g, &cerr) == 0;
    json_decref(m);
    if (!ok) {
        json_t *f = json_loads(fixed_maps[size % 3], 0, &je);
        if (!f || venue_generic_parse_map(f, "feeds[0]", &g, &cerr))
            abort(); /* the fixed maps are valid */
        json_decref(f);
    }
    const char *body = (const char *)data + (k < size ? k + 1 : k);
    size_t len = size - (size_t)(body - (const char *)data);
    static const long statuses[] = {200, 503, 0};
    for (size_t i = 0; i < 3; i++) {
        char err[96];
        size_t n = 0;
        venue_emit emit = {.arg = &n, .update = fuzz_update};
        venue_msg r = venue_generic_parse(&g, statuses[i], body, len, i == 0 ? "BTC-USD" : NULL,
                                          FUZZ_SOURCE, 1711356300000000, &emit, err, sizeof(err));
        if (r > VENUE_MSG_MALFORMED || (r != VENUE_MSG_DATA && n) || strnlen(err, sizeof(err)) >= sizeof(err))
            abort();
    }
    /* the first line as a url template */
    char tmpl[512], why[128], out[1024];
    size_t t = k < sizeof(tmpl) - 1 ? k : sizeof(tmpl) - 1;
    memcpy(tmpl, data, t);
    tmpl[t] = '\0';
    const char *syms[2] = {"BTC-USD", "ETH-USD"};
    if (venue_generic_check_url(tmpl, why, sizeof(why)) == 0)
        for (size_t i = 0; i < venue_generic_requests(tmpl, 2); i++) {
            int n = venue_generic_url(tmpl, syms, 2, i, out, sizeof(out));
            if (n >= 0 && strlen(out) != (size_t)n)
                abort();
        }
    return 0;
}
