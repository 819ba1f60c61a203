/*
 * http_query.h — the query of GET /api/history (docs/api.md) read into a
 * hist_query: the parameters symbol, interval, from, to, limit (and token,
 * which the gate reads), each at most once, checked for type and range.
 * Pure (no lws, no I/O): http.c hands it the URI's argument fragments as lws
 * split them, and tests/fuzz/fuzz_http_query.c fuzzes it.
 */
#ifndef TICKERD_HTTP_QUERY_H
#define TICKERD_HTTP_QUERY_H
#include <stddef.h>

#include "tickerd/history.h"

/* Parse args[0..n) ("key=value", or "key" alone) into q with the API's
 * defaults (interval 1m, limit 500, to = now+, newest rows when no from).
 * limit must be 1..max_rows. Returns 0, or 400 with msg saying which
 * parameter is wrong. Whether the symbol is known is the caller's (404). */
int http_query_history(const char *const *args, size_t n, int max_rows, hist_query *q, char *msg,
                       size_t msgcap);

#endif
