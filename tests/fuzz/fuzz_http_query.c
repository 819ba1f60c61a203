/* fuzz_http_query.c — libFuzzer over the /api/history query parser
 * (http_query.h): the input is a query string, split at '&' into the
 * argument fragments lws would hand over. CHECK tests the parser's promise:
 * an accepted query is within the API's ranges, a refused one says why. */
#define CHECK(c) ((c) ? (void)0 : __builtin_trap())
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tickerd/http_query.h"

#define ARGS_MAX 32
#define MAX_ROWS 2000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    CHECK(in);
    memcpy(in, data, size);
    in[size] = 0;
    const char *args[ARGS_MAX];
    size_t n = 0;
    for (char *p = in; p && n < ARGS_MAX;) {
        args[n++] = p;
        p = strchr(p, '&');
        if (p)
            *p++ = 0;
    }
    hist_query q;
    char msg[200] = "";
    int status = http_query_history(args, n, MAX_ROWS, &q, msg, sizeof(msg));
    if (status == 0) {
        CHECK(q.symbol[0] && strlen(q.symbol) < sizeof(q.symbol));
        CHECK(q.from_us >= 0 && q.from_us < q.to_us);
        CHECK(q.limit >= 1 && q.limit <= MAX_ROWS);
        CHECK(q.interval_s == 0 || q.interval_s == 1 || q.interval_s == 60 || q.interval_s == 3600);
    } else {
        CHECK(status == 400 && msg[0]);
    }
    free(in);
    return 0;
}
