/*
 * venue_coinbase.c — the Coinbase Exchange preset (venue_coinbase): product
 * ids (already BASE-QUOTE), the ws-feed subscribe message and the parsers for
 * the ws-feed and the REST product ticker.
 *
 * WebSocket wss://ws-feed.exchange.coinbase.com, path "/", subscribe to the
 * ticker and heartbeat channels within 5 s of connecting.
 *   ticker         price/best_bid/best_ask/volume_24h/open_24h + time (RFC3339 µs)
 *   heartbeat      HEARTBEAT (one per product per second)
 *   subscriptions  ACK (it lists every current subscription)
 *   error          "Failed to subscribe" → REJECT, any other message → ERROR
 * Unknown types are IGNORED (the venue says new ones may appear at any time).
 * In a ticker only product_id and price are required: best_bid/best_ask,
 * volume_24h, open_24h are NAN and time is recv_us when absent (the ticker
 * pushed on subscribe, before any trade, may lack some of them).
 *
 * REST: GET /products/{id}/ticker, one request per product; the body does not
 * name the product, so rest_parse takes it from `hint`. It has no open: NAN.
 */
#include <math.h>
#include <string.h>

#include "tickerd/symtab.h"
#include "tickerd/venue.h"

/* Upper-case copy of a product id; -1 unless it is canonical. */
static int coinbase_canonical_copy(const char *in, char *out, size_t cap)
{
    if (!in || !out || !cap)
        return -1;
    size_t n = strnlen(in, SYMTAB_NAME_MAX);
    if (n >= cap || n >= SYMTAB_NAME_MAX)
        return out[0] = '\0', -1;
    for (size_t i = 0; i <= n; i++)
        out[i] = in[i] >= 'a' && in[i] <= 'z' ? (char)(in[i] - 'a' + 'A') : in[i];
    if (!symtab_is_canonical(out))
        return out[0] = '\0', -1;
    return 0;
}

static int coinbase_to_canonical(const char *venue_symbol, char *out, size_t cap)
{
    return coinbase_canonical_copy(venue_symbol, out, cap);
}

static int coinbase_to_venue(const char *canonical, char *out, size_t cap)
{
    return coinbase_canonical_copy(canonical, out, cap);
}

/* Product ids go into URL paths: [A-Za-z0-9-] only, so no "/" or "..". */
static int coinbase_symbol_ok(const char *s)
{
    if (!venue_symbol_ok(s))
        return 0;
    for (; *s; s++)
        if (*s == '.' || *s == '/' || *s == '_')
            return 0;
    return 1;
}

static int coinbase_symbols_ok(const char *const *syms, size_t n)
{
    return venue_all_ok(syms, n, coinbase_symbol_ok);
}

static int coinbase_ws_path(const char *const *syms, size_t n, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (!coinbase_symbols_ok(syms, n))
        return -1;
    venue_out_puts(&o, "/");
    return venue_out_end(&o);
}

static int coinbase_ws_subscribe(const char *const *syms, size_t n, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (!coinbase_symbols_ok(syms, n))
        return -1;
    venue_out_puts(&o, "{\"type\":\"subscribe\",\"product_ids\":[");
    venue_out_quoted_list(&o, syms, n); /* checked: nothing to escape */
    venue_out_puts(&o, "],\"channels\":[\"ticker\",\"heartbeat\"]}");
    return venue_out_end(&o);
}

/* Optional RFC3339 "time": absent → recv_us. */
static int coinbase_time(const json_t *obj, int64_t recv_us, int64_t *ts)
{
    const json_t *t = json_object_get(obj, "time");
    if (!t || json_is_null(t)) {
        *ts = recv_us;
        return 0;
    }
    return json_is_string(t) ? venue_rfc3339_us(json_string_value(t), ts) : -1;
}

static venue_msg coinbase_ticker(const json_t *root, uint16_t source, int64_t recv_us,
                                 const venue_emit *emit, char *err, size_t errcap)
{
    const json_t *pid = json_object_get(root, "product_id");
    if (!json_is_string(pid) || !json_string_length(pid))
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "ticker without product_id");
    feed_update u;
    venue_update_init(&u, json_string_value(pid), source, recv_us);
    if (venue_decimal(json_object_get(root, "price"), &u.last))
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "ticker: bad price");
    if (venue_opt_decimal(root, "best_bid", &u.bid) ||
        venue_opt_decimal(root, "best_ask", &u.ask) ||
        venue_opt_decimal(root, "volume_24h", &u.volume) ||
        venue_opt_decimal(root, "open_24h", &u.open))
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "ticker: bad bid/ask/volume/open");
    if (coinbase_time(root, recv_us, &u.ts_us))
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "ticker: bad time");
    venue_deliver(emit, &u);
    return VENUE_MSG_DATA;
}

static venue_msg coinbase_error(const json_t *root, char *err, size_t errcap)
{
    const json_t *m = json_object_get(root, "message"), *r = json_object_get(root, "reason");
    const char *msg = json_is_string(m) ? json_string_value(m) : "(no message)";
    const char *reason = json_is_string(r) ? json_string_value(r) : NULL;
    /* Subscription failures share type "error" with everything else; only
     * the message tells them apart. */
    venue_msg kind = !strncmp(msg, "Failed to subscribe", 19) ? VENUE_MSG_REJECT : VENUE_MSG_ERROR;
    if (reason)
        return venue_fail(kind, err, errcap, "%s: %s", msg, reason);
    return venue_fail(kind, err, errcap, "%s", msg);
}

static venue_msg coinbase_ws_parse(const char *msg, size_t len, uint16_t source, int64_t recv_us,
                                   const venue_emit *emit, char *err, size_t errcap)
{
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(msg, len, err, errcap);
    if (!root)
        return VENUE_MSG_MALFORMED;
    venue_msg r;
    const json_t *type = json_object_get(root, "type");
    if (!json_is_object(root) || !json_is_string(type)) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "not an object with a \"type\"");
    } else {
        const char *t = json_string_value(type);
        if (!strcmp(t, "ticker"))
            r = coinbase_ticker(root, source, recv_us, emit, err, errcap);
        else if (!strcmp(t, "heartbeat"))
            r = VENUE_MSG_HEARTBEAT;
        else if (!strcmp(t, "subscriptions"))
            r = VENUE_MSG_ACK;
        else if (!strcmp(t, "error"))
            r = coinbase_error(root, err, errcap);
        else
            r = VENUE_MSG_IGNORED;
    }
    json_decref(root);
    return r;
}

/* ---- REST ---- */

static size_t coinbase_rest_requests(size_t n) { return n; }

static int coinbase_rest_path(const char *const *syms, size_t n, size_t i, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (!syms || i >= n || !coinbase_symbol_ok(syms[i]))
        return -1;
    venue_out_puts(&o, "/products/");
    venue_out_puts(&o, syms[i]);
    venue_out_puts(&o, "/ticker");
    return venue_out_end(&o);
}

static venue_msg coinbase_rest_parse(long status, const char *body, size_t len, const char *hint,
                                     uint16_t source, int64_t recv_us, const venue_emit *emit,
                                     char *err, size_t errcap)
{
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(body, len, err, errcap);
    const json_t *message = json_object_get(root, "message");
    venue_msg r;
    if (!venue_http_ok(status) || json_is_string(message)) {
        /* {"message":"NotFound"}, with a 4xx or (defensively) a 2xx */
        r = json_is_string(message) ? venue_fail(VENUE_MSG_ERROR, err, errcap, "coinbase: %s",
                                                 json_string_value(message))
                                    : venue_fail(VENUE_MSG_ERROR, err, errcap, "HTTP %ld", status);
    } else if (!root) {
        r = VENUE_MSG_MALFORMED;
    } else if (!json_is_object(root)) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "ticker is not an object");
    } else if (!hint || !*hint) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "no product id hint");
    } else {
        feed_update u;
        venue_update_init(&u, hint, source, recv_us);
        if (venue_decimal(json_object_get(root, "price"), &u.last) ||
            venue_decimal(json_object_get(root, "bid"), &u.bid) ||
            venue_decimal(json_object_get(root, "ask"), &u.ask) ||
            venue_opt_decimal(root, "volume", &u.volume)) {
            r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "ticker: bad price/bid/ask/volume");
        } else if (coinbase_time(root, recv_us, &u.ts_us)) {
            r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "ticker: bad time");
        } else {
            venue_deliver(emit, &u);
            r = VENUE_MSG_DATA;
        }
    }
    json_decref(root);
    return r;
}

const venue_preset venue_coinbase = {
    .name = "coinbase",
    .to_canonical = coinbase_to_canonical,
    .to_venue = coinbase_to_venue,
    .ws_url = "wss://ws-feed.exchange.coinbase.com",
    .ws_path = coinbase_ws_path,
    .ws_subscribe = coinbase_ws_subscribe,
    .ws_parse = coinbase_ws_parse,
    .rest_base = "https://api.exchange.coinbase.com",
    .rest_requests = coinbase_rest_requests,
    .rest_path = coinbase_rest_path,
    .rest_parse = coinbase_rest_parse,
};
