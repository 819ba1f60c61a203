/*
 * venue_okx.c — the OKX v5 preset (venue_okx): instrument ids, the public
 * `tickers` subscription and the parsers for its pushes and for REST
 * /api/v5/market/ticker(s).
 *
 * WebSocket wss://ws.okx.com:8443/ws/v5/public (JSON objects, except the
 * keepalive: OKX closes a connection that has sent nothing for 30 s, and the
 * client keeps it open with the text frame "ping", answered by "pong"):
 *   "pong"                            HEARTBEAT
 *   {"arg":{"channel":"tickers",...},
 *    "data":[{instId,last,bidPx,askPx,
 *             open24h,vol24h,ts}]}    DATA; prices are decimal strings, ts a
 *                                     string of epoch ms (absent → recv_us)
 *   event subscribe                   ACK
 *   event error {code,msg}            REJECT ("okx error 60012: ..."): the
 *                                     only request we send is the subscribe,
 *                                     and OKX does not say which op failed
 *   event notice (64008: service
 *     upgrade, reconnect)             SHUTDOWN
 *   other events / channels           IGNORED
 * OKX sends "" for a side of the book that is empty (a halted or brand-new
 * instrument): that field is absent (NAN), as if missing, not MALFORMED.
 *
 * REST: GET /api/v5/market/ticker?instId=BTC-USDT per symbol for up to
 * VENUE_OKX_REST_SINGLE symbols (OKX allows 20 ticker requests per 2 s per
 * IP); above that one GET /api/v5/market/tickers?instType=SPOT, whose
 * answer lists every spot instrument (the adapter keeps the ones it asked
 * for). Body {"code":"0","msg":"","data":[ticker...]}; any other code is
 * ERROR with OKX's own words.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tickerd/symtab.h"
#include "tickerd/venue.h"

/* OKX instrument ids are canonical already (BTC-USDT); lower case is
 * accepted and upper-cased. */
static int okx_to_canonical(const char *venue_symbol, char *out, size_t cap)
{
    if (!venue_symbol || !out || !cap)
        return -1;
    size_t n = strlen(venue_symbol);
    if (n >= cap || n >= SYMTAB_NAME_MAX)
        return out[0] = '\0', -1;
    for (size_t i = 0; i <= n; i++) {
        char c = venue_symbol[i];
        out[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
    }
    if (!symtab_is_canonical(out))
        return out[0] = '\0', -1;
    return 0;
}

static int okx_to_venue(const char *canonical, char *out, size_t cap)
{
    if (!canonical || !out || !symtab_is_canonical(canonical) || strlen(canonical) >= cap)
        return -1;
    strcpy(out, canonical);
    return 0;
}

/* [A-Za-z0-9-] only: instrument ids never need escaping in JSON or a query. */
static int okx_symbol_ok(const char *s)
{
    if (!venue_symbol_ok(s))
        return 0;
    for (; *s; s++)
        if (*s == '/' || *s == '.' || *s == '_')
            return 0;
    return 1;
}

static int okx_ws_path(const char *const *syms, size_t n, char *out, size_t cap)
{
    return venue_fixed_path(syms, n, okx_symbol_ok, "/ws/v5/public", out, cap);
}

static int okx_ws_subscribe(const char *const *syms, size_t n, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (!venue_all_ok(syms, n, okx_symbol_ok))
        return -1;
    venue_out_puts(&o, "{\"op\":\"subscribe\",\"args\":[");
    for (size_t i = 0; i < n; i++) {
        venue_out_puts(&o, i ? ",{\"channel\":\"tickers\",\"instId\":\""
                             : "{\"channel\":\"tickers\",\"instId\":\"");
        venue_out_puts(&o, syms[i]);
        venue_out_puts(&o, "\"}");
    }
    venue_out_puts(&o, "]}");
    return venue_out_end(&o);
}

/* A price that may be "" (an empty side of the book): NAN then. */
static int okx_px(const json_t *obj, const char *key, double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_string(v) && !json_string_length(v)) {
        *out = NAN;
        return 0;
    }
    return venue_opt_decimal(obj, key, out);
}

/* One ticker object (WS data[] and REST data[] share the layout). */
static int okx_ticker_item(const json_t *it, uint16_t source, int64_t recv_us, feed_update *u)
{
    const json_t *id = json_object_get(it, "instId");
    if (!json_is_object(it) || !json_is_string(id) || !json_string_length(id))
        return -1;
    venue_update_init(u, json_string_value(id), source, recv_us);
    if (okx_px(it, "last", &u->last) || okx_px(it, "bidPx", &u->bid) ||
        okx_px(it, "askPx", &u->ask) || okx_px(it, "vol24h", &u->volume) ||
        okx_px(it, "open24h", &u->open))
        return -1;
    if (isnan(u->last) && isnan(u->bid) && isnan(u->ask))
        return -1; /* a ticker with no price at all is not a ticker */
    const json_t *ts = json_object_get(it, "ts");
    if (ts && !json_is_null(ts)) {
        double ms;
        if (venue_decimal(ts, &ms) || venue_epoch_us(ms, 1000, &u->ts_us))
            return -1;
    }
    return 0;
}

/* data[] of tickers, all or nothing. */
static venue_msg okx_tickers(const json_t *data, uint16_t source, int64_t recv_us,
                             const venue_emit *emit, char *err, size_t errcap)
{
    if (!json_is_array(data))
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "tickers without data[]");
    size_t i;
    const json_t *it;
    feed_update u;
    json_array_foreach(data, i, it) {
        if (okx_ticker_item(it, source, recv_us, &u))
            return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad ticker at data[%zu]", i);
    }
    json_array_foreach(data, i, it) {
        okx_ticker_item(it, source, recv_us, &u); /* checked above */
        venue_deliver(emit, &u);
    }
    return VENUE_MSG_DATA;
}

/* "okx error <code>: <msg>" (code and msg are strings in every OKX error). */
static venue_msg okx_error(venue_msg m, const json_t *root, char *err, size_t errcap)
{
    const char *code = json_string_value(json_object_get(root, "code"));
    const char *msg = json_string_value(json_object_get(root, "msg"));
    return venue_fail(m, err, errcap, "okx error %.16s: %.100s", code ? code : "?",
                      msg ? msg : "(no message)");
}

static venue_msg okx_ws_parse(const char *msg, size_t len, uint16_t source, int64_t recv_us,
                              const venue_emit *emit, char *err, size_t errcap)
{
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    if (msg && len == 4 && !memcmp(msg, "pong", 4))
        return VENUE_MSG_HEARTBEAT; /* the answer to our text "ping" */
    json_t *root = venue_json_load(msg, len, err, errcap);
    if (!root)
        return VENUE_MSG_MALFORMED;
    venue_msg r;
    const json_t *event = json_object_get(root, "event");
    const json_t *arg = json_object_get(root, "arg");
    if (!json_is_object(root)) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "not an object");
    } else if (event) {
        const char *e = json_string_value(event);
        if (!e)
            r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "\"event\" is not a string");
        else if (!strcmp(e, "subscribe"))
            r = VENUE_MSG_ACK;
        else if (!strcmp(e, "error"))
            r = okx_error(VENUE_MSG_REJECT, root, err, errcap);
        else if (!strcmp(e, "notice"))
            r = okx_error(VENUE_MSG_SHUTDOWN, root, err, errcap);
        else
            r = VENUE_MSG_IGNORED; /* unsubscribe, channel-conn-count, ... */
    } else if (json_is_object(arg) && json_object_get(root, "data")) {
        const char *ch = json_string_value(json_object_get(arg, "channel"));
        if (!ch)
            r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "push without arg.channel");
        else if (!strcmp(ch, "tickers"))
            r = okx_tickers(json_object_get(root, "data"), source, recv_us, emit, err, errcap);
        else
            r = VENUE_MSG_IGNORED;
    } else {
        r = VENUE_MSG_IGNORED;
    }
    json_decref(root);
    return r;
}

/* ---- REST ---- */

static size_t okx_rest_requests(size_t n) { return n <= VENUE_OKX_REST_SINGLE ? n : 1; }

static int okx_rest_path(const char *const *syms, size_t n, size_t i, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (i >= okx_rest_requests(n) || !venue_all_ok(syms, n, okx_symbol_ok))
        return -1;
    if (n > VENUE_OKX_REST_SINGLE) {
        venue_out_puts(&o, "/api/v5/market/tickers?instType=SPOT");
    } else {
        venue_out_puts(&o, "/api/v5/market/ticker?instId=");
        venue_out_puts(&o, syms[i]);
    }
    return venue_out_end(&o);
}

static venue_msg okx_rest_parse(long status, const char *body, size_t len, const char *hint,
                                uint16_t source, int64_t recv_us, const venue_emit *emit,
                                char *err, size_t errcap)
{
    (void)hint; /* every ticker names its instId */
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(body, len, err, errcap);
    const char *code = json_string_value(json_object_get(root, "code"));
    venue_msg r;
    if (code && strcmp(code, "0")) {
        r = okx_error(VENUE_MSG_ERROR, root, err, errcap);
    } else if (!venue_http_ok(status)) {
        r = venue_fail(VENUE_MSG_ERROR, err, errcap, "HTTP %ld", status);
    } else if (!root) {
        r = VENUE_MSG_MALFORMED;
    } else if (!json_is_object(root) || !code) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "no \"code\"");
    } else {
        r = okx_tickers(json_object_get(root, "data"), source, recv_us, emit, err, errcap);
    }
    json_decref(root);
    return r;
}

const venue_preset venue_okx = {
    .name = "okx",
    .to_canonical = okx_to_canonical,
    .to_venue = okx_to_venue,
    .ws_url = "wss://ws.okx.com:8443/ws/v5/public",
    .ws_path = okx_ws_path,
    .ws_subscribe = okx_ws_subscribe,
    .ws_parse = okx_ws_parse,
    .ws_ping = "ping",
    .ws_ping_interval_ms = 20000, /* OKX drops a connection silent for 30 s */
    .rest_base = "https://www.okx.com",
    .rest_requests = okx_rest_requests,
    .rest_path = okx_rest_path,
    .rest_parse = okx_rest_parse,
};
