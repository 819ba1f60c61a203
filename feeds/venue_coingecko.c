/*
 * venue_coingecko.c — the CoinGecko preset (venue_coingecko): REST only,
 * GET /api/v3/simple/price for every coin id in one request.
 *
 * Coin ids ("bitcoin") are not symbols, so the mapping to canonical comes
 * from config and to_canonical/to_venue always return -1. Prices are asked in
 * VENUE_COINGECKO_VS with the 24 h volume and last_updated_at:
 *   {"bitcoin":{"usd":67187.33,"usd_24h_vol":31260929299.52,"last_updated_at":1711356300}}
 * Each coin gives one update named by its id, with last = bid = ask = the
 * price (CoinGecko has no book), open NAN, ts = last_updated_at (epoch s) or
 * recv_us. The vs currency is the coin object's first key without '_' (the
 * other keys are <vs>_market_cap, <vs>_24h_vol, <vs>_24h_change and
 * last_updated_at). <vs>_24h_vol is in the vs currency, feed_update.volume in
 * base units: volume = <vs>_24h_vol / price (an approximation), NAN when the
 * body has no volume.
 *
 * Errors: {"status":{"error_code":429,"error_message":"..."}} (HTTP 429, or
 * with 200/403) and {"error":"..."} are ERROR; {} is DATA with no update
 * (unknown ids); a coin without a price is MALFORMED.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tickerd/venue.h"

static int coingecko_no_mapping(const char *in, char *out, size_t cap)
{
    (void)in;
    if (out && cap)
        out[0] = '\0';
    return -1;
}

/* Coin ids go into a query: [A-Za-z0-9._-] (no '/'). */
static int coingecko_symbol_ok(const char *s) { return venue_symbol_ok(s) && !strchr(s, '/'); }

static size_t coingecko_rest_requests(size_t n) { return n ? 1 : 0; }

static int coingecko_rest_path(const char *const *syms, size_t n, size_t i, char *out, size_t cap)
{
    venue_out o;
    venue_out_init(&o, out, cap);
    if (!syms || n == 0 || i != 0)
        return -1;
    venue_out_puts(&o, "/api/v3/simple/price?ids=");
    for (size_t k = 0; k < n; k++) {
        if (!coingecko_symbol_ok(syms[k]))
            return venue_out_init(&o, out, cap), -1;
        if (k)
            venue_out_puts(&o, ",");
        venue_out_lower(&o, syms[k]);
    }
    venue_out_puts(&o, "&vs_currencies=" VENUE_COINGECKO_VS
                       "&include_24hr_vol=true&include_last_updated_at=true");
    return venue_out_end(&o);
}

/* Longest vs currency key we look at (CoinGecko's are 3-4 letters). */
#define COINGECKO_VS_MAX 16

static int coingecko_coin(const char *id, json_t *coin, uint16_t source, int64_t recv_us,
                          feed_update *u)
{
    if (!*id || !json_is_object(coin))
        return -1;
    const char *key, *vs = NULL;
    const json_t *v, *price = NULL;
    json_object_foreach(coin, key, v) {
        if (!strchr(key, '_')) { /* "usd", not "usd_24h_vol" or "last_updated_at" */
            vs = key;
            price = v;
            break;
        }
    }
    if (!vs || strlen(vs) > COINGECKO_VS_MAX)
        return -1;
    venue_update_init(u, id, source, recv_us);
    if (venue_number(price, &u->last))
        return -1;
    u->bid = u->ask = u->last;
    char vol_key[COINGECKO_VS_MAX + sizeof("_24h_vol")];
    snprintf(vol_key, sizeof(vol_key), "%s_24h_vol", vs);
    double vol, updated;
    if (venue_opt_number(coin, vol_key, &vol) ||
        venue_opt_number(coin, "last_updated_at", &updated))
        return -1;
    /* quote-currency volume → base units at the current price (an
     * approximation: CoinGecko gives no base volume) */
    u->volume = u->last != 0 ? vol / u->last : NAN;
    if (!isnan(updated) && venue_epoch_us(updated, 1000000, &u->ts_us))
        return -1;
    return 0;
}

static venue_msg coingecko_error(long status, const json_t *root, char *err, size_t errcap)
{
    const json_t *st = json_object_get(root, "status");
    const char *text = json_string_value(json_object_get(st, "error_message"));
    if (!text)
        text = json_string_value(json_object_get(root, "error"));
    if (text)
        return venue_fail(VENUE_MSG_ERROR, err, errcap, "coingecko: %s", text);
    return venue_fail(VENUE_MSG_ERROR, err, errcap, "HTTP %ld", status);
}

static venue_msg coingecko_rest_parse(long status, const char *body, size_t len, const char *hint,
                                      uint16_t source, int64_t recv_us, const venue_emit *emit,
                                      char *err, size_t errcap)
{
    (void)hint;
    venue_fail(VENUE_MSG_DATA, err, errcap, "%s", "");
    json_t *root = venue_json_load(body, len, err, errcap);
    /* A coin object is never a string, and a "status" coin would not carry
     * error_code: neither test can mistake a price for an error. */
    const json_t *st = json_object_get(root, "status");
    int venue_error = json_is_string(json_object_get(root, "error")) ||
                      (json_is_object(st) &&
                       (json_object_get(st, "error_code") || json_object_get(st, "error_message")));
    venue_msg r = VENUE_MSG_DATA;
    if (!venue_http_ok(status) || venue_error) {
        r = coingecko_error(status, root, err, errcap);
    } else if (!root) {
        r = VENUE_MSG_MALFORMED;
    } else if (!json_is_object(root)) {
        r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "not an object of coins");
    } else {
        const char *id;
        json_t *coin;
        feed_update u;
        json_object_foreach(root, id, coin) {
            if (coingecko_coin(id, coin, source, recv_us, &u)) {
                r = venue_fail(VENUE_MSG_MALFORMED, err, errcap, "bad price for %.40s", id);
                break;
            }
        }
        if (r == VENUE_MSG_DATA) {
            json_object_foreach(root, id, coin) {
                coingecko_coin(id, coin, source, recv_us, &u); /* checked above */
                venue_deliver(emit, &u);
            }
        }
    }
    json_decref(root);
    return r;
}

const venue_preset venue_coingecko = {
    .name = "coingecko",
    .to_canonical = coingecko_no_mapping,
    .to_venue = coingecko_no_mapping,
    .ws_url = NULL, /* no WebSocket preset: REST polling only */
    .ws_path = NULL,
    .ws_subscribe = NULL,
    .ws_parse = NULL,
    .rest_base = "https://api.coingecko.com",
    .rest_requests = coingecko_rest_requests,
    .rest_path = coingecko_rest_path,
    .rest_parse = coingecko_rest_parse,
};
