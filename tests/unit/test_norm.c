/* Normalizer: validation drops and counts bad updates, coalescing folds
 * updates between flushes, seq counts published values, session open;
 * several sources per symbol: priority, failover, take-back, standby,
 * staleness, per-source time, implausible jumps. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "tickerd/bcast.h"
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

/* A burst read at once (the loop was busy) but spread in event time: each
 * value a flush interval or more after the pending one is published, the
 * rest coalesce, and seq stays consecutive. */
static void coalesces_by_event_time_not_by_arrival(void)
{
    seen s;
    norm *n = make(&s, 10);
    const int64_t ms = 1000;
    const int64_t ts[] = {0, 4 * ms, 12 * ms, 30 * ms, 31 * ms, 45 * ms};
    for (int i = 0; i < 6; i++) {
        feed_update u = upd("ETH-USD", 100 + i, 1000000 + ts[i]);
        norm_ingest(n, &u);
    }
    /* Windows of 10 ms of event time: [0, 10) holds 0 and 4 ms (4 wins);
     * 12 is in [10, 20), so 4 goes out; 30 in [30, 40): 12 goes out; 31
     * joins it; 45 in [40, 50): 31 goes out; 45 waits for the flush. */
    CHECK(s.published == 3);
    CHECK(s.last.last == 104 && s.last.seq == 3);
    norm_flush(n);
    CHECK(s.published == 4 && s.last.last == 105 && s.last.seq == 4);
    CHECK(norm_get_stats(n)->coalesced == 2);
    norm_flush(n);
    CHECK(s.published == 4);
    norm_destroy(n);
}

/* A late tick's burst: its values arrive together, the first late, the
 * next on time, in another window of event time: both are published. */
static void a_late_value_is_not_merged_into_the_next_window(void)
{
    seen s;
    norm *n = make(&s, 10);
    const int64_t now = 1100000, ms = 1000;
    feed_update a = upd("ETH-USD", 100, now - 12 * ms), b = upd("ETH-USD", 101, now - 3 * ms),
                c = upd("ETH-USD", 102, now - 2 * ms);
    norm_ingest_at(n, &a, now); /* 12 ms late, window [1080, 1090) ms */
    norm_ingest_at(n, &b, now); /* 3 ms old, window [1090, 1100): a goes out */
    norm_ingest_at(n, &c, now); /* same window as b, neither late: c replaces b */
    CHECK(s.published == 1 && s.last.last == 100);
    norm_flush(n);
    CHECK(s.published == 2 && s.last.last == 102 && norm_get_stats(n)->coalesced == 1);
    norm_destroy(n);
}

/* A steady ETH-USD stream, each value arriving 0.5 ms after its ts (on
 * time), last prices 100, 101, ...; no flush in between. */
static void ingest_steady(norm *n, int64_t first_ts, int64_t every_us, int count)
{
    for (int i = 0; i < count; i++) {
        int64_t ts = first_ts + i * every_us;
        feed_update u = upd("ETH-USD", 100 + i, ts);
        norm_ingest_at(n, &u, ts + 500);
    }
}

/* Values that arrive on time coalesce by the flush timer alone, whatever
 * event-time windows they cross: a steady stream publishes once per flush. */
static void on_time_values_coalesce_until_the_flush(void)
{
    seen s;
    norm *n = make(&s, 10);
    ingest_steady(n, 1005000, 1500, 6); /* every 1.5 ms, across a 10 ms window's edge */
    CHECK(s.published == 0);
    norm_flush(n);
    CHECK(s.published == 1 && s.last.last == 105 && norm_get_stats(n)->coalesced == 5);
    norm_destroy(n);
}

/* A flush timer running late (a long pass of the loop) does not widen the
 * window: a value pending for a whole interval goes out when the next one
 * arrives, as a punctual flush would have published it. */
static void an_overdue_flush_does_not_widen_the_window(void)
{
    seen s;
    norm *n = make(&s, 10);
    ingest_steady(n, 1000000, 3000, 6); /* every 3 ms, no flush for 15 ms */
    /* 0.5 ms opens the window; 12.5 ms finds it open for 12 ms: 103 goes
     * out, 104 opens the next one, which 105 joins. */
    CHECK(s.published == 1 && s.last.last == 103 && s.last.seq == 1);
    norm_flush(n);
    CHECK(s.published == 2 && s.last.last == 105 && s.last.seq == 2);
    CHECK(norm_get_stats(n)->coalesced == 4);
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


/* ---- several sources per symbol ---- */

#define MS INT64_C(1000)
#define T0 INT64_C(1763913600000000) /* a plausible wall clock */

/* Sources a, b, c (ids 0, 1, 2): priority a > b > c by default. Stale after
 * 1 s, band 5 %. */
static norm *make_multi(seen *s, int flush_ms)
{
    memset(s, 0, sizeof(*s));
    norm_sink sink = {.arg = s, .symbol_added = on_symbol, .publish = on_publish};
    norm *n = norm_create(16, flush_ms, &sink);
    norm_source_add(n, "a");
    norm_source_add(n, "b");
    norm_source_add(n, "c");
    norm_set_stale_after(n, 1000);
    norm_set_jump_band(n, 5.0);
    return n;
}

/* One update from source src at local time now (its event time = now). */
static int feed_at(norm *n, uint16_t src, const char *sym, double last, int64_t now)
{
    feed_update u = upd(sym, last, now);
    u.source = src;
    return norm_ingest_at(n, &u, now);
}

static void publishes_the_preferred_source_and_keeps_the_others_as_standby(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    CHECK(feed_at(n, 0, "BTC-USD", 100, T0) == 0);
    CHECK(s.published == 1 && !strcmp(s.last.source, "a"));
    CHECK(feed_at(n, 1, "BTC-USD", 101, T0 + 10 * MS) == 0); /* accepted, not published */
    CHECK(feed_at(n, 2, "BTC-USD", 102, T0 + 20 * MS) == 0);
    CHECK(s.published == 1);
    CHECK(feed_at(n, 0, "BTC-USD", 100.5, T0 + 30 * MS) == 0);
    CHECK(s.published == 2 && s.last.last == 100.5 && !strcmp(s.last.source, "a"));
    CHECK(s.last.seq == 2);
    const norm_stats *st = norm_get_stats(n);
    CHECK(st->accepted == 4);
    CHECK(st->standby == 2);
    CHECK(st->switches == 0);
    norm_destroy(n);
}

static void a_lower_priority_source_that_quotes_first_is_replaced_by_the_preferred_one(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    feed_at(n, 1, "ETH-USD", 200, T0);
    CHECK(s.published == 1 && !strcmp(s.last.source, "b"));
    feed_at(n, 0, "ETH-USD", 201, T0 + 5 * MS);
    CHECK(s.published == 2 && !strcmp(s.last.source, "a") && s.last.last == 201);
    CHECK(norm_get_stats(n)->switches == 1);
    norm_destroy(n);
}

static void fails_over_to_the_next_fresh_source_when_the_active_one_goes_stale(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    feed_at(n, 0, "BTC-USD", 100, T0);
    feed_at(n, 1, "BTC-USD", 100.2, T0 + 100 * MS);
    feed_at(n, 2, "BTC-USD", 100.4, T0 + 100 * MS);
    feed_at(n, 1, "BTC-USD", 100.3, T0 + 600 * MS);
    CHECK(s.published == 1);
    norm_check_stale(n, T0 + 1000 * MS); /* a is exactly at the limit: still fresh */
    CHECK(s.published == 1);
    norm_check_stale(n, T0 + 1001 * MS);
    /* b, the next in priority, is fresh: its latest value goes out at once. */
    CHECK(s.published == 2);
    CHECK(!strcmp(s.last.source, "b") && s.last.last == 100.3 && s.last.seq == 2);
    CHECK(!s.last.stale);
    CHECK(norm_get_stats(n)->switches == 1);
    feed_at(n, 1, "BTC-USD", 100.1, T0 + 1100 * MS); /* b is active now: published */
    CHECK(s.published == 3 && s.last.last == 100.1);
    feed_at(n, 2, "BTC-USD", 100.4, T0 + 1200 * MS); /* c still standby */
    CHECK(s.published == 3);
    /* b goes stale too: c takes over. */
    norm_check_stale(n, T0 + 2101 * MS);
    CHECK(s.published == 4 && !strcmp(s.last.source, "c"));
    CHECK(norm_get_stats(n)->switches == 2);
    norm_destroy(n);
}

static void the_preferred_source_takes_back_when_it_recovers(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    feed_at(n, 0, "BTC-USD", 100, T0);
    feed_at(n, 1, "BTC-USD", 100, T0 + 500 * MS);
    norm_check_stale(n, T0 + 1200 * MS);
    CHECK(!strcmp(s.last.source, "b"));
    feed_at(n, 1, "BTC-USD", 100.1, T0 + 1300 * MS);
    CHECK(!strcmp(s.last.source, "b") && s.last.last == 100.1);
    /* a quotes again: it is fresh and preferred, so it is active at once. */
    int before = s.published;
    CHECK(feed_at(n, 0, "BTC-USD", 100.2, T0 + 1400 * MS) == 0);
    CHECK(s.published == before + 1);
    CHECK(!strcmp(s.last.source, "a") && s.last.last == 100.2);
    CHECK(norm_get_stats(n)->switches == 2);
    feed_at(n, 1, "BTC-USD", 100.3, T0 + 1500 * MS); /* b back to standby */
    CHECK(s.published == before + 1);
    norm_destroy(n);
}

static void the_active_source_is_rechosen_on_an_update_before_the_periodic_check(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    feed_at(n, 0, "BTC-USD", 100, T0);
    feed_at(n, 1, "BTC-USD", 100, T0 + 10 * MS);
    /* a has been silent for 1.5 s, no check ran yet: b's update fails over. */
    feed_at(n, 1, "BTC-USD", 100.5, T0 + 1500 * MS);
    CHECK(!strcmp(s.last.source, "b") && s.last.last == 100.5);
    CHECK(norm_get_stats(n)->switches == 1);
    norm_destroy(n);
}

static void marks_a_symbol_stale_when_no_source_is_fresh_and_clears_it_on_a_fresh_update(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    feed_at(n, 0, "BTC-USD", 100, T0);
    feed_at(n, 1, "BTC-USD", 100.1, T0 + 200 * MS);
    CHECK(norm_get_stats(n)->stale_symbols == 0);
    norm_check_stale(n, T0 + 1100 * MS); /* a stale, b fresh */
    CHECK(!strcmp(s.last.source, "b") && !s.last.stale);
    norm_check_stale(n, T0 + 1300 * MS); /* both stale */
    CHECK(s.published == 3);
    CHECK(s.last.stale == 1 && s.last.last == 100.1 && s.last.seq == 3);
    CHECK(norm_get_stats(n)->stale_symbols == 1);
    char buf[BCAST_ENC_MAX];
    size_t len = bcast_encode_json(buf, &s.last);
    CHECK(len && strstr(buf, "\"stale\":true") != NULL);
    /* Once marked, it stays so quietly. */
    norm_check_stale(n, T0 + 5000 * MS);
    CHECK(s.published == 3);
    CHECK(norm_get_stats(n)->stale_symbols == 1);
    /* A fresh update from any source clears it, once with "stale":false. */
    feed_at(n, 1, "BTC-USD", 100.2, T0 + 6000 * MS);
    CHECK(s.published == 4 && !s.last.stale && s.last.stale_cleared);
    CHECK(!strcmp(s.last.source, "b") && s.last.last == 100.2);
    CHECK(norm_get_stats(n)->stale_symbols == 0);
    len = bcast_encode_json(buf, &s.last);
    CHECK(len && strstr(buf, "\"stale\":false") != NULL);
    feed_at(n, 1, "BTC-USD", 100.3, T0 + 6100 * MS);
    CHECK(s.published == 5 && !s.last.stale && !s.last.stale_cleared);
    len = bcast_encode_json(buf, &s.last);
    CHECK(len && strstr(buf, "stale") == NULL);
    norm_destroy(n);
}

static void a_single_source_symbol_goes_stale_and_recovers(void)
{
    seen s;
    norm *n = make_multi(&s, 10);
    feed_at(n, 0, "SOL-USD", 150, T0);
    norm_flush(n);
    CHECK(s.published == 1);
    norm_check_stale(n, T0 + 2000 * MS);
    CHECK(s.published == 1); /* marked, published at the next flush */
    norm_flush(n);
    CHECK(s.published == 2 && s.last.stale && !strcmp(s.last.source, "a"));
    feed_at(n, 0, "SOL-USD", 151, T0 + 2100 * MS);
    feed_at(n, 0, "SOL-USD", 152, T0 + 2105 * MS);
    norm_flush(n);
    CHECK(s.published == 3 && !s.last.stale && s.last.stale_cleared && s.last.last == 152);
    CHECK(norm_get_stats(n)->switches == 0);
    norm_destroy(n);
}

static void a_symbol_without_a_value_is_never_stale(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    CHECK(norm_declare(n, 0, "XRP-USD", NULL) == 0);
    norm_check_stale(n, T0 + 60000 * MS);
    CHECK(s.published == 0);
    CHECK(norm_get_stats(n)->stale_symbols == 0);
    norm_destroy(n);
}

static void time_must_not_go_backwards_per_source_only(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    feed_update u = upd("BTC-USD", 100, 5000);
    u.source = 0;
    CHECK(norm_ingest_at(n, &u, T0) == 0);
    u = upd("BTC-USD", 100, 3000); /* b's clock is behind a's: fine */
    u.source = 1;
    CHECK(norm_ingest_at(n, &u, T0 + MS) == 0);
    u = upd("BTC-USD", 100, 4999);
    u.source = 0;
    CHECK(norm_ingest_at(n, &u, T0 + 2 * MS) == NORM_REJECT_TIME_BACKWARDS + 1);
    u = upd("BTC-USD", 100, 2999);
    u.source = 1;
    CHECK(norm_ingest_at(n, &u, T0 + 3 * MS) == NORM_REJECT_TIME_BACKWARDS + 1);
    u = upd("BTC-USD", 100, 3000);
    u.source = 1;
    CHECK(norm_ingest_at(n, &u, T0 + 4 * MS) == 0);
    CHECK(norm_get_stats(n)->rejected[NORM_REJECT_TIME_BACKWARDS] == 2);
    norm_destroy(n);
}

static void an_implausible_jump_is_held_back_and_counted(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    feed_at(n, 0, "BTC-USD", 100, T0);
    feed_at(n, 1, "BTC-USD", 100, T0 + 10 * MS);
    int before = s.published;
    /* The active source jumps 10 % against b: not stored, not published. */
    CHECK(feed_at(n, 0, "BTC-USD", 110, T0 + 20 * MS) == NORM_REJECT_IMPLAUSIBLE + 1);
    CHECK(s.published == before && s.last.last == 100);
    /* Within the band: fine. */
    CHECK(feed_at(n, 0, "BTC-USD", 104.9, T0 + 30 * MS) == 0);
    CHECK(s.published == before + 1 && s.last.last == 104.9);
    CHECK(feed_at(n, 1, "BTC-USD", 100.5, T0 + 40 * MS) == 0);
    /* A standby jumping is held back too: its stored value stays 100.5,
     * which shows when it takes over. */
    CHECK(feed_at(n, 1, "BTC-USD", 90, T0 + 50 * MS) == NORM_REJECT_IMPLAUSIBLE + 1);
    norm_check_stale(n, T0 + 1031 * MS); /* a stale, b fresh */
    CHECK(!strcmp(s.last.source, "b") && s.last.last == 100.5 && !s.last.stale);
    CHECK(norm_get_stats(n)->rejected[NORM_REJECT_IMPLAUSIBLE] == 2);
    CHECK(norm_get_stats(n)->accepted == 4);
    /* With a stale, b has nothing fresh to be compared with. */
    CHECK(feed_at(n, 1, "BTC-USD", 200, T0 + 1039 * MS) == 0);
    norm_destroy(n);
}

static void the_band_compares_with_the_median_of_the_other_fresh_sources(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    feed_at(n, 1, "BTC-USD", 100, T0);
    feed_at(n, 2, "BTC-USD", 200, T0); /* 100 % off fresh b: held back */
    CHECK(norm_get_stats(n)->rejected[NORM_REJECT_IMPLAUSIBLE] == 1);
    feed_at(n, 2, "BTC-USD", 104, T0 + MS);
    /* a is compared with the median of b (100) and c (104): 102. */
    CHECK(feed_at(n, 0, "BTC-USD", 107.2, T0 + 2 * MS) == NORM_REJECT_IMPLAUSIBLE + 1);
    CHECK(feed_at(n, 0, "BTC-USD", 107.0, T0 + 3 * MS) == 0);
    CHECK(!strcmp(s.last.source, "a") && s.last.last == 107.0);
    /* Stale sources are not compared with: after 2 s only a's update counts. */
    CHECK(feed_at(n, 0, "BTC-USD", 150, T0 + 2000 * MS) == 0);
    CHECK(s.last.last == 150);
    norm_destroy(n);
}

static void a_single_source_is_never_compared(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    CHECK(feed_at(n, 0, "BTC-USD", 100, T0) == 0);
    CHECK(feed_at(n, 0, "BTC-USD", 300, T0 + MS) == 0); /* tripled: nothing to compare with */
    CHECK(feed_at(n, 0, "BTC-USD", 30, T0 + 2 * MS) == 0);
    CHECK(norm_get_stats(n)->rejected[NORM_REJECT_IMPLAUSIBLE] == 0);
    CHECK(s.published == 3);
    norm_destroy(n);
}

static void a_band_of_zero_turns_the_check_off(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    norm_set_jump_band(n, 0);
    feed_at(n, 0, "BTC-USD", 100, T0);
    CHECK(feed_at(n, 1, "BTC-USD", 1000, T0 + MS) == 0);
    CHECK(norm_get_stats(n)->rejected[NORM_REJECT_IMPLAUSIBLE] == 0);
    CHECK(norm_get_stats(n)->standby == 1);
    norm_destroy(n);
}

static void per_symbol_priority_overrides_the_default_order(void)
{
    seen s;
    norm *n = make_multi(&s, 0);
    feed_at(n, 0, "BTC-USD", 100, T0);
    feed_at(n, 1, "BTC-USD", 100, T0 + MS);
    feed_at(n, 0, "ETH-USD", 10, T0);
    feed_at(n, 1, "ETH-USD", 10, T0 + MS);
    CHECK(!strcmp(s.last.source, "a"));
    const char *order[] = {"a", "b", "c"};
    const char *btc[] = {"b", "nope", "a"}; /* an unknown name is ignored */
    norm_priority ov[] = {{"BTC-USD", btc, 3}};
    CHECK(norm_set_priorities(n, order, 3, ov, 1) == 0);
    /* The next check re-chooses: BTC-USD moves to b, ETH-USD stays on a. */
    norm_check_stale(n, T0 + 10 * MS);
    CHECK(s.published == 3 && s.last_id == 0 && !strcmp(s.last.source, "b"));
    feed_at(n, 1, "BTC-USD", 100.1, T0 + 20 * MS);
    CHECK(s.published == 4 && !strcmp(s.last.source, "b"));
    feed_at(n, 0, "BTC-USD", 100.2, T0 + 30 * MS); /* standby now */
    feed_at(n, 1, "ETH-USD", 10.1, T0 + 30 * MS);  /* standby */
    CHECK(s.published == 4);
    /* A symbol known later gets its override too; the default order can
     * change (a reload reordering feeds[]). */
    const char *order2[] = {"c", "b", "a"};
    CHECK(norm_set_priorities(n, order2, 3, NULL, 0) == 0);
    norm_check_stale(n, T0 + 40 * MS);
    CHECK(!strcmp(s.last.source, "b") && s.last_id == 1); /* ETH-USD: c has no value, b next */
    CHECK(feed_at(n, 2, "SOL-USD", 10, T0 + 50 * MS) == 0);
    CHECK(feed_at(n, 0, "SOL-USD", 10, T0 + 60 * MS) == 0);
    CHECK(!strcmp(s.last.source, "c") && s.last_id == 2);
    norm_destroy(n);
}

static void a_failover_within_a_flush_interval_publishes_once(void)
{
    seen s;
    norm *n = make_multi(&s, 10);
    feed_at(n, 0, "BTC-USD", 100, T0);
    feed_at(n, 1, "BTC-USD", 100.1, T0 + 900 * MS);
    norm_flush(n);
    CHECK(s.published == 1);
    norm_check_stale(n, T0 + 1100 * MS);
    feed_at(n, 1, "BTC-USD", 100.2, T0 + 1105 * MS);
    norm_flush(n);
    CHECK(s.published == 2 && !strcmp(s.last.source, "b") && s.last.last == 100.2);
    CHECK(s.last.seq == 2);
    norm_destroy(n);
}

static void the_stale_flag_fits_the_encoding_bound(void)
{
    norm_quote q;
    memset(&q, 0, sizeof(q));
    memset(q.symbol, 'A', SYMTAB_NAME_MAX - 3);
    q.symbol[SYMTAB_NAME_MAX - 3] = '-';
    q.symbol[SYMTAB_NAME_MAX - 2] = 'B';
    q.last = q.bid = q.ask = q.volume = -1.234567890123e300;
    q.open = 1e-300;
    q.seq = UINT64_MAX;
    q.ts_us = INT64_MIN;
    q.source = "a-feed-name-of-31-characters-xx";
    q.stale_cleared = 1;
    char buf[BCAST_ENC_MAX];
    size_t len = bcast_encode_json(buf, &q);
    CHECK(len < BCAST_ENC_MAX - 1);
    CHECK(len > 15 && !strcmp(buf + len - 15, ",\"stale\":false}"));
}


static void external_values_keep_their_seq_and_encoding(void)
{
    seen s;
    norm *n = make(&s, 10);
    norm_quote q;
    memset(&q, 0, sizeof(q));
    strcpy(q.symbol, "ETH-USD");
    q.last = q.bid = q.ask = q.open = 2000;
    q.seq = 4711;
    q.source = "coinbase";
    q.enc = "{}";
    q.enc_len = 2;
    uint32_t id = norm_apply_external(n, &q);
    CHECK(id == 0 && s.symbols == 1 && s.published == 1);
    CHECK(s.last.seq == 4711 && s.last.enc_len == 2 && !strcmp(s.last.source, "coinbase"));
    q.seq = 4713; /* a gap is the caller's business */
    CHECK(norm_apply_external(n, &q) == 0 && s.last.seq == 4713 && s.symbols == 1);
    strcpy(q.symbol, "not canonical");
    CHECK(norm_apply_external(n, &q) == UINT32_MAX);
    CHECK(norm_get_stats(n)->rejected[NORM_REJECT_BAD_SYMBOL] == 1);
    norm_destroy(n);
}

int main(void)
{
    RUN(rejects_bad_updates_and_counts_each_reason);
    RUN(coalesces_updates_within_a_flush);
    RUN(coalesces_by_event_time_not_by_arrival);
    RUN(a_late_value_is_not_merged_into_the_next_window);
    RUN(on_time_values_coalesce_until_the_flush);
    RUN(an_overdue_flush_does_not_widen_the_window);
    RUN(publishes_every_update_when_flush_interval_is_zero);
    RUN(tracks_session_open_and_change);
    RUN(bounds_the_number_of_symbols);
    RUN(maps_venue_symbols_per_source);
    RUN(publishes_the_preferred_source_and_keeps_the_others_as_standby);
    RUN(a_lower_priority_source_that_quotes_first_is_replaced_by_the_preferred_one);
    RUN(fails_over_to_the_next_fresh_source_when_the_active_one_goes_stale);
    RUN(the_preferred_source_takes_back_when_it_recovers);
    RUN(the_active_source_is_rechosen_on_an_update_before_the_periodic_check);
    RUN(marks_a_symbol_stale_when_no_source_is_fresh_and_clears_it_on_a_fresh_update);
    RUN(a_single_source_symbol_goes_stale_and_recovers);
    RUN(a_symbol_without_a_value_is_never_stale);
    RUN(time_must_not_go_backwards_per_source_only);
    RUN(an_implausible_jump_is_held_back_and_counted);
    RUN(the_band_compares_with_the_median_of_the_other_fresh_sources);
    RUN(a_single_source_is_never_compared);
    RUN(a_band_of_zero_turns_the_check_off);
    RUN(per_symbol_priority_overrides_the_default_order);
    RUN(a_failover_within_a_flush_interval_publishes_once);
    RUN(the_stale_flag_fits_the_encoding_bound);
    RUN(external_values_keep_their_seq_and_encoding);
    return check_done();
}
