/*
 * fuzz_venue.c — the libFuzzer target for one venue preset, chosen at build
 * time (FUZZ_VENUE, FUZZ_SYMBOL: see CMakeLists.txt): the input is fed to
 * ws_parse and to rest_parse (HTTP 200, hint "BTC-USD"), and its first line is
 * used as a symbol for the mapping and request builders. Besides ASan/UBSan's
 * checks it asserts the contracts adapters rely on: updates only with
 * VENUE_MSG_DATA, a valid symbol and source in each, err always terminated,
 * builders' lengths matching their output.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/symtab.h"
#include "tickerd/venue.h"

#include "fuzz_common.h"

static void fuzz_check(venue_msg m, size_t updates, const char *err, size_t errcap)
{
    if (m > VENUE_MSG_MALFORMED || (m != VENUE_MSG_DATA && updates) ||
        strnlen(err, errcap) >= errcap)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const venue_preset *p = venue_find(FUZZ_VENUE);
    const char *msg = (const char *)data; /* not NUL-terminated: parsers take len */
    char err[96];
    size_t n = 0;
    venue_emit emit = {.arg = &n, .update = fuzz_update};
    if (p->ws_parse) {
        venue_msg m =
            p->ws_parse(msg, size, FUZZ_SOURCE, 1711356300000000, &emit, err, sizeof(err));
        fuzz_check(m, n, err, sizeof(err));
    }
    n = 0;
    venue_msg m = p->rest_parse(200, msg, size, "BTC-USD", FUZZ_SOURCE, 1711356300000000, &emit,
                                err, sizeof(err));
    fuzz_check(m, n, err, sizeof(err));

    /* the first line as a symbol */
    char sym[80], out[SYMTAB_NAME_MAX], buf[512];
    size_t k = 0;
    while (k < size && k < sizeof(sym) - 1 && data[k] != '\n' && data[k] != '\0')
        k++;
    memcpy(sym, data, k);
    sym[k] = '\0';
    if (p->to_canonical(sym, out, sizeof(out)) == 0 && !symtab_is_canonical(out))
        abort();
    if (p->to_venue(sym, out, sizeof(out)) == 0 && strnlen(out, sizeof(out)) >= sizeof(out))
        abort();
    const char *syms[2] = {sym, FUZZ_SYMBOL}; /* a known-good spelling beside the fuzzed one */
    int len;
    if (p->ws_path && (len = p->ws_path(syms, 2, buf, sizeof(buf))) >= 0 &&
        strlen(buf) != (size_t)len)
        abort();
    if (p->ws_subscribe && (len = p->ws_subscribe(syms, 2, buf, sizeof(buf))) >= 0 &&
        strlen(buf) != (size_t)len)
        abort();
    for (size_t i = 0; i < p->rest_requests(2); i++)
        if ((len = p->rest_path(syms, 2, i, buf, sizeof(buf))) >= 0 && strlen(buf) != (size_t)len)
            abort();
    return 0;
}
