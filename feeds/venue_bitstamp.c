/*
 * venue_bitstamp.c — the Bitstamp v2 preset (venue_bitstamp): pairs
 * (btcusd), the bts:subscribe messages and the parsers for live trades, the
 * order book top and REST /api/v2/ticker/<pair>/.
 *
 * WebSocket wss://ws.bitstamp.net, one bts:subscribe per channel (sent one
 * frame per line, see ws_subscribe in venue.h): live_trades_<pair> (last
 * trade price) and order_book_<pair> (of which only the top is read):
 *   event trade                        DATA: last = data.price_str (or price),
 *                                      ts = data.microtimestamp (µs)
 *   event data, channel order_book_*   DATA: bid = bids[0][0], ask = asks[0][0]
 *                                      (strings), last = mid (venue.h)
 *   event bts:subscription_succeeded   ACK
 *   event bts:error                    REJECT (data.message)
 *   event bts:request_reconnect        SHUTDOWN
 *   event bts:heartbeat                HEARTBEAT (the answer to ours)
 *   other                              IGNORED
 * Keepalive: {"event":"bts:heartbeat"} every 20 s.
 * REST: GET /api/v2/ticker/<pair>/ per symbol; the body does not name the
 * pair, so the caller passes it in hint. last, bid, ask, volume, open_24 and
 * timestamp (epoch s) are decimal strings.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tickerd/symtab.h"
#include "tickerd/venue.h"

static const char *const bitstamp_quotes[] = {
    "USD", "EUR", "GBP", "USDT", "USDC", "BTC", "ETH", "PAX", "PYUSD", NULL,
};

static int bitstamp_to_canonical(const char *venue_symbol, char *out, size_t cap)
{
    return venue_split_pair(venue_symbol, bitstamp_quotes, out, cap);
}

/* BTC-USD → btcusd */
static int bitstamp_to_venue(const char *canonical, char *out, size_t cap)
{
    if (!canonical || !out || !symtab_is_canonical(canonical) || strlen(canonical) >= cap)
        return -1;
    size_t k = 0;
    for (const char *p = canonical; *p; p++)
        if (*p != '-')
            out[k++] = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
    out[k] = '\0';
    return 0;
}

/* [a-z0-9] only: channel names are lower case. */
static int bitstamp_symbol_ok(const char *s)
{
    if (!venue_symbol_ok(s))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

static int bitstamp_ws_path(const char *const *syms, size_t n, char *out, size_t cap)
{
    return venue_fixed_path(syms, n, bitstamp_symbol_ok, "/", out, cap);
}

static int bitstamp_ws_subscribe(const char *const *syms, size_t n, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (!venue_all_ok(syms, n, bitstamp_symbol_ok))
        return -1;
    for (size_t i = 0; i < n; i++) {
        venue_out_puts(&o, i ? "\n{\"event\":\"bts:subscribe\",\"data\":{\"channel\":\"live_trades_"
                             : "{\"event\":\"bts:subscribe\",\"data\":{\"channel\":\"live_trades_");
        venue_out_puts(&o, syms[i]);
        venue_out_puts(&o, "\"}}\n{\"event\":\"bts:subscribe\",\"data\":{\"channel\":\"order_book_");
        venue_out_puts(&o, syms[i]);
        venue_out_puts(&o, "\"}}");
    }
    return venue_out_end(&o);
}

/* The best price of one side: [["price","amount"],...]; empty → NAN. */
static int bitstamp_side(const json_t *data, const char *key, double *out)
{
    const json_t *side = json_object_get(data, key);
    if (!json_is_array(side))
        return -1;
    if (!json_array_size(side)) {
        *out = NAN;
        return 0;
    }
    return venue_decimal(json_array_get(json_array_get(side, 0), 0), out);
}

/* microtimestamp (µs, a string) or timestamp (s, a string); absent → recv_us. */
static int bitstamp_ts(const json_t *data, int64_t recv_us, int64_t *out)
{
    double v;
    *out = recv_us;
    const json_t *us = json_object_get(data, "microtimestamp");
    const json_t *s = json_object_get(data, "timestamp");
    if (us && !json_is_null(us))
        return venue_decimal(us, &v) || venue_epoch_us(v, 1, out) ? -1 : 0;
    if (s && !json_is_null(s))
        return venue_decimal(s, &v) || venue_epoch_us(v, 1000000, out) ? -1 : 0;
    return 0;
}

static venue_msg bitstamp_ws_parse(const char *msg, size_t len, uint16_t source, int64_t recv_us,
                                   const venue_emit *emit, char *err, size_t errcap)
{
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(msg, len, err, errcap);
    if (!root)
        return VENUE_MSG_MALFORMED;
    venue_msg r = VENUE_MSG_IGNORED;
    const char *ev = json_string_value(json_object_get(root, "event"));
    const char *ch = json_string_value(json_object_get(root, "channel"));
    const json_t *data = json_object_get(root, "data");
    feed_update u;
    if (!json_is_object(root) || !ev) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "no \"event\"");
    } else if (!strcmp(ev, "bts:subscription_succeeded")) {
        r = VENUE_MSG_ACK;
    } else if (!strcmp(ev, "bts:error")) {
        const char *m = json_string_value(json_object_get(data, "message"));
        r = venue_fail(VENUE_MSG_REJECT, err, errcap, "bitstamp: %.120s", m ? m : "(no message)");
    } else if (!strcmp(ev, "bts:request_reconnect")) {
        r = VENUE_MSG_SHUTDOWN;
    } else if (!strcmp(ev, "bts:heartbeat")) {
        r = VENUE_MSG_HEARTBEAT;
    } else if (ch && !strncmp(ch, "live_trades_", 12) && !strcmp(ev, "trade")) {
        venue_update_init(&u, ch + 12, source, recv_us);
        const json_t *ps = json_object_get(data, "price_str");
        int bad = !json_is_object(data) || !ch[12] ||
                  (ps ? venue_decimal(ps, &u.last)
                      : venue_number(json_object_get(data, "price"), &u.last)) ||
                  bitstamp_ts(data, recv_us, &u.ts_us);
        if (bad) {
            r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad trade");
        } else {
            venue_deliver(emit, &u);
            r = VENUE_MSG_DATA;
        }
    } else if (ch && !strncmp(ch, "order_book_", 11) && !strcmp(ev, "data")) {
        venue_update_init(&u, ch + 11, source, recv_us);
        if (!json_is_object(data) || !ch[11] || bitstamp_side(data, "bids", &u.bid) ||
            bitstamp_side(data, "asks", &u.ask) || bitstamp_ts(data, recv_us, &u.ts_us)) {
            r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad order book");
        } else {
            u.last = (u.bid + u.ask) / 2; /* NAN when a side is empty */
            if (!isnan(u.bid) || !isnan(u.ask))
                venue_deliver(emit, &u);
            r = VENUE_MSG_DATA;
        }
    }
    json_decref(root);
    return r;
}

/* ---- REST ---- */

static size_t bitstamp_rest_requests(size_t n) { return n; }

static int bitstamp_rest_path(const char *const *syms, size_t n, size_t i, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (i >= n || !venue_all_ok(syms, n, bitstamp_symbol_ok))
        return -1;
    venue_out_puts(&o, "/api/v2/ticker/");
    venue_out_puts(&o, syms[i]);
    venue_out_puts(&o, "/");
    return venue_out_end(&o);
}

static venue_msg bitstamp_rest_parse(long status, const char *body, size_t len, const char *hint,
                                     uint16_t source, int64_t recv_us, const venue_emit *emit,
                                     char *err, size_t errcap)
{
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(body, len, err, errcap);
    venue_msg r = VENUE_MSG_DATA;
    feed_update u;
    const char *why = json_string_value(json_object_get(root, "message"));
    if (!venue_http_ok(status) || json_object_get(root, "code") ||
        (why && !json_object_get(root, "last"))) {
        r = why ? venue_fail(VENUE_MSG_ERROR, err, errcap, "bitstamp: %.120s", why)
                : venue_fail(VENUE_MSG_ERROR, err, errcap, "HTTP %ld", status);
    } else if (!root) {
        r = VENUE_MSG_MALFORMED;
    } else if (!hint || !*hint || !json_is_object(root)) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "no pair hint or not an object");
    } else {
        venue_update_init(&u, hint, source, recv_us);
        if (venue_decimal(json_object_get(root, "last"), &u.last) ||
            venue_opt_decimal(root, "bid", &u.bid) || venue_opt_decimal(root, "ask", &u.ask) ||
            venue_opt_decimal(root, "volume", &u.volume) ||
            venue_opt_decimal(root, "open_24", &u.open) || bitstamp_ts(root, recv_us, &u.ts_us))
            r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad ticker");
        else
            venue_deliver(emit, &u);
    }
    json_decref(root);
    return r;
}

const venue_preset venue_bitstamp = {
    .name = "bitstamp",
    .to_canonical = bitstamp_to_canonical,
    .to_venue = bitstamp_to_venue,
    .ws_url = "wss://ws.bitstamp.net",
    .ws_path = bitstamp_ws_path,
    .ws_subscribe = bitstamp_ws_subscribe,
    .ws_parse = bitstamp_ws_parse,
    .ws_ping = "{\"event\":\"bts:heartbeat\"}",
    .ws_ping_interval_ms = 20000,
    .rest_base = "https://www.bitstamp.net",
    .rest_requests = bitstamp_rest_requests,
    .rest_path = bitstamp_rest_path,
    .rest_parse = bitstamp_rest_parse,
};
