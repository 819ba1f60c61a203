/*
 * venue_kraken.c — the Kraken Spot preset (venue_kraken): symbol mapping
 * between v2 names (BTC/USD), v1/REST names (XBTUSD, XXBTZUSD) and canonical
 * ones, the WS v2 subscribe message, and the parsers for WS v2 and REST
 * /0/public/Ticker.
 *
 * WebSocket wss://ws.kraken.com/v2 (JSON objects; v1's arrays are MALFORMED):
 *   channel status          HEARTBEAT, err = "system <state>" (online,
 *                           maintenance, cancel_only, post_only)
 *   channel heartbeat       HEARTBEAT
 *   channel ticker          snapshot/update, data[] of tickers whose prices
 *                           are JSON numbers; timestamp optional → recv_us
 *   method subscribe        success true → ACK, false → REJECT (err = error)
 *   method unsubscribe      success true → IGNORED, false → ERROR
 *   method pong             HEARTBEAT
 *   other channels/methods  IGNORED (a failed one: ERROR)
 *   top-level "error" only  ERROR (e.g. rate limiting)
 * A v2 ticker has no open; it has `change`, the 24 h change in quote
 * currency, so open = last - change: the rolling 24 h open, like Binance's
 * and Coinbase's.
 *
 * REST: one GET /0/public/Ticker?pair=XBTUSD,ETHUSD for every symbol (v2
 * names are turned into the altnames Kraken's REST takes). Errors come inside
 * HTTP 200 in `error`. Updates name the result key (XXBTZUSD), which
 * to_canonical maps; a[0]/b[0]/c[0] are ask/bid/last, v[1] the 24 h volume,
 * o today's open (UTC midnight). No time in the body: ts = recv_us.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tickerd/symtab.h"
#include "tickerd/venue.h"

/* Kraken's classic asset codes and old names → the common code. Only these
 * lose their X/Z prefix: XTZ (Tezos) or a new 4-letter asset starting with X
 * or Z stay as they are. */
static const char *const kraken_assets[][2] = {
    {"XXBT", "BTC"}, {"XBT", "BTC"},  {"XXDG", "DOGE"}, {"XDG", "DOGE"}, {"XETH", "ETH"},
    {"XETC", "ETC"}, {"XLTC", "LTC"}, {"XXRP", "XRP"},  {"XXLM", "XLM"}, {"XXMR", "XMR"},
    {"XZEC", "ZEC"}, {"XREP", "REP"}, {"XMLN", "MLN"},  {"XICN", "ICN"}, {"XNMC", "NMC"},
    {"XXVN", "XVN"}, {"XDAO", "DAO"}, {"ZUSD", "USD"},  {"ZEUR", "EUR"}, {"ZGBP", "GBP"},
    {"ZCAD", "CAD"}, {"ZJPY", "JPY"}, {"ZAUD", "AUD"},  {"ZCHF", "CHF"},
};

/* Names without a slash are split on their quote in two steps. First the
 * classic 4-letter quote codes, kept only when they leave a base of 3 or more
 * characters: XXBTZUSD is XXBT+ZUSD, USDTZUSD is USDT+ZUSD, but XTZUSD (Tezos)
 * is not XT+ZUSD. Then the plain codes, longest first (XBTUSDT is XBT+USDT). */
static const char *const kraken_classic_quotes[] = {
    "ZUSD", "ZEUR", "ZGBP", "ZCAD", "ZJPY", "ZAUD", "ZCHF", "XXBT", "XETH",
};
static const char *const kraken_quotes[] = {
    "USD",  "EUR",  "GBP",   "CAD", "JPY", "CHF", "AUD",
    "USDT", "USDC", "PYUSD", "DAI", "XBT", "ETH", NULL,
};

static const char *kraken_asset(const char *code)
{
    for (size_t i = 0; i < sizeof(kraken_assets) / sizeof(kraken_assets[0]); i++)
        if (!strcmp(code, kraken_assets[i][0]))
            return kraken_assets[i][1];
    return code;
}

/* Canonical BASE-QUOTE from two raw asset codes (upper-cased, mapped). */
static int kraken_join(const char *base, size_t nb, const char *quote, size_t nq, char *out,
                       size_t cap)
{
    char b[SYMTAB_NAME_MAX], q[SYMTAB_NAME_MAX];
    if (!nb || !nq || nb >= sizeof(b) || nq >= sizeof(q))
        return -1;
    for (size_t i = 0; i < nb; i++)
        b[i] = base[i] >= 'a' && base[i] <= 'z' ? (char)(base[i] - 'a' + 'A') : base[i];
    for (size_t i = 0; i < nq; i++)
        q[i] = quote[i] >= 'a' && quote[i] <= 'z' ? (char)(quote[i] - 'a' + 'A') : quote[i];
    b[nb] = q[nq] = '\0';
    int w = snprintf(out, cap, "%s-%s", kraken_asset(b), kraken_asset(q));
    if (w < 0 || (size_t)w >= cap || !symtab_is_canonical(out)) {
        if (cap)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

static int kraken_to_canonical(const char *venue_symbol, char *out, size_t cap)
{
    if (!venue_symbol || !out || !cap)
        return -1;
    const char *slash = strchr(venue_symbol, '/');
    if (slash) /* v2 BTC/USD, v1 XBT/USD */
        return kraken_join(venue_symbol, (size_t)(slash - venue_symbol), slash + 1,
                           strlen(slash + 1), out, cap);
    /* XXBTZUSD, XBTUSD, SOLUSD: split on the quote, then map both halves */
    size_t n = strlen(venue_symbol);
    for (size_t i = 0; i < sizeof(kraken_classic_quotes) / sizeof(kraken_classic_quotes[0]); i++) {
        const char *q = kraken_classic_quotes[i];
        if (n >= 3 + 4 && !strcasecmp(venue_symbol + n - 4, q))
            return kraken_join(venue_symbol, n - 4, q, 4, out, cap);
    }
    char split[SYMTAB_NAME_MAX];
    if (venue_split_pair(venue_symbol, kraken_quotes, split, sizeof(split)))
        return out[0] = '\0', -1;
    const char *dash = strchr(split, '-');
    return kraken_join(split, (size_t)(dash - split), dash + 1, strlen(dash + 1), out, cap);
}

/* Canonical → v2 name: BTC-USD → BTC/USD (v2 uses BTC, not XBT). */
static int kraken_to_venue(const char *canonical, char *out, size_t cap)
{
    if (!canonical || !out || !symtab_is_canonical(canonical) || strlen(canonical) >= cap)
        return -1;
    strcpy(out, canonical);
    *strchr(out, '-') = '/';
    return 0;
}

/* Kraken names: [A-Za-z0-9.] with at most one '/' between two non-empty halves. */
static int kraken_symbol_ok(const char *s)
{
    if (!venue_symbol_ok(s))
        return 0;
    const char *slash = strchr(s, '/');
    if (slash && (slash == s || !slash[1] || strchr(slash + 1, '/')))
        return 0;
    for (; *s; s++)
        if (*s == '_' || *s == '-')
            return 0;
    return 1;
}

static int kraken_symbols_ok(const char *const *syms, size_t n)
{
    return venue_all_ok(syms, n, kraken_symbol_ok);
}

static int kraken_ws_path(const char *const *syms, size_t n, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (!kraken_symbols_ok(syms, n))
        return -1;
    venue_out_puts(&o, "/v2");
    return venue_out_end(&o);
}

static int kraken_ws_subscribe(const char *const *syms, size_t n, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (!kraken_symbols_ok(syms, n))
        return -1;
    venue_out_puts(&o, "{\"method\":\"subscribe\",\"params\":{\"channel\":\"ticker\",\"symbol\":[");
    venue_out_quoted_list(&o, syms, n); /* checked: nothing to escape */
    venue_out_puts(&o, "]}}");
    return venue_out_end(&o);
}

/* One element of a ticker message's data[]. */
static int kraken_ticker_item(const json_t *it, uint16_t source, int64_t recv_us, feed_update *u)
{
    const json_t *sym = json_object_get(it, "symbol");
    if (!json_is_object(it) || !json_is_string(sym) || !json_string_length(sym))
        return -1;
    venue_update_init(u, json_string_value(sym), source, recv_us);
    double change;
    if (venue_number(json_object_get(it, "bid"), &u->bid) ||
        venue_number(json_object_get(it, "ask"), &u->ask) ||
        venue_number(json_object_get(it, "last"), &u->last) ||
        venue_opt_number(it, "volume", &u->volume) || venue_opt_number(it, "change", &change))
        return -1;
    u->open = u->last - change; /* NAN when change is absent */
    const json_t *ts = json_object_get(it, "timestamp");
    if (ts && !json_is_null(ts) &&
        (!json_is_string(ts) || venue_rfc3339_us(json_string_value(ts), &u->ts_us)))
        return -1;
    return 0;
}

static venue_msg kraken_ticker(const json_t *root, uint16_t source, int64_t recv_us,
                               const venue_emit *emit, char *err, size_t errcap)
{
    const json_t *data = json_object_get(root, "data"), *it;
    if (!json_is_array(data))
        return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "ticker without data[]");
    size_t i;
    feed_update u;
    json_array_foreach(data, i, it) {
        if (kraken_ticker_item(it, source, recv_us, &u))
            return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad ticker at data[%zu]", i);
    }
    json_array_foreach(data, i, it) {
        kraken_ticker_item(it, source, recv_us, &u); /* checked above */
        venue_deliver(emit, &u);
    }
    return VENUE_MSG_DATA;
}

static const char *kraken_error_text(const json_t *root)
{
    const json_t *e = json_object_get(root, "error");
    return json_is_string(e) ? json_string_value(e) : "(no error text)";
}

static venue_msg kraken_method(const json_t *root, const char *method, char *err, size_t errcap)
{
    if (!strcmp(method, "pong"))
        return VENUE_MSG_HEARTBEAT;
    const json_t *ok = json_object_get(root, "success");
    int sub = !strcmp(method, "subscribe");
    if (!json_is_boolean(ok)) {
        if (sub)
            return venue_fail(VENUE_MSG_MALFORMED, err, errcap, "subscribe reply without success");
        return VENUE_MSG_IGNORED;
    }
    if (json_is_true(ok))
        return sub ? VENUE_MSG_ACK : VENUE_MSG_IGNORED;
    return venue_fail(sub ? VENUE_MSG_REJECT : VENUE_MSG_ERROR, err, errcap, "%s: %s", method,
                      kraken_error_text(root));
}

static venue_msg kraken_ws_parse(const char *msg, size_t len, uint16_t source, int64_t recv_us,
                                 const venue_emit *emit, char *err, size_t errcap)
{
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(msg, len, err, errcap);
    if (!root)
        return VENUE_MSG_MALFORMED;
    venue_msg r;
    const json_t *channel = json_object_get(root, "channel");
    const json_t *method = json_object_get(root, "method");
    if (!json_is_object(root)) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "not a v2 message (object)");
    } else if (channel) {
        const char *c = json_string_value(channel);
        if (!c) {
            r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "\"channel\" is not a string");
        } else if (!strcmp(c, "ticker")) {
            r = kraken_ticker(root, source, recv_us, emit, err, errcap);
        } else if (!strcmp(c, "heartbeat")) {
            r = VENUE_MSG_HEARTBEAT;
        } else if (!strcmp(c, "status")) {
            const char *sys = json_string_value(
                json_object_get(json_array_get(json_object_get(root, "data"), 0), "system"));
            r = venue_fail(VENUE_MSG_HEARTBEAT, err, errcap, "system %s", sys ? sys : "?");
        } else {
            r = VENUE_MSG_IGNORED;
        }
    } else if (method) {
        r = json_is_string(method)
                ? kraken_method(root, json_string_value(method), err, errcap)
                : venue_fail(VENUE_MSG_MALFORMED, err, errcap, "\"method\" is not a string");
    } else if (json_object_get(root, "error")) {
        r = venue_fail(VENUE_MSG_ERROR, err, errcap, "%s", kraken_error_text(root));
    } else {
        r = VENUE_MSG_IGNORED;
    }
    json_decref(root);
    return r;
}

/* ---- REST ---- */

static size_t kraken_rest_requests(size_t n) { return n ? 1 : 0; }

/* v2 half → REST altname half: BTC → XBT, DOGE → XDG, others as they are. */
static void kraken_rest_asset(venue_out *o, const char *code, size_t n)
{
    char c[VENUE_SYMBOL_MAX];
    memcpy(c, code, n); /* n < VENUE_SYMBOL_MAX: the symbol was checked */
    c[n] = '\0';
    venue_out_upper(o, !strcmp(c, "BTC") ? "XBT" : !strcmp(c, "DOGE") ? "XDG" : c);
}

static int kraken_rest_path(const char *const *syms, size_t n, size_t i, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (i != 0 || !kraken_symbols_ok(syms, n))
        return -1;
    venue_out_puts(&o, "/0/public/Ticker?pair=");
    for (size_t k = 0; k < n; k++) {
        if (k)
            venue_out_puts(&o, ",");
        const char *slash = strchr(syms[k], '/');
        if (!slash) { /* already a REST name (XBTUSD) */
            venue_out_upper(&o, syms[k]);
            continue;
        }
        kraken_rest_asset(&o, syms[k], (size_t)(slash - syms[k]));
        kraken_rest_asset(&o, slash + 1, strlen(slash + 1));
    }
    return venue_out_end(&o);
}

/* Element idx of array member key of obj as a decimal string. */
static int kraken_rest_field(const json_t *obj, const char *key, size_t idx, double *out)
{
    return venue_decimal(json_array_get(json_object_get(obj, key), idx), out);
}

static int kraken_rest_item(const char *pair, const json_t *t, uint16_t source, int64_t recv_us,
                            feed_update *u)
{
    if (!json_is_object(t) || !*pair)
        return -1;
    venue_update_init(u, pair, source, recv_us);
    if (kraken_rest_field(t, "a", 0, &u->ask) || kraken_rest_field(t, "b", 0, &u->bid) ||
        kraken_rest_field(t, "c", 0, &u->last) || venue_opt_decimal(t, "o", &u->open))
        return -1;
    if (json_object_get(t, "v") && kraken_rest_field(t, "v", 1, &u->volume))
        return -1;
    return 0;
}

/* "kraken: EQuery:Unknown asset pair; ..." from error[], else "HTTP <status>". */
static venue_msg kraken_rest_error(long status, const json_t *errors, char *err, size_t errcap)
{
    venue_fail(VENUE_MSG_ERROR, err, errcap, "kraken");
    size_t i;
    const json_t *e;
    json_array_foreach(errors, i, e) {
        size_t used = err ? strlen(err) : 0;
        if (json_is_string(e) && err && used + 1 < errcap)
            snprintf(err + used, errcap - used, "%s%s", i ? "; " : ": ", json_string_value(e));
    }
    if (!json_array_size(errors)) /* a bare non-2xx: the status is all there is */
        venue_fail(VENUE_MSG_ERROR, err, errcap, "HTTP %ld", status);
    return VENUE_MSG_ERROR;
}

static venue_msg kraken_rest_parse(long status, const char *body, size_t len, const char *hint,
                                   uint16_t source, int64_t recv_us, const venue_emit *emit,
                                   char *err, size_t errcap)
{
    (void)hint;
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(body, len, err, errcap);
    const json_t *errors = json_object_get(root, "error");
    json_t *result = json_object_get(root, "result");
    venue_msg r = VENUE_MSG_DATA;
    if (!venue_http_ok(status) || json_array_size(errors)) {
        r = kraken_rest_error(status, errors, err, errcap);
    } else if (!root) {
        r = VENUE_MSG_MALFORMED;
    } else if (!json_is_object(root) || (errors && !json_is_array(errors)) ||
               !json_is_object(result)) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "no result object");
    } else {
        const char *pair;
        const json_t *t;
        feed_update u;
        json_object_foreach(result, pair, t) {
            if (kraken_rest_item(pair, t, source, recv_us, &u)) {
                r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad ticker for %.40s", pair);
                break;
            }
        }
        if (r == VENUE_MSG_DATA) {
            json_object_foreach(result, pair, t) {
                kraken_rest_item(pair, t, source, recv_us, &u); /* checked above */
                venue_deliver(emit, &u);
            }
        }
    }
    json_decref(root);
    return r;
}

const venue_preset venue_kraken = {
    .name = "kraken",
    .to_canonical = kraken_to_canonical,
    .to_venue = kraken_to_venue,
    .ws_url = "wss://ws.kraken.com/v2",
    .ws_path = kraken_ws_path,
    .ws_subscribe = kraken_ws_subscribe,
    .ws_parse = kraken_ws_parse,
    .rest_base = "https://api.kraken.com",
    .rest_requests = kraken_rest_requests,
    .rest_path = kraken_rest_path,
    .rest_parse = kraken_rest_parse,
};
