/* Normalizer: validation drops and counts bad updates, coalescing folds
 * updates between flushes, seq counts published values, session open. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "tickerd/norm.h"

typedef struct seen {
    int symbols, published;
    uint32_t last_id;
    norm_quote last;
} seen;

static void on_symbol(void *arg, uint32_t id, const char *s)
{
    (void)id;
    (void)s;
    ((seen *)arg)->symbols++;
}

static void on_publish(void *arg, uint32_t id, const norm_quote *q)
{
    seen *s = arg;
    s->published++;
    s->last_id = id;
    s->last = *q;
}

static feed_update upd(const char *sym, double last, int64_t ts)
{
    feed_update u = {.symbol = sym, .last = last, .bid = last - 1, .ask = last + 1,
                     .volume = 10, .open = NAN, .ts_us = ts, .source = 0};
    return u;
}

static norm *make(seen *s, int flush_ms)
{
    memset(s, 0, sizeof(*s));
    norm_sink sink = {.arg = s, .symbol_added = on_symbol, .publish = on_publish};
    norm *n = norm_create(4, flush_ms, &sink);
    norm_source_add(n, "sim");
    return n;
}

static void rejects_bad_updates_and_counts_each_reason(void)
{
    seen s;
    norm *n = make(&s, 10);
    feed_update u = upd("BTC-USD", 100, 1000);
    u.last = NAN;
    CHECK(norm_ingest(n, &u) == NORM_REJECT_NOT_FINITE + 1);
    u = upd("BTC-USD", 100, 1000);
    u.bid = INFINITY;
    CHECK(norm_ingest(n, &u) == NORM_REJECT_NOT_FINITE + 1);
    u = upd("BTC-USD", 0, 1000);
    CHECK(norm_ingest(n, &u) == NORM_REJECT_NOT_POSITIVE + 1);
    u = upd("BTC-USD", 100, 1000);
    u.volume = -1;
    CHECK(norm_ingest(n, &u) == NORM_REJECT_NOT_POSITIVE + 1);
    u = upd("BTC-USD", 100, 1000);
    u.bid = 102;
    CHECK(norm_ingest(n, &u) == NORM_REJECT_CROSSED + 1);
    u = upd("btc/usd", 100, 1000);
    CHECK(norm_ingest(n, &u) == NORM_REJECT_BAD_SYMBOL + 1);
    /* Nothing invalid created a symbol. */
    CHECK(norm_symbol_count(n) == 0);
    CHECK(s.symbols == 0);

    u = upd("BTC-USD", 100, 2000);
    CHECK(norm_ingest(n, &u) == 0);
    u = upd("BTC-USD", 100, 1999);
    CHECK(norm_ingest(n, &u) == NORM_REJECT_TIME_BACKWARDS + 1);
    u = upd("BTC-USD", 100, 2000); /* same time is fine */
    CHECK(norm_ingest(n, &u) == 0);

    const norm_stats *st = norm_get_stats(n);
    CHECK(st->rejected[NORM_REJECT_NOT_FINITE] == 2);
    CHECK(st->rejected[NORM_REJECT_NOT_POSITIVE] == 2);
    CHECK(st->rejected[NORM_REJECT_CROSSED] == 1);
    CHECK(st->rejected[NORM_REJECT_BAD_SYMBOL] == 1);
    CHECK(st->rejected[NORM_REJECT_TIME_BACKWARDS] == 1);
    CHECK(st->accepted == 2);
    norm_destroy(n);
}

static void coalesces_updates_within_a_flush(void)
{
    seen s;
    norm *n = make(&s, 10);
    for (int i = 1; i <= 5; i++) {
        feed_update u = upd("ETH-USD", 100 + i, 1000 + i);
        norm_ingest(n, &u);
    }
    CHECK(s.published == 0); /* nothing before the flush */
    norm_flush(n);
    CHECK(s.published == 1);
    CHECK(s.last.last == 105); /* the latest value wins */
    CHECK(s.last.seq == 1);
    CHECK(norm_get_stats(n)->coalesced == 4);
    norm_flush(n);
    CHECK(s.published == 1); /* no change, no publish */
    feed_update u = upd("ETH-USD", 200, 2000);
    norm_ingest(n, &u);
    norm_flush(n);
    CHECK(s.last.seq == 2);
    norm_destroy(n);
}

static void publishes_every_update_when_flush_interval_is_zero(void)
{
    seen s;
    norm *n = make(&s, 0);
    for (int i = 1; i <= 3; i++) {
        feed_update u = upd("SOL-USD", 10 + i, 1000 + i);
        norm_ingest(n, &u);
    }
    CHECK(s.published == 3);
    CHECK(s.last.seq == 3);
    CHECK(norm_get_stats(n)->coalesced == 0);
    norm_destroy(n);
}

static void tracks_session_open_and_change(void)
{
    seen s;
    norm *n = make(&s, 0);
    int64_t day = INT64_C(86400000000);
    feed_update u = upd("AAPL-USD", 100, 5 * day + 10);
    norm_ingest(n, &u);
    u = upd("AAPL-USD", 110, 5 * day + 20);
    norm_ingest(n, &u);
    CHECK(s.last.open == 100);
    u = upd("AAPL-USD", 120, 6 * day + 1); /* next UTC day: new session */
    norm_ingest(n, &u);
    CHECK(s.last.open == 120);
    u = upd("AAPL-USD", 121, 6 * day + 2);
    u.open = 90; /* a venue-supplied open wins */
    norm_ingest(n, &u);
    CHECK(s.last.open == 90);
    CHECK(strcmp(s.last.source, "sim") == 0);
    norm_destroy(n);
}

static void bounds_the_number_of_symbols(void)
{
    seen s;
    norm *n = make(&s, 10);
    const char *syms[] = {"A-USD", "B-USD", "C-USD", "D-USD", "E-USD"};
    for (int i = 0; i < 5; i++) {
        feed_update u = upd(syms[i], 10, 1);
        norm_ingest(n, &u);
    }
    CHECK(norm_symbol_count(n) == 4);
    CHECK(s.symbols == 4);
    CHECK(norm_get_stats(n)->rejected[NORM_REJECT_SYMBOL_LIMIT] == 1);
    CHECK(norm_declare(n, 0, "F-USD", NULL) == -1);
    norm_destroy(n);
}

static void maps_venue_symbols_per_source(void)
{
    seen s;
    norm *n = make(&s, 0);
    int binance = norm_source_add(n, "binance"), kraken = norm_source_add(n, "kraken");
    CHECK(norm_declare(n, (uint16_t)binance, "BTCUSDT", "BTC-USDT") == 0);
    CHECK(norm_declare(n, (uint16_t)kraken, "XBT/USD", "BTC-USD") == 0);
    CHECK(norm_declare(n, (uint16_t)kraken, "XBT/USD", "not canonical") == -1);
    CHECK(norm_symbol_count(n) == 2);

    feed_update u = upd("BTCUSDT", 100, 10);
    u.source = (uint16_t)binance;
    CHECK(norm_ingest(n, &u) == 0);
    CHECK(!strcmp(s.last.symbol, "BTC-USDT") && !strcmp(s.last.source, "binance"));
    u = upd("XBT/USD", 200, 10);
    u.source = (uint16_t)kraken;
    CHECK(norm_ingest(n, &u) == 0);
    CHECK(!strcmp(s.last.symbol, "BTC-USD"));
    /* A mapping belongs to its source: another source's XBT/USD is unknown. */
    u.source = (uint16_t)binance;
    CHECK(norm_ingest(n, &u) == NORM_REJECT_BAD_SYMBOL + 1);
    norm_destroy(n);
}

int main(void)
{
    RUN(rejects_bad_updates_and_counts_each_reason);
    RUN(coalesces_updates_within_a_flush);
    RUN(publishes_every_update_when_flush_interval_is_zero);
    RUN(tracks_session_open_and_change);
    RUN(bounds_the_number_of_symbols);
    RUN(maps_venue_symbols_per_source);
    return check_done();
}
