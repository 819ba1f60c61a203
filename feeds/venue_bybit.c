/*
 * venue_bybit.c — the Bybit v5 spot preset (venue_bybit): symbols (BTCUSDT),
 * the public spot subscribe messages and the parsers for tickers,
 * orderbook.1 and REST /v5/market/tickers.
 *
 * WebSocket wss://stream.bybit.com/v5/public/spot. A spot `tickers.<SYM>`
 * push has the last price, 24 h volume and prevPrice24h but no book, so each
 * symbol also takes `orderbook.1.<SYM>` (best bid/ask). Bybit accepts at most
 * 10 args per spot subscribe message: ws_subscribe writes one message per 5
 * symbols, separated by '\n' (compact JSON has no newline), and the adapter
 * sends each line as its own frame. Keepalive: the client sends {"op":"ping"}
 * every 20 s.
 *   topic tickers.*      DATA: last = lastPrice, open = prevPrice24h,
 *                        volume = volume24h; ts = the message's ts (ms)
 *   topic orderbook.1.*  DATA: bid = b[0][0], ask = a[0][0] (an empty side:
 *                        NAN), last = the mid as for Binance bookTicker;
 *                        ts = the message's ts
 *   op subscribe         success true → ACK, false → REJECT (ret_msg)
 *   op ping / pong       HEARTBEAT
 *   other                IGNORED
 * REST: one GET /v5/market/tickers?category=spot (every spot symbol; the
 * adapter keeps its own): {"retCode":0,"result":{"list":[{symbol,bid1Price,
 * ask1Price,lastPrice,prevPrice24h,volume24h}]},"time":ms}; retCode != 0 is
 * ERROR with retMsg.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tickerd/symtab.h"
#include "tickerd/venue.h"

static const char *const bybit_quotes[] = {
    "USDT", "USDC", "USDE", "BTC", "ETH", "EUR", "BRL", "DAI", "TRY", "PLN", "MNT", NULL,
};

static int bybit_to_canonical(const char *venue_symbol, char *out, size_t cap)
{
    return venue_split_pair(venue_symbol, bybit_quotes, out, cap);
}

/* BTC-USDT → BTCUSDT */
static int bybit_to_venue(const char *canonical, char *out, size_t cap)
{
    if (!canonical || !out || !symtab_is_canonical(canonical) || strlen(canonical) >= cap)
        return -1;
    const char *dash = strchr(canonical, '-');
    snprintf(out, cap, "%.*s%s", (int)(dash - canonical), canonical, dash + 1);
    return 0;
}

/* [A-Z0-9] only (Bybit symbols are upper case). */
static int bybit_symbol_ok(const char *s)
{
    if (!venue_symbol_ok(s))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

static int bybit_ws_path(const char *const *syms, size_t n, char *out, size_t cap)
{
    return venue_fixed_path(syms, n, bybit_symbol_ok, "/v5/public/spot", out, cap);
}

static int bybit_ws_subscribe(const char *const *syms, size_t n, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (!venue_all_ok(syms, n, bybit_symbol_ok))
        return -1;
    const size_t per = VENUE_BYBIT_MAX_ARGS / 2; /* two topics per symbol */
    for (size_t i = 0; i < n; i++) {
        if (i % per == 0)
            venue_out_puts(&o, i ? "]}\n{\"op\":\"subscribe\",\"args\":[" : "{\"op\":\"subscribe\",\"args\":[");
        else
            venue_out_puts(&o, ",");
        venue_out_puts(&o, "\"tickers.");
        venue_out_puts(&o, syms[i]);
        venue_out_puts(&o, "\",\"orderbook.1.");
        venue_out_puts(&o, syms[i]);
        venue_out_puts(&o, "\"");
    }
    venue_out_puts(&o, "]}");
    return venue_out_end(&o);
}

static int bybit_ts(const json_t *root, int64_t recv_us, int64_t *out)
{
    const json_t *ts = json_object_get(root, "ts");
    *out = recv_us;
    if (!ts || json_is_null(ts))
        return 0;
    double ms;
    if (venue_number(ts, &ms) || venue_epoch_us(ms, 1000, out))
        return -1;
    return 0;
}

/* Best price of one side: [["price","size"],...]; an empty side is NAN. */
static int bybit_side(const json_t *data, const char *key, double *out)
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

static venue_msg bybit_topic(const json_t *root, const char *topic, uint16_t source,
                             int64_t recv_us, const venue_emit *emit, char *err, size_t errcap)
{
    const json_t *data = json_object_get(root, "data");
    feed_update u;
    int64_t ts;
    if (bybit_ts(root, recv_us, &ts))
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad ts");
    if (!strncmp(topic, "tickers.", 8)) {
        const json_t *sym = json_object_get(data, "symbol");
        if (!json_is_object(data) || !json_is_string(sym) || !json_string_length(sym))
            return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "tickers without data.symbol");
        venue_update_init(&u, json_string_value(sym), source, ts);
        if (venue_decimal(json_object_get(data, "lastPrice"), &u.last) ||
            venue_opt_decimal(data, "prevPrice24h", &u.open) ||
            venue_opt_decimal(data, "volume24h", &u.volume))
            return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad ticker");
    } else if (!strncmp(topic, "orderbook.1.", 12)) {
        const json_t *sym = json_object_get(data, "s");
        if (!json_is_object(data) || !json_is_string(sym) || !json_string_length(sym))
            return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "orderbook without data.s");
        venue_update_init(&u, json_string_value(sym), source, ts);
        if (bybit_side(data, "b", &u.bid) || bybit_side(data, "a", &u.ask))
            return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad orderbook");
        if (isnan(u.bid) && isnan(u.ask))
            return VENUE_MSG_DATA; /* an empty book says nothing */
        u.last = (u.bid + u.ask) / 2; /* venue.h: a book without a trade price; NAN if one side is empty */
    } else {
        return VENUE_MSG_IGNORED;
    }
    venue_deliver(emit, &u);
    return VENUE_MSG_DATA;
}

static venue_msg bybit_ws_parse(const char *msg, size_t len, uint16_t source, int64_t recv_us,
                                const venue_emit *emit, char *err, size_t errcap)
{
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(msg, len, err, errcap);
    if (!root)
        return VENUE_MSG_MALFORMED;
    venue_msg r;
    const json_t *topic = json_object_get(root, "topic");
    const json_t *op = json_object_get(root, "op");
    if (!json_is_object(root)) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "not an object");
    } else if (topic) {
        r = json_is_string(topic)
                ? bybit_topic(root, json_string_value(topic), source, recv_us, emit, err, errcap)
                : venue_fail(VENUE_MSG_MALFORMED, err, errcap, "\"topic\" is not a string");
    } else if (json_is_string(op)) {
        const char *o = json_string_value(op);
        const json_t *ok = json_object_get(root, "success");
        const char *why = json_string_value(json_object_get(root, "ret_msg"));
        if (!strcmp(o, "ping") || !strcmp(o, "pong"))
            r = VENUE_MSG_HEARTBEAT;
        else if (!strcmp(o, "subscribe") && json_is_boolean(ok))
            r = json_is_true(ok) ? VENUE_MSG_ACK
                                 : venue_fail(VENUE_MSG_REJECT, err, errcap, "bybit: %.120s",
                                              why ? why : "(no ret_msg)");
        else if (!strcmp(o, "subscribe"))
            r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "subscribe reply without success");
        else
            r = VENUE_MSG_IGNORED;
    } else {
        r = VENUE_MSG_IGNORED;
    }
    json_decref(root);
    return r;
}

/* ---- REST ---- */

static size_t bybit_rest_requests(size_t n) { return n ? 1 : 0; }

static int bybit_rest_path(const char *const *syms, size_t n, size_t i, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (i != 0 || !venue_all_ok(syms, n, bybit_symbol_ok))
        return -1;
    if (n == 1) {
        venue_out_puts(&o, "/v5/market/tickers?category=spot&symbol=");
        venue_out_puts(&o, syms[0]);
    } else {
        venue_out_puts(&o, "/v5/market/tickers?category=spot");
    }
    return venue_out_end(&o);
}

static int bybit_rest_item(const json_t *it, uint16_t source, int64_t ts, feed_update *u)
{
    const json_t *sym = json_object_get(it, "symbol");
    if (!json_is_object(it) || !json_is_string(sym) || !json_string_length(sym))
        return -1;
    venue_update_init(u, json_string_value(sym), source, ts);
    return venue_decimal(json_object_get(it, "lastPrice"), &u->last) ||
                   venue_opt_decimal(it, "bid1Price", &u->bid) ||
                   venue_opt_decimal(it, "ask1Price", &u->ask) ||
                   venue_opt_decimal(it, "prevPrice24h", &u->open) ||
                   venue_opt_decimal(it, "volume24h", &u->volume)
               ? -1
               : 0;
}

static venue_msg bybit_rest_parse(long status, const char *body, size_t len, const char *hint,
                                  uint16_t source, int64_t recv_us, const venue_emit *emit,
                                  char *err, size_t errcap)
{
    (void)hint;
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(body, len, err, errcap);
    const json_t *code = json_object_get(root, "retCode");
    const char *why = json_string_value(json_object_get(root, "retMsg"));
    const json_t *list = json_object_get(json_object_get(root, "result"), "list");
    venue_msg r = VENUE_MSG_DATA;
    int64_t ts;
    if (json_is_number(code) && json_number_value(code) != 0) {
        r = venue_fail(VENUE_MSG_ERROR, err, errcap, "bybit error %.0f: %.100s",
                       json_number_value(code), why ? why : "(no retMsg)");
    } else if (!venue_http_ok(status)) {
        r = venue_fail(VENUE_MSG_ERROR, err, errcap, "HTTP %ld", status);
    } else if (!root) {
        r = VENUE_MSG_MALFORMED;
    } else if (!json_is_number(code) || !json_is_array(list)) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "no retCode or result.list");
    } else {
        const json_t *t = json_object_get(root, "time");
        double ms;
        ts = recv_us;
        if (t && (venue_number(t, &ms) || venue_epoch_us(ms, 1000, &ts)))
            r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad time");
        size_t i;
        const json_t *it;
        feed_update u;
        if (r == VENUE_MSG_DATA)
            json_array_foreach(list, i, it) {
                if (bybit_rest_item(it, source, ts, &u)) {
                    r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad ticker at list[%zu]", i);
                    break;
                }
            }
        if (r == VENUE_MSG_DATA)
            json_array_foreach(list, i, it) {
                bybit_rest_item(it, source, ts, &u); /* checked above */
                venue_deliver(emit, &u);
            }
    }
    json_decref(root);
    return r;
}

const venue_preset venue_bybit = {
    .name = "bybit",
    .to_canonical = bybit_to_canonical,
    .to_venue = bybit_to_venue,
    .ws_url = "wss://stream.bybit.com/v5/public/spot",
    .ws_path = bybit_ws_path,
    .ws_subscribe = bybit_ws_subscribe,
    .ws_parse = bybit_ws_parse,
    .ws_ping = "{\"op\":\"ping\"}",
    .ws_ping_interval_ms = 20000, /* Bybit's recommendation */
    .rest_base = "https://api.bybit.com",
    .rest_requests = bybit_rest_requests,
    .rest_path = bybit_rest_path,
    .rest_parse = bybit_rest_parse,
};
