/*
 * venue_binance.c — the Binance Spot preset (venue_binance): BTCUSDT <->
 * BTC-USDT, the combined-stream URL, and the parsers for WebSocket market
 * streams and REST tickers.
 *
 * WebSocket: one combined connection per ≤ 512 symbols (the adapter opens
 * several for more), /stream?streams=<s>@bookTicker/<s>@miniTicker/..., so
 * nothing is sent after connecting; when that URL would be longer than
 * VENUE_BINANCE_MAX_URL_PATH, the bare /stream and one SUBSCRIBE message with
 * the same streams. Book tickers carry their "u" as venue_seq and mini
 * tickers their "E", so two connections can overlap (ws_max_conn_age_s). Both the combined wrapper {"stream","data"} and raw payloads are
 * parsed, as are arrays of events (!miniTicker@arr).
 *   bookTicker     b/a, no time: ts = recv_us, last = mid, volume/open NAN
 *   24hrMiniTicker c/o/v + E (ms): bid = ask = NAN
 *   24hrTicker     c/b/a/o/v + E (ms): complete
 *   serverShutdown SHUTDOWN (raw and wrapped forms)
 *   {"result":null,"id":..}  ACK (another result answers a query: IGNORED)
 *   {"error":{"code","msg"},"id":..} REJECT (a refused SUBSCRIBE)
 *   {"code":..,"msg":..}     ERROR
 * Other events (trade, kline, depth, ...) are IGNORED: ws_path never asks for
 * them. Times are read as milliseconds: ws_path never sets timeUnit.
 *
 * REST: GET /api/v3/ticker/bookTicker (symbol= for one, symbols=[...] for
 * several: weight 2 vs 4). The parser also takes the /ticker/24hr (FULL and
 * MINI) and /ticker/price shapes, object or array; ts = recv_us since a
 * bookTicker has no time.
 */
#include <math.h>
#include <string.h>

#include "tickerd/symtab.h"
#include "tickerd/venue.h"

/* Quote assets for splitting BTCUSDT; the longest suffix wins, so BNBFDUSD is
 * BNB-FDUSD (not BNBFD-USD) and BTCTUSD is BTC-TUSD. */
static const char *const binance_quotes[] = {
    "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI",  "PAX",  "BTC", "ETH",
    "BNB",  "XRP",  "TRX",   "DOGE", "EUR",  "EURI", "AEUR", "TRY",  "BRL", "USD",
    "GBP",  "AUD",  "JPY",   "RUB",  "UAH",  "PLN",  "ZAR",  "ARS",  "MXN", "COP",
    "IDR",  "BIDR", "IDRT",  "NGN",  "RON",  "CZK",  "BKRW", "BVND", "VAI", NULL,
};

static int binance_to_canonical(const char *venue_symbol, char *out, size_t cap)
{
    return venue_split_pair(venue_symbol, binance_quotes, out, cap);
}

static int binance_to_venue(const char *canonical, char *out, size_t cap)
{
    if (!canonical || !out || !symtab_is_canonical(canonical))
        return -1;
    size_t n = strlen(canonical);
    if (n > cap) /* n - 1 characters + NUL */
        return -1;
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (canonical[i] != '-')
            out[j++] = canonical[i];
    out[j] = '\0';
    return 0;
}

/* Binance symbols are [A-Za-z0-9]+ (stricter than venue_symbol_ok). */
static int binance_symbol_ok(const char *s)
{
    if (!venue_symbol_ok(s))
        return 0;
    for (; *s; s++)
        if (*s == '.' || *s == '/' || *s == '_' || *s == '-')
            return 0;
    return 1;
}

/* The combined-stream URL for these symbols, or -1 when it does not fit in
 * cap (or a symbol is not a Binance name). */
static int binance_stream_url(const char *const *syms, size_t n, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    venue_out_puts(&o, "/stream?streams=");
    for (size_t i = 0; i < n; i++) {
        if (!binance_symbol_ok(syms[i]))
            return venue_out_init(&o, out, cap), -1;
        if (i)
            venue_out_puts(&o, "/");
        venue_out_lower(&o, syms[i]);
        venue_out_puts(&o, "@bookTicker/");
        venue_out_lower(&o, syms[i]);
        venue_out_puts(&o, "@miniTicker");
    }
    return venue_out_end(&o);
}

/* 1: these symbols subscribe by URL (it is at most VENUE_BINANCE_MAX_URL_PATH
 * long), 0: by a SUBSCRIBE message on /stream, -1: bad symbols. */
static int binance_by_url(const char *const *syms, size_t n)
{
    char url[VENUE_BINANCE_MAX_URL_PATH + 1];
    if (!venue_all_ok(syms, n, binance_symbol_ok))
        return -1;
    return binance_stream_url(syms, n, url, sizeof(url)) >= 0;
}

static int binance_ws_path(const char *const *syms, size_t n, char *out, size_t cap)
{
    if (!syms || n == 0 || n > VENUE_BINANCE_MAX_SYMBOLS)
        return -1;
    int by_url = binance_by_url(syms, n);
    if (by_url < 0) {
        venue_out o;
        venue_out_init(&o, out, cap);
        return -1;
    }
    if (by_url)
        return binance_stream_url(syms, n, out, cap);
    /* Too long for a URL: the bare combined endpoint (the wrapper stays on),
     * and ws_subscribe names the streams. */
    return venue_fixed_path(syms, n, binance_symbol_ok, "/stream", out, cap);
}

/* "" when the URL subscribes; else one SUBSCRIBE naming every stream (at most
 * 1024, ~35 KB with 20-character symbols): a single message, because Binance
 * counts every incoming message against 5 per second per connection. */
static int binance_ws_subscribe(const char *const *syms, size_t n, char *out, size_t cap)
{
    if (!out || !cap || !syms || n == 0 || n > VENUE_BINANCE_MAX_SYMBOLS)
        return -1;
    int by_url = binance_by_url(syms, n);
    venue_out o;
    venue_out_init(&o, out, cap);
    if (by_url < 0)
        return -1;
    if (by_url)
        return 0; /* the combined-stream URL subscribes */
    venue_out_puts(&o, "{\"method\":\"SUBSCRIBE\",\"params\":[");
    for (size_t i = 0; i < n; i++) {
        venue_out_puts(&o, i ? ",\"" : "\"");
        venue_out_lower(&o, syms[i]);
        venue_out_puts(&o, "@bookTicker\",\"");
        venue_out_lower(&o, syms[i]);
        venue_out_puts(&o, "@miniTicker\"");
    }
    venue_out_puts(&o, "],\"id\":1}");
    return venue_out_end(&o);
}

/* ts from the optional "E" (ms). */
static int binance_event_time(const json_t *ev, int64_t recv_us, int64_t *ts)
{
    const json_t *e = json_object_get(ev, "E");
    if (!e) {
        *ts = recv_us;
        return 0;
    }
    return json_is_number(e) ? venue_epoch_us(json_number_value(e), 1000, ts) : -1;
}

/* Classify one event object of a WebSocket message and fill u for DATA. */
static venue_msg binance_ws_event(const json_t *ev, uint16_t source, int64_t recv_us,
                                  feed_update *u, char *err, size_t errcap)
{
    if (!json_is_object(ev))
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "event is not an object");
    const json_t *e = json_object_get(ev, "e");
    const char *type = NULL;
    if (e) {
        if (!json_is_string(e))
            return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "\"e\" is not a string");
        type = json_string_value(e);
    } else if (json_object_get(ev, "code")) {
        const json_t *code = json_object_get(ev, "code"), *msg = json_object_get(ev, "msg");
        return venue_fail(VENUE_MSG_ERROR, err, errcap, "binance error %.0f: %s",
                          json_is_number(code) ? json_number_value(code) : 0.0,
                          json_is_string(msg) ? json_string_value(msg) : "(no msg)");
    } else if (json_is_object(json_object_get(ev, "error")) && json_object_get(ev, "id")) {
        /* {"error":{"code":2,"msg":"Invalid request: ..."},"id":1}: the answer
         * to a SUBSCRIBE (the only request sent, for long stream lists) */
        const json_t *e2 = json_object_get(ev, "error");
        const json_t *code = json_object_get(e2, "code"), *msg = json_object_get(e2, "msg");
        return venue_fail(VENUE_MSG_REJECT, err, errcap, "binance error %.0f: %s",
                          json_is_number(code) ? json_number_value(code) : 0.0,
                          json_is_string(msg) ? json_string_value(msg) : "(no msg)");
    } else if (json_object_get(ev, "result") && json_object_get(ev, "id")) {
        /* result null answers SUBSCRIBE/UNSUBSCRIBE; a list or value answers
         * a query (LIST_SUBSCRIPTIONS, GET_PROPERTY) */
        return json_is_null(json_object_get(ev, "result")) ? VENUE_MSG_ACK : VENUE_MSG_IGNORED;
    } else if (json_object_get(ev, "b") || json_object_get(ev, "a") || json_object_get(ev, "u")) {
        type = "bookTicker"; /* the spot bookTicker has no "e" */
    } else {
        return VENUE_MSG_IGNORED;
    }

    if (!strcmp(type, "serverShutdown"))
        return VENUE_MSG_SHUTDOWN;
    int book = !strcmp(type, "bookTicker"), mini = !strcmp(type, "24hrMiniTicker"),
        full = !strcmp(type, "24hrTicker");
    if (!book && !mini && !full)
        return VENUE_MSG_IGNORED;

    const json_t *s = json_object_get(ev, "s");
    if (!json_is_string(s) || !json_string_length(s))
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "%s without \"s\"", type);
    venue_update_init(u, json_string_value(s), source, recv_us);
    if (binance_event_time(ev, recv_us, &u->ts_us))
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "%s: bad \"E\"", type);
    if (book || full) {
        if (venue_decimal(json_object_get(ev, "b"), &u->bid) ||
            venue_decimal(json_object_get(ev, "a"), &u->ask))
            return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "%s: bad \"b\"/\"a\"", type);
    }
    if (book) {
        /* "u", the order book update id, orders book tickers across
         * connections (make-before-break overlap): exact below 2^53. */
        const json_t *id = json_object_get(ev, "u");
        if (id) {
            double d = json_is_number(id) ? json_number_value(id) : -1;
            if (!(d >= 0 && d < 9007199254740992.0) || d != floor(d))
                return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bookTicker: bad \"u\"");
            u->venue_seq = (uint64_t)d;
        }
        u->last = (u->bid + u->ask) / 2;
        return VENUE_MSG_DATA;
    }
    if (venue_decimal(json_object_get(ev, "c"), &u->last) || venue_opt_decimal(ev, "o", &u->open) ||
        venue_opt_decimal(ev, "v", &u->volume))
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "%s: bad \"c\"/\"o\"/\"v\"", type);
    return VENUE_MSG_DATA;
}

static venue_msg binance_ws_parse(const char *msg, size_t len, uint16_t source, int64_t recv_us,
                                  const venue_emit *emit, char *err, size_t errcap)
{
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(msg, len, err, errcap);
    if (!root)
        return VENUE_MSG_MALFORMED;
    const json_t *payload = root;
    if (json_is_object(root) && json_object_get(root, "stream")) {
        /* combined stream wrapper {"stream":"btcusdt@bookTicker","data":{...}} */
        payload = json_object_get(root, "data");
        if (!json_is_string(json_object_get(root, "stream")) || !payload) {
            json_decref(root);
            return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad stream wrapper");
        }
    }
    venue_msg r;
    feed_update u;
    if (!json_is_array(payload)) {
        r = binance_ws_event(payload, source, recv_us, &u, err, errcap);
        if (r == VENUE_MSG_DATA)
            venue_deliver(emit, &u);
        json_decref(root);
        return r;
    }
    /* An array of events (!miniTicker@arr): check all, then emit. Control
     * replies inside an array are not a Binance form. */
    size_t i, ndata = 0, n = json_array_size(payload);
    const json_t *ev;
    r = VENUE_MSG_DATA;
    json_array_foreach(payload, i, ev) {
        venue_msg m = binance_ws_event(ev, source, recv_us, &u, err, errcap);
        if (m == VENUE_MSG_DATA) {
            ndata++;
        } else if (m != VENUE_MSG_IGNORED) {
            if (m != VENUE_MSG_MALFORMED)
                venue_fail(VENUE_MSG_MALFORMED, err, errcap, "%s inside an event array",
                           venue_msg_name(m));
            r = VENUE_MSG_MALFORMED;
            break;
        }
    }
    if (r == VENUE_MSG_DATA && n && !ndata)
        r = VENUE_MSG_IGNORED;
    if (r == VENUE_MSG_DATA) {
        json_array_foreach(payload, i, ev) {
            if (binance_ws_event(ev, source, recv_us, &u, err, errcap) == VENUE_MSG_DATA)
                venue_deliver(emit, &u);
        }
    }
    json_decref(root);
    return r;
}

/* ---- REST ---- */

static size_t binance_rest_requests(size_t n) { return n ? 1 : 0; }

static int binance_rest_path(const char *const *syms, size_t n, size_t i, char *out, size_t cap)
{
    if (!syms || n == 0 || i != 0)
        return -1;
    venue_out o;
    venue_out_init(&o, out, cap);
    for (size_t k = 0; k < n; k++)
        if (!binance_symbol_ok(syms[k]))
            return venue_out_init(&o, out, cap), -1;
    if (n == 1) {
        venue_out_puts(&o, "/api/v3/ticker/bookTicker?symbol=");
        venue_out_upper(&o, syms[0]);
        return venue_out_end(&o);
    }
    /* symbols=["BTCUSDT","ETHUSDT"] URL-encoded as in Binance's docs */
    venue_out_puts(&o, "/api/v3/ticker/bookTicker?symbols=%5B");
    for (size_t k = 0; k < n; k++) {
        venue_out_puts(&o, k ? ",%22" : "%22");
        venue_out_upper(&o, syms[k]);
        venue_out_puts(&o, "%22");
    }
    venue_out_puts(&o, "%5D");
    return venue_out_end(&o);
}

/* One ticker object of a REST response. */
static int binance_rest_item(const json_t *it, uint16_t source, int64_t recv_us, feed_update *u)
{
    const json_t *s = json_object_get(it, "symbol");
    if (!json_is_object(it) || !json_is_string(s) || !json_string_length(s))
        return -1;
    venue_update_init(u, json_string_value(s), source, recv_us);
    double last, price;
    if (venue_opt_decimal(it, "bidPrice", &u->bid) || venue_opt_decimal(it, "askPrice", &u->ask) ||
        venue_opt_decimal(it, "lastPrice", &last) || venue_opt_decimal(it, "price", &price) ||
        venue_opt_decimal(it, "volume", &u->volume) || venue_opt_decimal(it, "openPrice", &u->open))
        return -1;
    if (isnan(u->bid) != isnan(u->ask)) /* half a book is not a Binance shape */
        return -1;
    u->last = !isnan(last) ? last : !isnan(price) ? price : (u->bid + u->ask) / 2;
    return isnan(u->last) ? -1 : 0; /* neither book nor price */
}

/* "binance error -1121: Invalid symbol." from a {"code","msg"} body, else
 * "HTTP <status>" (the caller knows the status; err adds the venue's words). */
static venue_msg binance_rest_error(long status, const json_t *root, char *err, size_t errcap)
{
    const json_t *code = json_object_get(root, "code"), *msg = json_object_get(root, "msg");
    if (json_is_string(msg))
        return venue_fail(VENUE_MSG_ERROR, err, errcap, "binance error %.0f: %s",
                          json_is_number(code) ? json_number_value(code) : 0.0,
                          json_string_value(msg));
    return venue_fail(VENUE_MSG_ERROR, err, errcap, "HTTP %ld", status);
}

static venue_msg binance_rest_parse(long status, const char *body, size_t len, const char *hint,
                                    uint16_t source, int64_t recv_us, const venue_emit *emit,
                                    char *err, size_t errcap)
{
    (void)hint;
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(body, len, err, errcap);
    if (!venue_http_ok(status) || (json_is_object(root) && json_object_get(root, "code"))) {
        venue_msg r = binance_rest_error(status, root, err, errcap);
        json_decref(root);
        return r;
    }
    if (!root)
        return VENUE_MSG_MALFORMED;
    feed_update u;
    venue_msg r = VENUE_MSG_DATA;
    if (json_is_object(root)) {
        if (binance_rest_item(root, source, recv_us, &u))
            r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad ticker object");
        else
            venue_deliver(emit, &u);
    } else {
        size_t i;
        const json_t *it;
        json_array_foreach(root, i, it) {
            if (binance_rest_item(it, source, recv_us, &u)) {
                r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad ticker at [%zu]", i);
                break;
            }
        }
        if (r == VENUE_MSG_DATA) {
            json_array_foreach(root, i, it) {
                binance_rest_item(it, source, recv_us, &u); /* checked above */
                venue_deliver(emit, &u);
            }
        }
    }
    json_decref(root);
    return r;
}

const venue_preset venue_binance = {
    .name = "binance",
    .to_canonical = binance_to_canonical,
    .to_venue = binance_to_venue,
    .ws_url = "wss://stream.binance.com:9443",
    .ws_path = binance_ws_path,
    .ws_subscribe = binance_ws_subscribe,
    .ws_parse = binance_ws_parse,
    .ws_conn_symbols = VENUE_BINANCE_MAX_SYMBOLS,
    .ws_max_conn_age_s = 86400, /* "A connection is valid for 24 hours" */
    .rest_base = "https://api.binance.com",
    .rest_requests = binance_rest_requests,
    .rest_path = binance_rest_path,
    .rest_parse = binance_rest_parse,
};
