/* venue: symbol mapping, request building and message parsing for every preset,
 * over the venues' documented examples, hostile input and the recorded
 * fixtures in tests/fixtures/. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "got.h"
#include "tickerd/venue.h"

#define RECV_US INT64_C(1711356300000000) /* 2024-03-25T08:45:00Z */
#define SOURCE 7


static char err[256];

static venue_msg ws(const char *venue, const char *msg, got *g)
{
    venue_emit e = {.arg = g, .update = got_update};
    memset(g, 0, sizeof(*g));
    return venue_find(venue)->ws_parse(msg, strlen(msg), SOURCE, RECV_US, &e, err, sizeof(err));
}

static venue_msg rest(const char *venue, long status, const char *body, const char *hint, got *g)
{
    venue_emit e = {.arg = g, .update = got_update};
    memset(g, 0, sizeof(*g));
    return venue_find(venue)->rest_parse(status, body, strlen(body), hint, SOURCE, RECV_US, &e, err,
                                         sizeof(err));
}

static int maps(const char *venue, const char *in, const char *want)
{
    char out[64];
    return venue_find(venue)->to_canonical(in, out, sizeof(out)) == 0 && !strcmp(out, want);
}

static int spells(const char *venue, const char *canonical, const char *want)
{
    char out[64];
    return venue_find(venue)->to_venue(canonical, out, sizeof(out)) == 0 && !strcmp(out, want);
}

static int unmappable(const char *venue, const char *in)
{
    char out[64];
    return venue_find(venue)->to_canonical(in, out, sizeof(out)) == -1;
}

/* ---- registry and building blocks ---- */

static void finds_every_preset_by_name(void)
{
    CHECK(venue_find("binance") == &venue_binance);
    CHECK(venue_find("coinbase") == &venue_coinbase);
    CHECK(venue_find("kraken") == &venue_kraken);
    CHECK(venue_find("coingecko") == &venue_coingecko);
    CHECK(venue_find("ftx") == NULL);
    CHECK(venue_find(NULL) == NULL);
    CHECK(!strcmp(venue_msg_name(VENUE_MSG_REJECT), "reject"));
    CHECK(!strcmp(venue_msg_name(VENUE_MSG_MALFORMED), "malformed"));
}

static void parses_rfc3339_to_exact_microseconds(void)
{
    int64_t t = -1;
    CHECK(venue_rfc3339_us("1970-01-01T00:00:00Z", &t) == 0 && t == 0);
    CHECK(venue_rfc3339_us("2022-10-19T23:28:22.061769Z", &t) == 0 &&
          t == INT64_C(1666222102061769));
    CHECK(venue_rfc3339_us("2020-03-20T00:22:57.833Z", &t) == 0 && t == INT64_C(1584663777833000));
    /* nanoseconds (Advanced Trade) are truncated, never rounded up */
    CHECK(venue_rfc3339_us("2023-02-09T20:30:37.167359596Z", &t) == 0 &&
          t == INT64_C(1675974637167359));
    CHECK(venue_rfc3339_us("2022-10-20T01:28:22.061769+02:00", &t) == 0 &&
          t == INT64_C(1666222102061769));
    CHECK(venue_rfc3339_us("2022-10-19t20:28:22.061769-03:00", &t) == 0 &&
          t == INT64_C(1666222102061769));
    CHECK(venue_rfc3339_us("2024-02-29T23:59:59z", &t) == 0 && t == INT64_C(1709251199000000));
    CHECK(venue_rfc3339_us("1969-12-31T23:59:59.5Z", &t) == 0 && t == -500000);
    CHECK(venue_rfc3339_us("2023-02-29T00:00:00Z", &t) == -1);
    CHECK(venue_rfc3339_us("2022-13-01T00:00:00Z", &t) == -1);
    CHECK(venue_rfc3339_us("2022-10-19T24:00:00Z", &t) == -1);
    CHECK(venue_rfc3339_us("2022-10-19T23:28:22", &t) == -1);
    CHECK(venue_rfc3339_us("2022-10-19T23:28:22.Z", &t) == -1);
    CHECK(venue_rfc3339_us("2022-10-19T23:28:22Zjunk", &t) == -1);
    CHECK(venue_rfc3339_us("2022-10-19T23:28:22+02", &t) == -1);
    CHECK(venue_rfc3339_us("2022-10-19", &t) == -1);
    CHECK(venue_rfc3339_us("", &t) == -1);
    CHECK(venue_rfc3339_us("+002022-10-19T23:28:22Z", &t) == -1);
}

/* venue_decimal over a JSON string holding text; d gets the value. */
static int decimal_of(const char *text, double *d)
{
    json_t *v = json_string(text);
    *d = NAN;
    int r = venue_decimal(v, d);
    json_decref(v);
    return r;
}

static void reads_only_plain_decimal_strings(void)
{
    double d = 0;
    json_t *v;
#define DEC(text) decimal_of(text, &d)
    CHECK(DEC("25.35190000") == 0 && d == 25.3519);
    CHECK(DEC("-0.5") == 0 && d == -0.5);
    CHECK(DEC("0") == 0 && d == 0);
    CHECK(DEC(".5") == 0 && d == 0.5);
    CHECK(DEC("1e3") == 0 && d == 1000);
    CHECK(DEC("1e-400") == 0 && d == 0); /* underflow: 0 goes on to be rejected */
    CHECK(DEC("99999999999999999999999999") == 0 && d == 1e26);
    CHECK(DEC("1e999") == -1);
    CHECK(DEC("inf") == -1);
    CHECK(DEC("nan") == -1);
    CHECK(DEC("0x10") == -1);
    CHECK(DEC(" 1") == -1);
    CHECK(DEC("1 ") == -1);
    CHECK(DEC("1e") == -1);
    CHECK(DEC("") == -1);
    CHECK(DEC("-") == -1);
    CHECK(DEC("1,5") == -1);
    CHECK(DEC("00000000000000000000000000000000000000000000000000000000000000001") == -1);
#undef DEC
    v = json_real(1.5);
    CHECK(venue_decimal(v, &d) == -1); /* a number where a string belongs */
    CHECK(venue_number(v, &d) == 0 && d == 1.5);
    json_decref(v);
    v = json_string("1.5");
    CHECK(venue_number(v, &d) == -1); /* a string where a number belongs */
    json_decref(v);
    int64_t us;
    CHECK(venue_epoch_us(1672515782136.0, 1000, &us) == 0 && us == INT64_C(1672515782136000));
    CHECK(venue_epoch_us(1e300, 1000, &us) == -1);
    CHECK(venue_epoch_us(-1, 1000, &us) == -1);
    CHECK(venue_epoch_us(NAN, 1000, &us) == -1);
}

/* ---- Binance ---- */

static void binance_maps_symbols_both_ways(void)
{
    CHECK(maps("binance", "BTCUSDT", "BTC-USDT"));
    CHECK(maps("binance", "ETHBTC", "ETH-BTC"));
    CHECK(maps("binance", "BNBFDUSD", "BNB-FDUSD")); /* longest quote wins */
    CHECK(maps("binance", "BTCTUSD", "BTC-TUSD"));
    CHECK(maps("binance", "USDTTRY", "USDT-TRY"));
    CHECK(maps("binance", "btcusdt", "BTC-USDT"));
    CHECK(spells("binance", "BTC-USDT", "BTCUSDT"));
    CHECK(spells("binance", "ETH-BTC", "ETHBTC"));
    CHECK(unmappable("binance", "USDT"));   /* nothing left for a base */
    CHECK(unmappable("binance", "BTCXYZ")); /* no known quote */
    CHECK(unmappable("binance", "BTC_USDT"));
    CHECK(unmappable("binance", ""));
    CHECK(unmappable("binance", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAUSDT"));
    char small[8];
    CHECK(venue_binance.to_canonical("BTCUSDT", small, sizeof(small)) == -1);
    CHECK(venue_binance.to_venue("BTC-USDT", small, sizeof(small)) == 0 &&
          !strcmp(small, "BTCUSDT"));
    CHECK(venue_binance.to_venue("BTC-USDT", small, 7) == -1);
    CHECK(venue_binance.to_venue("btc-usdt", small, sizeof(small)) == -1);
}

static void binance_builds_combined_stream_url_and_rest_paths(void)
{
    const char *syms[] = {"BTCUSDT", "ETHUSDT"};
    char out[256];
    CHECK(venue_binance.ws_path(syms, 2, out, sizeof(out)) > 0);
    CHECK(!strcmp(out, "/stream?streams=btcusdt@bookTicker/btcusdt@miniTicker/"
                       "ethusdt@bookTicker/ethusdt@miniTicker"));
    CHECK(venue_binance.ws_subscribe(syms, 2, out, sizeof(out)) == 0 && out[0] == '\0');
    CHECK(venue_binance.ws_path(syms, 2, out, 20) == -1 && out[0] == '\0');
    CHECK(venue_binance.ws_path(syms, 0, out, sizeof(out)) == -1);
    const char *bad[] = {"BTC\"USDT"};
    CHECK(venue_binance.ws_path(bad, 1, out, sizeof(out)) == -1);
    CHECK(venue_binance.rest_requests(2) == 1 && venue_binance.rest_requests(0) == 0);
    CHECK(venue_binance.rest_path(syms, 1, 0, out, sizeof(out)) > 0);
    CHECK(!strcmp(out, "/api/v3/ticker/bookTicker?symbol=BTCUSDT"));
    CHECK(venue_binance.rest_path(syms, 2, 0, out, sizeof(out)) > 0);
    CHECK(!strcmp(out, "/api/v3/ticker/bookTicker?symbols=%5B%22BTCUSDT%22,%22ETHUSDT%22%5D"));
    CHECK(venue_binance.rest_path(syms, 2, 1, out, sizeof(out)) == -1);
    CHECK(!strcmp(venue_binance.ws_url, "wss://stream.binance.com:9443"));
    CHECK(!strcmp(venue_binance.rest_base, "https://api.binance.com"));
}

/* Spreading symbols over connections: contiguous, in order, balanced, each
 * within the per-connection limit, for every n up to well past Binance's
 * 16 x 512. */
static void symbols_split_over_connections(void)
{
    size_t first, count;
    CHECK(venue_ws_conns(0, 512) == 0 && venue_ws_conns(1, 512) == 1);
    CHECK(venue_ws_conns(512, 512) == 1 && venue_ws_conns(513, 512) == 2);
    CHECK(venue_ws_conns(1500, 512) == 3 && venue_ws_conns(8192, 512) == 16);
    CHECK(venue_ws_conns(5000, 0) == 1); /* no limit: one connection */
    CHECK(venue_ws_shard(5000, 0, 0, &first, &count) == 0 && first == 0 && count == 5000);
    for (size_t k = 0; k < 3; k++)
        CHECK(venue_ws_shard(1500, 512, k, &first, &count) == 0 && first == k * 500 &&
              count == 500);
    CHECK(venue_ws_shard(1500, 512, 3, &first, &count) == -1);
    CHECK(venue_ws_shard(0, 512, 0, &first, &count) == -1);
    CHECK(venue_ws_shard(1025, 512, 0, &first, &count) == 0 && count == 342);
    CHECK(venue_ws_shard(1025, 512, 2, &first, &count) == 0 && first == 684 && count == 341);
    int ok = 1;
    for (size_t n = 1; n <= 9000 && ok; n++) {
        size_t conns = venue_ws_conns(n, 512), next = 0, lo = (size_t)-1, hi = 0;
        ok = conns == (n + 511) / 512;
        for (size_t k = 0; k < conns && ok; k++) {
            ok = venue_ws_shard(n, 512, k, &first, &count) == 0 && first == next && count >= 1 &&
                 count <= 512;
            next = first + count;
            lo = count < lo ? count : lo;
            hi = count > hi ? count : hi;
        }
        ok = ok && next == n && hi - lo <= 1;
    }
    CHECK(ok);
}

/* Binance subscribes by URL while the URL is short, else /stream + one
 * SUBSCRIBE with the same streams; at most 512 symbols (1024 streams). */
static void binance_long_stream_lists_subscribe_by_message(void)
{
    static char names[512][24];
    const char *syms[513];
    for (int i = 0; i < 512; i++) {
        snprintf(names[i], sizeof(names[i]), "S%04dUSDT", i);
        syms[i] = names[i];
    }
    syms[512] = "EXTRAUSDT";
    static char out[65536];
    /* 24 symbols x ~42 bytes fit in VENUE_BINANCE_MAX_URL_PATH, 25 do not */
    int n24 = venue_binance.ws_path(syms, 24, out, sizeof(out));
    CHECK(n24 > 0 && n24 <= VENUE_BINANCE_MAX_URL_PATH && !strncmp(out, "/stream?streams=", 16));
    CHECK(venue_binance.ws_subscribe(syms, 24, out, sizeof(out)) == 0 && out[0] == '\0');
    CHECK(venue_binance.ws_path(syms, 25, out, sizeof(out)) == 7 && !strcmp(out, "/stream"));
    int len = venue_binance.ws_subscribe(syms, 25, out, sizeof(out));
    CHECK(len > 0 && !strncmp(out, "{\"method\":\"SUBSCRIBE\",\"params\":[\"s0000usdt@bookTicker\","
                                   "\"s0000usdt@miniTicker\",\"s0001usdt@bookTicker\",",
                              100));
    CHECK(len > 9 && !strcmp(out + len - 9, "],\"id\":1}"));
    /* the whole connection's worth is one valid message of 1024 streams */
    len = venue_binance.ws_subscribe(syms, 512, out, sizeof(out));
    json_error_t je;
    json_t *j = len > 0 ? json_loadb(out, (size_t)len, 0, &je) : NULL;
    CHECK(j && json_array_size(json_object_get(j, "params")) == 1024);
    CHECK(j && !strcmp(json_string_value(json_array_get(json_object_get(j, "params"), 1023)),
                       "s0511usdt@miniTicker"));
    json_decref(j);
    CHECK(venue_binance.ws_path(syms, 513, out, sizeof(out)) == -1);
    CHECK(venue_binance.ws_subscribe(syms, 513, out, sizeof(out)) == -1);
    CHECK(venue_binance.ws_subscribe(syms, 512, out, 1000) == -1 && out[0] == '\0');
    const char *bad[] = {"BTCUSDT", "BTC\"USDT"};
    CHECK(venue_binance.ws_subscribe(bad, 2, out, sizeof(out)) == -1);
    CHECK(venue_binance.ws_conn_symbols == 512 && venue_binance.ws_max_conn_age_s == 86400);
    CHECK(venue_kraken.ws_conn_symbols == 0 && venue_kraken.ws_max_conn_age_s == 0);
}

/* The book ticker's "u" orders it across overlapping connections. */
static void binance_book_ticker_carries_its_update_id(void)
{
    got g;
    CHECK(ws("binance",
             "{\"u\":40000000123,\"s\":\"BNBUSDT\",\"b\":\"25.35\",\"B\":\"1\",\"a\":\"25.36\","
             "\"A\":\"1\"}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].venue_seq == UINT64_C(40000000123));
    CHECK(ws("binance", "{\"s\":\"BNBUSDT\",\"b\":\"25.35\",\"B\":\"1\",\"a\":\"25.36\",\"A\":\"1\"}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].venue_seq == 0);
    CHECK(ws("binance",
             "{\"u\":\"7\",\"s\":\"BNBUSDT\",\"b\":\"25.35\",\"B\":\"1\",\"a\":\"25.36\",\"A\":\"1\"}",
             &g) == VENUE_MSG_MALFORMED && g.n == 0);
    CHECK(ws("binance",
             "{\"u\":-1,\"s\":\"BNBUSDT\",\"b\":\"25.35\",\"B\":\"1\",\"a\":\"25.36\",\"A\":\"1\"}",
             &g) == VENUE_MSG_MALFORMED);
    CHECK(ws("binance",
             "{\"u\":1.5,\"s\":\"BNBUSDT\",\"b\":\"25.35\",\"B\":\"1\",\"a\":\"25.36\",\"A\":\"1\"}",
             &g) == VENUE_MSG_MALFORMED);
    CHECK(ws("binance",
             "{\"e\":\"24hrMiniTicker\",\"E\":1672515782136,\"s\":\"BNBBTC\",\"c\":\"0.0025\","
             "\"o\":\"0.0010\",\"h\":\"0.0025\",\"l\":\"0.0010\",\"v\":\"10000\",\"q\":\"18\"}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].venue_seq == 0 && g.u[0].ts_us == INT64_C(1672515782136000));
    /* a refused SUBSCRIBE, in the nested form the venue sends to identified requests */
    CHECK(ws("binance", "{\"error\":{\"code\":2,\"msg\":\"Invalid request: too many streams\"},\"id\":1}",
             &g) == VENUE_MSG_REJECT);
    CHECK(strstr(err, "too many streams") != NULL);
    CHECK(ws("binance", "{\"result\":null,\"id\":1}", &g) == VENUE_MSG_ACK);
}

static void binance_book_ticker_gives_mid_and_receive_time(void)
{
    got g;
    CHECK(ws("binance",
             "{\"u\":400900217,\"s\":\"BNBUSDT\",\"b\":\"25.35190000\",\"B\":\"31.21000000\","
             "\"a\":\"25.36520000\",\"A\":\"40.66000000\"}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "BNBUSDT"));
    CHECK(g.u[0].bid == 25.3519 && g.u[0].ask == 25.3652);
    CHECK(g.u[0].last == (25.3519 + 25.3652) / 2);
    CHECK(isnan(g.u[0].volume) && isnan(g.u[0].open));
    CHECK(g.u[0].ts_us == RECV_US && g.u[0].source == SOURCE);
    CHECK(ws("binance",
             "{\"stream\":\"nknusdt@bookTicker\",\"data\":{\"u\":499869768,\"s\":\"NKNUSDT\","
             "\"b\":\"0.35210000\",\"B\":\"672.00000000\",\"a\":\"0.35260000\","
             "\"A\":\"3199.00000000\"}}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "NKNUSDT") && g.u[0].bid == 0.3521 && g.u[0].ask == 0.3526);
}

static void binance_mini_ticker_gives_last_open_volume_and_event_time(void)
{
    got g;
    const char *mini =
        "{\"e\":\"24hrMiniTicker\",\"E\":1672515782136,\"s\":\"BNBBTC\",\"c\":\"0.0025\","
        "\"o\":\"0.0010\",\"h\":\"0.0025\",\"l\":\"0.0010\",\"v\":\"10000\",\"q\":\"18\"}";
    CHECK(ws("binance", mini, &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "BNBBTC"));
    CHECK(g.u[0].last == 0.0025 && g.u[0].open == 0.001 && g.u[0].volume == 10000);
    CHECK(isnan(g.u[0].bid) && isnan(g.u[0].ask)); /* the adapter merges the book in */
    CHECK(g.u[0].ts_us == INT64_C(1672515782136000));
    CHECK(ws("binance",
             "{\"e\":\"24hrTicker\",\"E\":1672515782136,\"s\":\"BNBBTC\",\"p\":\"0.0015\","
             "\"P\":\"250.00\","
             "\"w\":\"0.0018\",\"x\":\"0.0009\",\"c\":\"0.0025\",\"Q\":\"10\",\"b\":\"0.0024\","
             "\"B\":\"10\","
             "\"a\":\"0.0026\",\"A\":\"100\",\"o\":\"0.0010\",\"h\":\"0.0025\",\"l\":\"0.0010\","
             "\"v\":\"10000\",\"q\":\"18\",\"O\":0,\"C\":86400000,\"F\":0,\"L\":18150,\"n\":18151}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].bid == 0.0024 && g.u[0].ask == 0.0026 && g.u[0].last == 0.0025);
}

static void binance_event_arrays_are_all_or_nothing(void)
{
    got g;
    CHECK(ws("binance",
             "[{\"e\":\"24hrMiniTicker\",\"E\":1,\"s\":\"AUSDT\",\"c\":\"1\",\"o\":\"1\","
             "\"v\":\"1\"},"
             "{\"e\":\"24hrMiniTicker\",\"E\":2,\"s\":\"BUSDT\",\"c\":\"2\",\"o\":\"2\","
             "\"v\":\"2\"}]",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 2 && !strcmp(g.sym[1], "BUSDT") && g.u[1].last == 2 && g.u[1].ts_us == 2000);
    CHECK(ws("binance",
             "[{\"e\":\"24hrMiniTicker\",\"E\":1,\"s\":\"AUSDT\",\"c\":\"1\"},"
             "{\"e\":\"24hrMiniTicker\",\"E\":2,\"s\":\"BUSDT\",\"c\":\"x\"}]",
             &g) == VENUE_MSG_MALFORMED);
    CHECK(g.n == 0);
    CHECK(ws("binance", "[]", &g) == VENUE_MSG_DATA && g.n == 0);
    CHECK(ws("binance", "[{\"e\":\"kline\"}]", &g) == VENUE_MSG_IGNORED);
    CHECK(ws("binance", "[{\"result\":null,\"id\":1}]", &g) == VENUE_MSG_MALFORMED);
    CHECK(ws("binance", "[1,2]", &g) == VENUE_MSG_MALFORMED);
}

static void binance_classifies_acks_errors_and_shutdown(void)
{
    got g;
    CHECK(ws("binance", "{\"result\":null,\"id\":1}", &g) == VENUE_MSG_ACK && g.n == 0);
    CHECK(ws("binance", "{\"result\":[\"btcusdt@aggTrade\"],\"id\":3}", &g) == VENUE_MSG_IGNORED);
    CHECK(ws("binance",
             "{\"code\":2,\"msg\":\"Invalid request: missing field `method` at line 1 column 73\"}",
             &g) == VENUE_MSG_ERROR);
    CHECK(strstr(err, "missing field `method`") != NULL);
    CHECK(ws("binance", "{\"code\":3,\"msg\":\"Invalid JSON: expected value at line 1 column 1\"}",
             &g) == VENUE_MSG_ERROR);
    CHECK(ws("binance", "{\"e\":\"serverShutdown\",\"E\":1770123456789}", &g) ==
          VENUE_MSG_SHUTDOWN);
    CHECK(ws("binance",
             "{\"stream\":\"!serverShutdown\",\"data\":{\"e\":\"serverShutdown\","
             "\"E\":1770123456789}}",
             &g) == VENUE_MSG_SHUTDOWN);
    CHECK(ws("binance",
             "{\"e\":\"trade\",\"E\":1672515782136,\"s\":\"BNBBTC\",\"t\":12345,\"p\":\"0.001\","
             "\"q\":\"100\",\"T\":1672515782136,\"m\":true,\"M\":true}",
             &g) == VENUE_MSG_IGNORED);
    CHECK(ws("binance", "{}", &g) == VENUE_MSG_IGNORED && err[0] == '\0');
}

static void binance_refuses_malformed_messages(void)
{
    got g;
    const char *bad[] = {
        "{\"u\":1,\"s\":\"BTCUSDT\",\"b\":67000.1,\"a\":\"67000.2\"}",   /* number, not string */
        "{\"u\":1,\"s\":\"BTCUSDT\",\"b\":\"abc\",\"a\":\"67000.2\"}",   /* non-numeric */
        "{\"u\":1,\"s\":\"BTCUSDT\",\"b\":\"1e999\",\"a\":\"67000.2\"}", /* overflows */
        "{\"u\":1,\"b\":\"1\",\"a\":\"2\"}",                             /* no symbol */
        "{\"u\":1,\"s\":\"BTCUSDT\",\"b\":\"1\"}",                       /* no ask */
        "{\"e\":\"24hrMiniTicker\",\"E\":\"1672515782136\",\"s\":\"X\",\"c\":\"1\"}", /* E string */
        "{\"e\":\"24hrMiniTicker\",\"E\":1e300,\"s\":\"X\",\"c\":\"1\"}",             /* E huge */
        "{\"e\":\"24hrMiniTicker\",\"E\":1,\"s\":\"X\"}",                             /* no c */
        "{\"e\":7}",                           /* e not a string */
        "{\"stream\":\"btcusdt@bookTicker\"}", /* no data */
        "{\"stream\":\"btcusdt@bookTicker\",\"data\":42}",
        "{\"u\":1,\"s\":\"BTCUSDT\",\"b\":\"1\",\"a\":\"2\"", /* truncated */
        "42",
        "\"text\"",
        "null",
        "",
        "not json at all",
        "{\"u\":1,\"s\":\"BTC\\u0000USDT\",\"b\":\"1\",\"a\":\"2\"}", /* NUL in a string */
        "{\"e\":\"24hrMiniTicker\",\"E\":1,\"s\":\"X\",\"c\":\"1\",\"v\":1e400}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        venue_msg m = ws("binance", bad[i], &g);
        if (m != VENUE_MSG_MALFORMED || g.n != 0 || !err[0])
            fprintf(stderr, "  binance bad[%zu] -> %s (%s)\n", i, venue_msg_name(m), err);
        CHECK(m == VENUE_MSG_MALFORMED && g.n == 0 && err[0]);
    }
    /* odd but numeric prices pass through to the normalizer */
    CHECK(ws("binance", "{\"u\":1,\"s\":\"BTCUSDT\",\"b\":\"-1\",\"a\":\"0\"}", &g) ==
          VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].bid == -1 && g.u[0].ask == 0);
    CHECK(ws("binance",
             "{\"u\":1,\"s\":\"BTCUSDT\",\"b\":\"99999999999999999999999999\",\"a\":\"1e300\"}",
             &g) == VENUE_MSG_DATA);
}

static void binance_rest_reads_book_tickers_and_errors(void)
{
    got g;
    CHECK(rest("binance", 200,
               "{\"symbol\":\"LTCBTC\",\"bidPrice\":\"4.00000000\",\"bidQty\":\"431.00000000\","
               "\"askPrice\":\"4.00000200\",\"askQty\":\"9.00000000\"}",
               NULL, &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "LTCBTC") && g.u[0].bid == 4 && g.u[0].ask == 4.000002);
    CHECK(g.u[0].last == (4 + 4.000002) / 2 && g.u[0].ts_us == RECV_US && isnan(g.u[0].volume));
    CHECK(rest("binance", 200,
               "[{\"symbol\":\"LTCBTC\",\"bidPrice\":\"4.00000000\",\"bidQty\":\"431.00000000\","
               "\"askPrice\":"
               "\"4.00000200\",\"askQty\":\"9.00000000\"},{\"symbol\":\"ETHBTC\","
               "\"bidPrice\":\"0.07946700\","
               "\"bidQty\":\"9.00000000\",\"askPrice\":\"100000.00000000\","
               "\"askQty\":\"1000.00000000\"}]",
               "ignored", &g) == VENUE_MSG_DATA);
    CHECK(g.n == 2 && !strcmp(g.sym[1], "ETHBTC") && g.u[1].bid == 0.079467 &&
          g.u[1].ask == 100000);
    CHECK(rest("binance", 200, "[{\"symbol\":\"LTCBTC\",\"price\":\"4.00000200\"}]", NULL, &g) ==
          VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].last == 4.000002 && isnan(g.u[0].bid));
    CHECK(
        rest(
            "binance", 200,
            "{\"symbol\":\"BNBBTC\",\"priceChange\":\"-94.99999800\","
            "\"priceChangePercent\":\"-95.960\","
            "\"weightedAvgPrice\":\"0.29628482\",\"prevClosePrice\":\"0.10002000\",\"lastPrice\":"
            "\"4.00000200\",\"lastQty\":\"200.00000000\",\"bidPrice\":\"4.00000000\",\"bidQty\":"
            "\"100.00000000\",\"askPrice\":\"4.00000200\",\"askQty\":\"100.00000000\","
            "\"openPrice\":"
            "\"99.00000000\",\"highPrice\":\"100.00000000\",\"lowPrice\":\"0.10000000\",\"volume\":"
            "\"8913.30000000\",\"quoteVolume\":\"15.30000000\",\"openTime\":1499783499040,"
            "\"closeTime\":"
            "1499869899040,\"firstId\":28385,\"lastId\":28460,\"count\":76}",
            NULL, &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].last == 4.000002 && g.u[0].open == 99 && g.u[0].volume == 8913.3);
    CHECK(rest("binance", 400, "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}", NULL, &g) ==
          VENUE_MSG_ERROR);
    CHECK(!strcmp(err, "binance error -1121: Invalid symbol.") && g.n == 0);
    CHECK(rest("binance", 200, "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}", NULL, &g) ==
          VENUE_MSG_ERROR);
    CHECK(rest("binance", 403, "<html>blocked</html>", NULL, &g) == VENUE_MSG_ERROR);
    CHECK(!strcmp(err, "HTTP 403"));
    CHECK(rest("binance", 200, "<html>", NULL, &g) == VENUE_MSG_MALFORMED);
    CHECK(rest("binance", 200, "{\"symbol\":\"LTCBTC\",\"bidPrice\":\"4\"}", NULL, &g) ==
          VENUE_MSG_MALFORMED);
    CHECK(rest("binance", 200,
               "[{\"symbol\":\"LTCBTC\",\"price\":\"4\"},{\"symbol\":\"X\",\"price\":4}]", NULL,
               &g) == VENUE_MSG_MALFORMED);
    CHECK(g.n == 0);
}

/* ---- Coinbase ---- */

static void coinbase_keeps_product_ids(void)
{
    CHECK(maps("coinbase", "BTC-USD", "BTC-USD"));
    CHECK(maps("coinbase", "eth-usd", "ETH-USD"));
    CHECK(spells("coinbase", "SOL-USD", "SOL-USD"));
    CHECK(unmappable("coinbase", "BTCUSD"));
    CHECK(unmappable("coinbase", "BTC-USD-PERP"));
    CHECK(unmappable("coinbase", "BTC/USD"));
}

static void coinbase_subscribes_to_ticker_and_heartbeat(void)
{
    const char *syms[] = {"BTC-USD", "ETH-USD"};
    char out[256];
    int n = venue_coinbase.ws_subscribe(syms, 2, out, sizeof(out));
    CHECK(n > 0 && (size_t)n == strlen(out));
    CHECK(!strcmp(out, "{\"type\":\"subscribe\",\"product_ids\":[\"BTC-USD\",\"ETH-USD\"],"
                       "\"channels\":[\"ticker\",\"heartbeat\"]}"));
    CHECK(venue_coinbase.ws_subscribe(syms, 2, out, 40) == -1);
    CHECK(venue_coinbase.ws_path(syms, 2, out, sizeof(out)) == 1 && !strcmp(out, "/"));
    CHECK(venue_coinbase.rest_requests(3) == 3);
    CHECK(venue_coinbase.rest_path(syms, 2, 1, out, sizeof(out)) > 0);
    CHECK(!strcmp(out, "/products/ETH-USD/ticker"));
    CHECK(venue_coinbase.rest_path(syms, 2, 2, out, sizeof(out)) == -1);
    const char *evil[] = {"../../x"};
    CHECK(venue_coinbase.rest_path(evil, 1, 0, out, sizeof(out)) == -1);
    CHECK(venue_coinbase.ws_subscribe(evil, 1, out, sizeof(out)) == -1);
}

static void coinbase_ticker_gives_prices_and_exact_microseconds(void)
{
    got g;
    CHECK(ws("coinbase",
             "{\"type\":\"ticker\",\"sequence\":37475248783,\"product_id\":\"ETH-USD\","
             "\"price\":\"1285.22\","
             "\"open_24h\":\"1310.79\",\"volume_24h\":\"245532.79269678\",\"low_24h\":\"1280.52\","
             "\"high_24h\":\"1313.8\",\"volume_30d\":\"9788783.60117027\",\"best_bid\":\"1285.04\","
             "\"best_bid_size\":\"0.46688654\",\"best_ask\":\"1285.27\","
             "\"best_ask_size\":\"1.56637040\","
             "\"side\":\"buy\",\"time\":\"2022-10-19T23:28:22.061769Z\",\"trade_id\":370843401,"
             "\"last_size\":\"11.4396987\"}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "ETH-USD"));
    CHECK(g.u[0].last == 1285.22 && g.u[0].bid == 1285.04 && g.u[0].ask == 1285.27);
    CHECK(g.u[0].volume == 245532.79269678 && g.u[0].open == 1310.79);
    CHECK(g.u[0].ts_us == INT64_C(1666222102061769) && g.u[0].source == SOURCE);
    CHECK(ws("coinbase",
             "{\"type\":\"ticker\",\"sequence\":333938798,\"product_id\":\"BAND-GBP\","
             "\"price\":\"14.7775\","
             "\"open_24h\":\"14.6647\",\"volume_24h\":\"94381.28000000\",\"low_24h\":\"14.3691\","
             "\"high_24h\":\"16.55\",\"volume_30d\":\"2295579.57000000\",\"best_bid\":\"14.7550\","
             "\"best_ask\":\"14.8060\",\"side\":\"buy\",\"time\":\"2021-04-17T16:43:30.244075Z\","
             "\"trade_id\":881613,\"last_size\":\"0.04\"}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "BAND-GBP") && g.u[0].ts_us == INT64_C(1618677810244075));
    /* before any trade: no time, no book */
    CHECK(ws("coinbase", "{\"type\":\"ticker\",\"product_id\":\"BTC-USD\",\"price\":\"67187.34\"}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].ts_us == RECV_US && isnan(g.u[0].bid) && isnan(g.u[0].open));
}

static void coinbase_classifies_heartbeats_acks_rejects_and_errors(void)
{
    got g;
    CHECK(ws("coinbase",
             "{\"type\":\"heartbeat\",\"sequence\":90,\"last_trade_id\":20,\"product_id\":"
             "\"BTC-USD\",\"time\":\"2014-11-07T08:19:28.464459Z\"}",
             &g) == VENUE_MSG_HEARTBEAT &&
          g.n == 0);
    CHECK(ws("coinbase",
             "{\"type\":\"subscriptions\",\"channels\":[{\"name\":\"level2\",\"product_ids\":"
             "[\"ETH-USD\",\"ETH-EUR\"]},{\"name\":\"heartbeat\",\"product_ids\":[\"ETH-USD\","
             "\"ETH-EUR\"]},{\"name\":\"ticker\",\"product_ids\":[\"ETH-USD\",\"ETH-EUR\","
             "\"ETH-BTC\"]}]}",
             &g) == VENUE_MSG_ACK);
    CHECK(ws("coinbase",
             "{\"type\":\"error\",\"message\":\"Failed to subscribe\",\"reason\":"
             "\"Invalid product ID provided\"}",
             &g) == VENUE_MSG_REJECT);
    CHECK(!strcmp(err, "Failed to subscribe: Invalid product ID provided"));
    CHECK(ws("coinbase",
             "{\"type\":\"error\",\"message\":\"Failed to subscribe\",\"reason\":"
             "\"No channels provided\"}",
             &g) == VENUE_MSG_REJECT);
    CHECK(ws("coinbase", "{\"type\":\"error\",\"message\":\"rate limit exceeded\"}", &g) ==
          VENUE_MSG_ERROR);
    CHECK(!strcmp(err, "rate limit exceeded"));
    CHECK(ws("coinbase", "{\"type\":\"l2update\",\"product_id\":\"BTC-USD\",\"changes\":[]}", &g) ==
          VENUE_MSG_IGNORED);
    const char *bad[] = {
        "{\"product_id\":\"BTC-USD\",\"price\":\"1\"}", /* no type */
        "{\"type\":7}",
        "[{\"type\":\"ticker\"}]",
        "{\"type\":\"ticker\",\"price\":\"1\"}",                              /* no product */
        "{\"type\":\"ticker\",\"product_id\":\"BTC-USD\",\"price\":1285.22}", /* number */
        "{\"type\":\"ticker\",\"product_id\":\"BTC-USD\",\"price\":\"\"}",
        "{\"type\":\"ticker\",\"product_id\":\"BTC-USD\",\"price\":\"1\",\"best_bid\":\"x\"}",
        "{\"type\":\"ticker\",\"product_id\":\"BTC-USD\",\"price\":\"1\",\"time\":\"yesterday\"}",
        "{\"type\":\"ticker\",\"product_id\":\"BTC-USD\",\"price\":\"1\",\"time\":1666222102}",
        "{\"type\":\"ticker\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        venue_msg m = ws("coinbase", bad[i], &g);
        if (m != VENUE_MSG_MALFORMED || g.n != 0)
            fprintf(stderr, "  coinbase bad[%zu] -> %s (%s)\n", i, venue_msg_name(m), err);
        CHECK(m == VENUE_MSG_MALFORMED && g.n == 0);
    }
}

static void coinbase_rest_takes_the_product_from_the_hint(void)
{
    got g;
    const char *body =
        "{\"trade_id\":86326522,\"price\":\"6268.48\",\"size\":\"0.00698254\",\"time\":"
        "\"2020-03-20T00:22:57.833Z\",\"bid\":\"6265.15\",\"ask\":\"6267.71\",\"volume\":"
        "\"53602.03940154\",\"rfq_volume\":\"123.122\",\"conversions_volume\":\"0.00\"}";
    CHECK(rest("coinbase", 200, body, "BTC-USD", &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "BTC-USD"));
    CHECK(g.u[0].last == 6268.48 && g.u[0].bid == 6265.15 && g.u[0].ask == 6267.71);
    CHECK(g.u[0].volume == 53602.03940154 && isnan(g.u[0].open));
    CHECK(g.u[0].ts_us == INT64_C(1584663777833000));
    CHECK(rest("coinbase", 200, body, NULL, &g) == VENUE_MSG_MALFORMED && g.n == 0);
    CHECK(rest("coinbase", 404, "{\"message\":\"NotFound\"}", "XXX-USD", &g) == VENUE_MSG_ERROR);
    CHECK(!strcmp(err, "coinbase: NotFound"));
    CHECK(rest("coinbase", 502, "", "BTC-USD", &g) == VENUE_MSG_ERROR && !strcmp(err, "HTTP 502"));
    CHECK(rest("coinbase", 200, "{\"price\":\"1\",\"bid\":\"1\"}", "BTC-USD", &g) ==
          VENUE_MSG_MALFORMED);
    CHECK(rest("coinbase", 200, "[]", "BTC-USD", &g) == VENUE_MSG_MALFORMED);
}

/* ---- Kraken ---- */

static void kraken_maps_v2_v1_and_rest_names(void)
{
    CHECK(maps("kraken", "BTC/USD", "BTC-USD"));
    CHECK(maps("kraken", "XBT/USD", "BTC-USD"));
    CHECK(maps("kraken", "XDG/USD", "DOGE-USD"));
    CHECK(maps("kraken", "XXBTZUSD", "BTC-USD"));
    CHECK(maps("kraken", "XBTUSD", "BTC-USD"));
    CHECK(maps("kraken", "XETHZUSD", "ETH-USD"));
    CHECK(maps("kraken", "XETHXXBT", "ETH-BTC"));
    CHECK(maps("kraken", "ETHXBT", "ETH-BTC"));
    CHECK(maps("kraken", "XDGUSD", "DOGE-USD"));
    CHECK(maps("kraken", "SOLUSD", "SOL-USD"));
    CHECK(maps("kraken", "USDTZUSD", "USDT-USD"));
    CHECK(maps("kraken", "XTZUSD", "XTZ-USD")); /* Tezos keeps its X */
    CHECK(maps("kraken", "XBTUSDT", "BTC-USDT"));
    CHECK(maps("kraken", "xxbtzusd", "BTC-USD"));
    CHECK(maps("kraken", "xbt/usd", "BTC-USD"));
    CHECK(spells("kraken", "BTC-USD", "BTC/USD"));
    CHECK(spells("kraken", "ETH-BTC", "ETH/BTC"));
    CHECK(unmappable("kraken", "BTC/"));
    CHECK(unmappable("kraken", "/USD"));
    CHECK(unmappable("kraken", "ETH2.S/ETH"));
    CHECK(unmappable("kraken", "USD"));
    CHECK(unmappable("kraken", "BTC/USD/EUR"));
}

static void kraken_builds_v2_subscribe_and_rest_pairs(void)
{
    const char *syms[] = {"BTC/USD", "ETH/USD", "DOGE/USD"};
    char out[256];
    CHECK(venue_kraken.ws_path(syms, 3, out, sizeof(out)) == 3 && !strcmp(out, "/v2"));
    CHECK(venue_kraken.ws_subscribe(syms, 2, out, sizeof(out)) > 0);
    CHECK(!strcmp(out, "{\"method\":\"subscribe\",\"params\":{\"channel\":\"ticker\",\"symbol\":"
                       "[\"BTC/USD\",\"ETH/USD\"]}}"));
    CHECK(venue_kraken.rest_requests(3) == 1);
    CHECK(venue_kraken.rest_path(syms, 3, 0, out, sizeof(out)) > 0);
    CHECK(!strcmp(out, "/0/public/Ticker?pair=XBTUSD,ETHUSD,XDGUSD"));
    const char *v1[] = {"XBTUSD"};
    CHECK(venue_kraken.rest_path(v1, 1, 0, out, sizeof(out)) > 0);
    CHECK(!strcmp(out, "/0/public/Ticker?pair=XBTUSD"));
    const char *evil[] = {"BTC/USD\"]}"};
    CHECK(venue_kraken.ws_subscribe(evil, 1, out, sizeof(out)) == -1);
    CHECK(venue_kraken.ws_subscribe(syms, 0, out, sizeof(out)) == -1);
}

static void kraken_ticker_snapshot_and_update_give_prices(void)
{
    got g;
    const char *snap =
        "{\"channel\":\"ticker\",\"type\":\"snapshot\",\"data\":[{\"symbol\":\"ALGO/USD\","
        "\"bid\":0.10025,\"bid_qty\":740.0,\"ask\":0.10036,\"ask_qty\":1361.44813783,"
        "\"last\":0.10035,\"volume\":997038.98383185,\"vwap\":0.10148,\"low\":0.09979,"
        "\"high\":0.10285,\"change\":-0.00017,\"change_pct\":-0.17,"
        "\"timestamp\":\"2023-09-25T09:04:31.742648Z\"}]}";
    CHECK(ws("kraken", snap, &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "ALGO/USD"));
    CHECK(g.u[0].bid == 0.10025 && g.u[0].ask == 0.10036 && g.u[0].last == 0.10035);
    CHECK(g.u[0].volume == 997038.98383185);
    CHECK(g.u[0].open == 0.10035 - -0.00017); /* open = last - change */
    CHECK(g.u[0].ts_us == INT64_C(1695632671742648));
    /* older doc copies: no timestamp, no change */
    CHECK(ws("kraken",
             "{\"channel\":\"ticker\",\"type\":\"update\",\"data\":[{\"symbol\":\"BTC/USD\","
             "\"bid\":67185.1,\"ask\":67185.2,\"last\":67185.1,\"volume\":1234.5}]}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].ts_us == RECV_US && isnan(g.u[0].open) && g.u[0].ask == 67185.2);
    CHECK(ws("kraken", "{\"channel\":\"ticker\",\"type\":\"update\",\"data\":[]}", &g) ==
              VENUE_MSG_DATA &&
          g.n == 0);
}

static void kraken_classifies_status_acks_rejects_and_heartbeats(void)
{
    got g;
    /* connection_id exceeds INT64_MAX: the parse must not fail on it */
    CHECK(ws("kraken",
             "{\"channel\":\"status\",\"data\":[{\"api_version\":\"v2\",\"connection_id\":"
             "13834774380200032777,\"system\":\"online\",\"version\":\"2.0.0\"}],"
             "\"type\":\"update\"}",
             &g) == VENUE_MSG_HEARTBEAT);
    CHECK(!strcmp(err, "system online"));
    CHECK(ws("kraken", "{\"channel\":\"heartbeat\"}", &g) == VENUE_MSG_HEARTBEAT && err[0] == '\0');
    CHECK(
        ws("kraken",
           "{\"method\":\"subscribe\",\"result\":{\"channel\":\"ticker\",\"snapshot\":true,"
           "\"symbol\":\"ALGO/USD\"},\"success\":true,\"time_in\":\"2023-09-25T09:04:31.742599Z\","
           "\"time_out\":\"2023-09-25T09:04:31.742648Z\"}",
           &g) == VENUE_MSG_ACK);
    CHECK(ws("kraken",
             "{\"error\":\"Currency pair not supported xxx/USD\",\"method\":\"subscribe\","
             "\"req_id\":69,\"success\":false,\"symbol\":\"xxx/USD\",\"time_in\":"
             "\"2025-04-27T15:37:48.652299Z\",\"time_out\":\"2025-04-27T15:37:48.652337Z\"}",
             &g) == VENUE_MSG_REJECT);
    CHECK(strstr(err, "Currency pair not supported xxx/USD") != NULL);
    CHECK(ws("kraken",
             "{\"method\":\"unsubscribe\",\"result\":{\"channel\":\"ticker\",\"event_trigger\":"
             "\"trades\",\"symbol\":\"ALGO/USD\"},\"success\":true,\"time_in\":"
             "\"2023-09-25T09:04:31.742599Z\",\"time_out\":\"2023-09-25T09:04:31.742648Z\"}",
             &g) == VENUE_MSG_IGNORED);
    CHECK(ws("kraken",
             "{\"method\":\"pong\",\"req_id\":101,\"time_in\":\"2023-09-25T09:04:31.742599Z\","
             "\"time_out\":\"2023-09-25T09:04:31.742648Z\"}",
             &g) == VENUE_MSG_HEARTBEAT);
    CHECK(ws("kraken", "{\"channel\":\"book\",\"type\":\"update\",\"data\":[]}", &g) ==
          VENUE_MSG_IGNORED);
    CHECK(ws("kraken", "{\"error\":\"EAPI:Rate limit exceeded\",\"success\":false}", &g) ==
          VENUE_MSG_ERROR);
    CHECK(!strcmp(err, "EAPI:Rate limit exceeded"));
    const char *bad[] = {
        "[0,{\"a\":[\"1\"]},\"ticker\",\"XBT/USD\"]", /* v1 */
        "{\"channel\":\"ticker\",\"type\":\"update\",\"data\":{}}",
        ("{\"channel\":\"ticker\",\"type\":\"update\",\"data\":[{\"symbol\":\"BTC/USD\","
         "\"bid\":\"1\",\"ask\":2,\"last\":1}]}"), /* a string price */
        "{\"channel\":\"ticker\",\"data\":[{\"symbol\":\"BTC/USD\",\"bid\":1,\"ask\":2}]}",
        "{\"channel\":\"ticker\",\"data\":[{\"bid\":1,\"ask\":2,\"last\":1}]}",
        ("{\"channel\":\"ticker\",\"data\":[{\"symbol\":\"A/B\",\"bid\":1,\"ask\":2,\"last\":1,"
         "\"timestamp\":\"soon\"}]}"),
        "{\"channel\":\"ticker\",\"data\":[{\"symbol\":\"A/B\",\"bid\":1,\"ask\":2,\"last\":1},7]}",
        "{\"channel\":[\"ticker\"]}",
        "{\"method\":\"subscribe\"}",
        "{\"method\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        venue_msg m = ws("kraken", bad[i], &g);
        if (m != VENUE_MSG_MALFORMED || g.n != 0)
            fprintf(stderr, "  kraken bad[%zu] -> %s (%s)\n", i, venue_msg_name(m), err);
        CHECK(m == VENUE_MSG_MALFORMED && g.n == 0);
    }
}

static void kraken_rest_reads_result_keys_and_in_band_errors(void)
{
    got g;
    CHECK(
        rest(
            "kraken", 200,
            "{\"error\":[],\"result\":{\"XXBTZUSD\":{\"a\":[\"30300.10000\",\"1\",\"1.000\"],\"b\":"
            "[\"30300.00000\",\"1\",\"1.000\"],\"c\":[\"30303.20000\",\"0.00067643\"],\"v\":"
            "[\"4083.67001100\",\"4412.73601799\"],\"p\":[\"30706.77771\",\"30689.13205\"],\"t\":"
            "[34619,38907],\"l\":[\"29868.30000\",\"29868.30000\"],\"h\":[\"31631.00000\","
            "\"31631.00000\"],\"o\":\"30502.80000\"}}}",
            NULL, &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "XXBTZUSD"));
    CHECK(g.u[0].ask == 30300.1 && g.u[0].bid == 30300 && g.u[0].last == 30303.2);
    CHECK(g.u[0].volume == 4412.73601799 && g.u[0].open == 30502.8 && g.u[0].ts_us == RECV_US);
    CHECK(rest("kraken", 200, "{\"error\":[\"EQuery:Unknown asset pair\"]}", NULL, &g) ==
          VENUE_MSG_ERROR);
    CHECK(!strcmp(err, "kraken: EQuery:Unknown asset pair"));
    CHECK(rest("kraken", 520, "", NULL, &g) == VENUE_MSG_ERROR && !strcmp(err, "HTTP 520"));
    CHECK(rest("kraken", 200, "{\"error\":[],\"result\":{}}", NULL, &g) == VENUE_MSG_DATA &&
          g.n == 0);
    CHECK(rest("kraken", 200, "{\"error\":[]}", NULL, &g) == VENUE_MSG_MALFORMED);
    CHECK(rest("kraken", 200, "{\"error\":\"x\",\"result\":{}}", NULL, &g) == VENUE_MSG_MALFORMED);
    CHECK(rest("kraken", 200,
               "{\"error\":[],\"result\":{\"XXBTZUSD\":{\"a\":[30300.1],\"b\":[\"1\"],"
               "\"c\":[\"1\"]}}}",
               NULL, &g) == VENUE_MSG_MALFORMED);
    CHECK(rest("kraken", 200,
               "{\"error\":[],\"result\":{\"XXBTZUSD\":{\"a\":[\"1\"],\"b\":[\"1\"],"
               "\"c\":[\"1\"],\"v\":[\"1\"]}}}",
               NULL, &g) == VENUE_MSG_MALFORMED); /* v[1] missing */
}

/* ---- CoinGecko ---- */

static void coingecko_has_no_symbols_and_no_websocket(void)
{
    CHECK(unmappable("coingecko", "bitcoin"));
    char out[64];
    CHECK(venue_coingecko.to_venue("BTC-USD", out, sizeof(out)) == -1);
    CHECK(!venue_coingecko.ws_url && !venue_coingecko.ws_path && !venue_coingecko.ws_subscribe &&
          !venue_coingecko.ws_parse);
    const char *ids[] = {"bitcoin", "ethereum"};
    char path[256];
    CHECK(venue_coingecko.rest_requests(2) == 1);
    CHECK(venue_coingecko.rest_path(ids, 2, 0, path, sizeof(path)) > 0);
    CHECK(!strcmp(path, "/api/v3/simple/price?ids=bitcoin,ethereum&vs_currencies=usd"
                        "&include_24hr_vol=true&include_last_updated_at=true"));
    const char *evil[] = {"bitcoin&x=1"};
    CHECK(venue_coingecko.rest_path(evil, 1, 0, path, sizeof(path)) == -1);
}

static void coingecko_price_is_last_bid_and_ask(void)
{
    got g;
    CHECK(
        rest(
            "coingecko", 200,
            "{\"bitcoin\":{\"usd\":67187.3358936566,\"usd_market_cap\":1317802988326.25,"
            "\"usd_24h_vol\":"
            "31260929299.5248,\"usd_24h_change\":3.63727894677354,\"last_updated_at\":1711356300}}",
            NULL, &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "bitcoin"));
    CHECK(g.u[0].last == 67187.3358936566 && g.u[0].bid == g.u[0].last &&
          g.u[0].ask == g.u[0].last);
    CHECK(g.u[0].volume == 31260929299.5248 / 67187.3358936566); /* quote volume → base */
    CHECK(isnan(g.u[0].open) && g.u[0].ts_us == INT64_C(1711356300000000));
    CHECK(rest("coingecko", 200, "{\"bitcoin\":{\"usd\":3462.04}}", NULL, &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].last == 3462.04 && isnan(g.u[0].volume) && g.u[0].ts_us == RECV_US);
    CHECK(rest("coingecko", 200,
               "{\"bitcoin\":{\"usd\":3461.27},\"ethereum\":{\"usd\":106.92},"
               "\"litecoin\":{\"usd\":32.72}}",
               NULL, &g) == VENUE_MSG_DATA);
    CHECK(g.n == 3 && !strcmp(g.sym[2], "litecoin") && g.u[1].last == 106.92);
    CHECK(rest("coingecko", 200, "{\"bitcoin\":{\"eur\":3000}}", NULL, &g) == VENUE_MSG_DATA &&
          g.u[0].last == 3000); /* whatever vs currency the body names */
    CHECK(rest("coingecko", 200, "{}", NULL, &g) == VENUE_MSG_DATA && g.n == 0);
}

static void coingecko_reports_rate_limits_and_bad_bodies(void)
{
    got g;
    const char *limited =
        "{\"status\":{\"error_code\":429,\"error_message\":\"You've exceeded the Rate Limit. "
        "Please visit https://www.coingecko.com/en/api/pricing to subscribe to our API "
        "plans for higher rate limits.\"}}";
    CHECK(rest("coingecko", 429, limited, NULL, &g) == VENUE_MSG_ERROR);
    CHECK(strstr(err, "exceeded the Rate Limit") != NULL);
    CHECK(rest("coingecko", 200, limited, NULL, &g) == VENUE_MSG_ERROR && g.n == 0);
    CHECK(rest("coingecko", 200, "{\"error\":\"coin not found\"}", NULL, &g) == VENUE_MSG_ERROR);
    CHECK(rest("coingecko", 200, "{\"bitcoin\":{\"usd\":\"67187.33\"}}", NULL, &g) ==
          VENUE_MSG_MALFORMED);
    CHECK(rest("coingecko", 200, "{\"bitcoin\":{}}", NULL, &g) == VENUE_MSG_MALFORMED);
    CHECK(rest("coingecko", 200, "{\"bitcoin\":{\"usd\":null}}", NULL, &g) == VENUE_MSG_MALFORMED);
    CHECK(rest("coingecko", 200, "{\"bitcoin\":{\"usd\":1,\"last_updated_at\":\"now\"}}", NULL,
               &g) == VENUE_MSG_MALFORMED);
    CHECK(rest("coingecko", 200, "{\"bitcoin\":{\"usd\":1},\"ethereum\":7}", NULL, &g) ==
          VENUE_MSG_MALFORMED);
    CHECK(g.n == 0);
    CHECK(rest("coingecko", 200, "[]", NULL, &g) == VENUE_MSG_MALFORMED);
}

/* ---- hostile input, all presets ---- */

static venue_msg parse_any(const venue_preset *p, int use_rest, const char *msg, size_t len, got *g)
{
    venue_emit e = {.arg = g, .update = got_update};
    memset(g, 0, sizeof(*g));
    if (use_rest)
        return p->rest_parse(200, msg, len, "BTC-USD", SOURCE, RECV_US, &e, err, sizeof(err));
    return p->ws_parse(msg, len, SOURCE, RECV_US, &e, err, sizeof(err));
}

static void survives_deep_nesting_huge_and_truncated_input(void)
{
    const venue_preset *all[] = {&venue_binance, &venue_coinbase, &venue_kraken, &venue_coingecko};
    size_t big = 1u << 20;
    char *deep = malloc(big + 1);
    memset(deep, '[', big);
    deep[big] = '\0';
    got g;
    for (size_t i = 0; i < 4; i++) {
        for (int r = 0; r < 2; r++) {
            if (!r && !all[i]->ws_parse)
                continue;
            CHECK(parse_any(all[i], r, deep, big, &g) == VENUE_MSG_MALFORMED && g.n == 0);
            memset(deep, '{', big);
            CHECK(parse_any(all[i], r, deep, big, &g) == VENUE_MSG_MALFORMED && g.n == 0);
            memset(deep, '[', big);
            /* a buffer that is not NUL-terminated where len ends: truncated JSON */
            const char *msg = "{\"type\":\"heartbeat\"}XXXX";
            CHECK(parse_any(all[i], r, msg, 10, &g) == VENUE_MSG_MALFORMED);
            CHECK(parse_any(all[i], r, NULL, 0, &g) == VENUE_MSG_MALFORMED);
        }
    }
    free(deep);
    /* a 1 MiB string value in an otherwise ignorable message */
    char *pad = malloc(big + 64);
    int n = snprintf(pad, 64, "{\"type\":\"status\",\"e\":\"x\",\"channel\":\"x\",\"pad\":\"");
    memset(pad + n, 'a', big);
    strcpy(pad + n + big, "\"}");
    CHECK(parse_any(&venue_binance, 0, pad, strlen(pad), &g) == VENUE_MSG_IGNORED);
    CHECK(parse_any(&venue_coinbase, 0, pad, strlen(pad), &g) == VENUE_MSG_IGNORED);
    CHECK(parse_any(&venue_kraken, 0, pad, strlen(pad), &g) == VENUE_MSG_IGNORED);
    free(pad);
    /* a 1 MiB REST array of tickers: every one emitted */
    const char *item =
        "{\"symbol\":\"BTCUSDT\",\"bidPrice\":\"67187.99000000\",\"bidQty\":\"1.00000000\","
        "\"askPrice\":\"67188.00000000\",\"askQty\":\"1.00000000\"}";
    size_t ilen = strlen(item), count = big / (ilen + 1);
    char *arr = malloc(count * (ilen + 1) + 2), *w = arr;
    *w++ = '[';
    for (size_t i = 0; i < count; i++) {
        if (i)
            *w++ = ',';
        memcpy(w, item, ilen);
        w += ilen;
    }
    *w++ = ']';
    CHECK(parse_any(&venue_binance, 1, arr, (size_t)(w - arr), &g) == VENUE_MSG_DATA);
    CHECK((size_t)g.n == count && g.u[0].bid == 67187.99);
    free(arr);
    /* a huge number where a price belongs */
    const char *hugenum =
        "{\"channel\":\"ticker\",\"data\":[{\"symbol\":\"A/B\",\"bid\":1e308,\"ask\":1e309,"
        "\"last\":1}]}";
    CHECK(parse_any(&venue_kraken, 0, hugenum, strlen(hugenum), &g) == VENUE_MSG_MALFORMED);
    /* err may be NULL or tiny */
    const char *limit = "{\"error\":\"EAPI:Rate limit exceeded\"}";
    venue_msg m = venue_kraken.ws_parse(limit, strlen(limit), 1, 0, NULL, NULL, 0);
    CHECK(m == VENUE_MSG_ERROR);
    char tiny[4];
    CHECK(venue_binance.ws_parse("nope", 4, 1, 0, NULL, tiny, sizeof(tiny)) ==
              VENUE_MSG_MALFORMED &&
          strlen(tiny) == 3);
}

/* ---- OKX v5 ---- */

static void okx_keeps_instrument_ids(void)
{
    CHECK(venue_find("okx") == &venue_okx);
    CHECK(maps("okx", "BTC-USDT", "BTC-USDT"));
    CHECK(maps("okx", "eth-usdc", "ETH-USDC"));
    CHECK(spells("okx", "SOL-USDT", "SOL-USDT"));
    CHECK(unmappable("okx", "BTCUSDT"));
    CHECK(unmappable("okx", "BTC-USDT-SWAP"));
    CHECK(unmappable("okx", ""));
}

static void okx_builds_public_path_tickers_subscribe_and_rest_paths(void)
{
    const char *syms[] = {"BTC-USDT", "ETH-USDT"};
    char out[512];
    CHECK(venue_okx.ws_path(syms, 2, out, sizeof(out)) > 0 && !strcmp(out, "/ws/v5/public"));
    CHECK(venue_okx.ws_subscribe(syms, 2, out, sizeof(out)) > 0);
    CHECK(!strcmp(out, "{\"op\":\"subscribe\",\"args\":[{\"channel\":\"tickers\",\"instId\":\"BTC-USDT\"},"
                       "{\"channel\":\"tickers\",\"instId\":\"ETH-USDT\"}]}"));
    CHECK(venue_okx.ws_ping && !strcmp(venue_okx.ws_ping, "ping"));
    CHECK(venue_okx.ws_ping_interval_ms > 0 && venue_okx.ws_ping_interval_ms < 30000);
    CHECK(venue_okx.rest_requests(2) == 2 && venue_okx.rest_requests(0) == 0);
    CHECK(venue_okx.rest_path(syms, 2, 1, out, sizeof(out)) > 0 &&
          !strcmp(out, "/api/v5/market/ticker?instId=ETH-USDT"));
    CHECK(venue_okx.rest_path(syms, 2, 2, out, sizeof(out)) == -1);
    const char *many[VENUE_OKX_REST_SINGLE + 1];
    for (size_t i = 0; i < VENUE_OKX_REST_SINGLE + 1; i++)
        many[i] = "BTC-USDT";
    CHECK(venue_okx.rest_requests(VENUE_OKX_REST_SINGLE + 1) == 1);
    CHECK(venue_okx.rest_path(many, VENUE_OKX_REST_SINGLE + 1, 0, out, sizeof(out)) > 0 &&
          !strcmp(out, "/api/v5/market/tickers?instType=SPOT"));
    const char *evil[] = {"BTC\",\"x"};
    CHECK(venue_okx.ws_subscribe(evil, 1, out, sizeof(out)) == -1);
    CHECK(venue_okx.ws_subscribe(syms, 0, out, sizeof(out)) == -1);
    CHECK(venue_okx.ws_subscribe(syms, 2, out, 20) == -1 && out[0] == '\0');
}

static void okx_tickers_push_gives_prices_and_event_time(void)
{
    got g;
    /* the documented tickers push */
    CHECK(ws("okx",
             "{\"arg\":{\"channel\":\"tickers\",\"instId\":\"BTC-USDT\"},\"data\":[{\"instType\":\"SPOT\","
             "\"instId\":\"BTC-USDT\",\"last\":\"9999.99\",\"lastSz\":\"0.1\",\"askPx\":\"9999.99\","
             "\"askSz\":\"11\",\"bidPx\":\"8888.88\",\"bidSz\":\"5\",\"open24h\":\"9000\",\"high24h\":"
             "\"10000\",\"low24h\":\"8888.88\",\"volCcy24h\":\"2222\",\"vol24h\":\"2222\",\"sodUtc0\":"
             "\"2222\",\"sodUtc8\":\"2222\",\"ts\":\"1597026383085\"}]}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "BTC-USDT") && g.u[0].source == SOURCE);
    CHECK(g.u[0].last == 9999.99 && g.u[0].ask == 9999.99 && g.u[0].bid == 8888.88);
    CHECK(g.u[0].open == 9000 && g.u[0].volume == 2222);
    CHECK(g.u[0].ts_us == INT64_C(1597026383085000));
    /* an empty side of the book is absent, not malformed; no ts: receive time */
    CHECK(ws("okx",
             "{\"arg\":{\"channel\":\"tickers\",\"instId\":\"X-USDT\"},\"data\":[{\"instId\":\"X-USDT\","
             "\"last\":\"1.5\",\"bidPx\":\"\",\"askPx\":\"1.6\"}]}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && isnan(g.u[0].bid) && g.u[0].ask == 1.6 && g.u[0].ts_us == RECV_US);
    /* all or nothing: one bad entry emits nothing */
    CHECK(ws("okx",
             "{\"arg\":{\"channel\":\"tickers\"},\"data\":[{\"instId\":\"A-B\",\"last\":\"1\"},"
             "{\"instId\":\"C-D\",\"last\":1}]}",
             &g) == VENUE_MSG_MALFORMED && g.n == 0);
    CHECK(ws("okx", "{\"arg\":{\"channel\":\"tickers\"},\"data\":[{\"instId\":\"A-B\"}]}", &g) ==
              VENUE_MSG_MALFORMED);
    CHECK(ws("okx", "{\"arg\":{\"channel\":\"tickers\"},\"data\":{}}", &g) == VENUE_MSG_MALFORMED);
    CHECK(ws("okx", "{\"arg\":{\"channel\":\"tickers\"},\"data\":[{\"instId\":\"A-B\",\"last\":\"1\","
                    "\"ts\":\"-5\"}]}",
             &g) == VENUE_MSG_MALFORMED);
    CHECK(ws("okx", "{\"arg\":{\"channel\":\"books5\"},\"data\":[]}", &g) == VENUE_MSG_IGNORED);
}

static void okx_classifies_pong_acks_errors_and_notices(void)
{
    got g;
    CHECK(ws("okx", "pong", &g) == VENUE_MSG_HEARTBEAT && err[0] == '\0');
    CHECK(ws("okx", "ping", &g) == VENUE_MSG_MALFORMED);
    CHECK(ws("okx",
             "{\"event\":\"subscribe\",\"arg\":{\"channel\":\"tickers\",\"instId\":\"BTC-USDT\"},"
             "\"connId\":\"a4d3ae55\"}",
             &g) == VENUE_MSG_ACK);
    CHECK(ws("okx",
             "{\"event\":\"error\",\"code\":\"60012\",\"msg\":\"Invalid request: {\\\"op\\\": "
             "\\\"subscribe\\\"}\",\"connId\":\"a4d3ae55\"}",
             &g) == VENUE_MSG_REJECT);
    CHECK(!strncmp(err, "okx error 60012: Invalid request", 32));
    CHECK(ws("okx",
             "{\"event\":\"notice\",\"code\":\"64008\",\"msg\":\"The connection will soon be closed "
             "for a service upgrade. Please reconnect.\",\"connId\":\"a4d3ae55\"}",
             &g) == VENUE_MSG_SHUTDOWN);
    CHECK(ws("okx", "{\"event\":\"channel-conn-count\",\"channel\":\"tickers\",\"connCount\":\"2\"}",
             &g) == VENUE_MSG_IGNORED);
    CHECK(ws("okx", "{\"event\":7}", &g) == VENUE_MSG_MALFORMED);
    CHECK(ws("okx", "[1,2]", &g) == VENUE_MSG_MALFORMED);
}

static void okx_rest_reads_tickers_and_error_codes(void)
{
    got g;
    CHECK(rest("okx", 200,
               "{\"code\":\"0\",\"msg\":\"\",\"data\":[{\"instType\":\"SPOT\",\"instId\":\"ETH-USDT\","
               "\"last\":\"3448.1\",\"askPx\":\"3448.2\",\"bidPx\":\"3448.1\",\"vol24h\":\"1000\","
               "\"ts\":\"1711356299000\"}]}",
               NULL, &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "ETH-USDT") && g.u[0].bid == 3448.1 &&
          g.u[0].ts_us == INT64_C(1711356299000000));
    CHECK(rest("okx", 200, "{\"code\":\"51001\",\"msg\":\"Instrument ID does not exist\",\"data\":[]}",
               NULL, &g) == VENUE_MSG_ERROR);
    CHECK(!strcmp(err, "okx error 51001: Instrument ID does not exist"));
    CHECK(rest("okx", 429, "{\"msg\":\"Too Many Requests\",\"code\":\"50011\"}", NULL, &g) ==
          VENUE_MSG_ERROR);
    CHECK(rest("okx", 503, "<html>", NULL, &g) == VENUE_MSG_ERROR && !strcmp(err, "HTTP 503"));
    CHECK(rest("okx", 200, "{\"msg\":\"\",\"data\":[]}", NULL, &g) == VENUE_MSG_MALFORMED);
    CHECK(rest("okx", 200, "{\"code\":\"0\",\"data\":[]}", NULL, &g) == VENUE_MSG_DATA && g.n == 0);
}

/* ---- Bybit v5 spot ---- */

static void bybit_maps_symbols_and_builds_batched_subscribes(void)
{
    CHECK(venue_find("bybit") == &venue_bybit);
    CHECK(maps("bybit", "BTCUSDT", "BTC-USDT"));
    CHECK(maps("bybit", "ETHBTC", "ETH-BTC"));
    CHECK(spells("bybit", "SOL-USDC", "SOLUSDC"));
    CHECK(unmappable("bybit", "USDT"));
    const char *syms[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"};
    char out[1024];
    CHECK(venue_bybit.ws_path(syms, 6, out, sizeof(out)) > 0 && !strcmp(out, "/v5/public/spot"));
    CHECK(venue_bybit.ws_subscribe(syms, 1, out, sizeof(out)) > 0 &&
          !strcmp(out, "{\"op\":\"subscribe\",\"args\":[\"tickers.BTCUSDT\",\"orderbook.1.BTCUSDT\"]}"));
    /* 6 symbols = 12 topics: two messages, at most 10 args each */
    CHECK(venue_bybit.ws_subscribe(syms, 6, out, sizeof(out)) > 0);
    char *nl = strchr(out, '\n');
    CHECK(nl && !strchr(nl + 1, '\n'));
    CHECK(!strcmp(nl + 1, "{\"op\":\"subscribe\",\"args\":[\"tickers.ADAUSDT\",\"orderbook.1.ADAUSDT\"]}"));
    if (nl) {
        *nl = '\0';
        json_t *first = json_loads(out, 0, NULL);
        CHECK(json_array_size(json_object_get(first, "args")) == VENUE_BYBIT_MAX_ARGS);
        json_decref(first);
    }
    const char *lower[] = {"btcusdt"};
    CHECK(venue_bybit.ws_subscribe(lower, 1, out, sizeof(out)) == -1);
    CHECK(venue_bybit.ws_ping && !strcmp(venue_bybit.ws_ping, "{\"op\":\"ping\"}"));
    CHECK(venue_bybit.rest_requests(6) == 1);
    CHECK(venue_bybit.rest_path(syms, 6, 0, out, sizeof(out)) > 0 &&
          !strcmp(out, "/v5/market/tickers?category=spot"));
    CHECK(venue_bybit.rest_path(syms, 1, 0, out, sizeof(out)) > 0 &&
          !strcmp(out, "/v5/market/tickers?category=spot&symbol=BTCUSDT"));
}

static void bybit_parses_tickers_orderbook_acks_and_rest(void)
{
    got g;
    CHECK(ws("bybit",
             "{\"topic\":\"tickers.BTCUSDT\",\"ts\":1673853746003,\"type\":\"snapshot\",\"cs\":2588407389,"
             "\"data\":{\"symbol\":\"BTCUSDT\",\"lastPrice\":\"21109.77\",\"highPrice24h\":\"21426.99\","
             "\"lowPrice24h\":\"20575\",\"prevPrice24h\":\"20704.93\",\"volume24h\":\"6780.866843\","
             "\"turnover24h\":\"141946527.22907118\",\"price24hPcnt\":\"0.0196\"}}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "BTCUSDT") && g.u[0].last == 21109.77 &&
          g.u[0].open == 20704.93 && isnan(g.u[0].bid) && g.u[0].ts_us == INT64_C(1673853746003000));
    CHECK(ws("bybit",
             "{\"topic\":\"orderbook.1.BTCUSDT\",\"type\":\"snapshot\",\"ts\":1672304484978,\"data\":{\"s\":"
             "\"BTCUSDT\",\"b\":[[\"16493.50\",\"0.006\"]],\"a\":[[\"16611.00\",\"0.029\"]],\"u\":18521288,"
             "\"seq\":7961638724},\"cts\":1672304484976}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].bid == 16493.5 && g.u[0].ask == 16611 && g.u[0].last == (16493.5 + 16611) / 2);
    CHECK(ws("bybit", "{\"topic\":\"orderbook.1.BTCUSDT\",\"data\":{\"s\":\"BTCUSDT\",\"b\":[[16493.5,\"1\"]],\"a\":[]}}",
             &g) == VENUE_MSG_MALFORMED && g.n == 0);
    CHECK(ws("bybit", "{\"success\":true,\"ret_msg\":\"subscribe\",\"conn_id\":\"x\",\"op\":\"subscribe\"}", &g) ==
          VENUE_MSG_ACK);
    CHECK(ws("bybit",
             "{\"success\":false,\"ret_msg\":\"Invalid symbol :[tickers.NOPE]\",\"conn_id\":\"x\",\"op\":\"subscribe\"}",
             &g) == VENUE_MSG_REJECT && strstr(err, "Invalid symbol"));
    CHECK(ws("bybit", "{\"success\":true,\"ret_msg\":\"pong\",\"conn_id\":\"x\",\"op\":\"ping\"}", &g) ==
          VENUE_MSG_HEARTBEAT);
    CHECK(rest("bybit", 200,
               "{\"retCode\":0,\"retMsg\":\"OK\",\"result\":{\"category\":\"spot\",\"list\":[{\"symbol\":\"BTCUSDT\","
               "\"bid1Price\":\"20517.96\",\"bid1Size\":\"2\",\"ask1Price\":\"20527.77\",\"ask1Size\":\"1.8\","
               "\"lastPrice\":\"20533.13\",\"prevPrice24h\":\"20393.48\",\"volume24h\":\"11801.27771\"}]},"
               "\"retExtInfo\":{},\"time\":1673859087947}",
               NULL, &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].bid == 20517.96 && g.u[0].ask == 20527.77 && g.u[0].last == 20533.13 &&
          g.u[0].ts_us == INT64_C(1673859087947000));
    CHECK(rest("bybit", 200, "{\"retCode\":10001,\"retMsg\":\"Not supported symbols\",\"result\":{}}", NULL,
               &g) == VENUE_MSG_ERROR && !strcmp(err, "bybit error 10001: Not supported symbols"));
    CHECK(rest("bybit", 403, "", NULL, &g) == VENUE_MSG_ERROR);
}

/* ---- Bitstamp v2 ---- */

static void bitstamp_maps_pairs_and_subscribes_per_channel(void)
{
    CHECK(venue_find("bitstamp") == &venue_bitstamp);
    CHECK(maps("bitstamp", "btcusd", "BTC-USD"));
    CHECK(maps("bitstamp", "ethbtc", "ETH-BTC"));
    CHECK(spells("bitstamp", "BTC-USD", "btcusd"));
    const char *syms[] = {"btcusd", "ethusd"};
    char out[512];
    CHECK(venue_bitstamp.ws_path(syms, 2, out, sizeof(out)) == 1 && !strcmp(out, "/"));
    CHECK(venue_bitstamp.ws_subscribe(syms, 1, out, sizeof(out)) > 0);
    CHECK(!strcmp(out, "{\"event\":\"bts:subscribe\",\"data\":{\"channel\":\"live_trades_btcusd\"}}\n"
                       "{\"event\":\"bts:subscribe\",\"data\":{\"channel\":\"order_book_btcusd\"}}"));
    const char *upper[] = {"BTCUSD"};
    CHECK(venue_bitstamp.ws_subscribe(upper, 1, out, sizeof(out)) == -1);
    CHECK(venue_bitstamp.rest_requests(2) == 2);
    CHECK(venue_bitstamp.rest_path(syms, 2, 1, out, sizeof(out)) > 0 &&
          !strcmp(out, "/api/v2/ticker/ethusd/"));
}

static void bitstamp_parses_trades_book_top_events_and_rest(void)
{
    got g;
    CHECK(ws("bitstamp",
             "{\"data\":{\"id\":334441425,\"timestamp\":\"1711356299\",\"amount\":0.01,\"amount_str\":\"0.01\","
             "\"price\":67190,\"price_str\":\"67190\",\"type\":0,\"microtimestamp\":\"1711356299123456\","
             "\"buy_order_id\":1,\"sell_order_id\":2},\"channel\":\"live_trades_btcusd\",\"event\":\"trade\"}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "btcusd") && g.u[0].last == 67190 && isnan(g.u[0].bid) &&
          g.u[0].ts_us == INT64_C(1711356299123456));
    CHECK(ws("bitstamp",
             "{\"data\":{\"timestamp\":\"1711356299\",\"microtimestamp\":\"1711356299000001\",\"bids\":"
             "[[\"67189\",\"0.5\"],[\"67188\",\"1\"]],\"asks\":[[\"67191\",\"0.2\"]]},\"channel\":"
             "\"order_book_btcusd\",\"event\":\"data\"}",
             &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && g.u[0].bid == 67189 && g.u[0].ask == 67191 && g.u[0].last == 67190);
    CHECK(ws("bitstamp", "{\"data\":{\"bids\":[[67189,\"1\"]],\"asks\":[]},\"channel\":\"order_book_btcusd\","
                         "\"event\":\"data\"}",
             &g) == VENUE_MSG_MALFORMED && g.n == 0);
    CHECK(ws("bitstamp", "{\"event\":\"bts:subscription_succeeded\",\"channel\":\"live_trades_btcusd\",\"data\":{}}",
             &g) == VENUE_MSG_ACK);
    CHECK(ws("bitstamp", "{\"event\":\"bts:error\",\"channel\":\"\",\"data\":{\"code\":null,\"message\":"
                         "\"Bad subscription string.\"}}",
             &g) == VENUE_MSG_REJECT && !strcmp(err, "bitstamp: Bad subscription string."));
    CHECK(ws("bitstamp", "{\"event\":\"bts:request_reconnect\",\"channel\":\"\",\"data\":\"\"}", &g) ==
          VENUE_MSG_SHUTDOWN);
    CHECK(ws("bitstamp", "{\"event\":\"bts:heartbeat\",\"channel\":\"\",\"data\":{\"status\":\"success\"}}", &g) ==
          VENUE_MSG_HEARTBEAT);
    CHECK(rest("bitstamp", 200,
               "{\"timestamp\":\"1711356299\",\"open\":\"65000\",\"high\":\"68000\",\"low\":\"64000\",\"last\":"
               "\"67190\",\"volume\":\"1500.5\",\"vwap\":\"66000\",\"bid\":\"67189\",\"ask\":\"67191\",\"side\":\"0\","
               "\"open_24\":\"65100\",\"percent_change_24\":\"3.2\"}",
               "btcusd", &g) == VENUE_MSG_DATA);
    CHECK(g.n == 1 && !strcmp(g.sym[0], "btcusd") && g.u[0].bid == 67189 && g.u[0].open == 65100 &&
          g.u[0].ts_us == INT64_C(1711356299000000));
    CHECK(rest("bitstamp", 200, "{\"last\":\"1\"}", NULL, &g) == VENUE_MSG_MALFORMED);
    CHECK(rest("bitstamp", 404, "{\"message\":\"Not Found\"}", "nopeusd", &g) == VENUE_MSG_ERROR &&
          !strcmp(err, "bitstamp: Not Found"));
}

/* ---- fixtures: recorded traffic replays cleanly ---- */

typedef struct replay {
    const char *venue;
    int64_t t; /* the line's receive time */
    int bad;   /* updates outside the expected ranges */
    int updates;
    const char *name; /* for messages */
} replay;

/* Reference prices of the capture (2024-03-25 ~08:45Z): every venue's BTC,
 * ETH and SOL must sit within 5 % of them. */
static double replay_reference(const char *canonical)
{
    if (!strncmp(canonical, "BTC-", 4))
        return 67200;
    if (!strncmp(canonical, "ETH-", 4))
        return 3448;
    if (!strncmp(canonical, "SOL-", 4))
        return 174.9;
    return NAN;
}

static void replay_update(void *arg, const feed_update *u)
{
    replay *r = arg;
    char canonical[64];
    r->updates++;
    if (!strcmp(r->venue, "coingecko")) {
        snprintf(canonical, sizeof(canonical), "%s",
                 !strcmp(u->symbol, "bitcoin")    ? "BTC-USD"
                 : !strcmp(u->symbol, "ethereum") ? "ETH-USD"
                 : !strcmp(u->symbol, "solana")   ? "SOL-USD"
                                                  : "?");
    } else if (venue_find(r->venue)->to_canonical(u->symbol, canonical, sizeof(canonical))) {
        r->bad++;
        fprintf(stderr, "  %s: unmappable symbol %s\n", r->name, u->symbol);
        return;
    }
    double ref = replay_reference(canonical);
    int ok = !isnan(ref) && u->source == SOURCE;
    /* NAN = absent (a partial update); anything present must be plausible */
    const double px[3] = {u->last, u->bid, u->ask};
    for (int i = 0; i < 3; i++)
        ok &= isnan(px[i]) ? i > 0 : fabs(px[i] / ref - 1) < 0.05;
    ok &= isnan(u->volume) || u->volume > 0;
    ok &= isnan(u->open) || fabs(u->open / ref - 1) < 0.1;
    /* event time: not after receipt, and at most 2 minutes old (CoinGecko caches 60 s) */
    ok &= u->ts_us <= r->t && u->ts_us > r->t - 120 * INT64_C(1000000);
    if (!ok) {
        r->bad++;
        fprintf(stderr, "  %s: implausible update %s %.8g/%.8g/%.8g ts %lld (t %lld)\n", r->name,
                u->symbol, u->last, u->bid, u->ask, (long long)u->ts_us, (long long)r->t);
    }
}

/* Replays tests/fixtures/<venue>.<kind>.jsonl; counts[] per venue_msg. */
static void replay_file(const char *venue, const char *kind, int counts[8], replay *r)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/tests/fixtures/%s.%s.jsonl", TICKERD_SOURCE_DIR, venue, kind);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    memset(r, 0, sizeof(*r));
    r->venue = venue;
    r->name = path;
    const venue_preset *p = venue_find(venue);
    venue_emit e = {.arg = r, .update = replay_update};
    char *line = NULL;
    size_t cap = 0;
    int lines = 0, prev_ok = 1;
    int64_t prev_t = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        const char *text = json_string_value(json_object_get(o, kind[0] == 'w' ? "frame" : "body"));
        json_t *t = json_object_get(o, "t");
        CHECK(text && json_is_integer(t));
        if (!text || !json_is_integer(t)) {
            json_decref(o);
            continue;
        }
        r->t = json_integer_value(t);
        prev_ok &= r->t > prev_t;
        prev_t = r->t;
        venue_msg m;
        if (kind[0] == 'w') {
            m = p->ws_parse(text, strlen(text), SOURCE, r->t, &e, err, sizeof(err));
        } else {
            json_t *st = json_object_get(o, "status");
            const char *hint = json_string_value(json_object_get(o, "hint"));
            CHECK(json_is_integer(st));
            m = p->rest_parse((long)json_integer_value(st), text, strlen(text), hint, SOURCE, r->t,
                              &e, err, sizeof(err));
            /* non-2xx lines must be venue errors, 2xx lines data */
            CHECK((json_integer_value(st) == 200) == (m == VENUE_MSG_DATA));
        }
        if (m == VENUE_MSG_MALFORMED)
            fprintf(stderr, "  %s:%d: malformed: %s\n", path, lines + 1, err);
        counts[m]++;
        lines++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    CHECK(prev_ok); /* receive times increase */
    CHECK(lines >= 10 && lines <= 40);
    CHECK(counts[VENUE_MSG_MALFORMED] == 0);
    CHECK(r->bad == 0);
    CHECK(r->updates > 0);
}

static void fixtures_replay_without_surprises(void)
{
    replay r;
    int c[8];
#define RESET() memset(c, 0, sizeof(c))
    RESET();
    replay_file("binance", "ws", c, &r);
    CHECK(c[VENUE_MSG_DATA] > 20 && c[VENUE_MSG_SHUTDOWN] == 1);
    RESET();
    replay_file("coinbase", "ws", c, &r);
    CHECK(c[VENUE_MSG_ACK] == 1 && c[VENUE_MSG_HEARTBEAT] >= 6 && c[VENUE_MSG_DATA] >= 6);
    RESET();
    replay_file("kraken", "ws", c, &r);
    CHECK(c[VENUE_MSG_ACK] == 3 && c[VENUE_MSG_HEARTBEAT] >= 2 && c[VENUE_MSG_DATA] >= 6);
    RESET();
    replay_file("binance", "rest", c, &r);
    CHECK(c[VENUE_MSG_DATA] >= 10 && c[VENUE_MSG_ERROR] == 1 && r.updates == 3 * c[VENUE_MSG_DATA]);
    RESET();
    replay_file("coinbase", "rest", c, &r);
    CHECK(c[VENUE_MSG_DATA] >= 10 && r.updates == c[VENUE_MSG_DATA]);
    RESET();
    replay_file("kraken", "rest", c, &r);
    CHECK(c[VENUE_MSG_DATA] == 10 && r.updates == 30);
    RESET();
    replay_file("coingecko", "rest", c, &r);
    CHECK(c[VENUE_MSG_DATA] >= 8 && c[VENUE_MSG_ERROR] == 1 && r.updates == 3 * c[VENUE_MSG_DATA]);
    RESET();
    replay_file("okx", "ws", c, &r);
    CHECK(c[VENUE_MSG_ACK] == 3 && c[VENUE_MSG_HEARTBEAT] >= 2 && c[VENUE_MSG_DATA] >= 6 &&
          c[VENUE_MSG_SHUTDOWN] == 1);
    RESET();
    replay_file("okx", "rest", c, &r);
    CHECK(c[VENUE_MSG_DATA] >= 10 && c[VENUE_MSG_ERROR] == 1 && r.updates == c[VENUE_MSG_DATA]);
    RESET();
    replay_file("bybit", "ws", c, &r);
    CHECK(c[VENUE_MSG_ACK] == 1 && c[VENUE_MSG_HEARTBEAT] >= 2 && c[VENUE_MSG_DATA] >= 10);
    RESET();
    replay_file("bybit", "rest", c, &r);
    CHECK(c[VENUE_MSG_DATA] >= 10 && c[VENUE_MSG_ERROR] == 1 && r.updates == 3 * c[VENUE_MSG_DATA]);
    RESET();
    replay_file("bitstamp", "ws", c, &r);
    CHECK(c[VENUE_MSG_ACK] == 6 && c[VENUE_MSG_HEARTBEAT] == 2 && c[VENUE_MSG_DATA] >= 12 &&
          c[VENUE_MSG_SHUTDOWN] == 1 && r.updates == c[VENUE_MSG_DATA]);
    RESET();
    replay_file("bitstamp", "rest", c, &r);
    CHECK(c[VENUE_MSG_DATA] >= 10 && c[VENUE_MSG_ERROR] == 1 && r.updates == c[VENUE_MSG_DATA]);
#undef RESET
}

/* The configured URL's path is honoured, a prefix kept, the endpoint never
 * doubled (the Kraken wss://ws.kraken.com/v2 → GET /v2/v2 regression). */
static void joins_configured_path_and_endpoint_without_doubling(void)
{
    char out[256];
    struct { const char *url, *preset, *want; } c[] = {
        {"", "/v2", "/v2"},
        {NULL, "/v2", "/v2"},
        {"/", "/v2", "/v2"},
        {"v2", "/v2", "/v2"},          /* lws_parse_uri drops the leading '/' */
        {"/v2", "/v2", "/v2"},
        {"v2/", "/v2", "/v2"},
        {"kraken/v2", "/v2", "/kraken/v2"},
        {"kraken", "/v2", "/kraken/v2"},
        {"xv2", "/v2", "/xv2/v2"},      /* only a whole segment counts */
        {"", "/", "/"},
        {"coinbase", "/", "/coinbase"},
        {"", "/stream?streams=a@b", "/stream?streams=a@b"},
        {"stream", "/stream?streams=a@b", "/stream?streams=a@b"},
        {"binance", "/stream?streams=a@b", "/binance/stream?streams=a@b"},
        {"binance/stream?x=1", "/stream?streams=a@b", "/binance/stream?x=1&streams=a@b"},
        {"ws/v5/public", "/ws/v5/public", "/ws/v5/public"},
        {"okx", "/ws/v5/public", "/okx/ws/v5/public"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        int n = venue_ws_target(c[i].url, c[i].preset, out, sizeof(out));
        CHECK(n == (int)strlen(c[i].want) && !strcmp(out, c[i].want));
        if (strcmp(out, c[i].want))
            fprintf(stderr, "  url %s preset %s: got %s want %s\n", c[i].url ? c[i].url : "(null)",
                    c[i].preset, out, c[i].want);
    }
    CHECK(venue_ws_target("abcdef", "/v2", out, 5) == -1 && out[0] == '\0');

    CHECK(venue_ws_host("ws.kraken.com", 443, 1, out, sizeof(out)) > 0 &&
          !strcmp(out, "ws.kraken.com"));
    CHECK(venue_ws_host("stream.binance.com", 9443, 1, out, sizeof(out)) > 0 &&
          !strcmp(out, "stream.binance.com:9443"));
    CHECK(venue_ws_host("127.0.0.1", 8089, 0, out, sizeof(out)) > 0 &&
          !strcmp(out, "127.0.0.1:8089"));
    CHECK(venue_ws_host("127.0.0.1", 80, 0, out, sizeof(out)) > 0 && !strcmp(out, "127.0.0.1"));
    CHECK(venue_ws_host("127.0.0.1", 443, 0, out, sizeof(out)) > 0 &&
          !strcmp(out, "127.0.0.1:443"));
    CHECK(venue_ws_host("::1", 8089, 0, out, sizeof(out)) > 0 && !strcmp(out, "[::1]:8089"));
    CHECK(venue_ws_host("example.com", 8089, 0, out, 8) == -1);
}

int main(void)
{
    RUN(joins_configured_path_and_endpoint_without_doubling);
    RUN(finds_every_preset_by_name);
    RUN(parses_rfc3339_to_exact_microseconds);
    RUN(reads_only_plain_decimal_strings);
    RUN(binance_maps_symbols_both_ways);
    RUN(binance_builds_combined_stream_url_and_rest_paths);
    RUN(symbols_split_over_connections);
    RUN(binance_long_stream_lists_subscribe_by_message);
    RUN(binance_book_ticker_carries_its_update_id);
    RUN(binance_book_ticker_gives_mid_and_receive_time);
    RUN(binance_mini_ticker_gives_last_open_volume_and_event_time);
    RUN(binance_event_arrays_are_all_or_nothing);
    RUN(binance_classifies_acks_errors_and_shutdown);
    RUN(binance_refuses_malformed_messages);
    RUN(binance_rest_reads_book_tickers_and_errors);
    RUN(coinbase_keeps_product_ids);
    RUN(coinbase_subscribes_to_ticker_and_heartbeat);
    RUN(coinbase_ticker_gives_prices_and_exact_microseconds);
    RUN(coinbase_classifies_heartbeats_acks_rejects_and_errors);
    RUN(coinbase_rest_takes_the_product_from_the_hint);
    RUN(kraken_maps_v2_v1_and_rest_names);
    RUN(kraken_builds_v2_subscribe_and_rest_pairs);
    RUN(kraken_ticker_snapshot_and_update_give_prices);
    RUN(kraken_classifies_status_acks_rejects_and_heartbeats);
    RUN(kraken_rest_reads_result_keys_and_in_band_errors);
    RUN(coingecko_has_no_symbols_and_no_websocket);
    RUN(coingecko_price_is_last_bid_and_ask);
    RUN(coingecko_reports_rate_limits_and_bad_bodies);
    RUN(okx_keeps_instrument_ids);
    RUN(okx_builds_public_path_tickers_subscribe_and_rest_paths);
    RUN(okx_tickers_push_gives_prices_and_event_time);
    RUN(okx_classifies_pong_acks_errors_and_notices);
    RUN(okx_rest_reads_tickers_and_error_codes);
    RUN(bybit_maps_symbols_and_builds_batched_subscribes);
    RUN(bybit_parses_tickers_orderbook_acks_and_rest);
    RUN(bitstamp_maps_pairs_and_subscribes_per_channel);
    RUN(bitstamp_parses_trades_book_top_events_and_rest);
    RUN(survives_deep_nesting_huge_and_truncated_input);
    RUN(fixtures_replay_without_surprises);
    return check_done();
}
