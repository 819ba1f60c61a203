/* http_query.c — see http_query.h. */
#include "tickerd/http_query.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { Q_SYMBOL, Q_INTERVAL, Q_FROM, Q_TO, Q_LIMIT, Q_COUNT };
static const char *const keys[Q_COUNT] = {"symbol", "interval", "from", "to", "limit"};

/* The parameter an argument names: its key's index, Q_COUNT for the token
 * (not ours), -1 for anything else. */
static int query_key(const char *arg, size_t len)
{
    for (int j = 0; j < Q_COUNT; j++)
        if (strlen(keys[j]) == len && !memcmp(arg, keys[j], len))
            return j;
    return len == 5 && !memcmp(arg, "token", 5) ? Q_COUNT : -1;
}

int http_query_history(const char *const *args, size_t n, int max_rows, hist_query *q, char *msg,
                       size_t msgcap)
{
    int seen[Q_COUNT] = {0};
    memset(q, 0, sizeof(*q));
    q->interval_s = 60;
    q->to_us = INT64_MAX;
    q->limit = 500;
    for (size_t i = 0; i < n; i++) {
        const char *arg = args[i], *eq = strchr(arg, '=');
        const char *val = eq ? eq + 1 : "";
        size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
        int k = query_key(arg, klen);
        if (k == Q_COUNT)
            continue; /* the bearer token (gate.h) */
        if (k < 0) {
            snprintf(msg, msgcap, "unknown parameter \"%.*s\" (symbol, interval, from, to, limit)",
                     (int)(klen > 40 ? 40 : klen), arg);
            return 400;
        }
        if (seen[k]++) {
            snprintf(msg, msgcap, "parameter \"%s\" given twice", keys[k]);
            return 400;
        }
        char *endp = NULL;
        long long v = k >= Q_FROM ? strtoll(val, &endp, 10) : 0;
        if (k >= Q_FROM && (!val[0] || *endp || v < 0)) {
            snprintf(msg, msgcap, "\"%s\" must be a non-negative integer%s", keys[k],
                     k < Q_LIMIT ? " (microseconds since the Unix epoch)" : "");
            return 400;
        }
        switch (k) {
        case Q_SYMBOL:
            if (strlen(val) >= sizeof(q->symbol)) {
                snprintf(msg, msgcap, "\"symbol\" is too long");
                return 400;
            }
            snprintf(q->symbol, sizeof(q->symbol), "%s", val);
            break;
        case Q_INTERVAL:
            q->interval_s = hist_parse_interval(val);
            if (q->interval_s < 0) {
                snprintf(msg, msgcap, "\"interval\" must be one of tick, 1s, 1m, 1h");
                return 400;
            }
            break;
        case Q_FROM: q->from_us = v; break;
        case Q_TO: q->to_us = v; break;
        default:
            if (v < 1 || v > max_rows) {
                snprintf(msg, msgcap, "\"limit\" must be from 1 to %d", max_rows);
                return 400;
            }
            q->limit = (int)v;
        }
    }
    if (!seen[Q_SYMBOL] || !q->symbol[0]) {
        snprintf(msg, msgcap, "\"symbol\" is required");
        return 400;
    }
    if (q->from_us >= q->to_us) {
        snprintf(msg, msgcap, "\"from\" must be before \"to\"");
        return 400;
    }
    /* With `from`, page forward from it; without, the newest rows before `to`. */
    q->latest = !seen[Q_FROM];
    return 0;
}
